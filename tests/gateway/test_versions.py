"""Versions through the gateway against a fake TF Serving with two versions: a version per request
(number or label), the answering version in every answer and in the metrics, and a canary split
that is sticky per client."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.gateway.helpers import gateway, serve_in_thread

ROW = [0.0] * 784
LABELS = {"stable": "1", "canary": "2"}


async def _tf(request: Request) -> JSONResponse:
    """Versions 1 and 2; each answers its own number as the label, so the answer shows who computed it."""
    path = request.url.path
    if request.method == "GET":
        if "/labels/" in path:
            label = path.split("/labels/")[1].split("/")[0]
            if label not in LABELS:
                return JSONResponse({"error": "no label"}, 404)
            return JSONResponse({"model_spec": {"name": "mnist", "version": LABELS[label]}})
        states = [{"version": v, "state": "AVAILABLE"} for v in ("1", "2")]
        return JSONResponse({"model_version_status": states})
    version = int(path.split("/versions/")[1].split(":")[0])
    row = [0.0] * 10
    row[version] = 1.0
    return JSONResponse({"predictions": [row]})


@pytest.fixture(scope="module")
def tf() -> Iterator[str]:
    app = Starlette(routes=[Route("/{path:path}", _tf, methods=["GET", "POST"])])
    with serve_in_thread(app) as url:
        yield url


def _predict(gw: str, key: str = "k0", **params: str) -> httpx.Response:
    return httpx.post(f"{gw}/v1/predict", params={"backend": "tfserving", **params}, json={"instances": [ROW]},
                      headers={"X-API-Key": key})  # fmt: skip


def _version(gw: str, key: str = "k0", **params: str) -> str:
    r = _predict(gw, key, **params)
    assert r.status_code == 200, r.text
    version: str = r.json()["model_version"]
    return version


def test_a_version_per_request_by_number_or_label_and_the_answering_version(tf: str) -> None:
    keys = ",".join(f"c{i}:k{i}" for i in range(1))
    with gateway(tfserving_url=tf, api_keys=keys) as gw:
        default = _predict(gw).json()
        assert default["model_version"] == "1" and default["labels"] == [1]  # label stable -> 1
        by_number = _predict(gw, version="2").json()
        assert by_number["model_version"] == "2" and by_number["labels"] == [2]
        by_label = _predict(gw, version="canary").json()
        assert by_label["model_version"] == "2" and by_label["labels"] == [2]
        r = _predict(gw, version="3")
        assert r.status_code == 404 and "loaded: 1, 2" in r.json()["error"]["message"]
        backends = {
            b["name"]: b for b in httpx.get(f"{gw}/v1/backends", headers={"X-API-Key": "k0"}).json()["backends"]
        }
        assert backends["tfserving"]["versions"] == ["1", "2"]
        metrics = httpx.get(f"{gw}/metrics").text
        assert 'gateway_backend_latency_seconds_count{backend="tfserving",model_version="2"} 2.0' in metrics


def test_a_canary_split_is_weighted_and_sticky_per_client(tf: str) -> None:
    clients = 200
    keys = ",".join(f"c{i}:k{i}" for i in range(clients))
    with gateway(tfserving_url=tf, api_keys=keys) as gw:
        admin = {"X-API-Key": "k0"}
        r = httpx.put(f"{gw}/v1/backends/tfserving/canary", json={"version": "2", "percent": 25}, headers=admin)
        assert r.status_code == 200 and r.json() == {"backend": "tfserving", "version": "2", "percent": 25.0}
        first = {i: _version(gw, f"k{i}") for i in range(clients)}
        again = {i: _version(gw, f"k{i}") for i in range(clients)}
        assert first == again  # sticky: a client stays on its side
        share = Counter(first.values())["2"] / clients
        assert 0.15 <= share <= 0.35, share  # 25 % of clients, within sampling error of 200
        assert _version(gw, "k1", version="1") == "1"  # a named version is never split
        r = httpx.put(f"{gw}/v1/backends/tfserving/canary", json={"version": "9", "percent": 5}, headers=admin)
        assert r.status_code == 404  # not loaded
        assert httpx.delete(f"{gw}/v1/backends/tfserving/canary", headers=admin).status_code == 200
        assert {_version(gw, f"k{i}") for i in range(clients)} == {"1"}


def test_only_an_admin_key_changes_a_canary(tf: str) -> None:
    body = {"version": "2", "percent": 10}
    with gateway(tfserving_url=tf, api_keys="ops:k-ops,app:k-app") as gw:
        url = f"{gw}/v1/backends/tfserving/canary"
        r = httpx.put(url, json=body, headers={"X-API-Key": "k-app"})
        assert r.status_code == 403 and r.json()["error"]["type"] == "forbidden"
        assert httpx.delete(url, headers={"X-API-Key": "k-app"}).status_code == 403
        assert httpx.put(url, json=body, headers={"X-API-Key": "k-ops"}).status_code == 200  # the first key's
    with gateway(tfserving_url=tf, api_keys="ops:k-ops,app:k-app", admin_keys="app") as gw:
        url = f"{gw}/v1/backends/tfserving/canary"
        assert httpx.put(url, json=body, headers={"X-API-Key": "k-ops"}).status_code == 403
        assert httpx.put(url, json=body, headers={"X-API-Key": "k-app"}).status_code == 200
    with gateway(tfserving_url=tf) as gw:  # the API open: from this machine (the test's client is on loopback)
        assert httpx.put(f"{gw}/v1/backends/tfserving/canary", json=body).status_code == 200
