"""``python -m benchmarks.gateway`` (``make bench-gateway``): what the gateway hop costs, against the
floor of its own server stack, measured side by side in one run.

Paths to one backend (default TF Serving), the same 1x784 request (a real MNIST digit):
- direct: the backend's REST API;
- bare proxy: ``benchmarks/bare_proxy.py`` (uvicorn + httptools + uvloop, aiohttp forward, nothing
  else), started and stopped here;
- gateway: ``/v1/predict`` with the REST backend client;
- gateway (gRPC): a second gateway process whose backend client speaks gRPC with a binary tensor.

For each path: added p50/p99 over direct (1 user, sequential), CPU µs per request of every process
on it (the hop, the backend, and the load generator itself), and throughput at 1, 8 and 32 users as
a ratio of direct. Paths are interleaved and repeated; figures are medians over repeats, so a
noisy neighbour hits every path alike. Compare ratios, not absolute times: they vary by machine.
On a machine with >= 4 cores the hop processes are pinned to cores of their own (sched_setaffinity)
and the load generator to others; on fewer cores everything shares them, and the throughput ratios say so.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import orjson
import psutil

from load_tests.measure.cpu import pin, pin_tree, tree_cpu_s
from load_tests.reports.bench import BenchReport, finish
from load_tests.runs.harness import folder
from mnist_serving.ports import local_url
from mnist_serving.spec import STABLE_LABEL, TF_MODEL_NAME, TORCH_MODEL_NAME
from serving.native.gateway import launcher as gateway_launcher
from serving.native.process import ManagedProcess, exit_on_sigterm, free_ports
from serving.native.settings import REPO, ServingPorts
from serving.native.stack import ServingStack, running
from training.data import load_split

# Tuning constants (each also an option).
DURATION_S = 5.0  # measured seconds per path and repeat
WARMUP_S = 1.0  # per path and repeat, excluded
REPEATS = 3
USER_LEVELS = (1, 8, 32)
LARGE_ROWS = 32  # a batch-sized request, where JSON's cost per row shows
GOAL_VS_BARE_PROXY = 1.2  # the gateway's CPU per request and added p50 over a bare proxy's (issue #34)
READY_TIMEOUT_S = 30.0


@dataclass
class Path_:
    name: str
    url: str
    processes: dict[str, psutil.Process]  # role -> process whose CPU counts for this path


@dataclass
class Run:
    latencies_us: np.ndarray
    seconds: float
    cpu_us_per_req: dict[str, float] = field(default_factory=dict)

    @property
    def rps(self) -> float:
        return len(self.latencies_us) / self.seconds

    def pct(self, q: float) -> float:
        return float(np.percentile(self.latencies_us, q))


async def _load(url: str, body: bytes, users: int, seconds: float, warmup: float) -> tuple[list[float], float]:
    """Closed loop: each user sends its next request when the last answer arrives."""
    latencies: list[float] = []
    headers = {"Content-Type": "application/json"}
    connector = aiohttp.TCPConnector(limit=users, force_close=False)
    async with aiohttp.ClientSession(connector=connector, skip_auto_headers=("User-Agent",)) as session:
        measuring = False
        stop = time.perf_counter() + warmup

        async def user() -> None:
            while time.perf_counter() < stop:
                t0 = time.perf_counter()
                async with session.post(url, data=body, headers=headers) as r:
                    content = await r.read()
                    if r.status != 200 or b'"predictions"' not in content:
                        raise RuntimeError(f"{url}: HTTP {r.status}: {content[:200]!r}")
                if measuring:
                    latencies.append((time.perf_counter() - t0) * 1e6)

        await asyncio.gather(*(user() for _ in range(users)))
        measuring = True
        start = time.perf_counter()
        stop = start + seconds
        await asyncio.gather(*(user() for _ in range(users)))
        return latencies, time.perf_counter() - start


def measure(path: Path_, body: bytes, users: int, seconds: float, warmup: float) -> Run:
    me = psutil.Process()  # the load generator: this process alone (the stack is its children)
    before = {role: tree_cpu_s(p) for role, p in path.processes.items()} | {
        "load generator": tree_cpu_s(me, children=False)
    }
    latencies, elapsed = asyncio.run(_load(path.url, body, users, seconds, warmup))
    after = {role: tree_cpu_s(p) for role, p in path.processes.items()} | {
        "load generator": tree_cpu_s(me, children=False)
    }
    n = len(latencies)
    # CPU over warm-up and measurement, per request of the measurement: a slight overcount, alike for every path
    total = n * (seconds + warmup) / seconds
    cpu = {role: (after[role] - before[role]) * 1e6 / max(1.0, total) for role in before}
    return Run(np.asarray(latencies), elapsed, cpu)


@contextlib.contextmanager
def extra_processes(stack: ServingStack, run_dir: Path) -> Iterator[dict[str, ManagedProcess]]:
    """A gRPC-client gateway and the bare proxy, next to the stack's own gateway."""
    grpc_port, bare_port = free_ports(2)
    grpc_ports = ServingPorts(**{**stack.ports.as_dict(), "gateway": grpc_port, "gateway_grpc": 0})
    gw_grpc = gateway_launcher(run_dir, grpc_ports, name="gateway-grpc")
    gw_grpc.env.update({"GATEWAY_TFSERVING_PROTOCOL": "grpc", "GATEWAY_TORCHSERVE_PROTOCOL": "grpc"})
    targets = {"tfserving": stack.ports.tfserving_rest, "torchserve": stack.ports.torchserve_inference}
    bare = {
        name: ManagedProcess(
            f"bare-proxy-{name}",
            [sys.executable, "-m", "benchmarks.bare_proxy", "--port", str(port), "--target", local_url(t)],
            run_dir / f"bare-proxy-{name}.log",
            cwd=REPO,
        )
        for (name, t), port in zip(targets.items(), (bare_port, *free_ports(1)), strict=True)
    }
    procs = {"gateway-grpc": gw_grpc, **{p.name: p for p in bare.values()}}
    try:
        for p in procs.values():
            p.start()
        gw_grpc.wait_until(lambda: _ok(local_url(grpc_port, "/readyz")), READY_TIMEOUT_S)
        for p in bare.values():
            port = int(p.argv[p.argv.index("--port") + 1])
            p.wait_until(functools.partial(_listening, port), READY_TIMEOUT_S)
        yield procs
    finally:
        for p in procs.values():
            p.stop()


def _ok(url: str) -> bool:
    import httpx

    return httpx.get(url, timeout=2).status_code == 200


def _listening(port: int) -> bool:
    import socket

    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


HOPS = ("gateway", "gateway-grpc", "bare-proxy-tfserving", "bare-proxy-torchserve")


def pin_phase(procs: dict[str, psutil.Process], phase: str) -> str:
    """Keep the load generator off the cores that are measured. With >= 4 cores, hops (gateway,
    proxy) get half the cores and the generator and backends the other half, always. With 2-3
    cores, only while one user is measured: the hops get the last core; under concurrency they
    share all cores (pinning would cap the generator and backends at one core)."""
    cores = list(range(os.cpu_count() or 1))
    if len(cores) >= 4:
        hop_cores, rest_cores = cores[len(cores) // 2 :], cores[: len(cores) // 2]
    elif len(cores) >= 2 and phase == "sequential":
        hop_cores, rest_cores = cores[-1:], cores[:-1]
    else:
        hop_cores = rest_cores = cores
    for name, p in procs.items():
        pin_tree(p, hop_cores if name in HOPS else rest_cores)
    pin([os.getpid()], rest_cores)  # this process alone: the stack is its children
    if hop_cores == rest_cores:
        return f"all {len(cores)} cores shared by load generator, hops and servers"
    return f"hops on cores {hop_cores}; load generator and servers on {rest_cores}"


def _median(values: list[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


def _machine() -> str:
    model = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return f"{model}, {os.cpu_count()} cores"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--artifacts", type=Path, default=Path("artifacts"))
    p.add_argument("--backend", choices=["tfserving", "torchserve"], default="tfserving")
    p.add_argument("--users", default=",".join(map(str, USER_LEVELS)), help="user levels for the throughput ratios")
    p.add_argument("--duration", type=float, default=DURATION_S, help="measured seconds per path and repeat")
    p.add_argument("--warmup", type=float, default=WARMUP_S)
    p.add_argument("--repeats", type=int, default=REPEATS)
    p.add_argument("--large-rows", type=int, default=LARGE_ROWS, help="rows per request for the gRPC/REST comparison")
    p.add_argument("--json", type=Path, default=None, help="also write the figures here")
    p.add_argument("--out", type=Path, default=None, help="report folder (default: reports/gateway-<time>)")
    args = p.parse_args(argv)
    exit_on_sigterm()
    levels = [int(u) for u in args.users.split(",")]
    digits = load_split().x_test
    body = orjson.dumps({"instances": [digits[0].tolist()]})
    large = orjson.dumps({"instances": digits[: args.large_rows].tolist()})

    with contextlib.ExitStack() as es:
        run_dir = Path(es.enter_context(tempfile.TemporaryDirectory(prefix="bench-gw-")))
        stack = es.enter_context(running(args.artifacts, run_dir, ServingPorts.free(), with_gateway=True))
        extra = es.enter_context(extra_processes(stack, run_dir))
        ports = stack.ports
        proc = {p.name: psutil.Process(p.pid) for p in [*stack.processes, *extra.values()] if p.pid}
        backend = proc[args.backend]
        if args.backend == "tfserving":
            direct_path = f"/v1/models/{TF_MODEL_NAME}/labels/{STABLE_LABEL}:predict"  # what the gateway calls
            direct_port = ports.tfserving_rest
        else:
            direct_path, direct_port = f"/predictions/{TORCH_MODEL_NAME}", ports.torchserve_inference
        bare_argv = extra[f"bare-proxy-{args.backend}"].argv
        bare_port = int(bare_argv[bare_argv.index("--port") + 1])
        grpc_port = int(extra["gateway-grpc"].env["GATEWAY_PORT"])
        predict = f"/v1/predict?backend={args.backend}"
        paths = [
            Path_("direct", local_url(direct_port, f"{direct_path}"), {"backend": backend}),
            Path_(
                "bare proxy",
                local_url(bare_port, f"{direct_path}"),
                {"hop": proc[f"bare-proxy-{args.backend}"], "backend": backend},
            ),
            Path_("gateway", local_url(ports.gateway, f"{predict}"), {"hop": proc["gateway"], "backend": backend}),
            Path_(
                "gateway (gRPC)",
                local_url(grpc_port, f"{predict}"),
                {"hop": proc["gateway-grpc"], "backend": backend},
            ),
        ]
        for path in paths:
            path.processes.setdefault("backend", backend)
        print(
            f"{_machine()}; backend {args.backend} (TF Serving: {stack.tf_implementation}); "
            f"{args.repeats} interleaved repeats of {args.duration:.0f} s (+{args.warmup:.0f} s warm-up) per path",
            flush=True,
        )

        def phase(name: str, chosen: list[Path_], users: int, payload: bytes) -> dict[str, list[Run]]:
            out: dict[str, list[Run]] = {}
            for r in range(args.repeats):
                for path in chosen:
                    out.setdefault(path.name, []).append(measure(path, payload, users, args.duration, args.warmup))
                print(
                    f"  {name}, repeat {r + 1}: "
                    + ", ".join(f"{n} {x[-1].rps:,.0f}/s p50 {x[-1].pct(50):,.0f} µs" for n, x in out.items()),
                    flush=True,
                )
            return out

        notes = {"sequential": pin_phase(proc, "sequential")}
        print(f"1 user, 1 row: {notes['sequential']}", flush=True)
        sequential = phase("1 user, 1 row", paths, 1, body)
        rows = phase(f"1 user, {args.large_rows} rows", paths[2:], 1, large)
        notes["throughput"] = pin_phase(proc, "throughput")
        print(f"throughput: {notes['throughput']}", flush=True)
        throughput = {users: phase(f"{users} users", paths, users, body) for users in levels}
    report = summarise(sequential, rows, throughput, args.large_rows, notes)
    print(report["text"])
    if args.json:
        args.json.write_bytes(orjson.dumps(report["figures"], option=orjson.OPT_INDENT_2))
    finish(
        folder(args.out, "gateway-"),
        BenchReport(
            title=f"The gateway's own cost (`make bench-gateway`, backend {args.backend})",
            verdict=report["verdict"],
            body=[f"TF Serving: {stack.tf_implementation}.", "", "```", report["text"].strip("\n"), "```"],
            figures=report["figures"],
        ),
        lambda png: plot(report["figures"], png),
    )


def _cpu_row(runs: list[Run]) -> dict[str, float]:
    hop = _median([r.cpu_us_per_req.get("hop", 0.0) for r in runs])
    backend = _median([r.cpu_us_per_req["backend"] for r in runs])
    return {
        "hop_cpu_us_per_req": hop,
        "backend_cpu_us_per_req": backend,
        "hop_and_backend_cpu_us_per_req": _median(
            [r.cpu_us_per_req.get("hop", 0.0) + r.cpu_us_per_req["backend"] for r in runs]
        ),
        "generator_cpu_us_per_req": _median([r.cpu_us_per_req["load generator"] for r in runs]),
    }


def _paired(a: list[Run], b: list[Run], f: Callable[[Run], float]) -> float:
    """Median over repeats of f(a)/f(b), each pair measured back to back."""
    return _median([f(x) / f(y) for x, y in zip(a, b, strict=True) if f(y)])


def summarise(
    sequential: dict[str, list[Run]],
    rows: dict[str, list[Run]],
    throughput: dict[int, dict[str, list[Run]]],
    large_rows: int,
    notes: dict[str, str],
) -> dict[str, Any]:
    direct = sequential["direct"]
    figures: dict[str, Any] = {"pinning": notes, "paths": {}}
    lines = [
        "",
        f"1 user, 1 row ({notes['sequential']}): latency added over direct, CPU µs per request",
        f"{'path':<16}{'p50 µs':>9}{'p99 µs':>9}{'+p50 µs':>9}{'+p99 µs':>9}"
        f"{'hop':>8}{'backend':>9}{'hop+backend':>13}{'generator':>11}",
    ]
    for name, rs in sequential.items():
        f = {
            "p50_us": _median([r.pct(50) for r in rs]),
            "p99_us": _median([r.pct(99) for r in rs]),
            "added_p50_us": _median([r.pct(50) - d.pct(50) for r, d in zip(rs, direct, strict=True)]),
            "added_p99_us": _median([r.pct(99) - d.pct(99) for r, d in zip(rs, direct, strict=True)]),
            **_cpu_row(rs),
        }
        figures["paths"][name] = f
        lines.append(
            f"{name:<16}{f['p50_us']:>9,.0f}{f['p99_us']:>9,.0f}{f['added_p50_us']:>9,.0f}{f['added_p99_us']:>9,.0f}"
            f"{f['hop_cpu_us_per_req']:>8,.0f}{f['backend_cpu_us_per_req']:>9,.0f}"
            f"{f['hop_and_backend_cpu_us_per_req']:>13,.0f}{f['generator_cpu_us_per_req']:>11,.0f}"
        )
    bare = sequential["bare proxy"]
    paths = figures["paths"]
    ratios = {}
    for name in ("gateway", "gateway (gRPC)"):
        ratios[name] = {
            "cpu": _paired(sequential[name], bare, lambda r: r.cpu_us_per_req["hop"]),
            "added_p50": paths[name]["added_p50_us"] / paths["bare proxy"]["added_p50_us"],
        }
    figures["vs_bare_proxy"] = ratios
    lines += [
        "",
        f"against the bare proxy (goal for the gateway: <= {GOAL_VS_BARE_PROXY:g}x each; CPU: median of "
        "back-to-back ratios)",
        *(f"  {n:<16} CPU per request {r['cpu']:.2f}x, added p50 {r['added_p50']:.2f}x" for n, r in ratios.items()),
        "",
        "gRPC (binary tensor) vs REST (JSON) to the backend: gateway + backend CPU µs per request, 1 user",
    ]
    figures["grpc_vs_rest"] = {}
    for label, data in (("1 row", sequential), (f"{large_rows} rows", rows)):
        rest = data["gateway"]
        grpc = data["gateway (gRPC)"]
        total = lambda r: r.cpu_us_per_req["hop"] + r.cpu_us_per_req["backend"]  # noqa: E731
        change = _paired(grpc, rest, total) - 1
        rest_us, grpc_us = _median([total(r) for r in rest]), _median([total(r) for r in grpc])
        figures["grpc_vs_rest"][label] = {"rest_us": rest_us, "grpc_us": grpc_us, "grpc_change": change}
        lines.append(f"  {label:<10} REST {rest_us:7,.0f}  gRPC {grpc_us:7,.0f}  gRPC {change:+.0%}")
    lines += ["", f"throughput as a share of direct ({notes['throughput']}; median of back-to-back ratios)"]
    names = list(sequential)
    lines.append(f"{'users':<8}{'direct':>12}" + "".join(f"{n:>16}" for n in names[1:]))
    figures["throughput"] = {}
    for users, data in throughput.items():
        shares = {n: _paired(data[n], data["direct"], lambda r: r.rps) for n in names[1:]}
        direct_rps = _median([r.rps for r in data["direct"]])
        figures["throughput"][str(users)] = {"direct_rps": direct_rps, **shares}
        lines.append(f"{users:<8}{direct_rps:>10,.0f}/s" + "".join(f"{shares[n]:>16.1%}" for n in names[1:]))
    lines += ["", "CPU budget of the gateway under load (cores = CPU µs per request x requests per second)"]
    for users, data in throughput.items():
        gw = data["gateway"]
        used = _median([r.cpu_us_per_req["hop"] * r.rps / 1e6 for r in gw])
        per_req = _median([r.cpu_us_per_req["hop"] for r in gw])
        needed = per_req * _median([r.rps for r in data["direct"]]) * 0.9 / 1e6
        figures["throughput"][str(users)]["gateway_cores_used"] = used
        figures["throughput"][str(users)]["gateway_cores_for_90pct"] = needed
        lines.append(
            f"  {users:>2} users: {per_req:,.0f} µs per request, {used:.2f} cores used of {os.cpu_count()}; "
            f"90 % of direct would take {needed:.2f} cores of its own"
        )
    ours = ratios["gateway"]
    met = ours["cpu"] <= GOAL_VS_BARE_PROXY and ours["added_p50"] <= GOAL_VS_BARE_PROXY
    verdict = [
        f"VERDICT: the gateway (REST) costs {ours['cpu']:.2f}x a bare proxy's CPU per request and adds "
        f"{ours['added_p50']:.2f}x its p50 (goal <= {GOAL_VS_BARE_PROXY:g}x each): "
        + ("met" if met else "NOT met")
        + f"; medians of {len(bare)} back-to-back repeats on a shared machine (compare within this run only)",
    ]
    figures["goal"] = {"vs_bare_proxy": GOAL_VS_BARE_PROXY, "met": met}
    return {"text": "\n".join(lines), "figures": figures, "verdict": verdict}


def plot(figures: dict[str, Any], png: Path) -> None:
    import matplotlib.pyplot as plt

    from load_tests.reports import plots

    paths = figures["paths"]
    names = [n for n in paths if n != "direct"]
    fig, (cpu, lat) = plt.subplots(1, 2, figsize=(10, 3.6))
    cpu.bar(names, [paths[n]["hop_cpu_us_per_req"] for n in names], color="tab:blue")
    cpu.set_ylabel("hop CPU per request (µs, median of repeats)")
    lat.bar(names, [paths[n]["added_p50_us"] for n in names], color="tab:orange", label="+p50")
    lat.set_ylabel("latency added over direct (µs, 1 user)")
    for ax in (cpu, lat):
        ax.tick_params(axis="x", labelsize=8)
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle(f"the gateway's hop vs a bare proxy (goal <= {figures['goal']['vs_bare_proxy']:g}x)", fontsize=10)
    plots.save(fig, png)


if __name__ == "__main__":
    main()
