"""The effective config.properties: the shared file with this deployment's model store and version."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

CONFIG = Path(__file__).resolve().parent / "config.properties"


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


def torchserve_argv(config: Path, model_store: Path) -> list[str]:
    """TorchServe in the foreground with our config; token auth off (see config.properties)."""
    torchserve = str(Path(sys.executable).parent / "torchserve")
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
    ]
