"""``python -m serving.native``: run TF Serving, TorchServe and the gateway until Ctrl-C or SIGTERM.
``--servers torchserve`` (``make serve SERVERS=torchserve``) runs a subset, e.g. TorchServe alone on
a GPU machine with no TensorFlow.

A server that crashes, hangs (stops answering its liveness check) or is not ready within its start
budget is killed and restarted with exponential backoff while the others keep serving (the gateway
answers 503 for it, and ``auto`` falls back); a crash loop leaves it down and says so.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from pathlib import Path

from serving.native.process import StartError
from serving.native.run import CURRENT, point_current_at
from serving.native.stack import SERVERS, ServingStack
from serving.native.supervisor import RestartPolicy

TICK_S = 0.5  # how often the supervisor looks at its processes; its checks run off this thread


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--artifacts", type=Path, default=Path("artifacts"))
    p.add_argument("--run-dir", type=Path, default=None, help="logs and generated configs (default: run/<time>)")
    p.add_argument("--no-gateway", action="store_true", help="model servers only")
    p.add_argument(
        "--servers", default=",".join(SERVERS), help="comma-separated model servers to run (default: %(default)s)"
    )
    d = RestartPolicy()
    p.add_argument("--max-restarts", type=int, default=d.max_restarts, help="per window before giving up")
    p.add_argument("--restart-window", type=float, default=d.window_s, help="seconds (default: %(default)s)")
    args = p.parse_args(argv)
    policy = RestartPolicy(max_restarts=args.max_restarts, window_s=args.restart_window)
    run_dir = args.run_dir or Path("run") / time.strftime("%Y%m%d-%H%M%S")

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())

    try:
        stack = ServingStack(
            args.artifacts, run_dir, with_gateway=not args.no_gateway, servers=tuple(args.servers.split(","))
        )
        names = {"tfserving": f"TF Serving ({stack.tf_implementation})", "torchserve": "TorchServe"}
        what = ", ".join(names[s] for s in stack.servers) + ("" if args.no_gateway else " and the gateway")
        print(f"starting {what}; logs in {run_dir}", flush=True)
        stack.start()
        if run_dir.resolve().parent == CURRENT.parent.resolve():
            point_current_at(run_dir)  # `make rollout` finds this stack through run/current
    except StartError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    try:
        print("ready:")
        for name, url in stack.endpoints().items():
            print(f"  {name:<28} {url}")
        print("Ctrl-C stops everything.", flush=True)
        supervisor = stack.supervisor(policy, notify=lambda line: print(line, flush=True))
        while not stop.wait(TICK_S):
            supervisor.tick()  # restarts, start budgets and the liveness checks
    finally:
        print("stopping ...", flush=True)
        started = time.monotonic()
        stack.stop()
        print(f"stopped. ({time.monotonic() - started:.1f} s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
