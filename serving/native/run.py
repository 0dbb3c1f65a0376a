"""What a running native stack is and where its files are, for the tools that act on it.

``ServingStack.start`` writes it to ``<run dir>/stack.json``; ``python -m serving.native`` (``make
serve``) also points ``run/current`` at its run folder, so ``make rollout`` finds the stack with no
arguments: its ports, the artifacts it serves from, and the files a restart reads (TF Serving's
models.config, TorchServe's config.properties and model store), which a rollout rewrites so that a
restarted server comes back with the version it switched to.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from serving.native import tfserving, torchserve
from serving.native.settings import REPO, ServingPorts

FILE = "stack.json"
CURRENT = REPO / "run" / "current"  # the newest `make serve`'s run folder (a symlink)


@dataclass(frozen=True)
class NativeRun:
    run_dir: Path
    artifacts: Path
    ports: ServingPorts
    servers: tuple[str, ...]
    with_gateway: bool

    @property
    def tf_model_config(self) -> Path:
        return tfserving.model_config_path(self.run_dir)

    @property
    def tf_model_base(self) -> Path:
        return tfserving.model_base(self.artifacts)

    @property
    def ts_config(self) -> Path:
        return torchserve.config_path(self.run_dir)

    @property
    def ts_model_store(self) -> Path:
        return torchserve.model_store(self.run_dir)

    def save(self) -> Path:
        out = self.run_dir / FILE
        data = {
            "run_dir": str(self.run_dir),
            "artifacts": str(self.artifacts),
            "ports": self.ports.as_dict(),
            "servers": list(self.servers),
            "with_gateway": self.with_gateway,
        }
        out.write_text(json.dumps(data, indent=2) + "\n")
        return out

    @classmethod
    def load(cls, run_dir: Path) -> NativeRun:
        path = run_dir / FILE
        if not path.is_file():
            raise FileNotFoundError(f"{path} does not exist: is a native stack running (`make serve`)?")
        data = json.loads(path.read_text())
        return cls(
            Path(data["run_dir"]),
            Path(data["artifacts"]),
            ServingPorts(**data["ports"]),
            tuple(data["servers"]),
            bool(data["with_gateway"]),
        )


def point_current_at(run_dir: Path, link: Path = CURRENT) -> None:
    """``run/current`` -> ``run_dir`` (replaced atomically)."""
    link.parent.mkdir(parents=True, exist_ok=True)
    tmp = link.with_name(f".{link.name}.{os.getpid()}")
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(run_dir.resolve())
    tmp.replace(link)
