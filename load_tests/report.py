"""The load-test report: a table people can trust, plots, the comparison, and the environment."""

from __future__ import annotations

import contextlib
import math
import os
import platform
import shutil
import subprocess
import threading
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import orjson
from matplotlib.ticker import FuncFormatter, NullFormatter

from load_tests.targets import BY_NAME

if TYPE_CHECKING:
    from load_tests.matrix import RunResult

REPO = Path(__file__).resolve().parent.parent
PERCENTILES = (50, 90, 95, 99, 99.9)
GPU_SAMPLE_S = 1.0


class GpuSampler:
    """GPU utilisation samples from nvidia-smi during the run, when a GPU is present."""

    def __init__(self) -> None:
        self.samples: list[dict[str, float]] = []
        self._stop = threading.Event()
        self._thread = None
        if shutil.which("nvidia-smi"):
            self._thread = threading.Thread(target=self._loop, daemon=True)
            self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(GPU_SAMPLE_S):
            with contextlib.suppress(Exception):
                out = subprocess.run(
                    ["nvidia-smi", "--query-gpu=utilization.gpu,memory.used", "--format=csv,noheader,nounits"],
                    capture_output=True,
                    text=True,
                    timeout=5,
                    check=True,
                ).stdout.splitlines()[0]
                util, mem = (float(v) for v in out.split(","))
                self.samples.append({"util_pct": util, "mem_mib": mem})

    def stop(self) -> list[dict[str, float]]:
        self._stop.set()
        if self._thread:
            self._thread.join(5)
        return self.samples


def _version(pkg: str) -> str:
    try:
        return metadata.version(pkg)
    except metadata.PackageNotFoundError:
        return "not installed"


def torchserve_batching(config: Path = REPO / "serving/torchserve/config.properties") -> str:
    """Each model's batchSize, maxBatchDelay and workers, read from the config TorchServe runs with."""
    import json
    import re

    text = re.sub(r"\\\n[ \t]*", "", config.read_text())
    models = json.loads(next(ln for ln in text.splitlines() if ln.startswith("models=")).partition("=")[2])
    parts = []
    for name, versions in models.items():
        m = next(iter(versions.values()))
        parts.append(
            f"{name}: batchSize {m['batchSize']}, maxBatchDelay {m['maxBatchDelay']} ms, "
            f"{m['minWorkers']}-{m['maxWorkers']} workers"
        )
    return "; ".join(parts) + " (config.properties)"


def environment(gateway_url: str) -> dict[str, Any]:
    cpu = platform.processor() or "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    gpu = "none"
    if shutil.which("nvidia-smi"):
        with contextlib.suppress(Exception):
            gpu = (
                subprocess.run(
                    ["nvidia-smi", "--query-gpu=name,driver_version", "--format=csv,noheader"],
                    capture_output=True,
                    text=True,
                    timeout=10,
                    check=True,
                ).stdout.strip()
                or "none"
            )
    backends: list[dict[str, Any]] = []
    with contextlib.suppress(Exception):
        backends = httpx.get(f"{gateway_url}/v1/backends", timeout=5).json()["backends"]
    tf_impl = next((b.get("implementation", "?") for b in backends if b["name"] == "tfserving"), "?")
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "gpu": gpu,
        "servers_on": "GPU" if gpu != "none" else "CPU",
        "tfserving": "stand-in (serving/tfserving_standin)" if tf_impl == "standin" else f"{tf_impl} binary",
        "versions": {
            p: _version(p) for p in ("tensorflow", "torch", "torchserve", "onnxruntime", "locust", "fastapi", "aiohttp")
        },
        "python": platform.python_version(),
        "tf_batching": " ".join(
            ln for ln in (REPO / "serving/tfserving/batching.config").read_text().splitlines() if ln and ln[0] != "#"
        ),
        "torchserve_batching": torchserve_batching(),
        "backends": backends,
        **machine_state(),
    }


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


_PLAIN = FuncFormatter(lambda v, _: f"{v:g}")


def _user_axis(ax: Any, levels: list[int]) -> None:
    ax.set_xscale("log", base=2)
    ax.set_xticks(levels)
    ax.xaxis.set_major_formatter(_PLAIN)
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
        ax.yaxis.set_major_formatter(_PLAIN)
        ax.yaxis.set_minor_formatter(_PLAIN)
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


def write(out: Path, results: list[RunResult], env: dict[str, Any], duration: float, warmup: float) -> Path:
    pngs = plot(results, out)
    head = " | ".join(f"p{q} µs" for q in PERCENTILES)
    lines = [
        "# Load test report (closed loop)",
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
        "The same definitions for both (load_tests/scrape.py): queue = waiting for a batch (TF "
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


# ---- The capacity report (load_tests/capacity.py) -------------------------------------------------


def machine_state() -> dict[str, Any]:
    """What else the machine was doing, and what it is: recorded with every capacity report."""
    state: dict[str, Any] = {"load_avg_before": Path("/proc/loadavg").read_text().split()[:3]}
    with contextlib.suppress(OSError):
        mhz = [float(ln.split(":")[1]) for ln in Path("/proc/cpuinfo").read_text().splitlines() if "cpu MHz" in ln]
        state["cpu_mhz"] = round(sum(mhz) / len(mhz)) if mhz else None
    with contextlib.suppress(Exception):
        state["git_commit"] = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"], cwd=REPO, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=REPO, capture_output=True, text=True, timeout=10)
        state["git_dirty"] = bool(dirty.stdout.strip())
    return state


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
        ax.yaxis.set_major_formatter(_PLAIN)
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
            rows.append(f"| {v['target']} | {_fmt(client)} | – | – | – | – | – | – | not exported |")
            continue
        lag = ((v.get("extra") or {}).get("send_lag_p50_ms") or 0.0) * 1000
        parts = b["total_us"] + b.get("gateway_us", 0.0) + max(0.0, b.get("hop_us", 0.0)) + lag
        from load_tests.scrape import adds_up

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
        floor = cal["points"][0]["extra"].get("send_lag_p99_ms")
        text += (
            f"; against the trivial server at {cal['points'][0]['rate']:,.0f} req/s the generator's own send-lag "
            f"p99 was already {_fmt(floor, '.2f')} ms, so on this machine that rule trips at any rate (the "
            "timer wakes in whole milliseconds and the scheduler adds more): the latencies include that lag, "
            "and the other two rules say whether the generator or the machine ran out of CPU"
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


def write_capacity(out: Path, results: dict[str, Any]) -> Path:
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
        f"**Generator guard.** A point is invalid when the Locust process used > "
        f"{m['guard']['max_generator_core_share']:.0%} of a core, the machine was < "
        f"{m['guard']['min_machine_idle']:.0%} idle, or the send lag (actual − intended send) p99 exceeded "
        f"{m['guard']['max_send_lag_share_of_slo']:.0%} of the SLO. Pinning: {env.get('pinning', '?')}.",
    ]
    if cal:
        lines += [
            "",
            f"**Generator ceiling** (calibrated against `load_tests/trivial_server.py`, which answers at once): "
            f"**{cal['ceiling_rps']:,.0f} req/s** with the guard holding; "
            + "; ".join(
                f"{p['rate']:,.0f}/s: {_fmt(p['extra'].get('generator_core_share'), '.0%')} of a core, "
                f"{_fmt(p['extra'].get('generator_cpu_us_per_req'))} µs/req, lag p99 "
                f"{_fmt(p['extra'].get('send_lag_p99_ms'), '.2f')} ms"
                for p in cal["points"]
            )
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
        "## Generator and machine at each reported rate (last repeat)",
        "",
        "| target | rate | generator % of a core | generator µs/req | machine idle | steal | send lag p50 / p99 ms |",
        "|---|---|---|---|---|---|---|",
    ]
    for c in results["capacity"]:
        s = results["searches"][c["target"]][-1]
        p = next((p for p in s["steps"] if p["rate"] == s["qps"]), None)
        if p is None:
            continue
        e = p["extra"]
        lines.append(
            f"| {c['target']} | {_fmt(p['rate'])} | {_fmt(e.get('generator_core_share'), '.0%')} | "
            f"{_fmt(e.get('generator_cpu_us_per_req'))} | {_fmt(e.get('machine_idle'), '.0%')} | "
            f"{_fmt(e.get('machine_steal'), '.1%')} | {_fmt(e.get('send_lag_p50_ms'), '.2f')} / "
            f"{_fmt(e.get('send_lag_p99_ms'), '.2f')} |"
        )
    lines += [
        "",
        "## Where the time goes (at QPS@SLO, the independent run; µs per request)",
        "",
        "The same definitions for both servers (load_tests/scrape.py): **queue** = waiting for a batch "
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
    ]
    path = out / "report.md"
    path.write_text("\n".join(lines) + "\n")
    (out / "results.json").write_bytes(
        orjson.dumps(results, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY, default=_json_default)
    )
    return path


def _json_default(v: Any) -> Any:
    raise TypeError(f"{type(v)} is not JSON serialisable")


def main(argv: list[str] | None = None) -> int:
    """``python -m load_tests.report DIR``: re-render DIR's report.md and plots from its results.json
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
