"""The capacity report (runs/capacity.py) from its typed results (load_tests/results.py): the answer
first, computed from the data (which server holds more at the SLO, by how much, with what
confidence, or that they cannot be told apart here); QPS@SLO with intervals and the model-free
bracket beside each fit; every point with the fitted curve per target; each server beside its floor
with the ratios' intervals; the guard's outcome by reason and what the generator took from the
machine; the machine and the tree the run came from. ``python -m load_tests.reports.capacity DIR``
re-renders one from its results.json.
"""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from load_tests import estimate, results, stats
from load_tests.reports import chaos
from load_tests.reports.plots import PLAIN

NAMES = {
    "tfserving": "TF Serving",
    "torchserve": "TorchServe (TorchScript)",
    "torchserve-onnx": "TorchServe (ONNX)",
    "tfserving-grpc": "TF Serving gRPC",
    "torchserve-grpc": "TorchServe gRPC",
}


def _fmt(v: float | None, spec: str = ",.0f") -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    return format(v, spec)


def _ci(e: results.Estimate, spec: str = ",.0f") -> str:
    return f"{_fmt(e.ci95[0], spec)}–{_fmt(e.ci95[1], spec)}" if e.ci95 else "–"


def _name(target: str, run: results.CapacityRun) -> str:
    name = NAMES.get(target, target)
    if target.startswith("tfserving") and "stand-in" in run.environment.tfserving:
        name += " (stand-in)"
    return name


def headline(run: results.CapacityRun) -> str:
    """The first line: the answer to the report's question, computed from the comparisons."""
    slo = run.method.slo_ms
    parts = []
    for c in run.comparisons:
        a, b = _name(c.a, run), _name(c.b, run)
        qa, qb = run.targets[c.a].qps_at_slo.estimate, run.targets[c.b].qps_at_slo.estimate
        r = c.qps_ratio
        if r.estimate is None or r.ci95 is None:
            parts.append(f"{a} against {b}: not estimable ({r.reason or 'no interval'})")
            continue
        figures = f"{_fmt(qa)} vs {_fmt(qb)} req/s; {a}/{b} = {r.estimate:.2f}×, 95 % CI {_ci(r, '.2f')}×"
        if c.verdict.endswith("holds more"):
            winner, loser = (a, b) if c.verdict.startswith(c.a) else (b, a)
            factor = r.estimate if winner == a else 1 / r.estimate
            parts.append(f"**{winner} holds {factor:.2f}× what {loser} holds** ({figures})")
        else:
            parts.append(f"**{a} and {b} are indistinguishable on this machine** ({figures}: the interval holds 1)")
    if not parts:
        return f"At p99 ≤ {slo:g} ms: this run compared no two servers (its targets: {', '.join(run.targets)})."
    return f"At p99 ≤ {slo:g} ms on this machine: " + "; ".join(parts) + "."


def quality(run: results.CapacityRun) -> str:
    """Whether this report may stand as the project's figures: a committed, unchanged tree."""
    src = run.source
    if not src.dirty and src.commit != "?":
        return (
            f"**Committed-quality tree**: measured at commit `{src.commit[:12]}` with no uncommitted changes "
            f"(`git status --porcelain` empty). Load average before / after the run: "
            f"{' '.join(run.environment.load_avg_before)} / {' '.join(run.environment.load_avg_after) or '?'}."
        )
    return (
        f"**Not committed-quality**: the tree at `{src.commit[:12]}` had {len(src.changes)} uncommitted change(s) "
        f"(`git status --porcelain`: {', '.join(f'`{c.strip()}`' for c in src.changes[:6])}"
        f"{', …' if len(src.changes) > 6 else ''}), so these figures are a trial, not the project's."
    )


def plot_points(run: results.CapacityRun, out: Path) -> str:
    """Every point of every target, with its fitted curve, the SLO, and QPS@SLO with its interval."""
    slo = run.method.slo_ms
    names = list(run.targets)
    cols = min(3, len(names))
    rows = math.ceil(len(names) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5.0 * cols, 3.6 * rows), squeeze=False)
    by = {n: [p for p in run.points if p.target == n] for n in names}
    cap = estimate.CENSOR_FACTOR * slo
    for ax, name in zip(axes.flat, names, strict=False):
        t, pts = run.targets[name], by[name]
        valid = [p for p in pts if p.valid]
        bad = [p for p in pts if not p.valid]
        y = [min(p.p99_ms, cap) if p.p99_ms is not None else cap for p in valid]
        ax.scatter([p.rate for p in valid], y, s=14, c=["tab:blue" if p.passes else "tab:orange" for p in valid],
                   label="p99 (valid; orange: fails)", zorder=3)  # fmt: skip
        if bad:
            ax.scatter([p.rate for p in bad], [min(p.p99_ms or cap, cap) for p in bad], marker="x", c="red", s=18,
                       label="guard tripped (not fitted)", zorder=3)  # fmt: skip
        f = t.fit
        if f.a_ms is not None and f.b is not None and f.mu is not None:
            knee = estimate.Knee(f.a_ms, f.b, f.mu)
            lo = min(p.rate for p in pts) * 0.9
            xs = np.linspace(lo, f.mu * 0.999, 200)
            ax.plot(xs, np.minimum(knee.p99_ms(xs), cap * 1.5), color="tab:green", lw=1.2,
                    label=f"fit: {f.a_ms:.2f} + {f.b:,.0f}/({f.mu:,.0f} − λ)")  # fmt: skip
        ax.axhline(slo, color="grey", ls="--", lw=1, label=f"SLO {slo:g} ms")
        q = t.qps_at_slo
        if q.estimate is not None:
            ax.axvline(q.estimate, color="black", lw=1)
            if q.ci95:
                ax.axvspan(q.ci95[0], q.ci95[1], color="black", alpha=0.1, label="95 % CI")
        title = f"{name}: " + (f"{q.estimate:,.0f} req/s" if q.estimate is not None else "not estimable")
        ax.set(title=title, xlabel="offered rate (req/s)", ylabel="p99 ms (log)", yscale="log")
        ax.yaxis.set_major_formatter(PLAIN)
        ax.grid(alpha=0.3, which="both")
        ax.title.set_fontsize(9)
        ax.legend(fontsize=6)
    for ax in list(axes.flat)[len(names) :]:
        ax.axis("off")
    fig.suptitle(f"p99 from the intended send time vs offered Poisson rate: every point (capped at {cap:g} ms)")
    fig.tight_layout()
    fig.savefig(out / "latency_vs_rate.png", dpi=90)
    plt.close(fig)
    return "latency_vs_rate.png"


def plot_capacity(run: results.CapacityRun, out: Path) -> str:
    fig, ax = plt.subplots(figsize=(9, 4.5))
    names = list(run.targets)
    est = [run.targets[n].qps_at_slo for n in names]
    xs = np.arange(len(names))
    heights = [e.estimate or 0.0 for e in est]
    err = [[max(0.0, (e.estimate or 0) - e.ci95[0]) if e.ci95 else 0 for e in est],
           [max(0.0, e.ci95[1] - (e.estimate or 0)) if e.ci95 else 0 for e in est]]  # fmt: skip
    colours = ["tab:blue" if run.targets[n].role == "server" else "tab:grey" for n in names]
    ax.bar(xs, heights, yerr=err, capsize=4, color=colours)
    for x, n in zip(xs, names, strict=True):
        f = run.targets[n].fit
        if f.highest_pass is not None:
            ax.plot([x - 0.35, x + 0.35], [f.highest_pass] * 2, color="tab:green", lw=1)
        if f.lowest_fail is not None:
            ax.plot([x - 0.35, x + 0.35], [f.lowest_fail] * 2, color="tab:red", lw=1)
    ax.set_xticks(list(xs), names, rotation=30, ha="right", fontsize=8)
    ax.set(ylabel="req/s", title=f"QPS at p99 ≤ {run.method.slo_ms:g} ms, 95 % CI (blue: servers, grey: floors; "
                                 "green/red: highest passing / lowest failing rate seen)")  # fmt: skip
    ax.title.set_fontsize(9)
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    fig.savefig(out / "capacity.png", dpi=90)
    plt.close(fig)
    return "capacity.png"


def _qps_rows(run: results.CapacityRun) -> list[str]:
    rows = [
        "| target | QPS@SLO | 95 % CI | ± | how | model-free bracket: passes ≤ / fails ≥ | isotonic | valid points |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, t in run.targets.items():
        q, f = t.qps_at_slo, t.fit
        hw = f"{q.half_width:.1%}" if q.half_width is not None else "–"
        how = {"model": "fit", "isotonic": "isotonic (model not used)", "none": "not estimable"}[f.method]
        why = f": {q.reason or f.reason}" if q.estimate is None or q.ci95 is None else ""
        rows.append(
            f"| {name}{' (floor)' if t.role == 'floor' else ''} | {_fmt(q.estimate)} | {_ci(q)} | {hw} | {how}{why} | "
            f"{_fmt(f.highest_pass)} / {_fmt(f.lowest_fail)} | {_fmt(f.isotonic_qps)} | "
            f"{t.points_valid} of {t.points_total} |"
        )
    return rows


def _ratio_rows(run: results.CapacityRun) -> list[str]:
    servers = [t for t in run.targets.values() if t.ratios is not None]
    if not servers:
        return []
    rate = servers[0].ratios.rate if servers[0].ratios else run.method.fixed_rate
    lines = [
        "## Each server against the floor it matches",
        "",
        "The floor is the same artifact in-process behind the leanest server (load_tests/servers/floor.py), batching "
        "with the batch size and delay of the server it stands beside, and for a gRPC target serving that server's "
        "own gRPC method. Ratios are server / floor, paired within blocks (both measured in the same block with the "
        f"same arrivals) and bootstrapped over blocks: p50 and p99 at {rate:,.0f} req/s, and QPS@SLO. 1.00× would "
        "mean the server costs nothing over the model; a QPS ratio below 1 is what the server gives up.",
        "",
        "| target | floor | p50 ratio (95 % CI) | p99 ratio (95 % CI) | QPS@SLO ratio (95 % CI) "
        "| p50 ms server / floor |",
        "|---|---|---|---|---|---|",
    ]
    for t in servers:
        r = t.ratios
        assert r is not None
        floor = run.targets.get(r.floor)

        def cell(e: results.Estimate) -> str:
            if e.estimate is None:
                return f"– ({e.reason})"
            return f"{e.estimate:.2f}× ({_ci(e, '.2f')})" if e.ci95 else f"{e.estimate:.2f}× (no interval: {e.reason})"

        lines.append(
            f"| {t.name} | {r.floor} | {cell(r.p50)} | {cell(r.p99)} | {cell(r.qps_at_slo)} | "
            f"{_fmt(t.p50_at_fixed_ms, '.2f')} / {_fmt(floor.p50_at_fixed_ms if floor else None, '.2f')} |"
        )
    return [*lines, ""]


def _guard(run: results.CapacityRun) -> list[str]:
    pts = run.points
    n_bad = sum(not p.valid for p in pts)
    counts: dict[str, int] = {}
    for p in pts:
        for r in p.guard.reasons:
            counts[stats.guard_rule(r)] = counts.get(stats.guard_rule(r), 0) + 1
    g = run.method.guard
    impacts = [p.guard.lag_impact_ms for p in pts if p.guard.lag_impact_ms is not None]
    lag99 = [p.guard.send_lag_p99_ms for p in pts if p.guard.send_lag_p99_ms is not None]
    lag50 = [p.guard.send_lag_p50_ms for p in pts if p.guard.send_lag_p50_ms is not None]
    share = [p.guard.generator_machine_share for p in pts if p.guard.generator_machine_share is not None]
    core = [p.guard.generator_cpu_share for p in pts if p.guard.generator_cpu_share is not None]
    idle = [p.guard.machine_idle for p in pts if p.guard.machine_idle is not None]
    procs: dict[int, int] = {}
    for p in pts:
        procs[p.guard.generator_processes] = procs.get(p.guard.generator_processes, 0) + 1
    cal = run.calibration
    cores = run.environment.cores
    lines = [
        "## The generator guard",
        "",
        f"A point is **invalid** (left out of every fit) when the send lag moved its p99 by more than "
        f"{g.max_lag_impact_share_of_slo:.0%} of the SLO (p99 of the latency from the intended send time against "
        f"p99 of that latency less each request's send lag, stamped after its bytes were written), when a generator "
        f"process's whole CPU (waiting included) exceeded {g.max_generator_cpu_share:.0%} of a core, or when the "
        f"machine had less than {g.min_machine_idle:.0%} idle over the measured windows. Pinning: "
        f"{run.environment.pinning}.",
        "",
        f"**{len(pts) - n_bad} of {len(pts)} points valid ({(len(pts) - n_bad) / max(1, len(pts)):.0%})**; invalid "
        "by rule (a point may trip several): "
        + (", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "none")
        + ".",
        "",
    ]
    if impacts:
        lines.append(
            f"- Send lag: p50 {_fmt(statistics.median(lag50), '.3f')} ms (median over points), p99 "
            f"{_fmt(statistics.median(lag99), '.3f')} ms (median; max {_fmt(max(lag99), '.2f')}); it moved the p99 by "
            f"a median {_fmt(statistics.median(impacts), '.3f')} ms (max {_fmt(max(impacts), '.2f')}) against a "
            f"threshold of {g.max_lag_impact_share_of_slo * run.method.slo_ms:g} ms."
        )
    if share:
        lines.append(
            f"- **What the generator took from the servers**: its whole CPU (waiting included) was a median "
            f"{statistics.median(share):.0%} of the machine's {cores} cores (max {max(share):.0%}); its busiest "
            f"process a median {statistics.median(core):.0%} of one core (max {max(core):.0%}). "
            + (
                "It shared the cores with the servers (no pinning below 4 cores), so what it took, the servers "
                "did not have."
                if "none" in run.environment.pinning
                else "It ran on cores of its own."
            )
        )
    if idle:
        lines.append(
            f"- The machine was a median {statistics.median(idle):.0%} idle over the measured windows "
            f"(min {min(idle):.0%})."
        )
    split = ", ".join(f"{n} process{'es' if k > 1 else ''}: {v} points" for k, v in sorted(procs.items())
                      for n in [k])  # fmt: skip
    need = [p for p in pts if any(stats.guard_rule(r) == "generator CPU" for r in p.guard.reasons)]
    lines.append(
        f"- Generator processes per point ({split}). "
        + (
            (
                f"Every point split one schedule over {run.method.point.processes} Locust processes (--processes)."
                if run.method.point.processes > 1
                else "The split of one schedule over several Locust processes was used where a rate needed it."
            )
            if max(procs, default=1) > 1
            else f"No point used more than one: the split is capped at the generator's cores "
            f"({cal.generator_cores if cal else '?'} here: all cores but one for the servers)"
            + (
                f", and {len(need)} point(s) needed more (their generator CPU tripped the guard)."
                if need
                else ", and no rate needed more."
            )
        )
    )
    if cal:
        lines += [
            "",
            "**Calibration** against `load_tests/servers/trivial.py` (answers at once): "
            + (
                f"the generator holds **{cal.ceiling_rps:,.0f} req/s per process** with every guard rule holding"
                if cal.ceiling_rps > 0
                else "**the generator did not hold even its first rate** with every guard rule holding"
            )
            + (
                f", {cal.ceiling_rps_total:,.0f} req/s over {cal.generator_cores} cores"
                if cal.generator_cores > 1
                else ""
            )
            + f"; {_fmt(cal.cpu_us_per_req)} µs of its CPU per request. "
            + "; ".join(
                f"{c.rate:,.0f}/s: {_fmt(c.generator_cpu_share, '.0%')} of a core, lag p50 "
                f"{_fmt(c.send_lag_p50_ms, '.3f')} / p99 {_fmt(c.send_lag_p99_ms, '.3f')} ms, moved p99 "
                f"{_fmt(c.lag_impact_ms, '.3f')} ms"
                + ("" if c.ok else f" (**not held**: {'; '.join(c.reasons) or 'failed'})")
                for c in cal.points
            )
            + ".",
        ]
    return [*lines, ""]


def _blocks(run: results.CapacityRun) -> list[str]:
    direct = [n for n, t in run.targets.items() if t.direct]
    lines = [
        "## The blocks",
        "",
        f"Why the run stopped: {run.method.stopped}. Estimates after each block (QPS@SLO ± half the 95 % interval, "
        f"a quick {estimate.QUICK_RESAMPLES}-resample bootstrap; the tables above use {run.method.resamples}):",
        "",
        "| block | minutes from start | minutes | points | " + " | ".join(direct) + " |",
        "|---|---|---|---|" + "---|" * len(direct),
    ]
    for b in run.blocks:
        cells = []
        for n in direct:
            e = b.qps.get(n)
            if e is None or e.estimate is None:
                cells.append("–")
            else:
                cells.append(f"{e.estimate:,.0f}" + (f" ±{e.half_width:.0%}" if e.half_width is not None else ""))
        lines.append(f"| {b.index} | {b.started_s / 60:.1f} | {b.seconds / 60:.1f} | {b.points} | " + " | ".join(cells)
                     + " |")  # fmt: skip
    return [*lines, ""]


def _breakdown(run: results.CapacityRun) -> list[str]:
    """The servers' own account at the valid point nearest each target's QPS@SLO."""
    rows = []
    for name, t in run.targets.items():
        q = t.qps_at_slo.estimate
        pts = [p for p in run.points if p.target == name and p.valid and p.breakdown is not None]
        if q is None or not pts:
            continue
        p = min(pts, key=lambda p: abs(p.rate - q))
        b = p.breakdown
        assert b is not None
        client = (p.p50_ms or math.nan) * 1000
        batch = b.batch or p.batch
        cpu = ", ".join(f"{k} {_fmt(v)}" for k, v in p.server_cpu_us_per_req.items())
        rows.append(
            f"| {name} | {p.rate:,.0f} | {_fmt(client)} | {_fmt(b.queue_us)} | {_fmt(b.compute_us)} | "
            f"{_fmt(b.total_us)} | {_fmt(b.gateway_us)} | {_fmt(batch.mean if batch else None, '.2f')} | {cpu} |"
        )
    if not rows:
        return []
    return [
        "## Where the time goes (the valid point nearest each QPS@SLO; µs per request)",
        "",
        "The same definitions for both servers (load_tests/measure/scrape.py): **queue** = waiting for a batch; "
        "**server total** = arrival to answer inside the server; **compute** = total − queue; **gateway** = its own "
        "time. Means from the servers' metrics against the client's p50 (a rough check, not an identity).",
        "",
        "| target | rate | client p50 | queue | compute | server total | gateway | mean batch | server CPU µs/req |",
        "|---|---|---|---|---|---|---|---|---|",
        *rows,
        "",
    ]


def _environment(run: results.CapacityRun) -> list[str]:
    env = run.environment
    steal = [p.guard.machine_steal for p in run.points if p.guard.machine_steal is not None]
    lines = [
        "## Environment",
        "",
        f"- commit `{run.commit}`, "
        + ("no uncommitted changes" if not run.dirty else f"**{len(run.source.changes)} uncommitted change(s)**"),
        f"- started {run.started}, {run.seconds / 60:.0f} min in all",
        f"- CPU: {env.cpu}, {env.cores} cores, ~{_fmt(env.cpu_mhz)} MHz; GPU: {env.gpu}",
        f"- load average before / after: {' '.join(env.load_avg_before)} / {' '.join(env.load_avg_after) or '?'} "
        "(a shared machine: compare targets within this report only)",
        "- CPU steal over the points: "
        + (f"mean {statistics.mean(steal):.1%}, max {max(steal):.1%}" if steal else "not recorded"),
        f"- Python {env.python}; " + ", ".join(f"{k} {v}" for k, v in env.versions.items()),
        f"- TF Serving batching: `{' '.join(env.tf_batching.split())}`",
        f"- TorchServe batching: {env.torchserve_batching}",
        *(f"- `{name}`: `{' '.join(_short(a) for a in argv[1:])}`" for name, argv in env.local_servers.items()),
    ]
    samples = env.gpu_samples
    if samples:
        util, mem = [s["util_pct"] for s in samples], [s["mem_mib"] for s in samples]
        lines.append(
            f"- GPU use through the run (nvidia-smi every second): utilisation mean {statistics.mean(util):.0f} %, "
            f"max {max(util):.0f} %; memory max {max(mem):,.0f} MiB"
        )
    if run.left_out:
        lines.append(
            f"- Not in this run (`--targets` adds them): {', '.join(run.left_out)}: the default keeps `make load` "
            "within its time budget with the direct servers and their floors."
        )
    return lines


def _short(arg: str) -> str:
    return Path(arg).name if arg.startswith("/") else arg


def write_capacity(out: Path, run: results.CapacityRun) -> Path:
    """report.md and its plots in ``out`` (results.json is written by the runner)."""
    m = run.method
    pngs = [plot_points(run, out), plot_capacity(run, out)]
    servers = [n for n, t in run.targets.items() if t.role == "server"]
    lines = [
        "# Load test report: capacity at a latency SLO",
        "",
        headline(run),
        "",
        quality(run),
        "",
        f"TF Serving: **{run.environment.tfserving}** — every TF Serving figure below is this implementation's. "
        f"Servers on: **{run.environment.servers_on}** (GPU: {run.environment.gpu}). Servers measured: "
        f"{', '.join(servers) or 'none'}.",
        "",
        f"**Method.** Open-loop Poisson arrivals, latency from the *intended* send time (a request never answered "
        f"counts as failed and infinitely slow). Each point: {m.point.warmup_s:g} s of warm-up, then "
        f"{m.point.windows} windows of ≥ {m.point.min_window_s:g} s and together ≥ {m.point.min_samples:,} requests; "
        f"sends wait with the `{m.point.sender}` sender ({m.point.spin_us:g} µs of cooperative spin before each), "
        f"the generator scheduled {m.point.priority}. "
        f"**Blocks**: each visits every target at {m.fixed_rate:,.0f} req/s and at "
        f"{', '.join(f'{s:g}' for s in m.knee_steps)} × its current QPS@SLO (block 0 finds the knee by doubling "
        f"from {m.start_rate:,.0f} req/s), in a shuffled order, with one seed per block. **QPS@SLO** (p99 ≤ "
        f"{m.slo_ms:g} ms, nothing failed) is read off one fit of all of a target's valid points, p99 = a + b/(μ − λ) "
        f"(least squares on log p99, robust loss, failing points as censored); the monotone (isotonic) fit and the "
        f"highest passing / lowest failing rates are shown beside it. **Intervals**: {m.confidence:.0%}, "
        f"bootstrap over whole blocks ({m.resamples} resamples, scipy.stats.bootstrap): the estimate ± Student's t "
        "with blocks − 1 degrees of freedom × the bootstrap standard error; ratios resample the same blocks for both "
        "sides. The blocks continue until every direct target's interval is within "
        f"±{m.target_half_width:.0%} (at least {m.min_blocks} blocks) or the {m.budget_s / 60:g} min budget.",
        "",
        "## QPS@SLO",
        "",
        *_qps_rows(run),
        "",
        *(f"![{p}]({p})" for p in pngs),
        "",
        *_ratio_rows(run),
        *_blocks(run),
        *_guard(run),
        *_breakdown(run),
        *_extra_sections(out),
        *_environment(run),
    ]
    path = out / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def _extra_sections(out: Path) -> list[str]:
    """The sweep and chaos runs saved beside the report, if any."""
    lines: list[str] = []
    if (out / "sweep.md").exists():
        lines += [
            "## Batching sweep",
            "",
            "Each server's max batch x batch delay trade-off, best against best: [sweep.md](sweep.md) "
            "(`make load-sweep`, run separately; its own environment line).",
            "",
            "![sweep.png](sweep.png)",
            "",
        ]
    runs: dict[str, dict[str, Any]] = {}
    for path in sorted(out.glob("chaos-*.json"), key=lambda p: (not p.stem.endswith("native"), p.stem)):
        runs[path.stem.removeprefix("chaos-")] = json.loads(path.read_text())
    if runs:
        lines += [*chaos.section(runs), ""]
    return lines


def main(argv: list[str] | None = None) -> int:
    """``python -m load_tests.reports.capacity DIR``: re-render DIR's report.md and plots from its results.json
    (measures nothing; ``python -m load_tests.runs.capacity --reanalyse DIR`` also refits)."""
    import argparse

    p = argparse.ArgumentParser(description=main.__doc__)
    p.add_argument("folder", type=Path)
    args = p.parse_args(argv)
    try:
        run = results.read(args.folder)
    except (OSError, ValueError) as e:
        p.error(str(e))
    print(write_capacity(args.folder, run))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
