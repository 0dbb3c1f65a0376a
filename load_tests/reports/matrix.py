"""The closed-loop matrix's report (runs/matrix.py): a table people can trust, plots, the comparison."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import orjson
from matplotlib.ticker import NullFormatter

from load_tests.stats import RunResult
from load_tests.reports.plots import PLAIN
from load_tests.targets import BY_NAME

PERCENTILES = (50, 90, 95, 99, 99.9)


def _row(r: RunResult) -> str:
    pcts = " | ".join(f"{r.pct_us(q):,.0f}" for q in PERCENTILES)
    mx = f"{r.samples_ms.max() * 1000:,.0f}" if len(r.samples_ms) else "-"
    return f"| {r.target} | {r.users} | {r.rps:,.0f} | {pcts} | {mx} | {r.failures} |"


def comparison(results: list[RunResult]) -> list[str]:
    index = {(r.target, r.users): r for r in results}
    lines = [
        "| backend | users | direct p50 µs | via gateway p50 µs | added p50 µs | throughput ratio |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        t = BY_NAME[r.target]
        if not t.via_gateway or t.backend is None:
            continue
        d = index.get((t.backend, r.users))
        if d is None:
            continue
        ratio = r.rps / d.rps if d.rps else float("nan")
        lines.append(
            f"| {t.backend} | {r.users} | {d.pct_us(50):,.0f} | {r.pct_us(50):,.0f} | "
            f"{r.pct_us(50) - d.pct_us(50):,.0f} | {ratio:.1%} |"
        )
    return lines if len(lines) > 2 else ["(run both a server and its gateway target to compare)"]


def _user_axis(ax: Any, levels: list[int]) -> None:
    ax.set_xscale("log", base=2)
    ax.set_xticks(levels)
    ax.xaxis.set_major_formatter(PLAIN)
    ax.xaxis.set_minor_formatter(NullFormatter())


def plot(results: list[RunResult], out: Path) -> list[str]:
    names = list(dict.fromkeys(r.target for r in results))
    fig, (ax50, ax99) = plt.subplots(1, 2, figsize=(13, 5), sharey=True)
    for name in names:
        rs = [r for r in results if r.target == name]
        users = [r.users for r in rs]
        ax50.plot(users, [r.pct_us(50) / 1000 for r in rs], "-o", label=name)
        ax99.plot(users, [r.pct_us(99) / 1000 for r in rs], "-o", label=name)
    levels = sorted({r.users for r in results})
    for ax, q in ((ax50, "p50"), (ax99, "p99")):
        ax.set(title=f"{q} latency vs concurrent users", xlabel="users", ylabel="latency (ms, log scale)")
        _user_axis(ax, levels)
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(PLAIN)
        ax.yaxis.set_minor_formatter(PLAIN)
        ax.grid(alpha=0.3, which="both")
    ax99.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "latency.png", dpi=100)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(8, 5))
    for name in names:
        rs = [r for r in results if r.target == name]
        ax.plot([r.users for r in rs], [r.rps for r in rs], "-o", label=name)
    ax.set(title="Throughput vs concurrent users", xlabel="users", ylabel="requests / s")
    _user_axis(ax, levels)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "throughput.png", dpi=100)
    plt.close(fig)
    return ["latency.png", "throughput.png"]


def verdict(results: list[RunResult]) -> list[str]:
    """The run's last lines: failures first (a level with failures is not valid), then what it is."""
    failed = [r for r in results if r.failures]
    return [
        *(f"  {r.target} at {r.users} users: {r.failures} failures" for r in failed),
        ("VERDICT: not valid where requests failed (above); " if failed else "VERDICT: no request failed; ")
        + "closed loop, one run per level, no interval: a quick look, not a capacity figure or a ranking "
        "(make load and make compare measure open loop, with intervals)",
    ]


def write(out: Path, results: list[RunResult], env: dict[str, Any], duration: float, warmup: float) -> Path:
    pngs = plot(results, out)
    head = " | ".join(f"p{q} µs" for q in PERCENTILES)
    lines = [
        "# Load test report (closed loop)",
        "",
        *(f"**{v}**" if v.startswith("VERDICT") else f"- {v.strip()}" for v in verdict(results)),
        "",
        "A quick look: closed-loop users send as soon as their answer arrives, so the throughput here is set by "
        "the user count and the load generator as much as by the server. For capacity figures use `make load` "
        "(open loop, QPS at a p99 SLO, with confidence intervals and a guarded generator).",
        "",
        f"TF Serving: **{env['tfserving']}**. Servers on: **{env['servers_on']}** (GPU: {env['gpu']}).",
        f"Each run: {warmup:.0f} s warm-up (excluded), then {duration:.0f} s measured; Locust FastHttpUser, "
        "closed loop (no wait), one real MNIST test digit per request. Latencies are exact per request "
        "(not Locust's rounded buckets).",
        "",
        f"| target | users | req/s | {head} | max µs | failures |",
        "|---|---|---|" + "---|" * len(PERCENTILES) + "---|---|",
        *(_row(r) for r in results),
        "",
        "## Gateway vs direct",
        "",
        *comparison(results),
        "",
        "## Server-side time per request (from the servers' Prometheus metrics)",
        "",
        "| target | users | queue µs | inference µs |",
        "|---|---|---|---|",
        *(
            f"| {r.target} | {r.users} | {r.server_breakdown['queue_us']:,.0f} | "
            f"{r.server_breakdown['inference_us']:,.0f} |"
            for r in results
            if r.server_breakdown
        ),
        "",
        "The same definitions for both (load_tests/measure/scrape.py): queue = waiting for a batch (TF "
        "`batching_session:queuing_latency`, TorchServe `ts_queue_latency_microseconds`); inference = the "
        "server's total minus its queue (TF `request_latency`; TorchServe `ts_inference_latency_microseconds`, "
        "which includes the queue). Per request, averaged over the run.",
        "",
        *(f"![{p}]({p})" for p in pngs),
        "",
        "## Environment",
        "",
        f"- CPU: {env['cpu']}, {env['cores']} cores; GPU: {env['gpu']}",
        f"- Python {env['python']}; " + ", ".join(f"{k} {v}" for k, v in env["versions"].items()),
        f"- TF Serving batching: `{' '.join(env['tf_batching'].split())}`",
        f"- TorchServe batching: {env['torchserve_batching']}",
        "- Load generator, gateway and servers share this machine's cores: compare targets with each other.",
    ]
    if env.get("gpu_samples"):
        utils = [s["util_pct"] for s in env["gpu_samples"]]
        lines.append(f"- GPU utilisation during the run: mean {sum(utils) / len(utils):.0f} %, max {max(utils):.0f} %")
    path = out / "report.md"
    path.write_text("\n".join(lines) + "\n")
    (out / "results.json").write_bytes(
        orjson.dumps(
            [
                {
                    "target": r.target,
                    "users": r.users,
                    "rps": r.rps,
                    "failures": r.failures,
                    **{f"p{q}_us": r.pct_us(q) for q in PERCENTILES},
                    "server": r.server_breakdown,
                }
                for r in results
            ]
            + [{"environment": env}],
            option=orjson.OPT_INDENT_2,
        )
    )
    return path
