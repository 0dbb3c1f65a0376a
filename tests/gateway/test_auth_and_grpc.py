"""API keys when configured; gRPC clients give the same answers as REST."""

from __future__ import annotations

import httpx
import numpy as np
import pytest

from mnist_serving.ports import local_address, local_url
from tests.gateway.helpers import gateway

ROW = [0.0] * 784


def test_api_keys(serving_stack) -> None:
    tf = local_url(serving_stack.ports.tfserving_rest)
    with gateway(tfserving_url=tf, api_keys="k1, k2") as gw:
        url = f"{gw}/v1/predict"
        assert httpx.post(url, json={"instances": [ROW]}).status_code == 401
        assert httpx.post(url, json={"instances": [ROW]}, headers={"X-API-Key": "nope"}).status_code == 401
        assert httpx.post(url, json={"instances": [ROW]}, headers={"X-API-Key": "k2"}).status_code == 200
        assert httpx.post(url, json={"instances": [ROW]}, headers={"Authorization": "Bearer k1"}).status_code == 200
        assert httpx.get(f"{gw}/healthz").status_code == 200  # probes stay open


@pytest.mark.parametrize("backend", ["tfserving", "torchserve", "torchserve-onnx"])
def test_grpc_clients_match_rest(serving_stack, digits, backend: str) -> None:
    p = serving_stack.ports
    common = dict(
        tfserving_url=local_url(p.tfserving_rest),
        tfserving_grpc_address=local_address(p.tfserving_grpc),
        torchserve_url=local_url(p.torchserve_inference),
        torchserve_management_url=local_url(p.torchserve_management),
        torchserve_grpc_address=local_address(p.torchserve_grpc_inference),
    )
    body = {"instances": digits[0][:40].tolist()}  # more than one chunk
    with (
        gateway(**common) as rest_gw,
        gateway(**common, tfserving_protocol="grpc", torchserve_protocol="grpc") as grpc_gw,
    ):
        via_rest = httpx.post(f"{rest_gw}/v1/predict", params={"backend": backend}, json=body, timeout=20).json()
        r = httpx.post(f"{grpc_gw}/v1/predict", params={"backend": backend}, json=body, timeout=20)
        assert r.status_code == 200, r.text
        via_grpc = r.json()
        backends = {b["name"]: b for b in httpx.get(f"{grpc_gw}/v1/backends").json()["backends"]}
    assert backends[backend]["protocol"] == "grpc" and via_grpc["model_version"] == "1"
    np.testing.assert_allclose(np.asarray(via_grpc["predictions"]), np.asarray(via_rest["predictions"]), atol=1e-6)


def test_grpc_bad_request_is_passed_on(serving_stack) -> None:
    p = serving_stack.ports
    with gateway(
        tfserving_grpc_address=local_address(p.tfserving_grpc),
        tfserving_protocol="grpc",
        tfserving_url=local_url(p.tfserving_rest),
        tfserving_model="nope",
    ) as gw:
        r = httpx.post(f"{gw}/v1/predict", params={"backend": "tfserving"}, json={"instances": [ROW]})
        assert r.status_code == 502 and "NOT_FOUND" in r.json()["error"]["message"]
