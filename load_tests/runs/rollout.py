"""``python -m load_tests.runs.rollout`` (``make load-rollout``): what a model rollout does to the
requests in flight, on each server, under open-loop load through the gateway.

Method. A stack of its own (natively, or with ``--compose`` the compose stack in containers) on a
copy of the artifacts, to which version 2 (version 1's weights under a new number,
training/copy_version.py: a rollout of it measures the rollout) and two bad versions (3: wrong
answers, 4: fails to load; training/bad_version.py) are added after it started. Then:

1. capacity: open-loop steps through the gateway over its three backends, ``STEP_S`` each, the rate
   rising by ``STEP_FACTOR`` until ``MISSES_TO_STOP`` steps in a row exceed the SLO or fail anything;
   the capacity is the highest rate that held (``--rate`` skips this);
2. the load: ``LOAD_SHARE`` of it, Poisson arrivals from the lean generator
   (load_tests/generator/lean.py), every latency from the intended send time, every answer's
   ``model_version`` recorded;
3. per repeat, six phases under that load, each ``BEFORE_S`` of load, then ``python -m
   serving.rollout`` exactly as a user runs it (its typed log read back), then ``AFTER_S``: TF
   Serving 1 -> 2, TF Serving 2 -> 1 (the rollback), the same on TorchServe, then version 3 and
   version 4 on both (each must be refused with the old version answering throughout).

Per phase and server: requests, failed ones (the goal is 0), p99 before the rollout command
starts, during it (its own start-up included) and after its last step, the time from "load
requested" to "switched", which versions answered (and whether any answered outside the expected
set), the last answer from the old version and the first from the new one relative to the switch.
Written to reports/rollout-<time>/: rollout.json (the typed ``RolloutRun``), report.md, and
rollout.png (every answer over time, coloured by the version that computed it, with the rollout's
steps marked).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import math
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import orjson

from load_tests.contracts import SLO_MS
from load_tests.generator import lean
from load_tests.measure import machine
from load_tests.results import PhaseResult, RolloutRun, ServerPhase
from load_tests.runs import harness
from mnist_serving.ports import local_url
from serving.native.process import exit_on_sigterm, free_ports
from serving.native.settings import ServingPorts
from serving.native.stack import running
from serving.rollout.log import Event, RolloutLog

# Tuning constants (the time ones also options).
LOAD_SHARE = 0.5  # of the capacity measured at the start: the "half of capacity"
STEP_S = 4.0  # seconds per capacity step
STEP_FACTOR = 1.5
START_RATE = 50.0
# A p99 near the SLO flickers over it from one step to the next (this machine's gateway path sits at
# 8-12 ms at any low rate): the search stops only after this many steps in a row miss it.
MISSES_TO_STOP = 2
BEFORE_S = 4.0  # load before the rollout command starts ...
# ... of which the first second is left out of "p99 before": each phase's load opens new connections.
WARMUP_S = 1.0
AFTER_S = 3.0  # ... and after it returned
REPEATS = 2
BACKENDS = {"tfserving": ("tfserving",), "torchserve": ("torchserve", "torchserve-onnx")}
ALL_BACKENDS = tuple(b for bs in BACKENDS.values() for b in bs)
READY_WITHIN_S = 180.0  # the compose stack, from `up` to the gateway ready


@dataclass(frozen=True)
class Phase:
    name: str
    servers: tuple[str, ...]
    version: int
    expect_ok: bool  # the rollout succeeds (else it must be refused)


PHASES = (
    Phase("tfserving 1 -> 2", ("tfserving",), 2, True),
    Phase("tfserving 2 -> 1 (rollback)", ("tfserving",), 1, True),
    Phase("torchserve 1 -> 2", ("torchserve",), 2, True),
    Phase("torchserve 2 -> 1 (rollback)", ("torchserve",), 1, True),
    Phase("bad version 3 (wrong answers)", ("tfserving", "torchserve"), 3, False),
    Phase("bad version 4 (fails to load)", ("tfserving", "torchserve"), 4, False),
)


# ---- the stack -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Stack:
    target: str
    ports: ServingPorts
    artifacts: Path  # where versions are added (the mounted copy in compose)
    rollout_args: tuple[str, ...]  # how `python -m serving.rollout` reaches this stack
    env: dict[str, str]


@contextlib.contextmanager
def native_stack(artifacts: Path, work: Path) -> Iterator[Stack]:
    root = work / "artifacts"
    shutil.copytree(artifacts, root)
    with running(root, work / "run", ServingPorts.free(), with_gateway=True) as s:
        yield Stack("native", s.ports, root, ("--run-dir", str(s.run_dir)), {})


@contextlib.contextmanager
def compose_stack(artifacts: Path, work: Path) -> Iterator[Stack]:
    """The compose stack (the stand-in for TF Serving, as `make up-offline`) in a project of its own,
    on free published ports, mounting a copy of the artifacts; taken down (volumes too) at the end."""
    from containers import engine, offline
    from containers.compose import compose

    if not engine.running() and not engine.start():
        raise RuntimeError("no Docker engine: `python -m containers.engine` starts one")
    offline.build_all()
    names = [f.name for f in dataclasses.fields(ServingPorts)]
    ports = dict(zip(names, free_ports(len(names)), strict=True))
    env = {f"{name.upper()}_PORT": str(port) for name, port in ports.items()}
    mounted = work / "artifacts"
    shutil.copytree(artifacts, mounted)
    for path in (work, mounted):
        path.chmod(0o755)  # the containers' uid 10001 reads it
    env["ARTIFACTS"] = str(mounted)
    project = f"mnist-serving-rollout-{os.getpid()}"
    try:
        compose("up", "-d", "--no-build", env=env, project=project)
        served = dataclasses.replace(ServingPorts(), **ports)
        _wait_ready(local_url(served.gateway), READY_WITHIN_S)
        yield Stack("compose", served, mounted, ("--compose", "--artifacts", str(mounted)), env)
    finally:
        compose("down", "-v", "--remove-orphans", "--timeout", "10", env=env, project=project)


def _wait_ready(gateway: str, within_s: float) -> None:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{gateway}/readyz", timeout=2).status_code == 200:
                return
        time.sleep(1)
    raise RuntimeError(f"the gateway at {gateway} was not ready within {within_s:.0f} s")


def add_versions(root: Path) -> None:
    """Version 2 (a copy of 1) and the two bad versions, as `make train` and training.bad_version would."""
    from training import bad_version
    from training.copy_version import copy_version

    copy_version(root, 1, 2)
    bad_version.write(root, 3, "wrong-answers", source=2)
    bad_version.write(root, 4, "fails-to-load", source=2)


# ---- load ------------------------------------------------------------------------------------------


def version_tag(status: int, body: bytes) -> str:
    """The answering version of a 200; the error type of anything else ("no answer" for status 0)."""
    if status == 0:
        return "no answer"
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return "unreadable"
    if status == 200:
        return str(data.get("model_version", "?"))
    error = data.get("error") if isinstance(data, dict) else None
    return str(error.get("type", status)) if isinstance(error, dict) else str(status)


def requests_for(port: int, row: list[float]) -> list[bytes]:
    body = orjson.dumps({"instances": [row]})
    return [lean.http_request(f"/v1/predict?backend={b}", port, body) for b in ALL_BACKENDS]


def p99(values: list[float]) -> float:
    return float(np.percentile(values, 99)) if values else math.nan


async def capacity(port: int, requests: list[bytes], slo_ms: float) -> tuple[float, list[dict[str, float]]]:
    """The highest rate whose step held (p99 within the SLO, every request answered 200), stepping up
    until MISSES_TO_STOP steps in a row did not."""
    await lean.open_loop("127.0.0.1", port, requests, START_RATE, seconds=2.0, seed=7)  # warm everything
    steps: list[dict[str, float]] = []
    rate, held, misses = START_RATE, 0.0, 0
    while misses < MISSES_TO_STOP:
        run = await lean.open_loop(
            "127.0.0.1", port, requests, rate, seconds=STEP_S, warmup_s=0.5, seed=int(rate), classify=version_tag
        )
        samples = run.recorded()
        failed = sum(1 for s in samples if s.status != 200)
        q = p99([s.latency_ms for s in samples])
        steps.append({"rate": rate, "p99_ms": q, "failed": failed, "requests": len(samples)})
        ok = failed == 0 and q <= slo_ms
        print(f"  capacity step {rate:6.0f} req/s: p99 {q:7.1f} ms, failed {failed} -> "
              f"{'holds' if ok else 'does not hold'}", flush=True)  # fmt: skip
        misses = 0 if ok else misses + 1
        held = rate if ok else held
        rate *= STEP_FACTOR
    return held, steps


# ---- one phase -------------------------------------------------------------------------------------


async def run_phase(
    stack: Stack, phase: Phase, repeat: int, rate: float, requests: list[bytes], out: Path
) -> tuple[PhaseResult, list[lean.Sample]]:
    stop = asyncio.Event()
    seed = 1000 * repeat + PHASES.index(phase)
    load = asyncio.ensure_future(
        lean.open_loop("127.0.0.1", stack.ports.gateway, requests, rate, stop=stop, seed=seed, classify=version_tag)
    )
    await asyncio.sleep(BEFORE_S)
    log_path = out / "logs" / f"r{repeat}-{PHASES.index(phase)}.json"
    cmd = [sys.executable, "-m", "serving.rollout", "--version", str(phase.version),
           "--servers", ",".join(phase.servers), "--log", str(log_path), *stack.rollout_args]  # fmt: skip
    started = time.monotonic()
    # "during" starts with the command, not with its first step: the rollout process's own start-up
    # (Python imports, on the same cores) is part of what a rollout costs the requests in flight.
    command_wall = time.time()
    proc = await asyncio.create_subprocess_exec(
        *cmd, env={**os.environ, **stack.env}, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    output, _ = await proc.communicate()
    took = time.monotonic() - started
    (out / "logs" / f"r{repeat}-{PHASES.index(phase)}.txt").write_bytes(output)
    await asyncio.sleep(AFTER_S)
    stop.set()
    run = await load
    if not log_path.is_file():
        raise RuntimeError(f"the rollout wrote no log (exit {proc.returncode}):\n{output.decode()[-2000:]}")
    log = RolloutLog.from_json(orjson.loads(log_path.read_bytes()))
    samples = run.samples
    command_at = command_wall - run.origin_wall
    servers = [server_phase(server, phase, log, samples, run.origin_wall, command_at) for server in BACKENDS]
    result = PhaseResult(
        repeat=repeat,
        phase=phase.name,
        version=phase.version,
        expect_ok=phase.expect_ok,
        rollout_ok=log.ok,
        rollout_exit=proc.returncode if proc.returncode is not None else -1,
        rollout_message=log.message,
        rollout_s=took,
        send_lag_p99_ms=p99([s.lag_ms for s in samples if math.isfinite(s.lag_ms)]),
        generator_cpu_us_per_req=run.generator_cpu_us_per_req,
        load_origin_wall=run.origin_wall,
        servers=servers,
        log=log.to_json(),
    )
    return result, samples


def server_phase(
    server: str, phase: Phase, log: RolloutLog, samples: list[lean.Sample], origin: float, command_at: float
) -> ServerPhase:
    """``server``'s answers through the phase, split where the rollout command started (``command_at``
    seconds after the load's origin) and where its last step ended."""
    indices = {ALL_BACKENDS.index(b) for b in BACKENDS[server]}
    ours = [s for s in samples if s.request in indices]
    rolled = server in phase.servers
    begin = command_at
    end = max((st.wall - origin for st in log.steps), default=math.inf)
    failed = [s for s in ours if s.status != 200]
    by: dict[str, int] = {}
    for s in failed:
        by[s.tag] = by.get(s.tag, 0) + 1
    versions: dict[str, int] = {}
    for s in ours:
        if s.status == 200:
            versions[s.tag] = versions.get(s.tag, 0) + 1
    old = log.previous.get(server)
    expected = {str(old)} if old is not None else set()
    if rolled and phase.expect_ok:
        expected.add(str(phase.version))
    if not rolled:  # the neighbour keeps whatever it serves
        expected = set(versions)
    switched = log.at(server, Event.SWITCHED)
    old_last = new_first = None
    if rolled and switched is not None:
        at = switched.wall - origin
        answered = [(s.offset_s + s.latency_ms / 1e3 - at, s.tag) for s in ours if s.status == 200]
        old_last = max((t for t, v in answered if v == str(old)), default=None)
        new_first = min((t for t, v in answered if v == str(phase.version)), default=None)
    return ServerPhase(
        server=server,
        rolled=rolled,
        requests=len(ours),
        failed=len(failed),
        failed_by=by,
        p99_before_ms=p99([s.latency_ms for s in ours if WARMUP_S <= s.offset_s < begin]),
        p99_during_ms=p99([s.latency_ms for s in ours if begin <= s.offset_s < end]),
        p99_after_ms=p99([s.latency_ms for s in ours if s.offset_s >= end]),
        versions=versions,
        unexpected_versions=sum(n for v, n in versions.items() if v not in expected),
        time_to_serving_s=log.time_to_serving(server) if rolled else None,
        old_last_after_switch_s=old_last,
        new_first_after_switch_s=new_first,
    )


# ---- the run ---------------------------------------------------------------------------------------


async def measure(stack: Stack, args: argparse.Namespace, out: Path, result: RolloutRun) -> None:
    sample = np.load(Path(__file__).resolve().parents[1] / "data" / "mnist_test_sample.npz")
    requests = requests_for(stack.ports.gateway, (sample["x"][0] / 255).tolist())
    if args.rate:
        result.capacity_rps, result.rate = math.nan, args.rate
        await lean.open_loop("127.0.0.1", stack.ports.gateway, requests, START_RATE, seconds=2.0, seed=7)
    else:
        result.capacity_rps, result.capacity_steps = await capacity(stack.ports.gateway, requests, args.slo_ms)
        if result.capacity_rps <= 0:
            raise RuntimeError(f"not even {START_RATE:.0f} req/s held within the SLO: no capacity to halve")
        result.rate = LOAD_SHARE * result.capacity_rps
    print(f"load: {result.rate:,.0f} req/s through the gateway over {', '.join(ALL_BACKENDS)} "
          f"({LOAD_SHARE:.0%} of a capacity of {result.capacity_rps:,.0f} req/s)", flush=True)  # fmt: skip
    for repeat in range(args.repeats):
        for phase in PHASES:
            r, samples = await run_phase(stack, phase, repeat, result.rate, requests, out)
            result.phases.append(r)
            if repeat == 0:  # the plot's rows: offset, latency, backend index, tag
                result.samples[phase.name] = [[round(s.offset_s, 4), round(s.latency_ms, 3), s.request, s.tag]
                                              for s in samples]  # fmt: skip
            verdict = "as expected" if r.rollout_ok == r.expect_ok else "NOT as expected"
            fails = sum(s.failed for s in r.servers)
            print(f"  repeat {repeat + 1} {phase.name:32s} rollout {'ok' if r.rollout_ok else 'refused'} "
                  f"({verdict}), {sum(s.requests for s in r.servers)} requests, {fails} failed, "
                  + ", ".join(f"{s.server} p99 {s.p99_before_ms:.0f}/{s.p99_during_ms:.0f}/{s.p99_after_ms:.0f} ms"
                              for s in r.servers), flush=True)  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--artifacts", type=Path, default=Path("artifacts"))
    p.add_argument("--compose", action="store_true", help="the compose stack in containers instead of natively")
    p.add_argument("--rate", type=float, default=0.0, help="skip the capacity steps: this rate (req/s)")
    p.add_argument("--repeats", type=int, default=REPEATS)
    p.add_argument("--slo-ms", type=float, default=SLO_MS)
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)
    exit_on_sigterm()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # training's writers import TensorFlow: quiet
    import uvloop

    from load_tests.reports.rollout import write_report

    out = harness.folder(args.out, "rollout-")
    src = machine.source()
    with tempfile.TemporaryDirectory(prefix="load-rollout-") as tmp:
        work = Path(tmp)
        make = compose_stack if args.compose else native_stack
        print(f"make load-rollout: starting the {'compose' if args.compose else 'native'} stack ...", flush=True)
        with make(args.artifacts, work) as stack:
            add_versions(stack.artifacts)
            backends = httpx.get(f"{local_url(stack.ports.gateway)}/v1/backends", timeout=10).json()["backends"]
            impl = next((b.get("implementation", "?") for b in backends if b["name"] == "tfserving"), "?")
            result = RolloutRun(
                target=stack.target, tfserving_implementation=impl, slo_ms=args.slo_ms, capacity_rps=math.nan,
                capacity_steps=[], rate=math.nan, commit=src.commit, dirty=src.dirty, cores=os.cpu_count() or 0,
                load_avg_before=machine.load_average(), before_s=BEFORE_S, after_s=AFTER_S, warmup_s=WARMUP_S,
            )  # fmt: skip
            uvloop.run(measure(stack, args, out, result))
    result.load_avg_after = machine.load_average()
    (out / "rollout.json").write_bytes(
        orjson.dumps(dataclasses.asdict(result), option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY)
    )
    report = write_report(result, out)
    print(f"\n{report.read_text().split(chr(10) + chr(10))[1]}\nwritten: {report}")
    return 0 if result.failed == 0 and result.all_as_expected else 1


if __name__ == "__main__":
    sys.exit(main())
