"""The two messages between the runner and the load generator (MLPerf LoadGen's shape: a typed
settings object handed to the generator, a typed log handed back).

- ``RunSpec``: what one open-loop run must do. The runner puts it in one env var (``LOAD_SPEC``,
  JSON) for the Locust processes it starts; by hand, the few ``LOAD_*`` conveniences below build it.
- ``Recording``: what one generator process hands back, one JSON file per process: every request's
  intended send time, latency, send lag, answer check and batch size, plus CPU marks through the run.

Both sides import this module and nothing else of each other; ``RunSpec`` and ``Recording`` are the
whole contract. Stdlib, orjson and mnist_serving only: it ships in the Locust image.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from mnist_serving.spec import BACKENDS

# The one default p99 SLO of every measuring command (make load, compare, load-sweep, bench-generator,
# bench-overload, load-rollout; --slo-ms changes it): 10 ms on CPU; 5 ms is a fair start on a GPU.
SLO_MS = 10.0

SPEC_ENV = "LOAD_SPEC"
# The by-hand conveniences (``LOAD_RATE=500 locust -f ... OpenLoopTFServingUser``): each maps to one
# RunSpec field, read only when LOAD_SPEC is absent.
CONVENIENCE_ENV = {
    "LOAD_RATE": "rate",
    "LOAD_SEED": "seed",
    "LOAD_WINDOW_S": "window_s",
    "LOAD_WARMUP_S": "warmup_s",
    "LOAD_SLO_MS": "slo_ms",
    "LOAD_DURATION_S": "duration_s",
    "LOAD_SPIN_US": "spin_us",
    "LOAD_SENDER": "sender",
    "LOAD_EXACT_OUT": "out",
}
# How each send waits for its intended time (generator/precise.py): "timerfd", a kernel timer the
# gevent loop watches (no CPU while waiting), armed DEFAULT_SPIN_US early and finished with a short
# cooperative spin (waking a sleeping vCPU takes ~40-50 µs here: the lead makes the p50 a few µs for
# ~1 % of a core at 1,000 req/s, measured by make bench-generator); "spin", a gevent timer to
# SPIN_SENDER_US before each send, then a cooperative spin (libev rounds its timeouts up to whole
# milliseconds: 1.2 ms covers that, at ~30 % of a core at 1,000 req/s); "timer", gevent's timer alone.
SENDERS = ("timerfd", "spin", "timer")
DEFAULT_SENDER = "timerfd"
DEFAULT_SPIN_US = 60.0
SPIN_SENDER_US = 1200.0


@dataclass(frozen=True)
class RunSpec:
    rate: float = 100.0  # requests per second, all generator processes together
    seed: int = 1
    duration_s: float = 0.0  # intended-time seconds to send for (0: until Locust's --run-time)
    warmup_s: float = 0.0  # intended-time seconds excluded before the first window
    window_s: float = 0.0  # stability windows; 0: no early stop
    slo_ms: float = SLO_MS  # only for the record
    processes: int = 1  # generator processes sharing the rate (each takes every n-th arrival)
    spin_us: float = DEFAULT_SPIN_US  # cooperative spin before each send (the timer wakes this early)
    sender: str = DEFAULT_SENDER  # timerfd, spin or timer (generator/precise.py)
    out: str = ""  # recording path prefix: <out>.<host>.<pid>.json (empty: keep nothing)

    def __post_init__(self) -> None:
        if self.rate <= 0:
            raise ValueError(f"rate must be positive, got {self.rate}")
        if self.processes < 1:
            raise ValueError(f"processes must be ≥ 1, got {self.processes}")
        if self.sender not in SENDERS:
            raise ValueError(f"sender must be one of {SENDERS}, got {self.sender!r}")

    def to_env(self) -> dict[str, str]:
        return {SPEC_ENV: orjson.dumps(dataclasses.asdict(self)).decode()}

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> RunSpec:
        env = os.environ if environ is None else environ
        if SPEC_ENV in env:
            return cls(**orjson.loads(env[SPEC_ENV]))
        types = {f.name: f.type for f in dataclasses.fields(cls)}
        kwargs: dict[str, Any] = {}
        for var, name in CONVENIENCE_ENV.items():
            if var in env:
                kind = types[name]
                kwargs[name] = int(env[var]) if kind == "int" else env[var] if kind == "str" else float(env[var])
        return cls(**kwargs)


# One entry per request sent (seq: the arrival's global sequence number; t: intended offset, s) ...
SENT_FIELDS = ("seq", "t")
# ... and one per completed request, in these columns: ``code`` is the HTTP status (0: no answer,
# or a gRPC failure), ``via`` the backend that answered a gateway request as an index into VIA.
DONE_FIELDS = ("seq", "t", "ms", "lag_ms", "ok", "batch", "code", "via")
VIA = ("", *BACKENDS)
# One mark every MARK_EVERY_S: [perf_counter, own CPU s, machine busy, idle, steal (jiffies), waiting s].
MARK_FIELDS = ("clock_s", "cpu_s", "busy", "idle", "steal", "waiting_s")


@dataclass
class Recording:
    """One generator process's log of one run. For open-loop users ``sent`` holds every intended
    send offset (s from ``origin``) with the arrival's global sequence number, and ``done`` one
    row per answer; a request sent but never answered has no ``done`` row and counts as failed.
    Closed-loop users fill ``samples_ms`` and ``failures`` (Locust's own view, exact)."""

    spec: RunSpec
    process: int = 0  # this process's share of the schedule (0 .. spec.processes - 1)
    origin: float | None = None  # perf_counter (CLOCK_MONOTONIC) of the schedule's start
    warmup_s: float = 0.0
    sent: dict[str, dict[str, list[float]]] = field(default_factory=dict)  # name -> SENT_FIELDS columns
    done: dict[str, dict[str, list[float]]] = field(default_factory=dict)  # name -> DONE_FIELDS columns
    samples_ms: dict[str, list[float]] = field(default_factory=dict)
    failures: dict[str, int] = field(default_factory=dict)
    marks: list[list[float]] = field(default_factory=list)  # MARK_FIELDS rows
    cpu_jiffy_s: float = 0.01

    def dumps(self) -> bytes:
        return orjson.dumps(dataclasses.asdict(self), option=orjson.OPT_SERIALIZE_NUMPY)

    @classmethod
    def loads(cls, raw: bytes) -> Recording:
        body = orjson.loads(raw)
        body["spec"] = RunSpec(**body["spec"])
        return cls(**body)

    def write(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(self.dumps())

    @classmethod
    def read_all(cls, prefix: Path) -> list[Recording]:
        """Every process's recording of the run written under ``prefix`` (``<prefix>.*.json``)."""
        return [cls.loads(f.read_bytes()) for f in sorted(prefix.parent.glob(f"{prefix.name}.*.json"))]
