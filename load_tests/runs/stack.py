"""What a run measures against: the native stack (the one already answering, else started), and the
load tools' own servers (targets.LOCAL_SERVERS: the floors and the trivial server) on free ports,
stopped afterwards. A batching floor takes its server's batch size and delay from that server's
config owner (serving/tfserving/config.py, serving/torchserve/config.py), so the two cannot drift."""

from __future__ import annotations

import contextlib
import functools
import socket
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx

from load_tests.targets import BY_NAME, LOCAL_SERVERS, Endpoints, LocalServer, Target
from mnist_serving.ports import local_address, local_url
from mnist_serving.spec import ONNX_MODEL_NAME, TORCH_MODEL_NAME

REPO = Path(__file__).resolve().parents[2]
LOCAL_START_TIMEOUT_S = 120.0  # TensorFlow's import alone takes ~10 s on this machine


@contextlib.contextmanager
def native_stack(
    artifacts: Path,
    run_dir: Path,
    ports: Any,
    servers: Sequence[str] = ("tfserving", "torchserve"),
    with_gateway: bool = True,
) -> Iterator[dict[str, int]]:
    """The native stack on ``ports``: what already answers there (every wanted server ready), else
    ``servers`` (and the gateway) started here and stopped after. Yields the root PID of each
    server started here (none when it was already running)."""
    from serving.native import gateway, tfserving, torchserve
    from serving.native.stack import ServingStack

    checks = {"tfserving": tfserving.ready, "torchserve": torchserve.ready, "gateway": gateway.ready}
    wanted = [*servers, *(["gateway"] if with_gateway else [])]
    with contextlib.suppress(Exception):
        if all(checks[name](ports) for name in wanted):
            print("using the stack that is already running", flush=True)
            yield {}
            return
    print(f"starting {', '.join(wanted)} natively ...", flush=True)
    with contextlib.ExitStack() as es:
        stack = ServingStack(artifacts, run_dir, ports, with_gateway=with_gateway, servers=tuple(servers))
        stack.start()
        es.callback(stack.stop)
        yield {p.name: p.pid for p in stack.processes if p.pid is not None}


def batching_of(server: str) -> tuple[int, float]:
    """(batch size, delay ms) ``server`` runs with, from its config owner: TF Serving's
    ``max_execution_batch_size`` and ``batch_timeout_micros``; TorchServe's ``batchSize`` and
    ``maxBatchDelay`` (the same for both its models, checked)."""
    if server == "tfserving":
        from serving.tfserving import config as tf

        b = tf.batching()
        return int(b["max_execution_batch_size"]), int(b["batch_timeout_micros"]) / 1000
    from serving.torchserve import config as ts

    models = ts.models(ts.read())
    pairs = {(int(m["batchSize"]), float(m["maxBatchDelay"])) for n, m in models.items()
             if n in (TORCH_MODEL_NAME, ONNX_MODEL_NAME)}  # fmt: skip
    if len(pairs) != 1:
        raise ValueError(f"TorchServe's models batch differently ({pairs}): one batching floor cannot match both")
    return pairs.pop()


def local_argv(
    server: LocalServer, port: int, grpc_port: int | None, artifacts: Path, device: str = "cpu"
) -> list[str]:
    if server.kind is None:
        return [sys.executable, "-m", "load_tests.servers.trivial", str(port)]
    argv = [sys.executable, "-m", "load_tests.servers.floor", server.kind, "--port", str(port),
            "--artifacts", str(artifacts)]  # fmt: skip
    if server.kind == "torchscript":
        argv += ["--device", device]
    if server.batching:
        size, delay = batching_of(server.batching)
        argv += ["--batch-size", str(size), "--batch-delay-ms", f"{delay:g}"]
    if server.grpc and grpc_port:
        argv += ["--grpc-port", str(grpc_port)]
    return argv


def locals_of(targets: Sequence[Target]) -> list[LocalServer]:
    """The load tools' servers these targets need, once each, in order."""
    return [LOCAL_SERVERS[n] for n in dict.fromkeys(t.local for t in targets if t.local)]


@contextlib.contextmanager
def local_servers(
    targets: Sequence[Target], artifacts: Path, run_dir: Path, ep: Endpoints, device: str = "cpu"
) -> Iterator[Endpoints]:
    """Start the floor and trivial servers ``targets`` need on free ports (the TorchScript floors on
    ``device``); yield ``ep`` with their addresses, PIDs and command lines."""
    from serving.native.process import ManagedProcess, free_ports

    wanted = locals_of(targets)
    with contextlib.ExitStack() as es:
        procs = []
        free = iter(free_ports(2 * len(wanted)))
        for server in wanted:
            port, grpc_port = next(free), next(free)
            argv = local_argv(server, port, grpc_port if server.grpc else None, artifacts.resolve(), device)
            proc = ManagedProcess(server.name, argv, run_dir / f"{server.name}.log", cwd=REPO)
            proc.start()
            es.callback(proc.stop)
            procs.append((proc, local_url(port), grpc_port if server.grpc else None))
            urls = {server.url_env: local_url(port)}
            if server.grpc:
                urls[server.grpc_env] = local_address(grpc_port)
            ep = ep.with_local(server.name, urls, proc.pid or 0, argv)
        for proc, url, grpc in procs:
            proc.wait_until(functools.partial(_answers, url, grpc), LOCAL_START_TIMEOUT_S)
        if wanted:
            print(f"started {', '.join(s.name for s in wanted)}", flush=True)
        yield ep


def _answers(url: str, grpc_port: int | None = None) -> bool:
    """Any HTTP answer at all (the floors answer GET /ready, the trivial server answers everything),
    and the gRPC port, if any, accepting connections."""
    try:
        httpx.post(url + "/ready", content=b"{}", timeout=2)
        if grpc_port:
            socket.create_connection(("127.0.0.1", grpc_port), timeout=2).close()
    except (httpx.HTTPError, OSError):
        return False
    return True


def floors_of(targets: Sequence[Target]) -> list[Target]:
    """The floor target of each target that has one, once each, in order."""
    return [BY_NAME[f] for f in dict.fromkeys(t.floor for t in targets if t.floor)]
