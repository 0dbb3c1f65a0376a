"""The batching sweep's report (runs/sweep.py): the grid, each server's best, best against best with
intervals, each beside its floor, and the trade-off plot."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

SERVERS = {"tfserving": "tfserving", "torchserve": "torchserve"}  # server -> its direct REST target


@dataclass(frozen=True)
class Method:
    """How the sweep ran (what its report states)."""

    slo_ms: float
    tolerance: float
    low_rate: float
    executors: int
    max_batch: tuple[int, ...]
    seconds: float
    reuse: str = ""


def best_per_server(entries: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Each server's configuration with the highest QPS@SLO among those whose point at that QPS held
    the guard: a figure the generator moved is not a candidate. A server with none has no best
    (``without_valid`` names it)."""
    return {
        s: max((e for e in entries if e["server"] == s and e["valid"]), key=lambda e: e["qps"])
        for s in SERVERS
        if any(e["server"] == s and e["valid"] for e in entries)
    }


def sweep_verdict(entries: list[dict[str, Any]], confirmed: dict[str, dict[str, Any]]) -> list[str]:
    """The sweep's last lines: how many configurations held the guard, each server's best among them."""
    valid = sum(1 for e in entries if e["valid"])
    lines = [f"VERDICT: {valid} of {len(entries)} configurations valid (the guard held at their QPS@SLO point)"]
    for s, e in best_per_server(entries).items():
        again = confirmed.get(s)
        lines.append(
            f"  {s}: best max batch {e['max_batch']}, delay {e['delay_ms']} ms, {e['qps']:,.0f} req/s in the sweep"
            + (f"; re-measured {again['qps']:,.0f} (95 % CI {again['ci95'][0]:,.0f}-{again['ci95'][1]:,.0f})"
               if again else "")
        )  # fmt: skip
    lines += [f"  {s}: no valid configuration, no best" for s in without_valid(entries)]
    return lines


def without_valid(entries: list[dict[str, Any]]) -> list[str]:
    """The servers swept whose every configuration tripped the guard."""
    return [s for s in SERVERS if any(e["server"] == s for e in entries) and not any(
        e["server"] == s and e["valid"] for e in entries)]  # fmt: skip


def _ratio(a: float | None, b: float | None) -> str:
    if a is None or b is None or not (math.isfinite(a) and math.isfinite(b)) or b <= 0:
        return "–"
    return f"{a / b:.2f}×"


def floor_rows(confirmed: dict[str, dict[str, Any]], method: Method) -> list[str]:
    """Each server's re-measured best beside its floor, measured in the same rotation."""
    pairs = [(s, c, confirmed[c["floor"]]) for s, c in confirmed.items() if c.get("floor") in confirmed]
    if not pairs:
        return []
    lines = [
        "",
        f"**Each server against its floor** (the same model in-process behind the leanest HTTP route, "
        f"load_tests/servers/floor.py; the same searches and a point at {method.low_rate:.0f} req/s, interleaved):",
        "",
        "| server | floor | p50 ratio | p99 ratio | QPS@SLO ratio | server p50 / floor p50 ms |",
        "|---|---|---|---|---|---|",
    ]
    for s, c, f in pairs:
        lines.append(
            f"| {s} | {c['floor']} | {_ratio(c['low_p50_ms'], f['low_p50_ms'])} | "
            f"{_ratio(c['low_p99_ms'], f['low_p99_ms'])} | {_ratio(c['qps'], f['qps'])} | "
            f"{c['low_p50_ms']:.2f} / {f['low_p50_ms']:.2f} |"
        )
    return lines


def gpu_rows(env: dict[str, Any]) -> list[str]:
    """On a GPU sweep: GPU use while it ran, and from which batch the GPU beats the CPU in-process."""
    from load_tests.reports.gpu import gpu_wins_from, inproc_table

    lines = []
    samples = env.get("gpu_samples") or []
    if samples:
        util = [s["util_pct"] for s in samples]
        mem = [s["mem_mib"] for s in samples]
        lines += ["", f"GPU ({env.get('gpu', '?')}): utilisation mean {sum(util) / len(util):.0f} %, max "
                  f"{max(util):.0f} %; memory max {max(mem):,.0f} MiB ({len(samples)} samples)."]  # fmt: skip
    medians = env.get("inproc_median_us_per_call")
    if medians:
        for name, (loses_at, wins_at) in gpu_wins_from(inproc_table(medians)).items():
            lines.append(
                f"- In-process, **{name}** beats every CPU runtime at {wins_at} rows per forward pass"
                + (f" (not at {loses_at})" if loses_at else "")
                + "; compare the served figures with a CPU sweep."
                if wins_at
                else f"- In-process, **{name}** never beats the CPU runtimes measured."
            )
    return lines


def plot(entries: list[dict[str, Any]], out: Path, method: Method) -> str:
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5), sharey=True)
    for ax, server in zip(axes, SERVERS, strict=True):
        for batch, marker in zip(method.max_batch, "os^D", strict=False):
            es = [e for e in entries if e["server"] == server and e["max_batch"] == batch]
            ax.plot([e["low_p50_ms"] for e in es], [e["qps"] for e in es], marker + "-", label=f"max batch {batch}")
            for e in es:
                ax.annotate(f"{e['delay_ms']} ms", (e["low_p50_ms"], e["qps"]), fontsize=7, xytext=(3, 3),
                            textcoords="offset points")  # fmt: skip
        ax.set(title=f"{server}: capacity vs low-load latency", xlabel=f"p50 at {method.low_rate:.0f} req/s (ms)",
               ylabel="QPS @ SLO (req/s)")  # fmt: skip
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("Batching sweep: each point one (max batch, batch delay); up and left is better")
    fig.tight_layout()
    fig.savefig(out / "sweep.png", dpi=90)
    plt.close(fig)
    return "sweep.png"


def write(
    out: Path,
    entries: list[dict[str, Any]],
    env: dict[str, Any],
    method: Method,
    confirmed: dict[str, dict[str, Any]] | None = None,
) -> Path:
    png = plot(entries, out, method)
    lines = [
        "# Batching sweep",
        "",
        f"TF Serving: **{env['tfserving']}**. SLO p99 ≤ {method.slo_ms:g} ms; one search per configuration "
        f"(tolerance {method.tolerance:.0%}, 1 repeat, so no confidence interval: on a shared machine repeats of one "
        "configuration can differ several-fold, as the capacity report's repeats show, so read the QPS "
        "column as one draw each; the low-load p50 column is the steadier one); "
        f"low-load p50 at {method.low_rate:.0f} req/s open loop. Parity: {method.executors} executor(s) per model on "
        f"both servers (TF `num_batch_threads` = TorchServe workers). This invocation took {method.seconds / 60:.0f} min"
        + (f" (sweep entries reused from `{method.reuse}`)." if method.reuse else "."),
        "",
        "| server | max batch | delay ms | QPS@SLO | p50 at low load ms | p99 at low load ms | guard |",
        "|---|---|---|---|---|---|---|",
    ]
    for e in entries:
        lines.append(
            f"| {e['server']} | {e['max_batch']} | {e['delay_ms']} | {e['qps']:,.0f} | {e['low_p50_ms']:.2f} | "
            f"{e['low_p99_ms']:.2f} | {'ok' if e['valid'] else 'tripped'} |"
        )
    best = best_per_server(entries)
    lines += ["", "**Each server's best in the sweep** (highest single draw among valid points; biased upward):", ""]
    for s in without_valid(entries):
        lines.append(f"- {s}: **none**: every configuration's point tripped the generator guard, so none is ranked")
    for s, e in best.items():
        lines.append(
            f"- {s}: max batch {e['max_batch']}, delay {e['delay_ms']} ms → {e['qps']:,.0f} req/s at the SLO, "
            f"p50 {e['low_p50_ms']:.2f} ms at low load"
        )
    if confirmed:
        lines += [
            "",
            f"**Best against best, re-measured**: both best configurations running together, "
            f"{len(next(iter(confirmed.values()))['repeats'])} interleaved searches each with fresh seeds, mean and "
            "95 % Student-t interval:",
            "",
            "| server | configuration | QPS@SLO mean | 95 % CI | repeats | the sweep's draw |",
            "|---|---|---|---|---|---|",
        ]
        for s, c in confirmed.items():
            lo, hi = c["ci95"]
            reps = ", ".join(f"{q:,.0f}" for q in c["repeats"])
            config = f"max batch {c['max_batch']}, delay {c['delay_ms']} ms" if s in SERVERS else "no batching"
            draw = f"{c['sweep_qps']:,.0f}" if math.isfinite(c.get("sweep_qps", math.nan)) else "–"
            lines.append(f"| {s} | {config} | **{c['qps']:,.0f}** | {lo:,.0f} – {hi:,.0f} | {reps} | {draw} |")
        lines += floor_rows(confirmed, method)
        if {"tfserving", "torchserve"} <= confirmed.keys():
            tf, ts = confirmed["tfserving"], confirmed["torchserve"]
            overlap = tf["ci95"][0] <= ts["ci95"][1] and ts["ci95"][0] <= tf["ci95"][1]
            ratio = f"{tf['qps'] / ts['qps']:.2f}" if ts["qps"] > 0 else "n/a"
            lines += [
                "",
                f"Ratio of the means, TF Serving / TorchServe: {ratio}; the intervals "
                + ("**overlap**, so this run does not rank them." if overlap else "do not overlap."),
            ]
    lines += gpu_rows(env)
    lines += [
        "",
        f"![{png}]({png})",
        "",
        f"Environment: git {env.get('git_commit', '?')}, {env['cpu']}, {env['cores']} cores, load average before "
        f"{' '.join(env.get('load_avg_before', []))}.",
    ]
    path = out / "sweep.md"
    path.write_text("\n".join(lines) + "\n")
    doc = {"entries": entries, "confirmed": confirmed or {}, "method": asdict(method), "environment": env}
    (out / "sweep.json").write_text(json.dumps(doc, indent=1, default=str))
    return path
