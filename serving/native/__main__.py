"""``python -m serving.native``: run TF Serving, TorchServe and the gateway until Ctrl-C or SIGTERM."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from pathlib import Path

from serving.native.process import StartError
from serving.native.stack import ServingStack


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--artifacts", type=Path, default=Path("artifacts"))
    p.add_argument("--run-dir", type=Path, default=None, help="logs and generated configs (default: run/<time>)")
    p.add_argument("--no-gateway", action="store_true", help="model servers only")
    args = p.parse_args(argv)
    run_dir = args.run_dir or Path("run") / time.strftime("%Y%m%d-%H%M%S")

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())

    stack = ServingStack(args.artifacts, run_dir, with_gateway=not args.no_gateway)
    what = "" if args.no_gateway else " and the gateway"
    print(f"starting TF Serving ({stack.tf_implementation}), TorchServe{what}; logs in {run_dir}", flush=True)
    try:
        stack.start()
    except StartError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    try:
        print("ready:")
        for name, url in stack.endpoints().items():
            print(f"  {name:<28} {url}")
        print("Ctrl-C stops everything.", flush=True)
        while not stop.wait(1.0):
            dead = [proc.name for proc in stack.processes if not proc.alive]
            if dead:
                print(f"error: {', '.join(dead)} exited; see {run_dir}", file=sys.stderr)
                return 1
    finally:
        print("stopping ...", flush=True)
        stack.stop()
        print("stopped.", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
