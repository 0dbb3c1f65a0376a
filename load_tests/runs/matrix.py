"""``python -m load_tests.runs.matrix`` (``make load-matrix``): every target x user level, one closed-loop
headless Locust run each (a quick look, not a capacity figure: ``make load`` measures that).

Starts the native stack (on the usual ports) unless it is already answering; then, per run: scrape
server metrics, run Locust for the same duration with a warm-up excluded, scrape again. Writes
``reports/<time>/`` with Locust's CSV and HTML, exact timings, ``report.md`` and plots.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from load_tests.contracts import Recording, RunSpec
from load_tests.measure import scrape
from load_tests.measure.point import locust_argv
from load_tests.reports import matrix as report
from load_tests.runs import harness
from load_tests.stats import RunResult
from load_tests.targets import BY_NAME, SERVING_TARGETS, Endpoints, Target

# Tuning constants (each also a command-line option).
USER_LEVELS = (1, 8, 32)  # concurrent users per run
DURATION_S = 20.0  # measured seconds per run, after the warm-up
WARMUP_S = 3.0  # excluded from every figure: connections, first batches
RUN_TIMEOUT_S = 120.0  # hard stop for one Locust process beyond its run time
REPO = Path(__file__).resolve().parents[2]


def run_one(target: Target, users: int, duration: float, warmup: float, out: Path, ep: Endpoints) -> RunResult:
    prefix = out / "locust" / f"{target.name}_u{users}"
    prefix.parent.mkdir(parents=True, exist_ok=True)
    exact = out / "exact" / f"{target.name}_u{users}"
    env = {**os.environ, **ep.urls, **RunSpec(warmup_s=warmup, out=str(exact)).to_env()}
    cmd = locust_argv(
        users, f"{warmup + duration:.0f}s", 5, target.user_class, "--csv", str(prefix), "--html", f"{prefix}.html"
    )
    before = scrape.snapshot(ep.tf_metrics, ep.ts_metrics)
    subprocess.run(
        cmd,
        env=env,
        cwd=REPO,
        check=False,
        timeout=warmup + duration + RUN_TIMEOUT_S,
        stdout=subprocess.DEVNULL,
        stderr=(out / "locust.log").open("ab"),
    )
    after = scrape.snapshot(ep.tf_metrics, ep.ts_metrics)
    samples: list[float] = []
    failures = 0
    for rec in Recording.read_all(exact):  # one per Locust process (workers too)
        samples += rec.samples_ms.get(target.name, [])
        failures += rec.failures.get(target.name, 0)
    server = target.server
    return RunResult(
        target.name,
        users,
        np.asarray(samples),
        failures,
        duration,
        scrape.breakdown(before, after, server) if server else None,
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--targets", default=",".join(t.name for t in SERVING_TARGETS))
    p.add_argument("--users", default=",".join(map(str, USER_LEVELS)))
    p.add_argument("--duration", type=float, default=DURATION_S)
    p.add_argument("--warmup", type=float, default=WARMUP_S)
    p.add_argument("--artifacts", type=Path, default=Path("artifacts"))
    p.add_argument("--out", type=Path, default=None, help="report folder (default: reports/<time>)")
    args = p.parse_args(argv)
    from serving.native.process import exit_on_sigterm

    exit_on_sigterm()
    targets = [BY_NAME[t] for t in args.targets.split(",")]
    levels = [int(u) for u in args.users.split(",")]
    out = harness.folder(args.out)
    with harness.session(targets, args.artifacts, out) as s:
        ep = s.ep
        results = []
        total = len(targets) * len(levels)
        for i, target in enumerate(targets):
            for j, users in enumerate(levels):
                n = i * len(levels) + j + 1
                print(
                    f"[{n}/{total}] {target.name}, {users} users, {args.warmup:.0f}+{args.duration:.0f} s", flush=True
                )
                results.append(run_one(target, users, args.duration, args.warmup, out, ep))
                r = results[-1]
                print(
                    f"        {r.rps:8.0f} req/s  p50 {r.pct_us(50):8.0f} µs  p99 {r.pct_us(99):8.0f} µs  "
                    f"failures {r.failures}",
                    flush=True,
                )
    path = report.write(out, results, s.environment_dict(), args.duration, args.warmup)
    print(f"report: {path}")
    print("\n".join(report.verdict(results)))
    return 1 if any(r.failures for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
