"""Start both servers, wait until every model is really ready, stop them all on exit."""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from mnist_serving.ports import local_address, local_url
from mnist_serving.spec import ONNX_MODEL_NAME, TF_MODEL_NAME, TORCH_MODEL_NAME
from serving.native import gateway, tfserving, torchserve
from serving.native.process import ManagedProcess, StartError, check_ports_free, stop_all
from serving.native.run import NativeRun
from serving.native.settings import ServingPorts
from serving.native.supervisor import Health, Notify, RestartPolicy, Supervisor

SERVERS = ("tfserving", "torchserve")  # the model servers a stack can run; the gateway comes on top
TFSERVING_READY_TIMEOUT_S = 120.0
TORCHSERVE_READY_TIMEOUT_S = 180.0  # JVM start plus one Python worker per model
GATEWAY_READY_TIMEOUT_S = 30.0
START_TIMEOUTS_S = {
    "tfserving": TFSERVING_READY_TIMEOUT_S,
    "torchserve": TORCHSERVE_READY_TIMEOUT_S,
    "gateway": GATEWAY_READY_TIMEOUT_S,
}  # also each one's start budget when the supervisor restarts it


@dataclass
class ServingStack:
    artifacts: Path
    run_dir: Path
    ports: ServingPorts = field(default_factory=ServingPorts.from_env)
    processes: list[ManagedProcess] = field(default_factory=list)
    readiness: dict[str, Callable[[], bool]] = field(default_factory=dict)  # process name -> "model ready"
    tf_implementation: str = field(default_factory=tfserving.implementation)
    with_gateway: bool = False
    servers: tuple[str, ...] = SERVERS  # a subset runs those alone (TorchServe on a GPU box with no TF)
    version: int | None = None  # the model version both servers start with (None: the newest good one)

    def __post_init__(self) -> None:
        # Absolute: TorchServe runs with the run folder as cwd and rejects a relative TEMP.
        self.artifacts, self.run_dir = self.artifacts.resolve(), self.run_dir.resolve()
        unknown = set(self.servers) - set(SERVERS)
        if unknown or not self.servers:
            raise StartError(f"servers must be some of {', '.join(SERVERS)}; got {', '.join(self.servers) or 'none'}")

    def start(self) -> None:
        if not (self.artifacts / "manifest.json").exists():
            raise StartError(f"no trained models in {self.artifacts}: run `make train` first")
        check_ports_free(self.owned_ports(*self.servers, *(["gateway"] if self.with_gateway else [])))
        self.run_dir.mkdir(parents=True, exist_ok=True)
        v = self.version
        launchers = {
            "tfserving": (lambda: tfserving.launcher(self.artifacts, self.run_dir, self.ports, version=v),
                          lambda: tfserving.ready(self.ports), TFSERVING_READY_TIMEOUT_S),
            "torchserve": (lambda: torchserve.launcher(self.artifacts, self.run_dir, self.ports, version=v),
                           lambda: torchserve.ready(self.ports), TORCHSERVE_READY_TIMEOUT_S),
        }  # fmt: skip
        try:
            started = []
            for name in self.servers:
                make, ready, timeout = launchers[name]
                proc = make()
                self.readiness[proc.name] = ready
                proc.start()
                self.processes.append(proc)
                started.append((proc, timeout))
            start = time.monotonic()
            for proc, timeout in started:  # they start side by side; each gets its own budget from now
                proc.wait_until(self.readiness[proc.name], max(timeout - (time.monotonic() - start), 30.0))
                if proc.name == "torchserve":
                    torchserve.warm(self.ports)  # its Java request path too, not only the models
            if self.with_gateway:
                gw = gateway.launcher(self.run_dir, self.ports)
                self.readiness[gw.name] = lambda: gateway.ready(self.ports)
                gw.start()
                self.processes.append(gw)
                gw.wait_until(self.readiness[gw.name], GATEWAY_READY_TIMEOUT_S)
            self.info().save()
        except BaseException:
            self.stop()
            raise

    def info(self) -> NativeRun:
        """What the rollout needs to act on this stack (serving/native/run.py)."""
        return NativeRun(self.run_dir, self.artifacts, self.ports, self.servers, self.with_gateway)

    def supervisor(self, policy: RestartPolicy | None = None, notify: Notify = print) -> Supervisor:
        """A supervisor that restarts any of this stack's processes when it crashes, hangs (stops
        answering its liveness check) or is not ready within its start budget."""
        sup = Supervisor(policy, notify)
        for p in self.processes:
            sup.watch(p, self.health(p.name, sup.policy))
        return sup

    def health(self, name: str, policy: RestartPolicy) -> Health:
        """What the supervisor checks of process ``name``: readiness ("model ready") while it starts,
        liveness ("it answers", with the probe's timeout) once ready, and its ports."""
        ports = self.ports
        timeout = policy.liveness.timeout_s
        live = {"tfserving": tfserving.live, "torchserve": torchserve.live, "gateway": gateway.live}[name]
        # The gateway's readiness needs a ready backend, and the supervisor restarts those on their
        # own: for the gateway "started" is its liveness.
        ready = functools.partial(live, ports, timeout) if name == "gateway" else self.readiness[name]
        return Health(ready, functools.partial(live, ports, timeout), START_TIMEOUTS_S[name], self.owned_ports(name))

    def owned_ports(self, *names: str) -> dict[str, int]:
        """The ports the processes ``names`` listen on, by role (torchserve_inference=8080 ...)."""
        return {role: port for role, port in self.ports.as_dict().items() if role.split("_")[0] in names}

    def stop(self) -> None:
        """All at once, in one grace period (process.STOP_GRACE_S): a few seconds, not one each."""
        stop_all(self.processes)
        self.processes.clear()

    def endpoints(self) -> dict[str, str]:
        p = self.ports
        gw_url = local_url(p.gateway)
        gw = {"gateway": f"{gw_url}/ (drawing page), {gw_url}/docs (API)"} if self.with_gateway else {}
        tf = {
            f"tfserving REST ({self.tf_implementation})": local_url(p.tfserving_rest, f"/v1/models/{TF_MODEL_NAME}"),
            "tfserving gRPC": local_address(p.tfserving_grpc),
            "tfserving metrics": local_url(p.tfserving_rest, "/monitoring/prometheus/metrics"),
        }
        ts = {
            "torchserve inference": local_url(
                p.torchserve_inference, f"/predictions/{TORCH_MODEL_NAME} (and {ONNX_MODEL_NAME})"
            ),
            "torchserve management": local_url(p.torchserve_management, "/models"),
            "torchserve metrics": local_url(p.torchserve_metrics, "/metrics"),
            "torchserve gRPC": local_address(p.torchserve_grpc_inference),
        }
        return {
            **gw,
            **(tf if "tfserving" in self.servers else {}),
            **(ts if "torchserve" in self.servers else {}),
        }


@contextlib.contextmanager
def running(
    artifacts: Path,
    run_dir: Path,
    ports: ServingPorts | None = None,
    with_gateway: bool = False,
    servers: tuple[str, ...] = SERVERS,
) -> Iterator[ServingStack]:
    stack = ServingStack(
        artifacts, run_dir, ports or ServingPorts.from_env(), with_gateway=with_gateway, servers=servers
    )
    stack.start()
    try:
        yield stack
    finally:
        stack.stop()
