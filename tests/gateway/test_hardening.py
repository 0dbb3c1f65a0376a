"""The gateway cannot be knocked over (issue #34), through real HTTP: bodies counted as they arrive,
huge images decoded off the event loop, a full backend called once per request, admission that
recovers after a stall, ambiguous bodies and odd API keys refused cleanly. The gateway runs as its
own process where the event loop's health is measured, as in production."""

from __future__ import annotations

import asyncio
import contextlib
import io
import socket
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import orjson
import pytest
from PIL import Image

from gateway.app.api.deps import principal_of
from gateway.app.api.incoming import Incoming
from gateway.app.core.config import Settings
from gateway.app.main import create_app
from mnist_serving.ports import local_url
from mnist_serving.spec import MAX_IMAGE_BYTES
from serving.native.process import ManagedProcess, free_ports
from serving.native.settings import REPO
from tests.gateway.helpers import FakeBackend, gateway, serve_in_thread

ROW = [0.0] * 784
BODY = orjson.dumps({"instances": [ROW]})


@contextlib.contextmanager
def gateway_process(tmp: Path, backend_url: str, **settings: str) -> Iterator[str]:
    """``python -m gateway.app`` on a free port, every backend pointed at ``backend_url``."""
    (port,) = free_ports(1)
    env = {
        "GATEWAY_PORT": str(port),
        "GATEWAY_GRPC_PORT": "0",
        "GATEWAY_TFSERVING_URL": backend_url,
        "GATEWAY_TORCHSERVE_URL": backend_url,
        "GATEWAY_TORCHSERVE_MANAGEMENT_URL": "",
        "GATEWAY_LOG_LEVEL": "WARNING",
        **{f"GATEWAY_{k.upper()}": v for k, v in settings.items()},
    }
    proc = ManagedProcess("gateway-hardening", [sys.executable, "-m", "gateway.app"], tmp / "gateway.log", env, REPO)
    proc.start()
    url = local_url(port)
    try:
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            assert proc.alive and time.monotonic() < deadline, proc.log_tail()
            time.sleep(0.1)
        yield url
    finally:
        proc.stop()


@pytest.fixture
def fake() -> Iterator[tuple[FakeBackend, str]]:
    backend = FakeBackend()
    with serve_in_thread(backend.app) as url:
        yield backend, url


def _chunked_upload(
    url: str, path: str, content_type: str, total_mib: int, preamble: bytes = b""
) -> tuple[int, int, bytes]:
    """Send a chunked body 1 MiB per 20 ms over a raw socket; stop when an answer arrives or the
    connection closes. Returns (bytes sent, total it would have sent, the answer's first bytes)."""
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)))
    sock.settimeout(5)
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: {content_type}\r\nTransfer-Encoding: chunked\r\n\r\n"
    ).encode()
    sock.sendall(head + (b"%x\r\n" % len(preamble) + preamble + b"\r\n" if preamble else b""))
    chunk = b"0" * (1 << 20)
    sent, answer = 0, b""
    sock.setblocking(False)
    try:
        for _ in range(total_mib):
            with contextlib.suppress(BlockingIOError):
                answer = sock.recv(4096)
            if answer:
                break
            try:
                sock.setblocking(True)
                sock.sendall(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
                sent += len(chunk)
            except OSError:  # closed by the gateway
                break
            finally:
                sock.setblocking(False)
            time.sleep(0.02)
        if not answer:
            sock.setblocking(True)
            with contextlib.suppress(OSError):
                answer = sock.recv(4096)
    finally:
        sock.close()
    return sent, total_mib << 20, answer


def test_a_chunked_upload_past_the_limit_is_refused_without_being_read(fake, tmp_path) -> None:
    """The old gateway read all 40 MiB of a chunked multipart upload (no Content-Length) before its
    413: the size check only looked at Content-Length."""
    _, url = fake
    with gateway_process(tmp_path, url) as gw:
        part = (
            b'--x\r\nContent-Disposition: form-data; name="file"; filename="a.png"\r\nContent-Type: image/png\r\n\r\n'
        )
        for path, ctype, preamble in (
            ("/v1/predict/image", "multipart/form-data; boundary=x", part),
            ("/v1/predict", "application/json", b'{"instances": [['),
        ):
            sent, total, answer = _chunked_upload(gw, path, ctype, 40, preamble)
            assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
            assert b"body_too_large" in answer and b"connection: close" in answer.lower()
            assert sent < MAX_IMAGE_BYTES + (4 << 20) < total, f"{sent >> 20} MiB of {total >> 20} sent before the 413"
        assert httpx.get(f"{gw}/healthz").status_code == 200


def test_a_body_that_stops_arriving_is_a_408_within_the_budget(fake) -> None:
    """A client that declares 100 bytes and sends 10 held its request (and its admission) for ever:
    the body must arrive within the request's time budget."""
    backend, url = fake
    with gateway(tfserving_url=url) as gw:
        host, port = gw.removeprefix("http://").split(":")
        for path in ("/v1/predict", "/v2/models/mnist-tfserving/infer", "/v1/compare"):
            sock = socket.create_connection((host, int(port)))
            sock.settimeout(10)
            start = time.monotonic()
            sock.sendall(
                f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
                'Content-Length: 100\r\nX-Request-Timeout-Ms: 300\r\n\r\n{"instances"'.encode()
            )
            answer = sock.recv(4096)
            waited = time.monotonic() - start
            sock.close()
            assert answer.startswith(b"HTTP/1.1 408") and b"body_timeout" in answer, (path, answer[:300])
            assert 0.25 < waited < 5, waited
        assert backend.calls == 0


def _poll(url: str, stop: threading.Event, out: list[float]) -> None:
    with httpx.Client(timeout=5) as client:
        while not stop.is_set():
            start = time.perf_counter()
            client.get(url)
            out.append((time.perf_counter() - start) * 1e3)
            time.sleep(0.005)


def test_a_huge_image_is_refused_while_the_gateway_stays_responsive(fake, tmp_path) -> None:
    """A 4000x4000 PNG (a few KiB: nearly all one colour) used to be decoded on the event loop (the
    gateway's /healthz p99 rose to ~300 ms). Now it is decoded on a worker thread and refused."""
    _, url = fake
    buf = io.BytesIO()
    Image.new("L", (4000, 4000), 255).save(buf, format="PNG")
    png = buf.getvalue()
    assert len(png) < 100_000
    with gateway_process(tmp_path, url) as gw:
        latencies: list[float] = []
        stop = threading.Event()
        poller = threading.Thread(target=_poll, args=(f"{gw}/healthz", stop, latencies))
        poller.start()
        time.sleep(0.3)
        try:
            answers = [
                httpx.post(f"{gw}/v1/predict/image", files={"file": ("big.png", png, "image/png")}, timeout=30)
                for _ in range(3)
            ]
        finally:
            time.sleep(0.2)
            stop.set()
            poller.join()
    assert all(400 <= r.status_code < 500 for r in answers), [r.text for r in answers]
    p99 = float(np.percentile(latencies, 99))
    print(f"\n/healthz during 3 uploads of a 4000x4000 PNG: {len(latencies)} polls, p99 {p99:.1f} ms")
    assert p99 < 50, f"/healthz p99 {p99:.1f} ms while decoding"


def test_a_backend_saying_its_queue_is_full_gets_exactly_one_call_per_request(fake) -> None:
    backend, url = fake
    backend.mode = "503"
    with gateway(tfserving_url=url, torchserve_url=url, torchserve_management_url="", breaker_failures=2) as gw:
        answers = [httpx.post(f"{gw}/v1/predict", params={"backend": "auto"}, content=BODY) for _ in range(10)]
        metrics = httpx.get(f"{gw}/metrics").text
        backends = {b["name"]: b for b in httpx.get(f"{gw}/v1/backends").json()["backends"]}
    assert backend.calls == 10  # no retry, and no fallback onto the other (here: the same fake) server
    assert {(r.status_code, r.json()["error"]["type"]) for r in answers} == {(503, "backend_overloaded")}
    assert all("retry-after" in r.headers for r in answers)
    assert backends["tfserving"]["circuit"] == "closed"  # overload is never a breaker failure
    assert backends["tfserving"]["limit_rows"] < 4  # it fed the adaptive limit instead (halved to 1, recovering)
    assert 'gateway_backend_calls_total{backend="tfserving",outcome="overload"} 10.0' in metrics


async def _burst(url: str, n: int) -> dict[int, int]:
    async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=n)) as client:
        answers = await asyncio.gather(*(client.post(url, content=BODY) for _ in range(n)))
    out: dict[int, int] = {}
    for r in answers:
        out[r.status_code] = out.get(r.status_code, 0) + 1
    return out


def test_after_a_stall_admission_returns_to_its_pre_stall_behaviour(fake, tmp_path) -> None:
    """The old admission latched: after a stall, a burst beyond the in-flight limit was refused whole
    (1,000 of 1,000) though the backend had recovered. (A stall past the request budget would time
    out and open the circuit instead: the breaker's case, tested in test_breaker.py.)"""
    backend, url = fake
    backend.mode, backend.delay_s = "slow", 0.005
    with gateway_process(tmp_path, url, queue_timeout_ms="100") as gw:
        predict = f"{gw}/v1/predict?backend=tfserving"
        for _ in range(3):  # learn the backend's round trip
            asyncio.run(_burst(predict, 20))
        before = asyncio.run(_burst(predict, 300))
        backend.delay_s = 1.5  # a 1.5 s stall: slow answers (within the 2 s budget), the limit shrinks
        stalled = asyncio.run(_burst(predict, 40))
        backend.delay_s = 0.005  # recovered
        time.sleep(2.0)
        after = asyncio.run(_burst(predict, 300))
        (state,) = (b for b in httpx.get(f"{gw}/v1/backends").json()["backends"] if b["name"] == "tfserving")
    print(f"\nbefore the stall {before}, during {stalled}, 2 s after {after}; limit now {state['limit_rows']}")
    assert set(before) <= {200, 503} and set(after) <= {200, 503}
    # Beyond the 32 rows in flight the queue admits what can start within its deadline, before and
    # after alike; the old admission admitted nothing beyond them after the stall. (How many the
    # queue admits depends on how fast the fake answers, which shares this test's cores: the same
    # burst differs severalfold between runs here, so the test asks for a clear margin, not equality.)
    limit = Settings().admission_limit
    assert before.get(200, 0) > limit + 8 and after.get(200, 0) > limit + 8, (before, after)
    assert state["limit_rows"] >= 0.9 * limit  # the stall's shrinking is gone


def test_a_duplicated_key_is_refused_not_guessed(fake) -> None:
    backend, url = fake
    with gateway(tfserving_url=url) as gw:
        body = b'{"instances": [' + orjson.dumps(ROW) + b'], "instances": [' + orjson.dumps(ROW) + b"]}"
        r = httpx.post(f"{gw}/v1/predict", content=body)
        assert r.status_code == 400 and r.json()["error"]["type"] == "duplicate_key", r.text
        assert '"instances"' in r.json()["error"]["message"] and backend.calls == 0


def test_a_non_ascii_api_key_is_a_401_not_a_500(fake) -> None:
    _, url = fake
    with gateway(tfserving_url=url, api_keys="alice:s3cret,bob:t0ken") as gw:
        r = httpx.post(f"{gw}/v1/predict", content=BODY, headers=[(b"X-API-Key", "clé".encode())])
        assert r.status_code == 401 and r.json()["error"]["type"] == "unauthorized"
        r = httpx.post(f"{gw}/v1/predict", content=BODY, headers={"Authorization": "Bearer t0ken"})
        assert r.status_code == 200, r.text


def test_required_keys_refuse_to_start_without_one() -> None:
    with pytest.raises(ValueError, match="GATEWAY_REQUIRE_API_KEYS"):
        create_app(Settings(require_api_keys=True, api_keys=""))
    create_app(Settings(require_api_keys=True, api_keys="ops:k"))


def _request(headers: dict[str, str], state: dict[str, str] | None = None) -> Incoming:
    scope = {
        "type": "http",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "client": ("10.0.0.7", 5555),
        "state": state or {},
    }
    return Incoming(scope, _no_body)


async def _no_body() -> dict[str, object]:
    return {"type": "http.request", "body": b""}


def test_the_fair_share_principal_cannot_be_forged() -> None:
    """The old identity was the raw X-API-Key or Authorization header: any client could pose as many.
    Now it is the verified key's name, or the address when the API is open."""
    assert principal_of(_request({"X-API-Key": "a"})) == principal_of(_request({"Authorization": "Bearer b"}))
    assert principal_of(_request({})) == "addr:10.0.0.7"
    assert principal_of(_request({"X-API-Key": "whatever"}, {"principal": "alice"})) == "key:alice"
    assert Settings(api_keys="alice:k1, k2").api_key_names == {"k1": "alice", "k2": "key-2"}
