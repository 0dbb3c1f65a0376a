"""The one owner of TorchServe's ``config.properties``: nothing else reads or writes it. The
shipped file is read here (``read``), changed as properties (``with_models``, ``without``,
``for_version``) and written for a run (``write_config``: this deployment's model store and the
version it loads at start; a rollout rewrites it so a restart loads the version it switched to)."""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

from serving.torchserve.build_mar import versioned_name

CONFIG = Path(__file__).resolve().parent / "config.properties"
# The project's log4j2 configuration: warnings and errors as JSON lines, nothing per request.
LOG_CONFIG = Path(__file__).resolve().parent / "log4j2.xml"

Properties = dict[str, str]
# The keys the tuning chose (make bench-tuning measures each; reports show them).
TUNING_KEYS = (
    "async_logging",
    "vmargs",
    "number_of_netty_threads",
    "netty_client_threads",
    "disable_system_metrics",
    "decode_input_request",
)


def read(source: Path = CONFIG) -> Properties:
    """Key -> value, in file order (Java properties: a trailing backslash continues the line)."""
    text = re.sub(r"\\\n[ \t]*", "", source.read_text())
    props: Properties = {}
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith(("#", "!")):
            key, _, value = line.partition("=")
            props[key.strip()] = value.strip()
    return props


def render(props: Properties) -> str:
    return "".join(f"{key}={value}\n" for key, value in props.items())


def models(props: Properties) -> dict[str, dict[str, Any]]:
    """Each model's settings (batchSize, maxBatchDelay, workers, ...) from ``models=``."""
    return {name: next(iter(versions.values())) for name, versions in json.loads(props["models"]).items()}


def with_models(props: Properties, version: str | None = None, **settings: Any) -> Properties:
    """``props`` with ``settings`` applied to every model (and its version key set to ``version``)."""
    current = json.loads(props["models"])
    out = {}
    for name, versions in current.items():
        key, model = next(iter(versions.items()))
        out[name] = {version or key: {**model, **settings}}
    return {**props, "models": json.dumps(out)}


def without(props: Properties, *keys: str) -> Properties:
    return {k: v for k, v in props.items() if k not in keys}


def batching_summary(props: Properties) -> str:
    return "; ".join(
        f"{name}: batchSize {m['batchSize']}, maxBatchDelay {m['maxBatchDelay']} ms, "
        f"{m['minWorkers']}-{m['maxWorkers']} workers"
        for name, m in models(props).items()
    )


def for_version(props: Properties, version: int) -> Properties:
    """``props`` loading version ``version`` at start: the ``models=`` version keys set to it
    (TorchServe refuses a key that does not match the archive's) and every archive named as
    ``build_mar.versioned_name`` names it (``mnist-v2.mar``), in ``marName`` and ``load_models``."""
    current = json.loads(with_models(props, version=str(version))["models"])
    for name, versions in current.items():
        versions[str(version)]["marName"] = versioned_name(name, version)
    load = ",".join(versioned_name(name, version) for name in current)
    return {**props, "models": json.dumps(current), "load_models": load}


def served_version(props: Properties) -> int:
    """The version a config loads at start (``for_version``'s)."""
    keys = {key for versions in json.loads(props["models"]).values() for key in versions}
    (key,) = keys
    return int(key)


def write_config(
    out: Path, model_store: Path, version: int, source: Path = CONFIG, props: Properties | None = None
) -> Path:
    """``source`` (or ``props``) with ``model_store`` set, loading version ``version``'s archives at
    start (``for_version``). Written whole or not at all (a rollout rewrites a running server's)."""
    config = for_version(props if props is not None else read(source), version)
    config["model_store"] = str(model_store.resolve())
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(render(config))
    tmp.replace(out)
    return out


def torchserve_argv(config: Path, model_store: Path, log_config: Path | None = LOG_CONFIG) -> list[str]:
    """TorchServe in the foreground with our config; token auth off (see config.properties).
    ``log_config`` None: TorchServe's own logging (INFO, an access log; for before/after benchmarks)."""
    torchserve = str(Path(sys.executable).parent / "torchserve")
    logging = ["--log-config", str(log_config)] if log_config is not None else []
    return [
        torchserve,
        "--start",
        "--foreground",
        "--ncs",
        "--disable-token-auth",
        "--ts-config",
        str(config),
        "--model-store",
        str(model_store),
        *logging,
    ]


GENERATED_HEADER = (
    "# Generated from serving/torchserve/config.properties by `make k8s-config` (serving/torchserve/config.py);\n"
    "# do not edit: a test fails when it differs from what the source renders.\n"
)


def rendered_for_kubernetes(source: Path = CONFIG) -> str:
    """The Kubernetes ConfigMap's config.properties: the shipped properties, without the comments
    (they stay in the source), addresses and ports overridden in the pods by TS_* variables."""
    return GENERATED_HEADER + render(read(source))


def kubernetes_file_is_current(path: Path) -> bool:
    """Whether the ConfigMap's file is byte for byte what ``rendered_for_kubernetes`` gives now."""
    return path.read_text() == rendered_for_kubernetes()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Render TorchServe's config.properties for a deployment.")
    p.add_argument("--kubernetes", type=Path, required=True, help="write the ConfigMap's file here")
    args = p.parse_args(argv)
    args.kubernetes.write_text(rendered_for_kubernetes())
    return 0


if __name__ == "__main__":
    sys.exit(main())
