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

from benchmarks.runner import Result, run, table
from benchmarks.targets import server_targets
from load_tests.reports.bench import BenchReport, finish
from load_tests.runs.harness import folder
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
    p.add_argument("--out", type=Path, default=None, help="report folder (default: reports/servers-<time>)")
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
    finish(folder(args.out, "servers-"), report(results, impl, args.duration), lambda png: plot(results, png))


def verdict(results: list[Result]) -> list[str]:
    """Whether the figures hold (failures), what they are (closed loop, one run), and what they show."""
    failed = [r for r in results if r.failures]
    lines = [
        f"  {r.target} at {r.concurrency} users: {r.failures} of {r.failures + len(r.latencies_us)} requests failed"
        for r in failed
    ]
    lines.append(
        ("VERDICT: not valid where requests failed (above); " if failed else "VERDICT: every request answered right; ")
        + "closed loop (each user waits for its answer, so the rate is what the servers gave, not an arrival "
        "rate) and one run per level with no interval: a first look, not a ranking (make compare ranks, with "
        "intervals)"
    )
    for users in sorted({r.concurrency for r in results}):
        at = [r for r in results if r.concurrency == users]
        lines.append(f"  {users} users: " + "; ".join(
            f"{r.target} {r.rps:,.0f} req/s, p50 {r.pct(50) / 1e3:.2f} ms, p99 {r.pct(99) / 1e3:.2f} ms" for r in at
        ))  # fmt: skip
    return lines


def report(results: list[Result], impl: str, duration: float) -> BenchReport:
    return BenchReport(
        title="Each server hit directly, closed loop (`make bench-servers`)",
        verdict=verdict(results),
        body=[
            f"TF Serving: {impl}; one 1x784 request body; {duration:.0f} s per run after warm-up.",
            "",
            "```",
            table(results),
            "```",
        ],
        figures={
            "tfserving": impl,
            "duration_s": duration,
            "runs": [
                {
                    "target": r.target,
                    "users": r.concurrency,
                    "rps": r.rps,
                    "p50_us": r.pct(50),
                    "p90_us": r.pct(90),
                    "p99_us": r.pct(99),
                    "failures": r.failures,
                }
                for r in results
            ],
        },
    )


def plot(results: list[Result], png: Path) -> None:
    import matplotlib.pyplot as plt

    from load_tests.reports import plots

    fig, (lat, rps) = plt.subplots(1, 2, figsize=(10, 3.8))
    for name in dict.fromkeys(r.target for r in results):
        mine = [r for r in results if r.target == name]
        users = [r.concurrency for r in mine]
        line = lat.plot(users, [r.pct(50) / 1e3 for r in mine], marker="o", label=f"{name} p50")[0]
        lat.plot(users, [r.pct(99) / 1e3 for r in mine], marker="^", linestyle="--", color=line.get_color(),
                 label=f"{name} p99")  # fmt: skip
        rps.plot(users, [r.rps for r in mine], marker="o", label=name)
    lat.set_ylabel("latency (ms)")
    rps.set_ylabel("answers per second")
    for ax in (lat, rps):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("concurrent users (closed loop)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    plots.save(fig, png)


if __name__ == "__main__":
    main()
