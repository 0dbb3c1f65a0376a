"""``make load-chaos``: faults under load. Open-loop Poisson arrivals through the gateway's ``auto``
route at half the measured capacity; at ``--kill-at`` seconds the server ``auto`` routes to suffers
a fault (``--faults``, one run each, in one stack):

- ``kill``: SIGKILLed (a crash): restarted by the supervisor or Docker;
- ``stall``: SIGSTOPped, SIGCONTed ``--stall-s`` later (a GC pause, a saturated host): the gateway
  must shed and route around it, then take it back;
- ``hang``: SIGSTOPped and never resumed (a deadlock): natively the supervisor's liveness check
  must find it hung and restart it (Docker restarts only exited containers, so compose skips it).

The run records every request (status, answering server), polls the server's readiness and its
circuit in the gateway, and reports what failed, how fast ``auto`` answered from the other server,
when the server was READY and back in rotation, and the p99 in each phase.

- natively (default): a stack of its own on free ports, under the native supervisor (the one
  `make serve` runs: restart after 1 s, doubling);
- ``--compose``: a compose project of its own (offline images, the TF Serving stand-in) on free
  ports, removed afterwards; the container's PID 1 is SIGKILLed from the host (a crash: Docker's
  restart policy ignores `docker kill`, which it counts as a manual stop) and Docker restarts it.

    python -m load_tests.runs.chaos [--compose] [--faults kill,stall,hang] [--rate 450] [--duration 60]
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from load_tests import results, stats
from load_tests.contracts import Recording, RunSpec
from load_tests.measure.machine import machine_state
from load_tests.measure.point import LOCUST_START_S, locust_argv
from load_tests.reports import chaos as report
from load_tests.targets import BY_NAME, Endpoints
from mnist_serving.ports import local_url

REPO = Path(__file__).resolve().parents[2]
TARGET = BY_NAME["gateway-auto"]
COMMITTED_REPORT = REPO / "docs" / "load-report-2cpu"
DEFAULT_RATE = 450.0  # half the gateway's measured capacity when no report says otherwise
POLL_S = 0.1  # how often the killed server's readiness and its circuit are read
# The same load runs this long before the measured 60 s: a stack fresh from start-up (cold
# connections, a server's first runs) refused a burst at its first requests in compose, which is
# start-up, not the fault under test.
WARMUP_S = 5.0
START_WAIT_S = 60.0  # for the generator's first request to reach the gateway
STALL_S = 3.0  # a stall's length: long enough for the breaker and admission to act, short of a hang
SETTLE_WAIT_S = 180.0  # between faults: until every backend is ready with its circuit closed
FAULTS = ("kill", "stall", "hang")
COMPOSE_FAULTS = ("kill", "stall")  # Docker restarts exited containers only: a hung one stays hung


@dataclass(frozen=True)
class ChaosSettings:
    rate: float
    duration_s: float = 60.0
    kill_at_s: float = 20.0  # when the fault starts
    seed: int = 1
    compose: bool = False
    fault: str = "kill"
    stall_s: float = STALL_S


def half_capacity(report: Path = COMMITTED_REPORT) -> float:
    """Half the committed report's QPS@SLO through the gateway to TF Serving (auto's default route;
    load_tests/results.py), or DEFAULT_RATE when that report did not measure the gateway."""
    with contextlib.suppress(OSError, ValueError):
        target = results.read(report).targets.get("gateway-tfserving")
        qps = target.qps_at_slo.estimate if target else None
        if qps is not None and math.isfinite(qps) and qps > 0:
            return round(qps / 2, -1)
    return DEFAULT_RATE


@dataclass
class Stack:
    """What the run needs from either stack: where it answers, how to signal a server (its main
    process) and whether it is ready again; ``restart`` says what restarts it."""

    endpoints: Endpoints
    gateway: str
    signal: Callable[[str, int], None]
    ready: Callable[[str], bool]
    restart: str
    tf_implementation: str


class Timeline:
    """Polls the killed server's readiness and its circuit in the gateway after the kill."""

    def __init__(self, stack: Stack, victim: str):
        self.stack, self.victim = stack, victim
        self.kill_at: float | None = None
        self.ready_at: float | None = None
        self.circuit_open_at: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def _loop(self) -> None:
        with httpx.Client(timeout=2) as client:
            while not self._stop.wait(POLL_S):
                if self.kill_at is None:
                    continue
                # Each event is stamped when its answer arrives, not when it was asked: a stalled
                # server answers "ready" only once it runs again, seconds after the question.
                if self.circuit_open_at is None:
                    with contextlib.suppress(httpx.HTTPError, KeyError, ValueError):
                        backends = client.get(f"{self.stack.gateway}/v1/backends").json()["backends"]
                        circuit = next(b["circuit"] for b in backends if b["name"] == self.victim)
                        if circuit != "closed":
                            self.circuit_open_at = time.monotonic()
                # not the dying server's last answers
                if self.ready_at is None and time.monotonic() - self.kill_at > 0.5:
                    with contextlib.suppress(Exception):
                        if self.stack.ready(self.victim):
                            self.ready_at = time.monotonic()


def routed(gateway: str) -> str:
    """The backend ``auto`` sends to first: the largest route weight."""
    backends = httpx.get(f"{gateway}/v1/backends", timeout=5).json()["backends"]
    return max(backends, key=lambda b: b["route_weight"])["name"]


def _first_request(gateway: str, before: float) -> None:
    """Wait until the gateway has counted a request to /v1/predict beyond ``before``."""
    deadline = time.monotonic() + START_WAIT_S
    while time.monotonic() < deadline:
        if _predict_count(gateway) > before:
            return
        time.sleep(0.02)
    raise RuntimeError("the load generator sent nothing")


def _predict_count(gateway: str) -> float:
    text = httpx.get(f"{gateway}/metrics", timeout=5).text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("gateway_requests_total{") and 'route="/v1/predict"' in line
    )


def name(cfg: ChaosSettings) -> str:
    """The run's file stem: chaos-native (a kill), chaos-native-stall, chaos-compose-hang, ..."""
    return f"chaos-{'compose' if cfg.compose else 'native'}" + ("" if cfg.fault == "kill" else f"-{cfg.fault}")


def inject(stack: Stack, victim: str, cfg: ChaosSettings) -> None:
    """The fault, now: SIGKILL; SIGSTOP then SIGCONT ``stall_s`` later; or SIGSTOP for good."""
    if cfg.fault == "kill":
        stack.signal(victim, signal.SIGKILL)
    else:
        stack.signal(victim, signal.SIGSTOP)
        if cfg.fault == "stall":
            threading.Timer(cfg.stall_s, stack.signal, (victim, signal.SIGCONT)).start()
    print(f"chaos: {victim} {report.FAULT_DONE[cfg.fault].format(stall_s=cfg.stall_s)}", flush=True)


def settle(stack: Stack, timeout_s: float = SETTLE_WAIT_S) -> None:
    """Until every backend is ready with its circuit closed (the next fault starts from a whole stack)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError, KeyError, ValueError):
            backends = httpx.get(f"{stack.gateway}/v1/backends", timeout=5).json()["backends"]
            if all(b["ready"] and b["circuit"] == "closed" for b in backends):
                return
        time.sleep(1)
    raise RuntimeError(f"the stack was not whole again {timeout_s:.0f} s after the last fault")


def run(stack: Stack, cfg: ChaosSettings, out: Path) -> dict[str, Any]:
    victim = routed(stack.gateway)
    prefix = out / "exact" / name(cfg)
    spec = RunSpec(rate=cfg.rate, seed=cfg.seed, duration_s=WARMUP_S + cfg.duration_s, out=str(prefix))
    env = {**os.environ, **stack.endpoints.urls, **spec.to_env()}
    cmd = locust_argv(1, f"{math.ceil(WARMUP_S + cfg.duration_s + LOCUST_START_S)}s", 2, TARGET.open_user_class)
    timeline = Timeline(stack, victim)
    timeline.start()
    before = _predict_count(stack.gateway)
    print(f"chaos ({cfg.fault}): {cfg.rate:,.0f} req/s through auto for {cfg.duration_s:.0f} s; the fault hits "
          f"{victim} at {cfg.kill_at_s:.0f} s ...", flush=True)  # fmt: skip
    with (out / "locust.log").open("ab") as log:
        proc = subprocess.Popen(cmd, env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=log)
        try:
            _first_request(stack.gateway, before)
            time.sleep(max(0.0, WARMUP_S + cfg.kill_at_s - 0.05))  # the schedule starts 50 ms after the user
            timeline.kill_at = time.monotonic()
            inject(stack, victim, cfg)
            proc.wait(timeout=WARMUP_S + cfg.duration_s + 2 * LOCUST_START_S + 30)
        finally:
            if proc.poll() is None:
                proc.kill()
            # the run may end before the killed server is back: give it the time it needs
            deadline = time.monotonic() + 120
            while timeline.ready_at is None and time.monotonic() < deadline:
                time.sleep(POLL_S)
            timeline.stop()
    recordings = [r for r in Recording.read_all(prefix) if r.sent]
    if not recordings:
        raise RuntimeError(f"the generator wrote no recording; see {out / 'locust.log'}")
    origin = (recordings[0].origin or 0.0) + WARMUP_S  # offsets count from the end of the warm-up
    table = stats.merge_tables(
        [stats.open_loop_table(r.sent[TARGET.name], r.done.get(TARGET.name, {})) for r in recordings]
    )
    table["t"] = table["t"] - WARMUP_S
    measured = table["t"] >= 0
    table = {k: v[measured] for k, v in table.items()}

    def rel(at: float | None) -> float | None:
        return None if at is None else at - origin

    kill_s = rel(timeline.kill_at)
    events = {"kill_s": kill_s, "ready_s": rel(timeline.ready_at), "circuit_open_s": rel(timeline.circuit_open_at)}
    result = report.analyse(table, events, victim)
    plot = report.plot(table, result, kill_s or 0.0, out / f"{name(cfg)}.png")
    return {
        "settings": dataclasses.asdict(cfg),
        "result": result,
        "events": events,
        "restart": stack.restart,
        "tf_implementation": stack.tf_implementation,
        "machine": _machine(),
        "plot": plot,
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def _machine() -> str:
    state = machine_state()
    load = Path("/proc/loadavg").read_text().split()[:3]
    return f"{os.cpu_count()} cores, load average {' '.join(load)} after the run, commit {state.get('git_commit', '?')}"


@contextlib.contextmanager
def native(artifacts: Path, run_dir: Path) -> Iterator[Stack]:
    from serving.native import tfserving, torchserve
    from serving.native.settings import ServingPorts
    from serving.native.stack import ServingStack
    from serving.native.supervisor import RestartPolicy

    ports = ServingPorts.free()
    stack = ServingStack(artifacts, run_dir, ports, with_gateway=True)
    print("chaos: starting the native stack on free ports ...", flush=True)
    stack.start()
    policy = RestartPolicy()
    supervisor = stack.supervisor(policy, notify=lambda m: print(f"supervisor: {m}", flush=True))
    stop = threading.Event()

    def tick() -> None:
        while not stop.wait(0.1):
            supervisor.tick()

    ticker = threading.Thread(target=tick, daemon=True)
    ticker.start()
    names = {p.name: p for p in stack.processes}
    checks = {"tfserving": tfserving.ready, "torchserve": torchserve.ready}

    def send(victim: str, sig: int) -> None:
        pid = names[victim.split("-")[0]].pid  # the process the supervisor runs now (a restart's too)
        assert pid is not None
        with contextlib.suppress(ProcessLookupError):  # a SIGCONT after the supervisor replaced it
            os.kill(pid, sig)

    try:
        yield Stack(
            Endpoints.native(ports),
            local_url(ports.gateway),
            send,
            lambda victim: checks[victim.split("-")[0]](ports),
            f"the native supervisor restarts it after {policy.initial_backoff_s:g} s (doubling per restart)",
            stack.tf_implementation,
        )
    finally:
        stop.set()
        ticker.join(5)
        stack.stop()


@contextlib.contextmanager
def compose_stack(run_dir: Path) -> Iterator[Stack]:
    from containers import engine, offline
    from containers.compose import compose
    from serving.native.settings import ServingPorts

    started_engine = engine.start()
    ports = ServingPorts.free()
    env = {f"{k.upper()}_PORT": str(v) for k, v in ports.as_dict().items()}
    project = f"mnist-serving-chaos-{os.getpid()}"

    def container(service: str) -> str:
        return compose("ps", "-q", service, env=env, project=project).stdout.split()[0]

    def inspect(service: str, fmt: str) -> str:
        return subprocess.run(["docker", "inspect", "-f", fmt, container(service)], capture_output=True, text=True,
                              check=True, timeout=30).stdout.strip()  # fmt: skip

    def send(victim: str, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(inspect(victim.split("-")[0], "{{.State.Pid}}")), sig)

    def ready(victim: str) -> bool:
        return inspect(victim.split("-")[0], "{{.State.Health.Status}}") == "healthy"

    try:
        offline.build_all()
        print(f"chaos: compose project {project} on free ports ...", flush=True)
        compose("up", "-d", "--no-build", env=env, project=project)
        deadline = time.monotonic() + 180
        while not all(ready(s) for s in ("tfserving", "torchserve", "gateway")):
            if time.monotonic() > deadline:
                raise RuntimeError("the compose stack did not become healthy in 180 s")
            time.sleep(1)
        yield Stack(
            Endpoints.native(ports),
            local_url(ports.gateway),
            send,
            ready,
            "Docker restarts the container (restart: unless-stopped); READY = its healthcheck passes",
            "stand-in (serving/tfserving_standin)",
        )
    finally:
        compose("down", "-v", "--remove-orphans", "--timeout", "10", env=env, project=project)
        if started_engine:
            engine.stop()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--compose", action="store_true", help="against a compose project of its own (needs Docker)")
    p.add_argument(
        "--faults",
        type=lambda v: v.split(","),
        default=None,
        help=f"comma-separated, in order (default: {','.join(FAULTS)}; compose: {','.join(COMPOSE_FAULTS)})",
    )
    p.add_argument("--rate", type=float, default=0.0, help="req/s (default: half the committed capacity)")
    p.add_argument("--duration", type=float, default=60.0)
    p.add_argument("--kill-at", type=float, default=20.0, help="when the fault starts (s into the measured run)")
    p.add_argument("--stall-s", type=float, default=STALL_S)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--artifacts", type=Path, default=Path("artifacts"))
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)
    faults = args.faults or list(COMPOSE_FAULTS if args.compose else FAULTS)
    if unknown := [f for f in faults if f not in FAULTS]:
        p.error(f"unknown fault(s) {unknown}: choose from {', '.join(FAULTS)}")
    from serving.native.process import exit_on_sigterm

    exit_on_sigterm()
    rate = args.rate or half_capacity()
    out = args.out or REPO / "reports" / f"chaos-{datetime.now(UTC):%Y%m%d-%H%M%S}"
    out.mkdir(parents=True, exist_ok=True)
    verdicts: list[str] = []
    with compose_stack(out) if args.compose else native(args.artifacts, out / "run") as stack:
        for i, fault in enumerate(faults):
            if i:
                settle(stack)
            cfg = ChaosSettings(rate, args.duration, args.kill_at, args.seed, args.compose, fault, args.stall_s)
            result = run(stack, cfg, out)
            stem = name(cfg)
            (out / f"{stem}.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
            (out / f"{stem}.md").write_text("\n".join(report.section({stem.removeprefix("chaos-"): result}, "#")))
            r = result["result"]
            print(f"chaos ({stem}): {r['failed']} of {r['requests']:,} failed ({r['failed_share']:.3%}); failover "
                  f"{r['failover_s']} s; READY again {r['ready_again_s']} s; back in rotation "
                  f"{r['back_in_rotation_s']} s -> {out / f'{stem}.md'}", flush=True)  # fmt: skip
            verdicts += [f"{fault}: {line}" for line in report.verdict(r)]
    print("\n".join(verdicts))
    return 0 if all("NOT met" not in v for v in verdicts) else 1


if __name__ == "__main__":
    sys.exit(main())
