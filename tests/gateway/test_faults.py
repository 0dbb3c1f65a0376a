"""A backend that refuses, hangs, errors or answers garbage: documented status, in time, gateway stays up."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from mnist_serving.ports import local_url
from serving.native.process import free_ports
from tests.gateway.helpers import FakeBackend, gateway, serve_in_thread

ROW = [0.0] * 784
TIMEOUT_S = 0.5


@pytest.fixture
def fake() -> Iterator[tuple[FakeBackend, str]]:
    backend = FakeBackend()
    with serve_in_thread(backend.app) as url:
        yield backend, url


def _predict(url: str, backend: str = "tfserving") -> tuple[httpx.Response, float]:
    start = time.perf_counter()
    r = httpx.post(f"{url}/v1/predict", params={"backend": backend}, json={"instances": [ROW]}, timeout=10)
    return r, time.perf_counter() - start


@pytest.mark.parametrize(
    ("mode", "status", "kind"),
    [
        ("500", 502, "bad_backend_response"),
        ("garbage", 502, "bad_backend_response"),
        ("wrong_shape", 502, "bad_backend_response"),
        ("hang", 504, "backend_timeout"),
    ],
)
def test_misbehaving_backend(fake, mode: str, status: int, kind: str) -> None:
    backend, url = fake
    backend.mode = mode
    with gateway(tfserving_url=url, default_timeout_ms=TIMEOUT_S * 1000, breaker_failures=100) as gw:
        r, elapsed = _predict(gw)
        assert r.status_code == status, r.text
        error = r.json()["error"]
        assert error["type"] == kind and error["backend"] == "tfserving" and error["message"]
        assert elapsed < TIMEOUT_S + 1.5
        assert httpx.get(f"{gw}/healthz").status_code == 200


def test_refused_connection_is_503_and_retried_once(fake) -> None:
    (dead_port,) = free_ports(1)
    with gateway(tfserving_url=local_url(dead_port), default_timeout_ms=TIMEOUT_S * 1000) as gw:
        r, elapsed = _predict(gw)
        assert r.status_code == 503 and "cannot reach" in r.json()["error"]["message"]
        assert elapsed < 1.0
        metrics = httpx.get(f"{gw}/metrics").text
        assert 'gateway_backend_errors_total{backend="tfserving",kind="backend_unavailable"} 1.0' in metrics


def test_auto_falls_back_to_the_other_server(fake, serving_stack) -> None:
    backend, url = fake
    backend.mode = "500"
    ts = local_url(serving_stack.ports.torchserve_inference)
    mgmt = local_url(serving_stack.ports.torchserve_management)
    with gateway(
        tfserving_url=url, torchserve_url=ts, torchserve_management_url=mgmt, default_timeout_ms=TIMEOUT_S * 1000
    ) as gw:
        r, _ = _predict(gw, "auto")
        assert r.status_code == 200, r.text
        assert r.json()["backend"] == "torchserve" and r.json()["fallback_from"] == "tfserving"
        (dead_port,) = free_ports(1)
    with gateway(
        tfserving_url=local_url(dead_port),
        torchserve_url=ts,
        torchserve_management_url=mgmt,
        default_timeout_ms=TIMEOUT_S * 1000,
    ) as gw:
        r, _ = _predict(gw, "auto")
        assert r.status_code == 200 and r.json()["backend"] == "torchserve"


def test_circuit_breaker_opens_and_probes_back(fake) -> None:
    backend, url = fake
    backend.mode = "500"
    with gateway(tfserving_url=url, breaker_failures=3, breaker_reset_s=0.5) as gw:
        for _ in range(3):
            assert _predict(gw)[0].status_code == 502
        calls = backend.calls
        r, elapsed = _predict(gw)
        assert r.status_code == 503 and "circuit open" in r.json()["error"]["message"]
        assert backend.calls == calls and elapsed < 0.2  # failed fast, backend not called
        backends = {b["name"]: b for b in httpx.get(f"{gw}/v1/backends").json()["backends"]}
        assert backends["tfserving"]["circuit"] == "open"
        backend.mode = "ok"
        time.sleep(0.6)
        r, _ = _predict(gw)  # the probe
        assert r.status_code == 200 and r.json()["labels"] == [3]
        assert _predict(gw)[0].status_code == 200


def test_a_restarted_backend_is_probed_as_soon_as_it_is_ready() -> None:
    """Not after the breaker's whole pause (60 s here): the gateway watches an open circuit's backend."""
    (port,) = free_ports(1)
    with gateway(tfserving_url=local_url(port), breaker_failures=2, breaker_reset_s=60) as gw:
        for _ in range(2):
            assert _predict(gw)[0].status_code == 503
        circuits = {b["name"]: b["circuit"] for b in httpx.get(f"{gw}/v1/backends").json()["backends"]}
        assert circuits["tfserving"] == "open"
        time.sleep(0.8)  # the watcher sees it down
        backend = FakeBackend()
        with serve_in_thread(backend.app, port):
            start = time.monotonic()
            while _predict(gw)[0].status_code != 200:
                assert time.monotonic() - start < 5, "not back in rotation within 5 s of being ready"
                time.sleep(0.1)
            assert backend.calls == 1  # refused fast until the probe, which succeeded


def test_compare_reports_the_dead_backend_and_answers_with_the_other(fake, serving_stack) -> None:
    (dead_port,) = free_ports(1)
    ts = local_url(serving_stack.ports.torchserve_inference)
    mgmt = local_url(serving_stack.ports.torchserve_management)
    with gateway(tfserving_url=local_url(dead_port), torchserve_url=ts, torchserve_management_url=mgmt) as gw:
        r = httpx.post(f"{gw}/v1/compare", json={"instances": [ROW]}, timeout=10)
        assert r.status_code == 200
        body = r.json()
        assert body["results"]["tfserving"]["error"]["status"] == 503
        assert len(body["results"]["torchserve"]["labels"]) == 1 and body["labels_agree"] is None
        ready = httpx.get(f"{gw}/readyz").json()
        assert "tfserving" not in ready["ready_backends"] and "torchserve" in ready["ready_backends"]


def test_readyz_is_503_when_nothing_is_up() -> None:
    dead = [local_url(p) for p in free_ports(2)]
    with gateway(tfserving_url=dead[0], torchserve_url=dead[1], torchserve_management_url=dead[1]) as gw:
        assert httpx.get(f"{gw}/readyz").status_code == 503
        assert httpx.get(f"{gw}/healthz").status_code == 200
