"""Every environment runs each server with what serving/environments.py declares for it, and checks
its readiness with the one command its config owner renders: the images, compose (CPU and GPU) and
every Kubernetes overlay (plain and KServe, CPU and GPU)."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from serving.environments import TFSERVING, TORCHSERVE, Environment
from serving.tfserving import config as tf_config
from tests.conftest import REPO
from tests.deploy.conftest import compose

Objects = list[dict[str, Any]]
BASE, GPU, STANDIN = "docker-compose.yml", "docker-compose.gpu.yml", "docker-compose.standin.yml"
# The environment variables that are server settings (the rest is plumbing: addresses, paths).
SETTING = re.compile(r"^(OMP_|TS_NUMBER|TS_ENABLE_MODEL_API|REQUIRE_GPU|CUDA_|TF_|NVIDIA_TF32|MKL_)")
TORCHSERVE_READY = ["python", "-m", "serving.torchserve.ready"]
# Kubernetes variant -> (environment, TF Serving's workload name, TorchServe's)
K8S = {
    "cpu": (Environment.KUBERNETES, "tfserving", "torchserve"),
    "gpu": (Environment.KUBERNETES_GPU, "tfserving", "torchserve"),
    "gpu-operator": (Environment.KUBERNETES_GPU, "tfserving", "torchserve"),
    "cpu-prometheus": (Environment.KUBERNETES, "tfserving", "torchserve"),
    "kserve": (Environment.KUBERNETES, "mnist-tfserving", "mnist-torchserve"),
    "kserve-gpu": (Environment.KUBERNETES_GPU, "mnist-tfserving", "mnist-torchserve"),
}


def _settings(env: dict[str, str] | list[dict[str, str]] | None) -> dict[str, str]:
    pairs = env.items() if isinstance(env, dict) else ((e["name"], e.get("value", "")) for e in env or [])
    return {k: str(v) for k, v in pairs if SETTING.match(k)}


def _dockerfile_json(path: str, instruction: str) -> list[str]:
    """A Dockerfile instruction's exec-form JSON array (continuation lines joined)."""
    text = (REPO / path).read_text().replace("\\\n", " ")
    (line,) = [ln for ln in text.splitlines() if ln.startswith(f"{instruction} ")]
    return list(json.loads(line[line.index("[") :]))


def _pod_containers(objs: Objects) -> dict[str, dict[str, Any]]:
    out = {}
    for o in objs:
        if o["kind"] == "Deployment":
            out[o["metadata"]["name"]] = o["spec"]["template"]["spec"]["containers"][0]
        elif o["kind"] == "InferenceService":
            out[o["metadata"]["name"]] = o["spec"]["predictor"]["containers"][0]
    return out


# ---- the images (compose and Kubernetes CPU run them as built) -----------------------------------


@pytest.mark.parametrize("dockerfile", ["serving/tfserving/Dockerfile", "serving/tfserving_standin/Dockerfile"])
def test_tfserving_images_run_the_cpu_containers_flags_and_ready_check(dockerfile: str) -> None:
    assert _dockerfile_json(dockerfile, "CMD") == tf_config.argv(Environment.COMPOSE)
    assert _dockerfile_json(dockerfile, "HEALTHCHECK") == tf_config.ready_command(Environment.COMPOSE)


def test_torchserve_image_defaults_are_the_cpu_containers_settings() -> None:
    """The image carries the CPU settings; the model API stays off in it (Kubernetes runs it as
    built), compose turns it on for `make rollout` (checked below)."""
    text = (REPO / "serving/torchserve/Dockerfile").read_text()
    for key, value in TORCHSERVE[Environment.KUBERNETES].env.items():
        assert re.search(rf"\b{key}={re.escape(value)}\b", text), key
    assert "TS_ENABLE_MODEL_API" not in text
    assert _dockerfile_json("serving/torchserve/Dockerfile", "HEALTHCHECK") == TORCHSERVE_READY


# ---- compose -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("files", "environment"),
    [((BASE,), Environment.COMPOSE), ((BASE, STANDIN), Environment.COMPOSE), ((BASE, GPU), Environment.COMPOSE_GPU)],
)
def test_compose_runs_the_table(files: tuple[str, ...], environment: Environment) -> None:
    services = compose(*files)["services"]
    tf, ts = services["tfserving"], services["torchserve"]
    # CPU: the image's CMD (checked above); GPU: its own command.
    assert tf.get("command") in (None, tf_config.argv(environment)) and (
        environment is Environment.COMPOSE or tf.get("command") == tf_config.argv(environment)
    )
    assert _settings(tf.get("environment")) == dict(TFSERVING[environment].env)
    assert _settings(ts.get("environment")) == dict(TORCHSERVE[environment].env)
    assert tf["healthcheck"]["test"] == ["CMD-SHELL", tf_config.ready_command(environment)[2]]
    assert ts["healthcheck"]["test"] == ["CMD", *TORCHSERVE_READY]


# ---- Kubernetes ----------------------------------------------------------------------------------


@pytest.mark.parametrize("variant", list(K8S))
def test_every_overlay_runs_the_table(rendered: dict[str, Objects], variant: str) -> None:
    environment, tf_name, ts_name = K8S[variant]
    containers = _pod_containers(rendered[variant])
    tf, ts = containers[tf_name], containers[ts_name]
    assert tf["args"] == tf_config.argv(environment)
    assert _settings(tf.get("env")) == dict(TFSERVING[environment].env)
    assert _settings(ts.get("env")) == dict(TORCHSERVE[environment].env)
    assert tf["readinessProbe"]["exec"]["command"] == tf_config.ready_command(environment)
    assert ts["readinessProbe"]["exec"]["command"] == TORCHSERVE_READY
    for probe in ("startupProbe",):
        if probe in tf:
            assert tf[probe]["exec"]["command"] == tf_config.ready_command(Environment.KUBERNETES)
        if probe in ts:
            assert ts[probe]["exec"]["command"] == TORCHSERVE_READY
