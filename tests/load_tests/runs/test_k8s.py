"""The in-cluster load test: every run starts fresh under its own names, its report is fetched by a
restricted pod, and workers that share no volume with the master still get their exact timings written."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from load_tests.contracts import Recording
from load_tests.runs import k8s
from mnist_serving.ports import local_url
from tests.conftest import REPO
from tests.deploy.conftest import render
from tests.deploy.kube import restricted_violations, validate


@pytest.fixture(scope="module")
def docs() -> list[dict]:
    return render("load-test")


def test_two_runs_share_nothing_but_the_pvc_and_policy(docs: list[dict]) -> None:
    shared_a, fresh_a = k8s.plan(docs, "20261123-070000")
    shared_b, fresh_b = k8s.plan(docs, "20261123-070500")
    assert shared_a == shared_b and {d["kind"] for d in shared_a} == {"PersistentVolumeClaim", "NetworkPolicy"}
    names_a = {(d["kind"], d["metadata"]["name"]) for d in fresh_a}
    names_b = {(d["kind"], d["metadata"]["name"]) for d in fresh_b}
    assert names_a == {
        ("Service", "locust-master-20261123-070000"),
        ("Job", "locust-master-20261123-070000"),
        ("Job", "locust-worker-20261123-070000"),
    }
    assert not names_a & names_b
    assert [d["metadata"]["name"] for d in docs if d["kind"] == "Job"] == [
        "locust-master",
        "locust-worker",
    ]  # untouched


def test_a_run_is_wired_to_itself(docs: list[dict]) -> None:
    run = "20261123-070000"
    _, fresh = k8s.plan(docs, run)
    by = {(d["kind"], d["metadata"]["name"].rsplit("-", 2)[0]): d for d in fresh}
    service = by[("Service", "locust-master")]
    master = by[("Job", "locust-master")]["spec"]["template"]
    worker = by[("Job", "locust-worker")]["spec"]["template"]
    assert service["spec"]["selector"].items() <= master["metadata"]["labels"].items()
    assert not service["spec"]["selector"].items() <= worker["metadata"]["labels"].items()
    args = worker["spec"]["containers"][0]["args"]
    assert args[args.index("--master-host") + 1] == service["metadata"]["name"]
    env = {e["name"]: e["value"] for e in master["spec"]["containers"][0]["env"]}
    assert env["LOAD_RUN"] == run
    for doc in fresh:
        validate(doc)
        assert len(doc["metadata"]["name"]) <= 63


def test_run_ids_are_dns_labels() -> None:
    run = k8s.new_run_id()
    assert run.replace("-", "").isdigit() and len(f"locust-worker-{run}") <= 63


def test_the_fetch_pod_passes_restricted_pod_security() -> None:
    pod = k8s.fetch_pod("20261123-070000", "mnist-serving/locust:0.1.0")
    pod["metadata"]["namespace"] = "mnist-serving"
    validate(pod)
    assert restricted_violations(pod["spec"]) == []
    assert pod["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"] == k8s.REPORTS_CLAIM


def _locust(*args: str, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "locust", "-f", "load_tests/generator/locustfile.py", *args],
        cwd=REPO,
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_workers_without_a_shared_volume_ship_exact_timings_to_the_master(serving_stack, tmp_path: Path) -> None:
    """A real master and worker (as in the Kubernetes Jobs: only the master has LOAD_EXACT_OUT)."""
    from serving.native.process import free_ports

    (port,) = free_ports(1)
    url = {"TFSERVING_URL": local_url(serving_stack.ports.tfserving_rest)}
    exact = tmp_path / "exact"
    master = _locust(
        "--master",
        "--headless",
        "--expect-workers",
        "1",
        "-u",
        "2",
        "-r",
        "2",
        "-t",
        "4s",
        "--master-bind-host",
        "127.0.0.1",
        "--master-bind-port",
        str(port),
        "TFServingUser",
        env={**url, "LOAD_EXACT_OUT": str(exact)},
    )
    worker = _locust("--worker", "--master-host", "127.0.0.1", "--master-port", str(port), env=url)
    try:
        out, _ = master.communicate(timeout=90)
        worker.wait(timeout=30)
    finally:
        for p in (master, worker):
            if p.poll() is None:
                p.kill()
    assert master.returncode == 0, out
    files = sorted(exact.parent.glob("exact.*.json"))
    shipped = [f for f in files if ".worker-" in f.name]
    assert len(shipped) == 1, [f.name for f in files]
    rec = Recording.loads(shipped[0].read_bytes())
    samples = rec.samples_ms["tfserving"]
    assert len(samples) > 20 and rec.failures == {}
    assert all(0 < s < 5000 for s in samples)
