"""Container entrypoint: write the effective config for the baked archives, then exec TorchServe.

The config can be mounted (a Kubernetes ConfigMap at /config/config.properties); the model
version comes from the archives in the model store, so the two can never disagree.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from serving.torchserve.config import CONFIG, write_config


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--config", type=Path, default=Path(os.environ.get("TS_SOURCE_CONFIG", CONFIG)))
    p.add_argument("--model-store", type=Path, default=Path("/home/model-server/model-store"))
    args = p.parse_args(argv)
    version = int((args.model_store / "VERSION").read_text())
    out = Path(tempfile.gettempdir()) / "config.properties"  # /tmp: the root filesystem may be read-only
    write_config(out, args.model_store, version, source=args.config)
    torchserve = str(Path(sys.executable).parent / "torchserve")
    argv_ts = [
        torchserve,
        "--start",
        "--foreground",
        "--ncs",
        "--disable-token-auth",
        "--ts-config",
        str(out),
        "--model-store",
        str(args.model_store),
    ]
    os.execv(torchserve, argv_ts)


if __name__ == "__main__":
    main()
