"""``python -m benchmarks.servers``: each model server's latency and throughput, hit directly.

Starts the native stack on free ports unless ``--use-running`` is given (then it uses the ports
from the env vars / defaults, as `make serve` does). On a 2-core machine the load generator
shares the CPU with the servers: compare targets with each other, not with other machines.
"""

from __future__ import annotations

import argparse
import contextlib
import tempfile
from pathlib import Path

from benchmarks.runner import run, table
from benchmarks.targets import server_targets
from serving.native.process import exit_on_sigterm
from serving.native.settings import ServingPorts
from serving.native.stack import ServingStack, running
from training.data import load_split


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--artifacts", type=Path, default=Path("artifacts"))
    p.add_argument("--concurrency", default="1,8,32", help="comma-separated client counts (default: %(default)s)")
    p.add_argument("--duration", type=float, default=10.0, help="measured seconds per run (default: %(default)s)")
    p.add_argument("--use-running", action="store_true", help="benchmark servers already started by `make serve`")
    args = p.parse_args(argv)
    exit_on_sigterm()
    levels = [int(c) for c in args.concurrency.split(",")]
    row = load_split().x_test[0]

    with contextlib.ExitStack() as stack:
        if args.use_running:
            ports = ServingPorts.from_env()
            impl = "as running"
        else:
            run_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-")))
            serving: ServingStack = stack.enter_context(running(args.artifacts, run_dir, ServingPorts.free()))
            ports, impl = serving.ports, serving.tf_implementation
        print(f"TF Serving: {impl}; 1x784 request; {args.duration:.0f} s per run after warm-up", flush=True)
        results = []
        for target in server_targets(row, ports.tfserving_rest, ports.torchserve_inference):
            for c in levels:
                results.append(run(target, c, args.duration))
                print(table(results[-1:]).splitlines()[1], flush=True)
        print()
        print(table(results))


if __name__ == "__main__":
    main()
