from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import REPO

BIN = Path(sys.executable).parent  # kubectl, docker-compose and hadolint come from the dev requirements
# Every deployable kustomization, rendered exactly as `kubectl apply -k` would: no flags.
RENDERED = {
    "cpu": REPO / "k8s/overlays/cpu",
    "gpu": REPO / "k8s/overlays/gpu",
    "gpu-operator": REPO / "k8s/overlays/gpu-operator",
    "cpu-prometheus": REPO / "k8s/overlays/cpu-prometheus",
    "kserve": REPO / "k8s/kserve",
    "kserve-gpu": REPO / "k8s/kserve-gpu",
    "kserve-canary": REPO / "k8s/overlays/kserve-canary",
    "load-test": REPO / "k8s/load-test",
}


def run(*args: str, env: dict[str, str] | None = None) -> str:
    full_env = {**os.environ, **env} if env else None
    proc = subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=120, env=full_env)
    assert proc.returncode == 0, proc.stderr or proc.stdout
    return proc.stdout


def render(name: str) -> list[dict[str, Any]]:
    return render_dir(RENDERED[name])


def render_dir(folder: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(run(str(BIN / "kubectl"), "kustomize", str(folder))) if d]


@pytest.fixture(scope="session")
def rendered() -> dict[str, list[dict[str, Any]]]:
    return {name: render(name) for name in RENDERED}


def compose(*files: str, profile: str | None = None, env: dict[str, str] | None = None) -> dict[str, Any]:
    args = [str(BIN / "docker-compose")]
    for f in files:
        args += ["-f", f]
    if profile:
        args += ["--profile", profile]
    return json.loads(run(*args, "config", "--format", "json", env=env))
