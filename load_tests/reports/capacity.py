"""The capacity report (runs/capacity.py): QPS@SLO with intervals, the floors, the generator guard,
the breakdown and the environment; ``python -m load_tests.reports.capacity DIR`` re-renders one."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import orjson

from load_tests.reports import chaos
from load_tests.reports.plots import PLAIN
from load_tests.targets import BY_NAME


def _fmt(v: Any, spec: str = ",.0f") -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    return format(v, spec)


def plot_capacity(results: dict[str, Any], out: Path) -> list[str]:
    slo = results["method"]["slo_p99_ms"]
    names = [c["target"] for c in results["capacity"]]
    cols = 4
    rows = math.ceil(len(names) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.4 * rows), squeeze=False)
    for ax, name in zip(axes.flat, names, strict=False):
        steps = sorted(
            (p for s in results["searches"][name] for p in s["steps"] if p["samples"]), key=lambda p: p["rate"]
        )
        rates = [p["rate"] for p in steps]
        ax.plot(rates, [p["p99_ms"] for p in steps], "o-", ms=3, label="p99")
        ax.plot(rates, [p["p50_ms"] for p in steps], "s-", ms=3, alpha=0.7, label="p50")
        bad = [p for p in steps if not p["valid"]]
        ax.plot([p["rate"] for p in bad], [p["p99_ms"] for p in bad], "x", color="red", label="guard tripped")
        ax.axhline(slo, color="grey", ls="--", lw=1, label=f"SLO {slo:g} ms")
        cap = next(c for c in results["capacity"] if c["target"] == name)
        ax.axvline(cap["qps"], color="green", lw=1, alpha=0.6)
        ax.set(title=f"{name}: {cap['qps']:,.0f} req/s @ SLO", xlabel="offered rate (req/s)", ylabel="ms (log)")
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(PLAIN)
        ax.grid(alpha=0.3, which="both")
        ax.title.set_fontsize(9)
    for ax in list(axes.flat)[len(names) :]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7)
    fig.suptitle("Latency from the intended send time vs offered Poisson rate (every measured step, all repeats)")
    fig.tight_layout()
    fig.savefig(out / "latency_vs_rate.png", dpi=90)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(9, 4.5))
    caps = results["capacity"]
    xs = range(len(caps))
    means = [c["qps"] for c in caps]
    err = [
        [max(0.0, c["qps"] - c["ci95"][0]) if math.isfinite(c["ci95"][0]) else 0 for c in caps],
        [max(0.0, c["ci95"][1] - c["qps"]) if math.isfinite(c["ci95"][1]) else 0 for c in caps],
    ]
    colours = ["tab:blue" if c["valid"] else "tab:grey" for c in caps]
    ax.bar(xs, means, yerr=err, capsize=4, color=colours)
    ax.set_xticks(list(xs), [c["target"] for c in caps], rotation=30, ha="right", fontsize=8)
    ax.set(ylabel="req/s", title=f"QPS at p99 ≤ {results['method']['slo_p99_ms']:g} ms (95 % CI; grey: invalid)")
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    fig.savefig(out / "capacity.png", dpi=90)
    plt.close(fig)
    return ["capacity.png", "latency_vs_rate.png"]


def _breakdown_rows(results: dict[str, Any]) -> list[str]:
    rows = []
    for v in results["verify"]:
        b = (v.get("extra") or {}).get("breakdown")
        client = (v["p50_ms"] or math.nan) * 1000
        if not b:
            why = "not recorded (see the note)" if results["method"].get("rebuilt") else "not exported"
            rows.append(f"| {v['target']} | {_fmt(client)} | – | – | – | – | – | – | {why} |")
            continue
        lag = ((v.get("extra") or {}).get("send_lag_p50_ms") or 0.0) * 1000
        parts = b["total_us"] + b.get("gateway_us", 0.0) + max(0.0, b.get("hop_us", 0.0)) + lag
        from load_tests.measure.scrape import adds_up

        verdict = "yes" if adds_up(parts, client) else f"**no** ({parts / client:.0%} of p50)"
        rows.append(
            f"| {v['target']} | {_fmt(client)} | {_fmt(b['queue_us'])} | {_fmt(b['compute_us'])} | "
            f"{_fmt(b['total_us'])} | {_fmt(b.get('gateway_us'))} | {_fmt(lag)} | {_fmt(client - parts)} | {verdict} |"
        )
    return rows


def _batch_rows(results: dict[str, Any]) -> list[str]:
    rows = []
    for v in results["verify"]:
        extra = v.get("extra") or {}
        b = (extra.get("breakdown") or {}).get("batch") or extra.get("batch")
        cpu = extra.get("server_cpu_us_per_req") or {}
        hist = ", ".join(f"{k}: {s:.0%}" for k, s in b["hist"].items()) if b else "–"
        rows.append(
            f"| {v['target']} | {_fmt(v['rate'])} | {_fmt(b['mean'] if b else None, '.2f')} | {hist} | "
            f"{b['source'] if b else '–'} | " + ", ".join(f"{k} {_fmt(u)}" for k, u in cpu.items()) + " |"
        )
    return rows


def _verify_text(v: dict[str, Any]) -> str:
    verdict = "within SLO" if v["passes"] else "**outside SLO**"
    p99 = _fmt(v["p99_ms"], ".2f")
    return f"{v['seconds']:.0f} s at {_fmt(v['rate'])}/s: p99 {p99} ms, {v['failed']} failed — {verdict}"


def _guard_summary(results: dict[str, Any]) -> list[str]:
    """How many points tripped which rule, and the calibration's send-lag floor beside the threshold."""
    points = [p for ss in results["searches"].values() for s in ss for p in s["steps"]]
    counts: dict[str, int] = {}
    for p in points:
        for r in p["invalid"]:
            key = "send lag" if r.startswith("send lag") else r.split(" ")[0]
            counts[key] = counts.get(key, 0) + 1
    m = results["method"]
    threshold = m["guard"]["max_send_lag_share_of_slo"] * m["slo_p99_ms"]
    text = (
        f"**Guard outcome.** {sum(1 for p in points if p['invalid'])} of {len(points)} measured points tripped it: "
        + (", ".join(f"{k} {n}" for k, n in sorted(counts.items())) or "none")
        + f". The send-lag threshold is {threshold:g} ms"
    )
    cal = results.get("calibration")
    if cal and cal["points"]:
        first = cal["points"][0]
        own = first.get("extra", first).get("send_lag_p99_ms")  # older reports kept the point's extra dict
        if own is not None and own > threshold:
            text += (
                f"; against the trivial server at {first['rate']:,.0f} req/s the generator's own send-lag p99 was "
                f"already {_fmt(own, '.2f')} ms, so on this machine that rule trips at any rate: the latencies "
                "include that lag, and the other two rules say whether the generator or the machine ran out of CPU"
            )
        elif own is not None:
            text += (
                f"; against the trivial server at {first['rate']:,.0f} req/s the generator's own send-lag p99 was "
                f"{_fmt(own, '.3f')} ms, well inside it, so a point that trips it does so because the machine "
                "could not run the generator on time (its cores were busy with the servers), not because of the "
                "generator's own timer"
            )
    return [text + "."]


def _steal_summary(results: dict[str, Any]) -> str:
    steal = [
        p["extra"]["machine_steal"]
        for ss in results["searches"].values()
        for s in ss
        for p in s["steps"]
        if isinstance(p["extra"].get("machine_steal"), float)
    ]
    if not steal:
        return "not recorded"
    return f"mean {sum(steal) / len(steal):.1%}, max {max(steal):.1%} (per point, /proc/stat)"


def _calibration_point(p: dict[str, Any]) -> str:
    e = p.get("extra", p)  # older reports kept the point's extra dict
    work = e.get("generator_work_share", e.get("generator_core_share"))
    return (
        f"{p['rate']:,.0f}/s: {_fmt(work, '.0%')} of a core's work"
        + (f" (+{_fmt(e['generator_waiting_share'], '.0%')} waiting)" if "generator_waiting_share" in e else "")
        + f", lag p50 {_fmt(e.get('send_lag_p50_ms'), '.3f')} / p99 {_fmt(e.get('send_lag_p99_ms'), '.3f')} ms"
    )


def _ratio(a: float | None, b: float | None) -> str:
    if a is None or b is None or not (math.isfinite(a) and math.isfinite(b)) or b <= 0:
        return "–"
    return f"{a / b:.2f}×"


def _mean(values: list[float]) -> float:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return sum(finite) / len(finite) if finite else math.nan


def floor_rows(results: dict[str, Any]) -> list[str]:
    """Each target beside its floor: p50/p99 at the floor rate (mean over the interleaved repeats) and
    QPS@SLO (mean of the searches), all measured in this run."""
    floors, at = results.get("floors") or {}, results.get("at_floor_rate") or {}
    caps = {c["target"]: c for c in results["capacity"]}
    pairs = [(t, f) for t, f in floors.items() if t in caps and f in caps]
    if not pairs:
        return []
    rate = results["method"].get("floor_rate", 0)
    lines = [
        "## Each server against its floor",
        "",
        "The floor is the same artifact in-process behind the leanest HTTP route (load_tests/servers/floor.py: "
        "one aiohttp process, no batching, one compute thread, the same JSON contract and answer checks), "
        f"measured in this run, interleaved with the servers. p50 and p99 at {rate:,.0f} req/s (mean over "
        f"{results['method']['repeats']} repeats); QPS@SLO from the searches above. 1.00× would mean the server "
        "costs nothing over the model; the QPS ratio is below 1 when the server serves less.",
        "",
        "| target | floor | p50 ratio | p99 ratio | QPS@SLO ratio | p50 ms target / floor | p99 ms target / floor |",
        "|---|---|---|---|---|---|---|",
    ]
    for t, f in pairs:
        tp50, fp50 = _mean([p["p50_ms"] for p in at.get(t, [])]), _mean([p["p50_ms"] for p in at.get(f, [])])
        tp99, fp99 = _mean([p["p99_ms"] for p in at.get(t, [])]), _mean([p["p99_ms"] for p in at.get(f, [])])
        lines.append(
            f"| {t} | {f} | {_ratio(tp50, fp50)} | {_ratio(tp99, fp99)} | {_ratio(caps[t]['qps'], caps[f]['qps'])} | "
            f"{_fmt(tp50, '.2f')} / {_fmt(fp50, '.2f')} | {_fmt(tp99, '.2f')} / {_fmt(fp99, '.2f')} |"
        )
    return [*lines, ""]


def _gpu_line(env: dict[str, Any]) -> list[str]:
    samples = env.get("gpu_samples") or []
    if not samples:
        return []
    util, mem = [s["util_pct"] for s in samples], [s["mem_mib"] for s in samples]
    return [
        f"- GPU use through the run (nvidia-smi every second): utilisation mean {sum(util) / len(util):.0f} %, "
        f"max {max(util):.0f} %; memory max {max(mem):,.0f} MiB"
    ]


def write_capacity(out: Path, results: dict[str, Any]) -> Path:
    """results.json first (a failure while rendering must never lose a measured run), then report.md."""
    (out / "results.json").write_bytes(
        orjson.dumps(results, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY, default=_json_default)
    )
    env, m = results["environment"], results["method"]
    slo = m["slo_p99_ms"]
    pngs = plot_capacity(results, out)
    cal = results.get("calibration")
    lines = [
        "# Load test report: capacity at a latency SLO",
        "",
        f"TF Serving: **{env['tfserving']}** — every TF Serving figure below is this implementation's. "
        f"Servers on: **{env['servers_on']}** (GPU: {env['gpu']}).",
        "",
        f"**Method.** Open-loop Poisson arrivals (seeded; the same schedule for every target in a repeat), "
        f"latency from the *intended* send time, a request never answered counts as failed. QPS@SLO = the "
        f"highest offered rate whose p99 ≤ **{slo:g} ms** with no failure, found by exponential search and "
        f"geometric bisection to within {m['capacity_tolerance']:.0%}. Each point runs in windows "
        f"(≥ {m['point']['min_window_s']:g} s, ≥ {m['point']['min_samples']:,} requests over the measured windows "
        f"unless that needs windows over {m.get('max_window_s', 8):g} s) "
        f"after a {m['point']['warmup_s']:g} s warm-up, until {m['stable_windows']} consecutive windows agree "
        f"within ±{m['stable_tolerance']:.0%} on throughput and p99 (at most {m['point']['max_windows']} windows; "
        f"a point that never does is marked unstable). {m['repeats']} repeats, targets interleaved (rotated "
        f"order per repeat); mean and 95 % Student-t interval. The whole run took {m['seconds'] / 60:.0f} min.",
        "",
        *([f"**Note.** {m['rebuilt']}", ""] if m.get("rebuilt") else []),
        f"**Generator guard.** A point is invalid when a Locust process's own work (its CPU less the time it "
        f"spent waiting precisely for a send time, load_tests/generator/precise.py) took > "
        f"{m['guard']['max_generator_core_share']:.0%} of a core, the machine was < "
        f"{m['guard']['min_machine_idle']:.0%} idle, or the send lag (actual − intended send) p99 exceeded "
        f"{m['guard']['max_send_lag_share_of_slo']:.0%} of the SLO. Pinning: {env.get('pinning', '?')}. "
        f"Generator processes per point: "
        + (f"{m['point']['processes']}" if m["point"].get("processes", 1) > 0 else "as many as the rate needs "
           f"(≤ 60 % of a core's work each, from the calibration)")
        + f"; precise wait {m['point'].get('spin_us', 0):g} µs before each send.",
    ]
    if cal:
        lines += [
            "",
            f"**Generator ceiling** (calibrated against `load_tests/servers/trivial.py`, which answers at once): "
            f"**{cal['ceiling_rps']:,.0f} req/s per process** with the guard holding"
            + (f", {cal['ceiling_rps_total']:,.0f} req/s over {cal['generator_cores']} generator core(s)"
               if "ceiling_rps_total" in cal else "")
            + "; "
            + "; ".join(_calibration_point(p) for p in cal["points"])
            + ".",
        ]
    lines += [
        "",
        "## QPS@SLO",
        "",
        *_guard_summary(results),
        "",
        "| target | QPS@SLO (mean) | 95 % CI | repeats | valid | stable | independent run at QPS@SLO |",
        "|---|---|---|---|---|---|---|",
    ]
    verify = {v["target"]: v for v in results["verify"]}
    for c in results["capacity"]:
        v = verify.get(c["target"])
        vtxt = _verify_text(v) if v else "–"
        if v and v.get("at_ci_low"):
            vtxt += "; at the CI's low end " + _verify_text(v["at_ci_low"])
        kinds = sorted({r.split(" ")[0] + (" lag" if r.startswith("send") else "") for r in c["invalid_reasons"]})
        valid = "yes" if c["valid"] else "**no** (" + (", ".join(kinds) or "generator lag at the ceiling") + ")"
        lo = c["ci95"][0]
        lines.append(
            f"| {c['target']} | {_fmt(c['qps'])} | {_fmt(max(0.0, lo) if lo is not None else None)} – "
            f"{_fmt(c['ci95'][1])} | "
            f"{', '.join(_fmt(q) for q in c['repeats'])} | {valid} | {'yes' if c['stable'] else '**no**'} | {vtxt} |"
        )
    lines += [
        "",
        *(f"![{p}]({p})" for p in pngs),
        "",
        *floor_rows(results),
        "## Generator and machine at each reported rate (last repeat)",
        "",
        "| target | rate | processes | generator work, % of a core | waiting precisely | generator µs/req | "
        "machine idle | steal | send lag p50 / p99 ms |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for c in results["capacity"]:
        s = results["searches"][c["target"]][-1]
        p = next((p for p in s["steps"] if p["rate"] == s["qps"]), None)
        if p is None:
            continue
        e = p["extra"]
        lines.append(
            f"| {c['target']} | {_fmt(p['rate'])} | {e.get('generator_processes', 1)} | "
            f"{_fmt(e.get('generator_work_share', e.get('generator_core_share')), '.0%')} | "
            f"{_fmt(e.get('generator_waiting_share'), '.0%')} | "
            f"{_fmt(e.get('generator_cpu_us_per_req'))} | {_fmt(e.get('machine_idle'), '.0%')} | "
            f"{_fmt(e.get('machine_steal'), '.1%')} | {_fmt(e.get('send_lag_p50_ms'), '.3f')} / "
            f"{_fmt(e.get('send_lag_p99_ms'), '.3f')} |"
        )
    lines += [
        "",
        "## Where the time goes (at QPS@SLO, the independent run; µs per request)",
        "",
        "The same definitions for both servers (load_tests/measure/scrape.py): **queue** = waiting for a batch "
        "(TF `batching_session:queuing_latency`, TorchServe `ts_queue_latency_microseconds`); **server total** "
        "= arrival to answer inside the server (TF `request_latency`; TorchServe `ts_inference_latency_microseconds`, "
        "which includes the queue); **compute** = total − queue. **Gateway** = its request latency minus its wait "
        "on the backend. **Send lag** = the generator's p50 delay past the intended send (latency counts from the "
        "intended time, so it is part of the client p50). **Outside** = client p50 − the parts: the client's and "
        "server's HTTP/gRPC stacks and the loopback, which no server metric covers. "
        "The parts should come within 15 % of the client p50 (means vs a median: a rough check).",
        "",
        "| target | client p50 | queue | compute | server total | gateway | send lag | outside | parts ≈ p50? |",
        "|---|---|---|---|---|---|---|---|---|",
        *_breakdown_rows(results),
        "",
        "Realized batch sizes (rows per executed batch; TF from `processed_batch_size`, TorchServe from its "
        "handler's `X-Batch-Requests` header, weighted per batch) and server CPU per answered request:",
        "",
        "| target | rate | mean batch | batches by size | source | server CPU µs/req |",
        "|---|---|---|---|---|---|",
        *_batch_rows(results),
        *(
            [
                "",
                "## Batching sweep",
                "",
                "Each server's max batch x batch delay trade-off, best against best: [sweep.md](sweep.md) "
                "(`make load-sweep`, run separately; its own environment line).",
                "",
                "![sweep.png](sweep.png)",
            ]
            if (out / "sweep.md").exists()
            else []
        ),
        *_chaos_section(out),
        "",
        "## Environment",
        "",
        f"- git commit {env.get('git_commit', '?')}{' (with local changes)' if env.get('git_dirty') else ''}",
        f"- CPU: {env['cpu']}, {env['cores']} cores, ~{env.get('cpu_mhz', '?')} MHz; GPU: {env['gpu']}",
        f"- load average before / after: {' '.join(env.get('load_avg_before', []))} / "
        f"{' '.join(env.get('load_avg_after', []))} (a shared machine: compare targets within this report only)",
        f"- CPU steal over the measured points: {_steal_summary(results)}",
        f"- Python {env['python']}; " + ", ".join(f"{k} {v}" for k, v in env["versions"].items()),
        f"- TF Serving batching: `{' '.join(env['tf_batching'].split())}`",
        f"- TorchServe batching: {env['torchserve_batching']}",
        *_gpu_line(env),
    ]
    path = out / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def _chaos_section(out: Path) -> list[str]:
    """The chaos runs saved beside the report (`make load-chaos --out <this folder>`), if any."""
    runs = {}
    for path in sorted(out.glob("chaos-*.json"), key=lambda p: (not p.stem.endswith("native"), p.stem)):
        runs[path.stem.removeprefix("chaos-")] = json.loads(path.read_text())
    return ["", *chaos.section(runs)] if runs else []


def _json_default(v: Any) -> Any:
    raise TypeError(f"{type(v)} is not JSON serialisable")


def main(argv: list[str] | None = None) -> int:
    """``python -m load_tests.reports.capacity DIR``: re-render DIR's report.md and plots from its results.json
    (a capacity run's), e.g. after changing the report's layout; measures nothing."""
    import argparse

    p = argparse.ArgumentParser(description=main.__doc__)
    p.add_argument("folder", type=Path)
    args = p.parse_args(argv)
    results = orjson.loads((args.folder / "results.json").read_bytes())
    if not isinstance(results, dict) or "capacity" not in results:
        p.error(f"{args.folder / 'results.json'} is not a capacity run's")
    print(write_capacity(args.folder, results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
