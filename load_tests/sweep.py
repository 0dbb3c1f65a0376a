"""``python -m load_tests.sweep`` (``make load-sweep``): each server's batching trade-off.

For each server, max batch {1, 8, 32} x batch delay {0, 1, 2, 5} ms (batch 1 never waits, so it
runs once, with 0 ms; TorchServe cannot express a 0 ms delay, see ``TS_MIN_DELAY_MS``): the server
is started alone with that configuration (TorchServe's describe API confirms what it really runs),
its QPS@SLO found (one search, ``TOLERANCE``) and its p50 at a low rate measured. Both servers' best
configurations are then compared, best against best. ``--servers torchserve --reuse DIR`` re-runs
one server and keeps the other's entries from an earlier sweep.

Parity rule: one model executor per model on both sides — TF Serving ``num_batch_threads`` =
TorchServe workers per model = ``--executors`` (default 1 on this 2-core machine); TF's
``max_execution_batch_size`` = TorchServe's ``batchSize``; ``batch_timeout_micros`` = ``maxBatchDelay``.
The row limit per request (``max_batch_size`` 256 with large-batch splitting) stays as shipped.

Bounded: 16 configurations x (start + ~5 search steps of 3 windows + 1 low-load point), about
27 min on 2 cores, then 2 x 3 confirmation searches, about 10 min.
Writes ``reports/sweep-<time>/`` (sweep.md, sweep.json, sweep.png).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import math
import re
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from load_tests import report, stats
from load_tests.capacity import SLO_MS, measure_search, point_dict
from load_tests.measure import Endpoints, PointConfig, run_point
from load_tests.targets import BY_NAME

MAX_BATCH = (1, 8, 32)
DELAY_MS = (0, 1, 2, 5)
LOW_RATE = 100.0  # req/s for the low-load p50
LOW_SAMPLES = 600
CONFIRM_REPEATS = 3  # the minimum for a Student-t interval, as make load
TOLERANCE = 0.10  # coarser than make load's 5 %: 16 configurations, one search each
SERVERS = {"tfserving": "tfserving", "torchserve": "torchserve"}  # server -> its direct REST target
REPO = Path(__file__).resolve().parent.parent
START_TIMEOUT_S = 180.0


# TorchServe 0.12 reads ``maxBatchDelay: 0`` as unset and applies its default, 100 ms (its describe
# API then shows 100): a zero delay cannot be expressed there, so TorchServe's grid starts at 1 ms.
TS_MIN_DELAY_MS = 1
# A previous configuration's QPS@SLO seeds the next search's bracket only above this; below it (a
# configuration that barely met the SLO) the search starts afresh from --start-rate.
MIN_HINT = 100.0


def configurations(server: str | None = None) -> list[tuple[int, int]]:
    """(max batch, delay ms) pairs; batch 1 never waits, so it runs once, with 0 ms."""
    grid = [(b, d) for b in MAX_BATCH for d in DELAY_MS if b > 1 or d == 0]
    if server == "torchserve":
        grid = [(b, d) for b, d in grid if b == 1 or d >= TS_MIN_DELAY_MS]
    return grid


def bracket_from(qps: float) -> tuple[float, float] | None:
    """The search bracket an earlier QPS@SLO suggests (±20-25 %), or None to search afresh."""
    return (qps * 0.8, qps * 1.25) if qps >= MIN_HINT else None


def tf_batching(batch: int, delay_ms: int, executors: int, out: Path) -> Path:
    """The shipped batching.config with the swept fields replaced."""
    text = (REPO / "serving/tfserving/batching.config").read_text()
    for field, value in (
        ("max_execution_batch_size", batch),
        ("batch_timeout_micros", delay_ms * 1000),
        ("num_batch_threads", executors),
    ):
        text, n = re.subn(rf"{field} \{{ value: \d+ \}}", f"{field} {{ value: {value} }}", text)
        if n != 1:
            raise ValueError(f"batching.config must set {field} once")
    out.write_text(text)
    return out


def ts_config(batch: int, delay_ms: int, executors: int, out: Path) -> Path:
    """The shipped config.properties with every model's batchSize, maxBatchDelay and workers replaced."""
    text = re.sub(r"\\\n[ \t]*", "", (REPO / "serving/torchserve/config.properties").read_text())
    lines = []
    for line in text.splitlines():
        if line.startswith("models="):
            models = json.loads(line.partition("=")[2])
            for versions in models.values():
                for m in versions.values():
                    m.update(batchSize=batch, maxBatchDelay=delay_ms, minWorkers=executors, maxWorkers=executors)
            line = "models=" + json.dumps(models)
        lines.append(line)
    out.write_text("\n".join(lines) + "\n")
    return out


@contextlib.contextmanager
def started(
    server: str, batch: int, delay_ms: int, args: argparse.Namespace, run: Path
) -> Iterator[tuple[Endpoints, dict[str, Any]]]:
    """``server`` on its own free ports with this batching; yields its endpoints and its effective config."""
    from serving.native import tfserving, torchserve
    from serving.native.process import check_ports_free
    from serving.native.settings import ServingPorts

    ports = ServingPorts.free()
    run = run.resolve()  # TorchServe rejects a relative TEMP
    run.mkdir(parents=True, exist_ok=True)
    check_ports_free({"rest": ports.tfserving_rest} if server == "tfserving" else {"ts": ports.torchserve_inference})
    if server == "tfserving":
        batching = tf_batching(batch, delay_ms, args.executors, run / "batching.config")
        proc = tfserving.launcher(args.artifacts.resolve(), run, ports, batching)

        def ready() -> bool:
            return tfserving.ready(ports)
    else:
        source = ts_config(batch, delay_ms, args.executors, run / "source.properties")
        proc = torchserve.launcher(args.artifacts.resolve(), run, ports, config_source=source)

        def ready() -> bool:
            return torchserve.ready(ports)

    proc.start()
    try:
        proc.wait_until(ready, START_TIMEOUT_S)
        effective: dict[str, Any] = {}
        if server == "torchserve":
            effective = torchserve.batching(ports)
            for name, m in effective.items():
                if m["batchSize"] != batch or (batch > 1 and m["maxBatchDelay"] != delay_ms):
                    raise RuntimeError(f"TorchServe runs {name} with {m}, not batch {batch} / delay {delay_ms} ms")
        yield Endpoints.native(ports), effective
    finally:
        proc.stop()


def run_config(
    server: str, batch: int, delay_ms: int, args: argparse.Namespace, cfg: PointConfig, out: Path, hint: float
) -> dict[str, Any]:
    label = f"{server}_b{batch}_d{delay_ms}"
    with started(server, batch, delay_ms, args, out / "run" / label) as (ep, effective):
        target = BY_NAME[SERVERS[server]]
        s = measure_search(
            target, cfg, ep, out, args.seed, args.start_rate, bracket_from(hint), label, tolerance=TOLERANCE
        )
        low_cfg = dataclasses.replace(cfg, early_stop=False, max_windows=stats.STABLE_WINDOWS, min_samples=LOW_SAMPLES)
        low = run_point(target, LOW_RATE, args.seed, low_cfg, ep, out, f"{label}_low")
    at = s.at_qps
    entry = {
        "server": server,
        "max_batch": batch,
        "delay_ms": delay_ms,
        "executors": args.executors,
        "effective": effective,
        "qps": s.qps,
        "ceiling": s.ceiling,
        "valid": bool(at and at.valid),
        "low_rate": LOW_RATE,
        "low_p50_ms": low.p50_ms,
        "low_p99_ms": low.p99_ms,
        "steps": [point_dict(p, cfg.slo_ms) for p in s.steps],
        "low": point_dict(low, cfg.slo_ms),
    }
    print(
        f"  {server} batch {batch:2d} delay {delay_ms} ms: QPS@SLO {s.qps:,.0f} req/s, p50 at {LOW_RATE:.0f} req/s "
        f"{low.p50_ms:.2f} ms{'' if entry['valid'] else ' (guard tripped)'}",
        flush=True,
    )
    return entry


def best_per_server(entries: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {
        s: max((e for e in entries if e["server"] == s), key=lambda e: e["qps"])
        for s in SERVERS
        if any(e["server"] == s for e in entries)
    }


def confirm(
    best: dict[str, dict[str, Any]], args: argparse.Namespace, cfg: PointConfig, out: Path
) -> dict[str, dict[str, Any]]:
    """Best against best, fairly: the highest of several single draws is biased upward (and more so
    for the server with more configurations), so each server's best configuration is re-measured,
    both servers running, in ``--confirm-repeats`` interleaved searches with fresh seeds."""
    qps: dict[str, list[float]] = {s: [] for s in best}
    with contextlib.ExitStack() as stack:
        eps = {
            s: stack.enter_context(started(s, e["max_batch"], e["delay_ms"], args, out / "run" / f"confirm_{s}"))[0]
            for s, e in best.items()
        }
        order = list(best)
        for r in range(args.confirm_repeats):
            for s in order[r % len(order) :] + order[: r % len(order)]:  # rotated, as make load's repeats
                e = best[s]
                print(
                    f"[confirm {r + 1}/{args.confirm_repeats}] {s} max batch {e['max_batch']}, delay {e['delay_ms']} ms"
                )
                label = f"confirm_{s}_r{r + 1}"
                found = measure_search(
                    BY_NAME[SERVERS[s]], cfg, eps[s], out, args.seed + 1 + r, args.start_rate, bracket_from(e["qps"]),
                    label, tolerance=TOLERANCE,
                )  # fmt: skip
                qps[s].append(found.qps)
    result = {}
    for s, values in qps.items():
        mean, lo, hi = stats.mean_ci95(values)
        result[s] = {
            "max_batch": best[s]["max_batch"],
            "delay_ms": best[s]["delay_ms"],
            "sweep_qps": best[s]["qps"],
            "repeats": values,
            "qps": mean,
            "ci95": [max(0.0, lo), hi],  # a rate is never negative
        }
        print(f"  {s}: QPS@SLO {mean:,.0f} req/s, 95 % CI {max(0.0, lo):,.0f}-{hi:,.0f}, repeats {values}", flush=True)
    return result


def plot(entries: list[dict[str, Any]], out: Path) -> str:
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5), sharey=True)
    for ax, server in zip(axes, SERVERS, strict=True):
        for batch, marker in zip(MAX_BATCH, "os^", strict=True):
            es = [e for e in entries if e["server"] == server and e["max_batch"] == batch]
            ax.plot([e["low_p50_ms"] for e in es], [e["qps"] for e in es], marker + "-", label=f"max batch {batch}")
            for e in es:
                ax.annotate(f"{e['delay_ms']} ms", (e["low_p50_ms"], e["qps"]), fontsize=7, xytext=(3, 3),
                            textcoords="offset points")  # fmt: skip
        ax.set(title=f"{server}: capacity vs low-load latency", xlabel=f"p50 at {LOW_RATE:.0f} req/s (ms)",
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
    args: argparse.Namespace,
    secs: float,
    confirmed: dict[str, dict[str, Any]] | None = None,
) -> Path:
    png = plot(entries, out)
    lines = [
        "# Batching sweep",
        "",
        f"TF Serving: **{env['tfserving']}**. SLO p99 ≤ {args.slo_ms:g} ms; one search per configuration "
        f"(tolerance {TOLERANCE:.0%}, 1 repeat, so no confidence interval: on a shared machine repeats of one "
        "configuration can differ several-fold, as the capacity report's repeats show, so read the QPS "
        "column as one draw each; the low-load p50 column is the steadier one); "
        f"low-load p50 at {LOW_RATE:.0f} req/s open loop. Parity: {args.executors} executor(s) per model on "
        f"both servers (TF `num_batch_threads` = TorchServe workers). This invocation took {secs / 60:.0f} min"
        + (f" (sweep entries reused from `{args.reuse}`)." if args.reuse else "."),
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
    lines += ["", "**Each server's best in the sweep** (highest single draw; biased upward):", ""]
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
            lines.append(
                f"| {s} | max batch {c['max_batch']}, delay {c['delay_ms']} ms | **{c['qps']:,.0f}** | "
                f"{lo:,.0f} – {hi:,.0f} | {reps} | {c['sweep_qps']:,.0f} |"
            )
        if {"tfserving", "torchserve"} <= confirmed.keys():
            tf, ts = confirmed["tfserving"], confirmed["torchserve"]
            overlap = tf["ci95"][0] <= ts["ci95"][1] and ts["ci95"][0] <= tf["ci95"][1]
            ratio = f"{tf['qps'] / ts['qps']:.2f}" if ts["qps"] > 0 else "n/a"
            lines += [
                "",
                f"Ratio of the means, TF Serving / TorchServe: {ratio}; the intervals "
                + ("**overlap**, so this run does not rank them." if overlap else "do not overlap."),
            ]
    lines += [
        "",
        f"![{png}]({png})",
        "",
        f"Environment: git {env.get('git_commit', '?')}, {env['cpu']}, {env['cores']} cores, load average before "
        f"{' '.join(env.get('load_avg_before', []))}.",
    ]
    path = out / "sweep.md"
    path.write_text("\n".join(lines) + "\n")
    doc = {"entries": entries, "confirmed": confirmed or {}, "environment": env}
    (out / "sweep.json").write_text(json.dumps(doc, indent=1, default=str))
    return path


def reused(folder: Path) -> list[dict[str, Any]]:
    """The entries of an earlier sweep, finished (sweep.json) or cut off (sweep.partial.json)."""
    done, partial = folder / "sweep.json", folder / "sweep.partial.json"
    if done.exists():
        return list(json.loads(done.read_text())["entries"])
    if partial.exists():
        return list(json.loads(partial.read_text()))
    raise SystemExit(f"--reuse: neither {done} nor {partial} exists")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--servers", default=",".join(SERVERS))
    p.add_argument("--slo-ms", type=float, default=SLO_MS)
    p.add_argument("--executors", type=int, default=1, help="TF batch threads = TorchServe workers per model")
    p.add_argument("--max-windows", type=int, default=stats.STABLE_WINDOWS, help="per point (default: %(default)s)")
    p.add_argument("--start-rate", type=float, default=400.0)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--artifacts", type=Path, default=Path("artifacts"))
    p.add_argument("--out", type=Path, default=None)
    p.add_argument(
        "--reuse",
        type=Path,
        default=None,
        help="an earlier sweep folder: keep its entries for the servers not run now (sweep.json or sweep.partial.json)",
    )
    p.add_argument(
        "--confirm-repeats",
        type=int,
        default=CONFIRM_REPEATS,
        help="re-measure each server's best configuration this often (0: skip; default: %(default)s)",
    )
    args = p.parse_args(argv)
    from serving.native.process import exit_on_sigterm

    exit_on_sigterm()
    out = args.out or Path("reports") / time.strftime("sweep-%Y%m%d-%H%M%S")
    out.mkdir(parents=True, exist_ok=True)
    cfg = PointConfig(slo_ms=args.slo_ms, max_windows=args.max_windows)
    env = report.environment("http://127.0.0.1:1")  # no gateway: the TF implementation comes from PATH
    from serving.native.tfserving import implementation

    env["tfserving"] = "stand-in (serving/tfserving_standin)" if implementation() == "standin" else "real binary"
    started_at = time.monotonic()
    servers = [s for s in args.servers.split(",") if s]  # "" with --reuse: only re-confirm an earlier sweep
    entries = [e for e in reused(args.reuse) if e["server"] not in servers] if args.reuse else []
    for server in servers:
        hint = 0.0
        configs = configurations(server)
        for i, (batch, delay) in enumerate(configs):
            print(f"[{server} {i + 1}/{len(configs)}] max batch {batch}, delay {delay} ms", flush=True)
            e = run_config(server, batch, delay, args, cfg, out, hint)
            entries.append(e)
            (out / "sweep.partial.json").write_text(json.dumps(entries, default=str))  # survives a crash
            hint = e["qps"] if math.isfinite(e["qps"]) else 0.0
    confirmed = confirm(best_per_server(entries), args, cfg, out) if args.confirm_repeats > 0 else {}
    path = write(out, entries, env, args, time.monotonic() - started_at, confirmed)
    print(f"report: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
