"""The effective config.properties: the shared file with this deployment's model store and version."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

CONFIG = Path(__file__).resolve().parent / "config.properties"
# The project's log4j2 configuration: warnings and errors as JSON lines, nothing per request.
LOG_CONFIG = Path(__file__).resolve().parent / "log4j2.xml"


def write_config(out: Path, model_store: Path, version: int, source: Path = CONFIG) -> Path:
    """Copy ``source`` to ``out`` with ``model_store`` set and the ``models=`` version keys set to
    ``version`` (TorchServe refuses a version key that does not match the archive's)."""
    # Java properties: a trailing backslash continues the line; join before editing.
    lines = re.sub(r"\\\n[ \t]*", "", source.read_text()).splitlines()
    out_lines = []
    for line in lines:
        key, _, value = line.partition("=")
        if key == "models":
            models = json.loads(value)
            rewritten = {name: {str(version): next(iter(v.values()))} for name, v in models.items()}
            line = "models=" + json.dumps(rewritten)
        elif key == "model_store":
            line = f"model_store={model_store.resolve()}"
        out_lines.append(line)
    out.write_text("\n".join(out_lines) + "\n")
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
