"""Deployment files repeat the spec's facts (ports, model names) in their own formats; this checks
every such mention against mnist_serving, so changing a fact there fails here until each file follows."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from mnist_serving import ports, spec
from tests.conftest import REPO

# Every port the project's services listen on inside a container, plus Locust's own (web UI, master).
LOCUST_PORTS = {8089, 5557}
# Knative's queue-proxy (requests, metrics), which the KServe canary component's policies admit.
KNATIVE_PORTS = {8012, 9090}
SPEC_PORTS = {v for k, v in vars(ports).items() if k.isupper() and isinstance(v, int)} | LOCUST_PORTS | KNATIVE_PORTS
MODEL_NAMES = {spec.TF_MODEL_NAME, spec.TORCH_MODEL_NAME, spec.ONNX_MODEL_NAME}
# A number in one of these places is a port.
PORT_CONTEXT = re.compile(
    r"(?:containerPort|targetPort|port|Port|EXPOSE)[\"']?\s*[:=]?\s*\[?\s*(\d{2,5})"
    r"|(?:127\.0\.0\.1|0\.0\.0\.0|localhost|\b[a-z][a-z0-9-]*):(\d{4,5})\b"
    r"|:-(\d{4,5})\}"
    r"|EXPOSE((?:\s+\d{2,5})+)"
)
MODEL_CONTEXT = re.compile(
    r"(?:/models/|/predictions/|\"model_name\":\s*\"|name:\s*\"?|\bmodel=)(mnist[a-z_]*)\b"
    r"|\b(mnist[a-z_]*)\.mar\b|\"(mnist[a-z_]*)\":\s*\{"
)
HTTP_PORTS = {80, 443}  # Service ports in front of the containers' own
DNS_PORT = 53  # the cluster's DNS, which the NetworkPolicies let every pod reach


def _deployment_files() -> list[Path]:
    listed = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
    pattern = re.compile(
        r"(^k8s/.*\.ya?ml$|^docker-compose.*\.yml$|Dockerfile$|\.properties$|^serving/tfserving/.*\.config$)"
    )
    return [REPO / f for f in listed if pattern.search(f) and "schemas" not in f]


FILES = _deployment_files()


def _ports(text: str) -> list[int]:
    found = []
    for m in PORT_CONTEXT.finditer(text):
        for g in m.groups():
            if g:
                found += [int(n) for n in g.split()]
    return found


def _models(text: str) -> set[str]:
    return {g for groups in MODEL_CONTEXT.findall(text) for g in groups if g}


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(REPO)))
def test_ports_are_the_specs(path: Path) -> None:
    unknown = sorted({p for p in _ports(path.read_text()) if p not in SPEC_PORTS | HTTP_PORTS | {DNS_PORT, 10001}})
    assert unknown == [], f"{path.name} names ports the spec does not have: {unknown}"


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(REPO)))
def test_model_names_are_the_specs(path: Path) -> None:
    names = {m for m in _models(path.read_text()) if m != "mnist_serving"}
    assert names <= MODEL_NAMES, f"{path.name} names models the spec does not have: {names - MODEL_NAMES}"


def test_the_checks_see_the_facts() -> None:
    """Patterns that matched nothing would pass the tests above on any file."""
    every = [p for f in FILES for p in _ports(f.read_text())]
    assert {ports.TFSERVING_REST, ports.TFSERVING_GRPC, ports.TORCHSERVE_INFERENCE, ports.TORCHSERVE_MANAGEMENT,
            ports.TORCHSERVE_METRICS, ports.TORCHSERVE_GRPC_INFERENCE, ports.GATEWAY} <= set(every)  # fmt: skip
    names = {m for f in FILES for m in _models(f.read_text())}
    assert {spec.TORCH_MODEL_NAME, spec.ONNX_MODEL_NAME} <= names
    assert len(FILES) > 15
