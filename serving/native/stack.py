"""Start both servers, wait until every model is really ready, stop them all on exit."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from serving.native import gateway, tfserving, torchserve
from serving.native.process import ManagedProcess, StartError, check_ports_free
from serving.native.settings import ServingPorts
from serving.native.supervisor import Notify, RestartPolicy, Supervisor

TFSERVING_READY_TIMEOUT_S = 120.0
TORCHSERVE_READY_TIMEOUT_S = 180.0  # JVM start plus one Python worker per model
GATEWAY_READY_TIMEOUT_S = 30.0


@dataclass
class ServingStack:
    artifacts: Path
    run_dir: Path
    ports: ServingPorts = field(default_factory=ServingPorts.from_env)
    processes: list[ManagedProcess] = field(default_factory=list)
    readiness: dict[str, Callable[[], bool]] = field(default_factory=dict)  # process name -> "model ready"
    tf_implementation: str = field(default_factory=tfserving.implementation)
    with_gateway: bool = False

    def __post_init__(self) -> None:
        # Absolute: TorchServe runs with the run folder as cwd and rejects a relative TEMP.
        self.artifacts, self.run_dir = self.artifacts.resolve(), self.run_dir.resolve()

    def start(self) -> None:
        if not (self.artifacts / "manifest.json").exists():
            raise StartError(f"no trained models in {self.artifacts}: run `make train` first")
        wanted = self.ports.as_dict()
        if not self.with_gateway:
            wanted.pop("gateway")
        check_ports_free(wanted)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        tf = tfserving.launcher(self.artifacts, self.run_dir, self.ports)
        ts = torchserve.launcher(self.artifacts, self.run_dir, self.ports)
        self.readiness = {
            tf.name: lambda: tfserving.ready(self.ports),
            ts.name: lambda: torchserve.ready(self.ports),
        }
        try:
            for p in (tf, ts):
                p.start()
                self.processes.append(p)
            start = time.monotonic()
            tf.wait_until(self.readiness[tf.name], TFSERVING_READY_TIMEOUT_S)
            remaining = TORCHSERVE_READY_TIMEOUT_S - (time.monotonic() - start)
            ts.wait_until(self.readiness[ts.name], max(remaining, 30.0))
            if self.with_gateway:
                gw = gateway.launcher(self.run_dir, self.ports)
                self.readiness[gw.name] = lambda: gateway.ready(self.ports)
                gw.start()
                self.processes.append(gw)
                gw.wait_until(self.readiness[gw.name], GATEWAY_READY_TIMEOUT_S)
        except BaseException:
            self.stop()
            raise

    def supervisor(self, policy: RestartPolicy | None = None, notify: Notify = print) -> Supervisor:
        """A supervisor that restarts any of this stack's processes when it crashes."""
        sup = Supervisor(policy, notify)
        for p in self.processes:
            sup.watch(p, self.readiness[p.name])
        return sup

    def stop(self) -> None:
        for p in reversed(self.processes):
            p.stop()
        self.processes.clear()

    def endpoints(self) -> dict[str, str]:
        p = self.ports
        gw_url = f"http://127.0.0.1:{p.gateway}"
        gw = {"gateway": f"{gw_url}/ (drawing page), {gw_url}/docs (API)"} if self.with_gateway else {}
        return {
            **gw,
            f"tfserving REST ({self.tf_implementation})": f"http://127.0.0.1:{p.tfserving_rest}/v1/models/mnist",
            "tfserving gRPC": f"127.0.0.1:{p.tfserving_grpc}",
            "tfserving metrics": f"http://127.0.0.1:{p.tfserving_rest}/monitoring/prometheus/metrics",
            "torchserve inference": f"http://127.0.0.1:{p.torchserve_inference}/predictions/mnist (and mnist_onnx)",
            "torchserve management": f"http://127.0.0.1:{p.torchserve_management}/models",
            "torchserve metrics": f"http://127.0.0.1:{p.torchserve_metrics}/metrics",
            "torchserve gRPC": f"127.0.0.1:{p.torchserve_grpc_inference}",
        }


@contextlib.contextmanager
def running(
    artifacts: Path, run_dir: Path, ports: ServingPorts | None = None, with_gateway: bool = False
) -> Iterator[ServingStack]:
    stack = ServingStack(artifacts, run_dir, ports or ServingPorts.from_env(), with_gateway=with_gateway)
    stack.start()
    try:
        yield stack
    finally:
        stack.stop()
