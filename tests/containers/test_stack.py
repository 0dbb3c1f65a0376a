"""The container stack for real: images built offline, docker-compose.yml with the TF Serving
stand-in swapped in (docker-compose.standin.yml), exercised against running containers.

Run by `make test-containers` (CONTAINER_TESTS=1, an engine started by containers.engine). It
prints each image's build time and size and the time from `up` to all-healthy. The stack runs
under a project name of its own, on free ports, and `down -v` removes it even when a check fails.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from containers import offline
from containers.compose import compose
from mnist_serving.ports import local_url
from serving.native.process import free_ports
from serving.native.settings import ServingPorts
from tests.conftest import REPO

pytestmark = [
    pytest.mark.skipif(os.environ.get("CONTAINER_TESTS") != "1", reason="container test: `make test-containers`"),
    pytest.mark.timeout(3600),  # a cold build of every image is part of the fixture
]

SERVICES = ("tfserving", "torchserve", "gateway")
HEALTHY_WITHIN_S = 120.0
RESTART_WITHIN_S = 60.0
STOP_WITHIN_S = 5.0
PORT_VARS = (
    "GATEWAY_PORT",
    "GATEWAY_GRPC_PORT",
    "TFSERVING_REST_PORT",
    "TFSERVING_GRPC_PORT",
    "TORCHSERVE_INFERENCE_PORT",
    "TORCHSERVE_MANAGEMENT_PORT",
    "TORCHSERVE_METRICS_PORT",
    "TORCHSERVE_GRPC_INFERENCE_PORT",
)


@dataclass
class Stack:
    project: str
    env: dict[str, str]
    reports: Path
    artifacts: Path  # mounted read-only into both model servers at /artifacts
    timings: dict[str, Any] = field(default_factory=dict)

    def ports(self) -> ServingPorts:
        """The published ports (the rest keep their defaults: not published)."""
        published = {name: int(self.env[f"{name.upper()}_PORT"]) for name in ServingPorts().as_dict()
                     if f"{name.upper()}_PORT" in self.env}  # fmt: skip
        return replace(ServingPorts(), **published)

    @property
    def gateway(self) -> str:
        return local_url(int(self.env["GATEWAY_PORT"]))

    def compose(self, *args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        return compose(*args, env=self.env, project=self.project, **kwargs)

    def container(self, service: str) -> str:
        out = self.compose("ps", "-q", service).stdout.split()
        assert out, f"no container for {service}"
        return out[0]


def docker(*args: str) -> str:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=True, timeout=120).stdout.strip()


def inspect(container: str, fmt: str) -> str:
    return docker("inspect", "-f", fmt, container)


def wait_healthy(stack: Stack, services: tuple[str, ...], timeout: float) -> float:
    start = time.monotonic()
    while True:
        states = {s: inspect(stack.container(s), "{{.State.Health.Status}}") for s in services}
        if all(v == "healthy" for v in states.values()):
            return time.monotonic() - start
        assert time.monotonic() - start < timeout, f"not healthy after {timeout:.0f} s: {states}"
        time.sleep(1)


def _project_leftovers(project: str) -> list[str]:
    label = f"label=com.docker.compose.project={project}"
    return [
        *docker("ps", "-aq", "--filter", label).split(),
        *docker("network", "ls", "-q", "--filter", label).split(),
        *docker("volume", "ls", "-q", "--filter", label).split(),
    ]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    builds = offline.build_all()
    env = {name: str(port) for name, port in zip(PORT_VARS, free_ports(len(PORT_VARS)), strict=True)}
    reports = tmp_path_factory.mktemp("compose-reports")
    reports.chmod(0o777)  # owned by the host user, writable by the Locust containers' uid 10001
    env["LOAD_REPORTS"] = str(reports)
    # The artifacts the servers mount (docker-compose.yml): a copy, so the rollout test adds a version
    # without touching the repository's; readable by the containers' uid 10001.
    mounted = Path(tempfile.mkdtemp(prefix="mnist-compose-artifacts-"))
    shutil.copytree(REPO / "artifacts", mounted, dirs_exist_ok=True)
    mounted.chmod(0o755)
    env["ARTIFACTS"] = str(mounted)
    s = Stack(f"mnist-serving-test-{os.getpid()}", env, reports, mounted)
    s.timings["images"] = {
        b.image.tag: {"build_s": round(b.seconds, 1), "size_mb": round(b.size_bytes / 1e6)} for b in builds
    }
    try:
        start = time.monotonic()
        s.compose("up", "-d", "--no-build")
        s.timings["up_to_healthy_s"] = round(time.monotonic() - start + wait_healthy(s, SERVICES, HEALTHY_WITHIN_S), 1)
        print(f"\ncontainers: {json.dumps(s.timings, indent=2)}", flush=True)
        yield s
    finally:
        with_load = ("--profile", "load")
        s.compose(*with_load, "down", "-v", "--remove-orphans", "--timeout", "10")
        (REPO / "test-artifacts").mkdir(exist_ok=True)
        (REPO / "test-artifacts" / "containers.json").write_text(json.dumps(s.timings, indent=2))
        shutil.rmtree(mounted, ignore_errors=True)
        assert not _project_leftovers(s.project), "down -v left containers, networks or volumes behind"


@pytest.fixture(scope="module")
def expected(test_split) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The same artifacts the images baked in, run in-process, on 20 real test digits."""
    import onnxruntime as ort
    import torch

    from tests.training.test_artifacts import session_predict
    from training.train import artifact_paths

    version = json.loads((REPO / "artifacts" / "manifest.json").read_text())["latest_version"]
    paths = artifact_paths(REPO / "artifacts", version)
    rows = test_split.x_test[:20]
    with torch.no_grad():
        ts = torch.jit.load(str(paths["torchscript"]))(torch.from_numpy(rows)).numpy()
    onnx = ort.InferenceSession(str(paths["onnx"]), providers=["CPUExecutionProvider"]).run(None, {"pixels": rows})[0]
    tf, _ = session_predict(paths["savedmodel"], rows)
    return rows, {"tfserving": tf, "torchserve": ts, "torchserve-onnx": onnx}


def _predict(stack: Stack, backend: str, rows: np.ndarray) -> httpx.Response:
    return httpx.post(f"{stack.gateway}/v1/predict?backend={backend}", json={"instances": rows.tolist()}, timeout=30)


def test_all_healthy_and_ready(stack: Stack) -> None:
    assert httpx.get(f"{stack.gateway}/readyz", timeout=10).status_code == 200
    backends = {b["name"]: b for b in httpx.get(f"{stack.gateway}/v1/backends", timeout=10).json()["backends"]}
    assert set(backends) == {"tfserving", "torchserve", "torchserve-onnx"}
    assert all(b["ready"] for b in backends.values()), backends
    assert backends["tfserving"]["implementation"] == "standin"


def test_the_open_inference_protocol_over_grpc_is_published(stack: Stack, test_split) -> None:
    """tritonclient's gRPC client, a client written elsewhere, through the published 8001."""
    import tritonclient.grpc as grpcclient

    client = grpcclient.InferenceServerClient(f"127.0.0.1:{stack.env['GATEWAY_GRPC_PORT']}")
    try:
        assert client.is_server_ready() and client.is_model_ready("mnist-torchserve")
        rows = test_split.x_test[:4].astype(np.float32)
        pixels = grpcclient.InferInput("pixels", list(rows.shape), "FP32")
        pixels.set_data_from_numpy(rows)
        labels = client.infer("mnist-torchserve", [pixels]).as_numpy("label").tolist()
    finally:
        client.close()
    v1 = _predict(stack, "torchserve", rows)
    assert v1.status_code == 200 and labels == v1.json()["labels"]


def test_make_rollout_rolls_a_mounted_version_with_no_failed_request(stack: Stack, test_split) -> None:
    """`make rollout VERSION=2 ROLLOUT_ARGS=--compose`, in-process: version 2 (a copy of 1, trained
    "after the images were built") is written into the mounted artifacts, loaded beside 1 on both
    servers, checked, switched to and 1 unloaded, under open-loop load through the gateway."""
    from serving.rollout.__main__ import OK, run
    from serving.rollout.log import Action, Event
    from serving.rollout.settings import GATEWAY_FOLLOW_S, compose
    from tests.serving.openloop import OpenLoad
    from training.copy_version import copy_version

    copy_version(stack.artifacts, 1, 2)
    load = OpenLoad(stack.gateway, 60.0, ("tfserving", "torchserve", "torchserve-onnx"), test_split.x_test[0]).start()
    time.sleep(1.0)
    try:
        log, status = run(compose(stack.artifacts, Action.ROLL, 2, ports=stack.ports()), notify=print)
    finally:
        time.sleep(1.5)
        answers = load.stop()
    if not log.ok:  # what the servers said
        for service in ("tfserving", "torchserve"):
            logs = subprocess.run(
                ["docker", "logs", "--tail", "40", stack.container(service)], capture_output=True, text=True
            )
            print(f"--- {service}\n{logs.stdout}{logs.stderr}")
    assert status == OK and log.ok, log.message
    failed = [a for a in answers if a.status != 200]
    assert failed == [], f"{len(failed)} of {len(answers)} failed: {failed[:5]}"
    assert {a.version for a in answers} == {"1", "2"}
    for server in ("tfserving", "torchserve"):
        switched = log.at(server, Event.SWITCHED)
        assert switched is not None and log.at(server, Event.OLD_UNLOADED) is not None
        after = {a.version for a in answers if a.sent > switched.wall + GATEWAY_FOLLOW_S and server in a.backend}
        assert after == {"2"}, server
    backends = {b["name"]: b for b in httpx.get(f"{stack.gateway}/v1/backends", timeout=10).json()["backends"]}
    assert {name: b["versions"] for name, b in backends.items()} == {name: ["2"] for name in backends}
    stack.timings["rollout"] = {
        "requests": len(answers),
        "failed": len(failed),
        "load_requested_to_serving_s": {s: round(log.time_to_serving(s) or 0, 2) for s in log.servers},
    }


@pytest.mark.parametrize("protocol", ["rest", "grpc"])
def test_predictions_equal_the_artifacts_in_process(stack: Stack, expected, protocol: str) -> None:
    rows, want = expected
    if protocol == "grpc":  # the gateway recreated with gRPC clients for both servers
        grpc = {"GATEWAY_TFSERVING_PROTOCOL": "grpc", "GATEWAY_TORCHSERVE_PROTOCOL": "grpc"}
        stack.env.update(grpc)
        stack.compose("up", "-d", "--no-build", "--no-deps", "gateway")
        wait_healthy(stack, ("gateway",), HEALTHY_WITHIN_S)
    backends = {
        b["name"]: b["protocol"] for b in httpx.get(f"{stack.gateway}/v1/backends", timeout=10).json()["backends"]
    }
    assert set(backends.values()) == {protocol}
    for backend, probs in want.items():
        r = _predict(stack, backend, rows)
        assert r.status_code == 200, r.text
        np.testing.assert_allclose(np.asarray(r.json()["predictions"]), probs, atol=1e-5)


def test_image_and_compare_answer(stack: Stack, expected) -> None:
    from tests.gateway.conftest import png_bytes

    rows, _ = expected
    png = png_bytes(rows[0])
    r = httpx.post(f"{stack.gateway}/v1/predict/image", files={"file": ("d.png", png, "image/png")}, timeout=30)
    assert r.status_code == 200 and len(r.json()["predictions"][0]) == 10, r.text
    r = httpx.post(f"{stack.gateway}/v1/compare", files={"file": ("d.png", png, "image/png")}, timeout=30)
    assert r.status_code == 200 and set(r.json()["results"]) == {"tfserving", "torchserve"}, r.text


def test_non_root_read_only_and_epoll(stack: Stack) -> None:
    for service in SERVICES:
        c = stack.container(service)
        assert inspect(c, "{{.HostConfig.ReadonlyRootfs}}") == "true", service
        processes = docker("top", c, "-o", "uid,pid,args").splitlines()[1:]  # docker top needs a pid column
        assert processes and all(line.split()[0] not in ("0", "root") for line in processes), (service, processes)
    logs = subprocess.run(["docker", "logs", stack.container("torchserve")], capture_output=True, text=True, check=True)
    text = logs.stdout + logs.stderr
    assert "Initialize Inference server with: EpollServerSocketChannel" in text
    assert "cannot be executed" not in text


def test_running_containers_use_the_table(stack: Stack) -> None:
    """The compose stack's servers run with serving/environments.py's `compose` settings: the stand-in
    got the real server's flags and named the ones it ignores; TorchServe's JVM got the tuned flags."""
    from serving.environments import TFSERVING, TORCHSERVE, Environment
    from serving.tfserving import config as tf_config
    from serving.tfserving_standin.__main__ import IGNORED_FLAGS
    from serving.torchserve import config as ts_config

    tf = stack.container("tfserving")
    assert json.loads(inspect(tf, "{{json .Config.Cmd}}")) == tf_config.argv(Environment.COMPOSE)
    given = [f for f in IGNORED_FLAGS if f in TFSERVING[Environment.COMPOSE].flags]
    logs = subprocess.run(["docker", "logs", tf], capture_output=True, text=True, check=True)
    named = "accepted but not honoured by the stand-in: " + ", ".join(f"--{f}" for f in given)
    assert named in logs.stdout + logs.stderr
    ts = stack.container("torchserve")
    env = dict(e.split("=", 1) for e in json.loads(inspect(ts, "{{json .Config.Env}}")))
    assert {k: env.get(k) for k in TORCHSERVE[Environment.COMPOSE].env} == dict(TORCHSERVE[Environment.COMPOSE].env)
    java = [line for line in docker("top", ts, "-o", "pid,args").splitlines() if "ModelServer" in line]
    assert java and all(flag in java[0] for flag in ts_config.read()["vmargs"].split()), java


def test_killed_torchserve_restarts_while_the_gateway_falls_back(stack: Stack, expected) -> None:
    rows, _ = expected
    c = stack.container("torchserve")
    restarts = int(inspect(c, "{{.RestartCount}}"))
    os.kill(int(inspect(c, "{{.State.Pid}}")), signal.SIGKILL)  # a crash; `docker kill` would count as a stop
    deadline = time.monotonic() + 10
    while inspect(c, "{{.State.Running}}") == "true" and int(inspect(c, "{{.RestartCount}}")) == restarts:
        assert time.monotonic() < deadline, "the container did not go down"
        time.sleep(0.05)
    down = _predict(stack, "torchserve", rows[:1])
    assert down.status_code == 503 and down.json()["error"]["backend"] == "torchserve", down.text
    assert _predict(stack, "auto", rows[:1]).status_code == 200  # TF Serving keeps serving
    took = wait_healthy(stack, ("torchserve",), RESTART_WITHIN_S)
    assert int(inspect(c, "{{.RestartCount}}")) == restarts + 1
    deadline = time.monotonic() + 30
    while _predict(stack, "torchserve", rows[:1]).status_code != 200:  # the breaker probes it back
        assert time.monotonic() < deadline
        time.sleep(1)
    stack.timings["torchserve_restart_to_healthy_s"] = round(took, 1)


def test_load_profile_runs_and_writes_readable_reports(stack: Stack) -> None:
    load = {**stack.env, "LOAD_RUN_TIME": "20s", "LOAD_USERS": "8", "LOAD_WARMUP_S": "2"}
    start = time.monotonic()
    compose(
        "--profile",
        "load",
        "up",
        "--no-build",
        "--exit-code-from",
        "locust-master",
        "locust-master",
        "locust-worker",
        env=load,
        project=stack.project,
    )
    stack.timings["load_profile_s"] = round(time.monotonic() - start, 1)
    for name in ("compose_stats.csv", "compose.html"):
        assert (stack.reports / name).is_file(), name
    with (stack.reports / "compose_stats.csv").open() as fh:
        stats = {row["Name"]: row for row in csv.DictReader(fh)}
    assert int(stats["Aggregated"]["Failure Count"]) == 0 and int(stats["Aggregated"]["Request Count"]) > 100
    exact = sorted(stack.reports.glob("exact.*.json"))
    # The workers ship their rows to the master, which writes one Recording per worker.
    assert [f.name for f in exact] == ["exact.worker-0.json", "exact.worker-1.json"], exact
    names = set().union(*(json.loads(f.read_text())["samples_ms"] for f in exact))
    assert names == {
        "tfserving", "torchserve", "torchserve-onnx", "gateway-tfserving", "gateway-torchserve",
        "gateway-torchserve-onnx", "gateway-image", "gateway-compare",
    }  # fmt: skip
    for f in stack.reports.iterdir():  # the host user reads and deletes what the containers wrote
        assert f.read_bytes() is not None
        f.unlink()
    for service in ("locust-master", "locust-worker"):
        c = stack.compose("--profile", "load", "ps", "-aq", service).stdout.split()[0]
        assert inspect(c, "{{.HostConfig.ReadonlyRootfs}}") == "true" and inspect(c, "{{.Config.User}}") == "10001"


def test_docker_stop_is_graceful_and_quick(stack: Stack) -> None:
    for service in ("gateway", "torchserve", "tfserving"):
        c = stack.container(service)
        start = time.monotonic()
        docker("stop", c)
        took = time.monotonic() - start
        stack.timings.setdefault("stop_s", {})[service] = round(took, 1)
        assert took < STOP_WITHIN_S, (service, took)
        assert inspect(c, "{{.State.ExitCode}}") == "0", (service, inspect(c, "{{.State.ExitCode}}"))
