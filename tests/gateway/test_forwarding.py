"""What reaches a REST backend: the client's own bytes when they are plain rows, re-encoded JSON
otherwise, and chunks reassembled in order when a backend takes fewer rows."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import numpy as np
import orjson
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.gateway.helpers import gateway, serve_in_thread


class RecordingBackend:
    """Answers each row with a one-hot at round(9 * row[0]), and keeps every body it received."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        self.app = Starlette(routes=[Route("/{path:path}", self.handle, methods=["GET", "POST"])])

    async def handle(self, request: Request) -> Response:
        if request.method == "GET":
            return Response(b'{"model_version_status":[{"version":"3","state":"AVAILABLE"}]}')
        body = await request.body()
        self.bodies.append(body)
        rows = np.asarray(orjson.loads(body)["instances"], dtype=np.float32)
        probs = np.eye(10, dtype=np.float32)[np.round(rows[:, 0] * 9).astype(int)]
        return Response(orjson.dumps({"predictions": probs.tolist()}), media_type="application/json")


@pytest.fixture
def recorder() -> Iterator[tuple[RecordingBackend, str]]:
    backend = RecordingBackend()
    with serve_in_thread(backend.app) as url:
        yield backend, url


def _rows(n: int) -> np.ndarray:
    rows = np.zeros((n, 784), dtype=np.float32)
    rows[:, 0] = (np.arange(n) % 10) / 9  # row i should come back as label i % 10
    return rows


def _post(gw: str, content: bytes) -> httpx.Response:
    return httpx.post(
        f"{gw}/v1/predict?backend=tfserving", content=content, headers={"Content-Type": "application/json"}
    )


def test_plain_rows_are_forwarded_byte_for_byte(recorder) -> None:
    backend, url = recorder
    body = b'{"instances":  [' + orjson.dumps(_rows(3)[0].tolist()) + b", " + orjson.dumps(_rows(3)[1].tolist()) + b"]}"
    with gateway(tfserving_url=url) as gw:
        r = _post(gw, body)
    assert r.status_code == 200, r.text
    assert backend.bodies == [body]  # the same bytes, spacing included: nothing was re-encoded
    assert r.json()["labels"] == [0, 1]


@pytest.mark.parametrize("shape", ["28x28", "signature-name", "tf-columnar"])
def test_other_bodies_are_reencoded(recorder, shape: str) -> None:
    backend, url = recorder
    rows = _rows(2)
    if shape == "28x28":
        body = orjson.dumps({"instances": rows.reshape(2, 28, 28).tolist()})
    elif shape == "signature-name":
        body = orjson.dumps({"instances": rows.tolist(), "signature_name": "serving_default"})
    else:
        body = orjson.dumps({"inputs": {"pixels": rows.tolist()}})
    with gateway(tfserving_url=url) as gw:
        r = _post(gw, body)
    assert r.status_code == 200, r.text
    (sent,) = backend.bodies
    assert sent != body and set(orjson.loads(sent)) == {"instances"}
    np.testing.assert_array_equal(np.asarray(orjson.loads(sent)["instances"], np.float32), rows)


def test_chunks_are_reassembled_in_order(recorder) -> None:
    backend, url = recorder
    rows = _rows(50)
    with gateway(tfserving_url=url, backend_max_rows=16) as gw:
        r = _post(gw, orjson.dumps({"instances": rows.tolist()}))
    assert r.status_code == 200, r.text
    assert sorted(len(orjson.loads(b)["instances"]) for b in backend.bodies) == [2, 16, 16, 16]
    assert r.json()["labels"] == [i % 10 for i in range(50)]
