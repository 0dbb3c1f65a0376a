"""Container entrypoint: write the effective config for the baked archives, then exec TorchServe.

The config can be mounted (a Kubernetes ConfigMap at /config/config.properties); the model
version comes from the archives in the model store, so the two can never disagree.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

from serving.torchserve.config import CONFIG, torchserve_argv, write_config


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--config", type=Path, default=Path(os.environ.get("TS_SOURCE_CONFIG", CONFIG)))
    p.add_argument("--model-store", type=Path, default=Path("/home/model-server/model-store"))
    args = p.parse_args(argv)
    version = int((args.model_store / "VERSION").read_text())
    out = Path(tempfile.gettempdir()) / "config.properties"  # /tmp: the root filesystem may be read-only
    write_config(out, args.model_store, version, source=args.config)
    argv_ts = torchserve_argv(out, args.model_store)
    os.execv(argv_ts[0], argv_ts)


if __name__ == "__main__":
    main()
