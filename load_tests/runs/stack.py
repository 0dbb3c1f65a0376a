"""What a run measures against: the native stack (the one already answering, else started), and the
load tools' own servers (the floors and the trivial server) on free ports, stopped afterwards."""

from __future__ import annotations

import contextlib
import functools
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx

from load_tests.targets import BY_NAME, Endpoints, Target
from mnist_serving.ports import local_url

REPO = Path(__file__).resolve().parents[2]
LOCAL_START_TIMEOUT_S = 120.0  # TensorFlow's import alone takes ~10 s on this machine


@contextlib.contextmanager
def native_stack(
    artifacts: Path,
    run_dir: Path,
    ports: Any,
    servers: Sequence[str] = ("tfserving", "torchserve"),
    with_gateway: bool = True,
) -> Iterator[None]:
    """The native stack on ``ports``: what already answers there (every wanted server ready), else
    ``servers`` (and the gateway) started here and stopped after."""
    from serving.native import gateway, tfserving, torchserve
    from serving.native.stack import ServingStack

    checks = {"tfserving": tfserving.ready, "torchserve": torchserve.ready, "gateway": gateway.ready}
    wanted = [*servers, *(["gateway"] if with_gateway else [])]
    with contextlib.suppress(Exception):
        if all(checks[name](ports) for name in wanted):
            print("using the stack that is already running", flush=True)
            yield
            return
    print(f"starting {', '.join(wanted)} natively ...", flush=True)
    with contextlib.ExitStack() as es:
        stack = ServingStack(artifacts, run_dir, ports, with_gateway=with_gateway, servers=tuple(servers))
        stack.start()
        es.callback(stack.stop)
        yield


def is_local(target: Target) -> bool:
    """Targets whose server the load tools start themselves."""
    return target.name == "trivial" or (target.backend or "").startswith("floor-")


def local_argv(target: Target, port: int, artifacts: Path, device: str = "cpu") -> list[str]:
    if target.name == "trivial":
        return [sys.executable, "-m", "load_tests.servers.trivial", str(port)]
    kind = target.name.removeprefix("floor-")
    argv = [sys.executable, "-m", "load_tests.servers.floor", kind, "--port", str(port), "--artifacts", str(artifacts)]
    return argv + (["--device", device] if kind == "torchscript" else [])


@contextlib.contextmanager
def local_servers(
    targets: Sequence[Target], artifacts: Path, run_dir: Path, ep: Endpoints, device: str = "cpu"
) -> Iterator[Endpoints]:
    """Start the floor and trivial servers among ``targets`` on free ports (the TorchScript floor on
    ``device``); yield ``ep`` with their URLs."""
    from serving.native.process import ManagedProcess, free_ports

    wanted = [t for t in dict.fromkeys(targets) if is_local(t)]
    with contextlib.ExitStack() as es:
        procs = []
        for target, port in zip(wanted, free_ports(len(wanted)), strict=True):
            url = local_url(port)
            proc = ManagedProcess(target.name, local_argv(target, port, artifacts.resolve(), device),
                                  run_dir / f"{target.name}.log", cwd=REPO)  # fmt: skip
            proc.start()
            es.callback(proc.stop)
            procs.append((proc, url))
            ep = ep.with_url(target, url)
        for proc, url in procs:
            proc.wait_until(functools.partial(_answers, url), LOCAL_START_TIMEOUT_S)
        if wanted:
            print(f"started {', '.join(t.name for t in wanted)}", flush=True)
        yield ep


def _answers(url: str) -> bool:
    """Any HTTP answer at all: the floors answer GET /ready, the trivial server answers everything."""
    try:
        httpx.post(url + "/ready", content=b"{}", timeout=2)
    except httpx.HTTPError:
        return False
    return True


def floors_of(targets: Sequence[Target]) -> list[Target]:
    """The floor target of each target that has one, once each, in order."""
    return [BY_NAME[f] for f in dict.fromkeys(t.floor for t in targets if t.floor)]
