"""``python -m benchmarks.gateway``: what the gateway costs, measured in one run.

For each backend and concurrency: the server hit directly, then through the gateway, same
request (one real MNIST row), same duration. Prints both and the gateway's added p50/p99 latency
and throughput ratio. Targets: <= 0.3 ms added at p50, >= 90 % of direct throughput.
On 2 cores the gateway, the servers and the load generator share the CPU: the ratio at high
concurrency mostly measures that sharing.
"""

from __future__ import annotations

import argparse
import contextlib
import tempfile
from pathlib import Path

import psutil

from benchmarks.runner import Result, run, table
from benchmarks.targets import gateway_targets, server_targets
from serving.native.settings import ServingPorts
from serving.native.stack import running
from training.data import load_split


def comparison(direct: list[Result], via: list[Result], cpu_us: list[float]) -> str:
    head = f"{'backend':<18}{'users':>6}{'+p50 µs':>10}{'+p99 µs':>10}{'thru ratio':>12}{'gw CPU µs/req':>15}"
    lines = [head]
    for d, g, cpu in zip(direct, via, cpu_us, strict=True):
        added50, added99 = g.pct(50) - d.pct(50), g.pct(99) - d.pct(99)
        ratio = g.rps / d.rps
        lines.append(f"{d.target:<18}{d.concurrency:>6}{added50:>10.0f}{added99:>10.0f}{ratio:>12.1%}{cpu:>15.0f}")
    return "\n".join(lines)


def _cpu_seconds(proc: psutil.Process) -> float:
    t = proc.cpu_times()
    return float(t.user + t.system)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--artifacts", type=Path, default=Path("artifacts"))
    p.add_argument("--concurrency", default="1,8", help="comma-separated client counts (default: %(default)s)")
    p.add_argument("--duration", type=float, default=10.0, help="measured seconds per run (default: %(default)s)")
    args = p.parse_args(argv)
    levels = [int(c) for c in args.concurrency.split(",")]
    row = load_split().x_test[0]
    with contextlib.ExitStack() as es:
        run_dir = Path(es.enter_context(tempfile.TemporaryDirectory(prefix="bench-gw-")))
        stack = es.enter_context(running(args.artifacts, run_dir, ServingPorts.free(), with_gateway=True))
        ports = stack.ports
        print(f"TF Serving: {stack.tf_implementation}; {args.duration:.0f} s per run after warm-up", flush=True)
        gw_proc = psutil.Process(next(p.proc.pid for p in stack.processes if p.name == "gateway" and p.proc))
        direct, via, cpu_us = [], [], []
        pairs = zip(
            server_targets(row, ports.tfserving_rest, ports.torchserve_inference),
            gateway_targets(row, ports.gateway),
            strict=True,
        )
        for server, gw in pairs:
            for c in levels:
                direct.append(run(server, c, args.duration))
                before = _cpu_seconds(gw_proc)
                via.append(run(gw, c, args.duration))
                cpu_us.append((_cpu_seconds(gw_proc) - before) * 1e6 / max(1, via[-1].sent))
                print(table([direct[-1], via[-1]]).split("\n", 1)[1], flush=True)
    print()
    print(table([r for pair in zip(direct, via, strict=True) for r in pair]))
    print()
    print("gateway's added cost (through gateway minus direct):")
    print(comparison(direct, via, cpu_us))


if __name__ == "__main__":
    main()
