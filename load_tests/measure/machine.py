"""What every run records about the machine it ran on: the machine and its state (load, idle,
clock), the versions, each server's batching, the tree it ran from (commit, and whether it had
uncommitted changes), and a GPU sampler when a GPU is present. Moved here from reports/: it
measures; the reports only read what it recorded."""

from __future__ import annotations

import contextlib
import os
import platform
import shutil
import subprocess
import threading
from importlib import metadata
from pathlib import Path
from typing import Any

import httpx

from load_tests import results

REPO = Path(__file__).resolve().parents[2]
GPU_SAMPLE_S = 1.0


class GpuSampler:
    """GPU utilisation samples from nvidia-smi during the run, when a GPU is present."""

    def __init__(self) -> None:
        self.samples: list[dict[str, float]] = []
        self._stop = threading.Event()
        self._thread = None
        if shutil.which("nvidia-smi"):
            self._thread = threading.Thread(target=self._loop, daemon=True)
            self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(GPU_SAMPLE_S):
            with contextlib.suppress(Exception):
                out = subprocess.run(
                    ["nvidia-smi", "--query-gpu=utilization.gpu,memory.used", "--format=csv,noheader,nounits"],
                    capture_output=True,
                    text=True,
                    timeout=5,
                    check=True,
                ).stdout.splitlines()[0]
                util, mem = (float(v) for v in out.split(","))
                self.samples.append({"util_pct": util, "mem_mib": mem})

    def stop(self) -> list[dict[str, float]]:
        self._stop.set()
        if self._thread:
            self._thread.join(5)
        return self.samples


def _version(pkg: str) -> str:
    try:
        return metadata.version(pkg)
    except metadata.PackageNotFoundError:
        return "not installed"


def _tf_batching() -> str:
    from serving.tfserving import config

    return config.batching_summary()


def torchserve_batching() -> str:
    """Each model's batchSize, maxBatchDelay and workers, read from the config TorchServe runs with."""
    from serving.torchserve import config

    return config.batching_summary(config.read()) + " (config.properties)"


def server_settings() -> dict[str, Any]:
    """What the native servers of a report ran with, from the one table (serving/environments.py)."""
    from serving.environments import TFSERVING, TORCHSERVE, Environment
    from serving.torchserve import config

    props = config.read()
    return {
        "torchserve_env": dict(TORCHSERVE[Environment.NATIVE].env),
        "torchserve_tuning": {k: props[k] for k in config.TUNING_KEYS if k in props},
        "tfserving_flags": TFSERVING[Environment.NATIVE].argv(),
    }


def source() -> results.Source:
    """The tree the run measures: ``git rev-parse HEAD`` and whether ``git status --porcelain`` is empty."""
    commit, changes = "?", ["git not available"]
    with contextlib.suppress(Exception):
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain"], cwd=REPO, capture_output=True, text=True, timeout=30, check=True
        )
        changes = status.stdout.splitlines()
    return results.Source(commit=commit, dirty=bool(changes), changes=changes[:50])


def load_average() -> list[str]:
    return Path("/proc/loadavg").read_text().split()[:3]


def environment(gateway_url: str, pinning: str = "") -> results.Environment:
    """The machine, the versions and the servers' settings (TF Serving's implementation from the
    gateway's /v1/backends when it answers, else from what is on PATH)."""
    cpu = platform.processor() or "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    gpu = "none"
    if shutil.which("nvidia-smi"):
        with contextlib.suppress(Exception):
            gpu = (
                subprocess.run(
                    ["nvidia-smi", "--query-gpu=name,driver_version", "--format=csv,noheader"],
                    capture_output=True,
                    text=True,
                    timeout=10,
                    check=True,
                ).stdout.strip()
                or "none"
            )
    backends: list[dict[str, Any]] = []
    with contextlib.suppress(Exception):
        backends = httpx.get(f"{gateway_url}/v1/backends", timeout=5).json()["backends"]
    tf_impl = next((b.get("implementation", "?") for b in backends if b["name"] == "tfserving"), None)
    if tf_impl is None:
        from serving.native.tfserving import implementation

        tf_impl = implementation()
    state = machine_state()
    return results.Environment(
        cpu=cpu,
        cores=os.cpu_count() or 1,
        gpu=gpu,
        servers_on="GPU" if gpu != "none" else "CPU",
        tfserving="stand-in (serving/tfserving_standin)" if tf_impl == "standin" else f"{tf_impl} binary",
        python=platform.python_version(),
        versions={
            p: _version(p) for p in ("tensorflow", "torch", "torchserve", "onnxruntime", "locust", "fastapi", "aiohttp")
        },
        tf_batching=_tf_batching(),
        torchserve_batching=torchserve_batching(),
        pinning=pinning,
        load_avg_before=state["load_avg_before"],
        load_avg_after=[],
        cpu_mhz=state.get("cpu_mhz"),
        server_settings={**server_settings(), "backends": backends},
    )


def environment_dict(gateway_url: str) -> dict[str, Any]:
    """``environment`` as the untyped dict the sweep and matrix reports read (with git_commit)."""
    import dataclasses

    env = dataclasses.asdict(environment(gateway_url))
    env.update(machine_state())
    env["backends"] = env["server_settings"].pop("backends", [])
    return env


def machine_state() -> dict[str, Any]:
    """What else the machine was doing, and what it is, now; and the commit (short) and whether the
    tree had changes."""
    state: dict[str, Any] = {"load_avg_before": load_average()}
    with contextlib.suppress(OSError):
        mhz = [float(ln.split(":")[1]) for ln in Path("/proc/cpuinfo").read_text().splitlines() if "cpu MHz" in ln]
        state["cpu_mhz"] = round(sum(mhz) / len(mhz)) if mhz else None
    src = source()
    state["git_commit"] = src.commit[:12]
    state["git_dirty"] = src.dirty
    return state
