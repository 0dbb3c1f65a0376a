"""The one owner of TF Serving's configuration: its three config files and its command line.

The shipped files (``models.config``, ``batching.config``, ``monitoring.config`` beside this module)
are read and changed only here: ``batching`` reads the batching parameters, ``write_batching``
writes a changed copy (the load sweep's), ``model_server_config`` / ``write_model_config`` give
the model config with its ``base_path``, versions and labels (a native run's, a rollout's).
``argv`` is ``tensorflow_model_server``'s command line for an environment (serving/environments.py
adds the environment's flags to the ports and files here), and ``READY_COMMAND`` is the one
readiness check. The image has no Python (the real server's), so the containers state these as JSON
in their Dockerfile, compose files and manifests; tests/serving/test_environments.py fails when one
differs from what this module renders.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from google.protobuf import text_format

from mnist_serving.ports import TFSERVING_GRPC, TFSERVING_REST
from mnist_serving.spec import TF_MODEL_NAME
from serving.environments import TFSERVING, Environment
from serving.tfserving import messages

CONFIG_DIR = Path(__file__).resolve().parent
FILES = ("models.config", "batching.config", "monitoring.config")
BINARY = "tensorflow_model_server"
# Where the images keep them (serving/tfserving/Dockerfile, the stand-in's, the ConfigMap's mount).
CONTAINER_CONFIG_DIR = "/config"

# Readiness: a version of the model AVAILABLE, i.e. it can serve (GET /v1/models/<name> answers 200
# while the only version is still LOADING, so a plain HTTP probe would say ready too early). Not "every
# version": a retired version stays listed as END, and a new one LOADING beside a served one is no
# reason to take the server out of rotation. The images carry curl.
STATUS_PATH = f"/v1/models/{TF_MODEL_NAME}"
READY_COMMAND = f"curl -fsS http://127.0.0.1:{TFSERVING_REST}{STATUS_PATH} | grep -q AVAILABLE"
# On a GPU, also the device: the real server ignores REQUIRE_GPU and would serve from the CPU.
READY_COMMAND_GPU = f"{READY_COMMAND} && nvidia-smi -L | grep -q GPU"


def ready_command(environment: Environment) -> list[str]:
    """The readiness check as a container exec command (Dockerfile, compose, probes)."""
    return ["sh", "-c", READY_COMMAND_GPU if environment.gpu else READY_COMMAND]


def status_is_ready(status: dict[str, Any]) -> bool:
    """READY_COMMAND's rule on a parsed status answer: some version AVAILABLE."""
    return any(s.get("state") == "AVAILABLE" for s in status.get("model_version_status", []))


# ---- the files -----------------------------------------------------------------------------------


def batching(source: Path = CONFIG_DIR / "batching.config") -> dict[str, int | bool]:
    """The BatchingParameters' scalar fields (``name { value: V }``), in file order."""
    out: dict[str, int | bool] = {}
    for name, value in re.findall(r"^(\w+) \{ value: (\w+) \}", source.read_text(), re.MULTILINE):
        out[name] = value == "true" if value in ("true", "false") else int(value)
    return out


def write_batching(out: Path, source: Path = CONFIG_DIR / "batching.config", **fields: int) -> Path:
    """The shipped batching.config with ``fields`` replaced (each must be set there exactly once)."""
    text = source.read_text()
    for name, value in fields.items():
        text, n = re.subn(rf"^{name} \{{ value: \w+ \}}", f"{name} {{ value: {value} }}", text, flags=re.MULTILINE)
        if n != 1:
            raise ValueError(f"batching.config must set {name} once")
    out.write_text(text)
    return out


def batching_summary(source: Path = CONFIG_DIR / "batching.config") -> str:
    return " ".join(f"{name} {{ value: {json.dumps(v)} }}" for name, v in batching(source).items())


def model_server_config(
    base_path: str,
    versions: Sequence[int] | None = None,
    labels: Mapping[str, int] | None = None,
    source: Path = CONFIG_DIR / "models.config",
) -> Any:
    """The shipped models.config as a ``ModelServerConfig`` (serving/tfserving/messages.py) with
    ``base_path`` set and, when given, the ``specific`` versions served and the labels (all of them:
    labels not named are dropped)."""
    config = read_model_config(source)
    (model,) = config.model_config_list.config
    model.base_path = base_path
    if versions is not None:
        if not versions:
            raise ValueError("a model needs at least one version")
        model.model_version_policy.Clear()
        model.model_version_policy.specific.versions.extend(sorted(set(versions)))
    if labels is not None:
        model.version_labels.clear()
        for label, version in labels.items():
            model.version_labels[label] = version
    return config


def read_model_config(path: Path) -> Any:
    return text_format.Parse(path.read_text(), messages.ModelServerConfig())


def served(config: Any) -> tuple[list[int] | None, dict[str, int]]:
    """A config's ``specific`` versions (None under another policy) and its labels."""
    (model,) = config.model_config_list.config
    policy = model.model_version_policy
    specific = policy.WhichOneof("policy_choice") == "specific"
    return (sorted(policy.specific.versions) if specific else None), dict(model.version_labels)


MODEL_CONFIG_HEADER = (
    "# TensorFlow Serving model config, written by serving/tfserving/config.py from the shipped\n"
    "# serving/tfserving/models.config (a rollout rewrites it: serving/rollout).\n"
)


def render_model_config(config: Any) -> str:
    return MODEL_CONFIG_HEADER + text_format.MessageToString(config)


def write_model_config(
    model_base: Path, out: Path, versions: Sequence[int] | None = None, labels: Mapping[str, int] | None = None
) -> Path:
    """models.config for a native run: ``base_path`` at ``model_base``, and ``versions`` and
    ``labels`` as ``model_server_config`` sets them. Written whole or not at all (a server polling
    the file never reads half of it)."""
    text = render_model_config(model_server_config(str(model_base.resolve()), versions, labels))
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(out)
    return out


# ---- the command line ----------------------------------------------------------------------------


def argv(
    environment: Environment,
    *,
    grpc_port: int = TFSERVING_GRPC,
    rest_port: int = TFSERVING_REST,
    model_config: str = f"{CONTAINER_CONFIG_DIR}/models.config",
    batching_file: str = f"{CONTAINER_CONFIG_DIR}/batching.config",
    monitoring: str = f"{CONTAINER_CONFIG_DIR}/monitoring.config",
) -> list[str]:
    """``tensorflow_model_server``'s flags (without the binary) for ``environment``; the defaults are
    the containers' ports and paths."""
    return [
        f"--port={grpc_port}",
        f"--rest_api_port={rest_port}",
        f"--model_config_file={model_config}",
        "--enable_batching=true",
        f"--batching_parameters_file={batching_file}",
        f"--monitoring_config_file={monitoring}",
        *TFSERVING[environment].argv(),
    ]


# ---- Kubernetes ----------------------------------------------------------------------------------

GENERATED_HEADER = (
    "# Generated from serving/tfserving/{name} by `make k8s-config` (serving/tfserving/config.py);\n"
    "# do not edit: a test fails when it differs from what the source renders.\n"
)


def rendered_for_kubernetes(name: str) -> str:
    """The ConfigMap's copy of a shipped file (the same text: the container paths are the same)."""
    return GENERATED_HEADER.format(name=name) + (CONFIG_DIR / name).read_text()


def main(argv_: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Render TF Serving's config files for the Kubernetes ConfigMap.")
    p.add_argument("--kubernetes", type=Path, required=True, help="write the ConfigMap's files into this folder")
    args = p.parse_args(argv_)
    for name in FILES:
        (args.kubernetes / name).write_text(rendered_for_kubernetes(name))
    return 0


if __name__ == "__main__":
    sys.exit(main())
