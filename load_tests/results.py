"""The typed results of a capacity run (``results.json``): written once by the runner
(runs/capacity.py) and read by every report (reports/capacity.py, reports/gpu.py, runs/chaos.py).

The dataclasses below are the whole schema; ``results.schema.json`` beside this module is the
JSON Schema generated from them (``python -m load_tests.results --schema`` rewrites it; a test
checks that the committed file is what the dataclasses generate), so users and CI can read a
``results.json`` without this code. Non-finite figures are written as ``null``: a p99 is ``null``
when more than 1 % of the point's requests never got a correct answer (infinitely slow).

What a reader needs most sits at the top level: ``schema_version``, ``commit`` and ``dirty`` (the
tree the run measured), and ``targets``, keyed by target name, each with ``qps_at_slo``
(``estimate`` and ``ci95``), ``points_valid``, ``points_total`` and, for a server beside its floor,
``ratios`` (``p50``, ``p99`` and ``qps_at_slo``, each an ``estimate`` with its ``ci95``).
"""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

SCHEMA_VERSION = 2  # 1: the untyped results.json of the bisection runner (before 2026-12)
SCHEMA_FILE = Path(__file__).with_name("results.schema.json")
# Each field's docstring is its description in the JSON Schema (pydantic's ConfigDict, as a dict).
DOCSTRINGS = {"use_attribute_docstrings": True}


def num(v: Any) -> float | None:
    """A figure as results.json holds it: a finite float, else None."""
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


@dataclass
class Estimate:
    """A figure with its 95 % interval; ``estimate`` and ``ci95`` are null where not estimable."""

    __pydantic_config__ = DOCSTRINGS

    estimate: float | None
    """The figure (QPS@SLO in req/s, or a ratio); null: not estimable (see reason)."""
    ci95: tuple[float, float] | None
    """[low, high]: the 95 % interval, bootstrapped over whole blocks; null: none (see reason)."""
    reason: str = ""
    """Why the estimate or its interval is missing; empty when both are there."""

    @property
    def half_width(self) -> float | None:
        if self.estimate is None or self.ci95 is None or self.estimate <= 0:
            return None
        return (self.ci95[1] - self.ci95[0]) / 2 / self.estimate

    @property
    def uninformative(self) -> bool:
        """The interval's low end reached 0 (the t interval is floored there): its blocks disagreed
        by more than the figure itself (on a shared machine, typically one slow block), so the figure
        is a magnitude only, and a ratio so wide says nothing about a difference."""
        return self.estimate is not None and self.ci95 is not None and self.ci95[0] <= 0.0


UNINFORMATIVE = ", uninformative"  # how reports mark such an interval, after its bounds


@dataclass
class Guard:
    """The generator guard at one point: what the generator took, and whether it moved the figure."""

    __pydantic_config__ = DOCSTRINGS

    generator_cpu_share: float | None
    """The busiest generator process's whole CPU (a precise wait's spin included), as a share of one core."""
    generator_machine_share: float | None
    """All generator processes' CPU as a share of the whole machine (every core): what it took from the servers."""
    generator_processes: int
    """Locust processes that shared the point's one schedule."""
    generator_cpu_us_per_req: float | None
    """All generator processes' CPU per request sent, µs."""
    machine_idle: float | None
    """The whole machine's idle share over the measured windows (/proc/stat)."""
    machine_steal: float | None
    """The share stolen by the hypervisor over the measured windows."""
    send_lag_p50_ms: float | None
    """Actual − intended send time, stamped once the request's bytes were written."""
    send_lag_p99_ms: float | None
    """p99 of the send lag."""
    lag_impact_ms: float | None
    """p99 of the latency − p99 of (latency − send lag): how much the generator's lateness moved the p99."""
    p99_without_lag_ms: float | None
    """The p99 had every request left on time."""
    reasons: list[str] = field(default_factory=list)
    """Why the point is invalid (each begins with its rule: generator CPU, machine idle, send lag); empty: valid."""


@dataclass
class Batch:
    """Realized batch sizes."""

    __pydantic_config__ = DOCSTRINGS

    mean: float
    """Mean rows (or requests) per executed batch."""
    hist: dict[str, float]
    """Share of batches per size range (≤1, ≤2, ≤4, ...)."""
    source: str
    """Where the sizes come from (TF Serving's processed_batch_size, or the X-Batch-Requests header)."""


@dataclass
class Breakdown:
    """The servers' own account of a point (load_tests/measure/scrape.py), mean µs per request."""

    __pydantic_config__ = DOCSTRINGS

    queue_us: float | None
    """Waiting for a batch."""
    compute_us: float | None
    """Server total − queue."""
    total_us: float | None
    """Arrival to answer inside the server."""
    gateway_us: float | None = None
    """The gateway's own time (its latency less its wait on the backend)."""
    hop_us: float | None = None
    """The gateway's wait on the backend less the backend's own total."""
    batch: Batch | None = None
    """Batch sizes from the server's metrics."""


@dataclass
class PointRecord:
    """One measured point: one target at one offered Poisson rate, in one block."""

    __pydantic_config__ = DOCSTRINGS

    target: str
    """The target's name (a key of targets)."""
    block: int
    """The block it belongs to (block 0 finds the knees)."""
    rate: float
    """Offered Poisson rate, req/s."""
    seed: int
    """The schedule's seed: the same for every target of a block (identical arrivals)."""
    p50_ms: float | None
    """Median latency from the intended send time over the measured windows, ms."""
    p99_ms: float | None
    """p99 latency from the intended send time, ms; null when more than 1 % failed or were never answered."""
    throughput: float
    """Correct answers per second over the measured windows."""
    samples: int
    """Requests in the measured windows."""
    failed: int
    """Errors, wrong answers and requests never answered, in the measured windows."""
    stable: bool
    """The windows agreed within ±10 % on throughput and p99 (recorded, not required)."""
    windows: int
    """Measured windows."""
    passes: bool
    """p99 ≤ SLO and nothing failed."""
    valid: bool
    """The guard held (guard.reasons is empty): only valid points are fitted."""
    guard: Guard
    """The generator guard's inputs and verdict."""
    server_cpu_us_per_req: dict[str, float | None] = field(default_factory=dict)
    """CPU µs per answered request of each process tree behind the target."""
    breakdown: Breakdown | None = None
    """The servers' metrics over the point (TF Serving and TorchServe targets)."""
    batch: Batch | None = None
    """Batch sizes the answers reported (X-Batch-Requests: TorchServe's handler, the batching floors)."""
    wall_s: float = 0.0
    """Wall seconds the point took, Locust's start included."""


@dataclass
class CurveFit:
    """How QPS@SLO was read off a target's valid points (load_tests/estimate.py)."""

    __pydantic_config__ = DOCSTRINGS

    method: Literal["model", "isotonic", "none"]
    """model: the fit below; isotonic: the monotone fit (the model could not be used); none: not estimable."""
    model_qps: float | None
    """Where the fitted p99 = a + b/(μ − λ) meets the SLO, req/s."""
    isotonic_qps: float | None
    """Where the best non-decreasing fit of log p99 crosses the SLO, req/s (the model-free check)."""
    a_ms: float | None
    """The fitted curve's floor, ms."""
    b: float | None
    """The fitted curve's scale, ms·req/s."""
    mu: float | None
    """The fitted saturation rate, req/s."""
    highest_pass: float | None
    """The model-free bracket: the highest rate seen passing (valid points only), req/s."""
    lowest_fail: float | None
    """The model-free bracket: the lowest rate seen failing (valid points only), req/s."""
    reason: str = ""
    """Why not estimable, or why the model was not used."""


@dataclass
class Ratios:
    """A server over the floor it matches, paired within blocks and bootstrapped over blocks."""

    __pydantic_config__ = DOCSTRINGS

    floor: str
    """The floor target (the same model behind the leanest server, batching and speaking as the server does)."""
    rate: float
    """The fixed rate at which p50 and p99 are compared, req/s."""
    p50: Estimate
    """Server p50 / floor p50 at the fixed rate (mean over the blocks of each)."""
    p99: Estimate
    """Server p99 / floor p99 at the fixed rate."""
    qps_at_slo: Estimate
    """Server QPS@SLO / floor QPS@SLO, both refitted on each resample of the blocks."""


@dataclass
class TargetResult:
    """One target: its QPS@SLO, how it was found, its points, and its ratios to its floor."""

    __pydantic_config__ = DOCSTRINGS

    name: str
    """The target's name (load_tests/targets.py)."""
    role: Literal["server", "floor"]
    """server: a serving target; floor: a floor others are compared to."""
    description: str
    """What it is, in words."""
    protocol: str
    """rest or grpc."""
    via_gateway: bool
    """Through the FastAPI gateway."""
    floor: str | None
    """The floor it is compared to (null for a floor)."""
    direct: bool
    """One of the direct server targets (tfserving, torchserve, torchserve-onnx) the stopping rule waits for."""
    qps_at_slo: Estimate
    """The highest offered rate whose p99 meets the SLO with nothing failing, req/s, with its 95 % interval."""
    fit: CurveFit
    """How the estimate was read off the points, and the model-free bracket."""
    points_valid: int
    """Points that passed the generator guard (the fit uses only these)."""
    points_total: int
    """Points measured."""
    guard_reasons: dict[str, int]
    """Invalid points by guard rule (a point may trip several)."""
    p50_at_fixed_ms: float | None
    """Mean p50 over its valid points at the fixed rate, ms."""
    p99_at_fixed_ms: float | None
    """Mean p99 over its valid points at the fixed rate, ms."""
    ratios: Ratios | None = None
    """Server / floor (null for a floor)."""


@dataclass
class Comparison:
    """Two servers' QPS@SLO, paired on the same resampled blocks."""

    __pydantic_config__ = DOCSTRINGS

    a: str
    """The first target."""
    b: str
    """The second target."""
    qps_ratio: Estimate
    """QPS@SLO of a / QPS@SLO of b, with its 95 % interval."""
    verdict: str
    """'<a> holds more' or '<b> holds more' (the interval excludes 1), 'indistinguishable' or 'not estimable'."""


@dataclass
class BlockRecord:
    """One block: every target at its rates, in a shuffled order, and the estimates after it."""

    __pydantic_config__ = DOCSTRINGS

    index: int
    """0: the coarse search for each knee; then the blocks around the knees."""
    seed: int
    """The seed of every point of the block."""
    started_s: float
    """Seconds from the run's start."""
    seconds: float
    """How long the block took."""
    points: int
    """Points measured in it."""
    qps: dict[str, Estimate]
    """Each target's QPS@SLO refitted after this block (a quick bootstrap)."""


@dataclass
class CalibrationPoint:
    """The generator against the trivial server at one rate."""

    __pydantic_config__ = DOCSTRINGS

    rate: float
    """Offered rate, req/s."""
    processes: int
    """Generator processes."""
    send_lag_p50_ms: float | None
    """Median send lag, ms."""
    send_lag_p99_ms: float | None
    """p99 send lag, ms."""
    lag_impact_ms: float | None
    """How much the send lag moved the p99, ms."""
    generator_cpu_share: float | None
    """The busiest process's whole CPU, share of one core."""
    generator_cpu_us_per_req: float | None
    """Generator CPU per request, µs."""
    machine_idle: float | None
    """The machine's idle share."""
    failed: int
    """Failed requests."""
    reasons: list[str]
    """Guard reasons."""
    ok: bool
    """The rate held: nothing failed, p99 within the SLO and no guard reason of any kind."""


@dataclass
class Calibration:
    """The generator against a server that answers at once (load_tests/servers/trivial.py)."""

    __pydantic_config__ = DOCSTRINGS

    ceiling_rps: float
    """The highest rate one process held with every guard rule holding, req/s."""
    ceiling_rps_total: float
    """The same, split across as many processes as the generator's cores allow (measured), req/s."""
    generator_cores: int
    """Cores the generator may use (all but one below 4 cores, else its pinned quarter)."""
    cpu_us_per_req: float | None
    """Its whole CPU per request, µs: it sizes the split of a rate across processes."""
    points: list[CalibrationPoint]
    """Every calibration rate."""


@dataclass
class PointSettings:
    """How each point was measured."""

    __pydantic_config__ = DOCSTRINGS

    warmup_s: float
    """Seconds excluded before the first window."""
    min_window_s: float
    """Shortest window, s."""
    windows: int
    """Windows per point."""
    min_samples: int
    """Requests over the windows (longer windows at low rates)."""
    sender: str
    """How each send waited for its time (timerfd, spin, timer: load_tests/generator/precise.py)."""
    spin_us: float
    """Cooperative spin before each send, µs."""
    processes: int
    """Generator processes per point; 0: as many as the rate needs."""
    priority: str = "normal"
    """The generator's scheduling: SCHED_RR 1 (real-time, above the servers: a send due wakes it at once) or normal."""


@dataclass
class GuardLimits:
    """The guard's thresholds."""

    __pydantic_config__ = DOCSTRINGS

    max_generator_cpu_share: float
    """Of one core, per generator process, its whole CPU (waiting included)."""
    min_machine_idle: float
    """Share of the whole machine."""
    max_lag_impact_share_of_slo: float
    """How much the send lag may move the p99, as a share of the SLO."""


@dataclass
class Method:
    """The run's method and why it stopped."""

    __pydantic_config__ = DOCSTRINGS

    slo_ms: float
    """The p99 latency SLO, ms."""
    fixed_rate: float
    """The rate at which p50/p99 ratios to the floor are taken, req/s (every block visits it)."""
    start_rate: float
    """Block 0's first rate, req/s."""
    max_rate: float
    """No point offers more, req/s."""
    knee_steps: list[float]
    """A block's rates around each target's knee, as multiples of its estimate."""
    target_half_width: float
    """The run stops once every direct target's 95 % interval is within ± this share of its estimate ..."""
    min_blocks: int
    """... after at least this many blocks ..."""
    budget_s: float
    """... or before a block that would end after this many seconds from the start."""
    resamples: int
    """Bootstrap resamples of the reported intervals."""
    confidence: float
    """The intervals' confidence."""
    point: PointSettings
    """How each point was measured."""
    guard: GuardLimits
    """The guard's thresholds."""
    stopped: str
    """Why the blocks ended."""


@dataclass
class Source:
    """The tree the run measured: a committed report needs dirty to be false."""

    __pydantic_config__ = DOCSTRINGS

    commit: str
    """git rev-parse HEAD."""
    dirty: bool
    """git status --porcelain was not empty."""
    changes: list[str] = field(default_factory=list)
    """git status --porcelain (up to 50 lines)."""


@dataclass
class Environment:
    """The machine and the software the run measured on."""

    __pydantic_config__ = DOCSTRINGS

    cpu: str
    """CPU model."""
    cores: int
    """CPU cores."""
    gpu: str
    """GPU and driver, or none."""
    servers_on: str
    """CPU or GPU."""
    tfserving: str
    """Which TF Serving implementation ran: the real binary or the stand-in."""
    python: str
    """Python version."""
    versions: dict[str, str]
    """Package versions."""
    tf_batching: str
    """TF Serving's batching parameters."""
    torchserve_batching: str
    """TorchServe's batching per model."""
    pinning: str
    """How the generator and the servers shared the cores."""
    load_avg_before: list[str]
    """Load average (1, 5, 15 min) at the start."""
    load_avg_after: list[str]
    """Load average at the end."""
    cpu_mhz: float | None = None
    """Mean clock, MHz."""
    local_servers: dict[str, list[str]] = field(default_factory=dict)
    """Each floor (and trivial) server the run started: its command line."""
    server_settings: dict[str, Any] = field(default_factory=dict)
    """The servers' settings (serving/environments.py) and the gateway's /v1/backends."""
    gpu_samples: list[dict[str, float]] = field(default_factory=list)
    """GPU utilisation and memory, every second (nvidia-smi)."""


@dataclass
class CapacityRun:
    """A capacity run (make load): results.json."""

    __pydantic_config__ = DOCSTRINGS

    schema_version: int
    """This schema's version (2)."""
    commit: str
    """The commit the run measured (git rev-parse HEAD)."""
    dirty: bool
    """The tree had uncommitted changes: not a committed-quality run."""
    started: str
    """Start, ISO 8601 UTC."""
    seconds: float
    """The run's length, s."""
    method: Method
    """How it measured and why it stopped."""
    targets: dict[str, TargetResult]
    """Each target by name: qps_at_slo, points_valid, points_total, and a server's ratios to its floor."""
    comparisons: list[Comparison]
    """The servers against each other (the report's first line)."""
    points: list[PointRecord]
    """Every point measured."""
    blocks: list[BlockRecord]
    """Every block."""
    calibration: Calibration | None
    """The generator's calibration (null: skipped)."""
    environment: Environment
    """The machine and the software."""
    source: Source
    """The tree the run came from."""
    left_out: list[str] = field(default_factory=list)
    """Serving targets not in this run (make load's default measures the direct servers and their floors)."""


def _adapter() -> Any:
    from pydantic import TypeAdapter

    return TypeAdapter(CapacityRun)


def dumps(run: CapacityRun) -> bytes:
    """results.json: non-finite figures become null."""
    return bytes(_adapter().dump_json(run, indent=2)) + b"\n"


def write(run: CapacityRun, folder: Path) -> Path:
    path = folder / "results.json"
    path.write_bytes(dumps(run))
    return path


def loads(raw: bytes) -> CapacityRun:
    """A results.json of this schema version (else ValueError naming what it is)."""
    import orjson

    body = orjson.loads(raw)
    version = body.get("schema_version") if isinstance(body, dict) else None
    if version != SCHEMA_VERSION:
        raise ValueError(
            f"results.json has schema_version {version!r}, not {SCHEMA_VERSION}"
            + (" (an untyped results.json of the bisection runner: re-run make load)" if version is None else "")
        )
    run: CapacityRun = _adapter().validate_python(body)
    return run


def read(folder: Path) -> CapacityRun:
    return loads((folder / "results.json").read_bytes())


def json_schema() -> dict[str, Any]:
    schema: dict[str, Any] = _adapter().json_schema(mode="serialization")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "mnist-serving capacity run (results.json)"
    schema["description"] = " ".join((__doc__ or "").split("\n\n")[0].split())
    return schema


def schema_text() -> str:
    import json

    return json.dumps(json_schema(), indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="The results.json schema: write it, or check a results.json against it.")
    p.add_argument("--schema", action="store_true", help=f"rewrite {SCHEMA_FILE.name} from the dataclasses")
    p.add_argument("--check", type=Path, metavar="RESULTS", help="validate a results.json (exit 1 if it does not)")
    args = p.parse_args(argv)
    if args.schema:
        SCHEMA_FILE.write_text(schema_text())
        print(SCHEMA_FILE)
    if args.check:
        try:
            loads(args.check.read_bytes())
        except ValueError as e:
            print(f"{args.check}: {e}", file=sys.stderr)
            return 1
        print(f"{args.check}: schema_version {SCHEMA_VERSION}, valid")
    if not (args.schema or args.check):
        p.print_help()
    return 0


if __name__ == "__main__":
    sys.exit(main())


# ---- make load-rollout (load_tests/runs/rollout.py) ------------------------------------------------


@dataclass
class ServerPhase:
    """One server's requests through one phase (its backends: TorchServe's are two)."""

    server: str
    rolled: bool  # this phase rolled this server (else it is the neighbour)
    requests: int
    failed: int
    failed_by: dict[str, int]  # error type (or "no answer") -> count
    p99_before_ms: float
    p99_during_ms: float
    p99_after_ms: float
    versions: dict[str, int]  # model_version -> answers
    unexpected_versions: int  # answers from a version outside {old, new} (a refused one: outside {old})
    time_to_serving_s: float | None  # "load requested" -> "switched"
    old_last_after_switch_s: float | None  # the old version's last answer, relative to the switch
    new_first_after_switch_s: float | None


@dataclass
class PhaseResult:
    repeat: int
    phase: str
    version: int
    expect_ok: bool
    rollout_ok: bool
    rollout_exit: int
    rollout_message: str
    rollout_s: float  # the rollout command's whole run (process start to exit)
    send_lag_p99_ms: float
    generator_cpu_us_per_req: float
    load_origin_wall: float  # Unix time of the load's offset 0 (the plot's time axis)
    servers: list[ServerPhase]
    log: dict[str, object]  # the rollout's own typed log (serving/rollout/log.py), as it wrote it


@dataclass
class RolloutRun:
    """What ``make load-rollout`` hands back and writes as rollout.json."""

    target: str  # native or compose
    tfserving_implementation: str  # "standin" (the stand-in) or "tensorflow_model_server"
    slo_ms: float
    capacity_rps: float
    capacity_steps: list[dict[str, float]]
    rate: float
    commit: str
    dirty: bool
    cores: int
    load_avg_before: list[str]
    load_avg_after: list[str] = field(default_factory=list)
    before_s: float = 4.0  # load before each rollout command ...
    after_s: float = 3.0  # ... and after it
    warmup_s: float = 1.0  # the first seconds of each phase, left out of p99 before
    phases: list[PhaseResult] = field(default_factory=list)
    samples: dict[str, list[list[float | str]]] = field(default_factory=dict)  # repeat/phase -> rows (plot)

    @property
    def failed(self) -> int:
        return sum(s.failed for p in self.phases for s in p.servers)

    @property
    def all_as_expected(self) -> bool:
        return all(
            p.rollout_ok == p.expect_ok and all(s.unexpected_versions == 0 for s in p.servers) for p in self.phases
        )


# ---- make compare (load_tests/runs/compare.py) -----------------------------------------------------


@dataclass
class CompareCell:
    """One target at one offered rate, over the blocks: medians of its valid points, with intervals."""

    target: str
    rate: float
    points: int
    valid: int
    p50_ms: Estimate
    p99_ms: Estimate
    floor: str | None = None  # the floor it matches (None: it is a floor)
    p50_over_floor: Estimate | None = None  # paired within blocks
    p99_over_floor: Estimate | None = None


@dataclass
class CompareRatio:
    """``a`` over ``b`` at one rate, paired within blocks, and what its interval says."""

    rate: float
    a: str
    b: str
    p50: Estimate
    p99: Estimate
    verdict: str


@dataclass
class CompareRun:
    """What ``make compare`` hands back and writes as compare.json."""

    started: str
    seconds: float
    rates: list[float]
    blocks: int
    targets: list[str]
    slo_ms: float  # the guard's reference (its send-lag limit is a share of it); no SLO is judged
    point: PointSettings
    guard: GuardLimits
    stopped: str
    environment: Environment
    source: Source
    cells: list[CompareCell]
    ratios: list[CompareRatio]
    points: list[PointRecord]
    verdict: list[str]  # the lines the command ends with, computed from the above


def _compare_adapter() -> Any:
    from pydantic import TypeAdapter

    return TypeAdapter(CompareRun)


def write_compare(run: CompareRun, folder: Path) -> Path:
    path = folder / "compare.json"
    path.write_bytes(bytes(_compare_adapter().dump_json(run, indent=2)) + b"\n")
    return path


def read_compare(folder: Path) -> CompareRun:
    import orjson

    run: CompareRun = _compare_adapter().validate_python(orjson.loads((folder / "compare.json").read_bytes()))
    return run
