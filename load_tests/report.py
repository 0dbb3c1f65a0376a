"""The load-test report: a table people can trust, plots, the comparison, and the environment."""

from __future__ import annotations

import contextlib
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
        "tf_batching": (REPO / "serving/tfserving/batching.config").read_text().split("\n", 3)[-1].strip(),
        "torchserve_batching": "batchSize 32, maxBatchDelay 1 ms, 1 worker per model (config.properties)",
        "backends": backends,
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
        "# Load test report",
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
        "TF Serving: queue = `batching_session:queuing_latency`, inference = `runtime_latency` (session run).",
        "TorchServe: queue = `ts_queue_latency_microseconds`, inference = `ts_inference_latency_microseconds`",
        "(per request, averaged over the run; gateway targets include the gateway's own requests to the server).",
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
