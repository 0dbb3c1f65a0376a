"""The gateway's keep-alive HTTP/1.1 pool against small real servers: reuse, closing, timeouts,
malformed answers, chunked bodies and refused connections."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from gateway.app.clients.http1 import ConnectError, HTTPPool, Timeout, TransportError
from mnist_serving.ports import local_url
from serving.native.process import free_ports

OK = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"


async def _server(answer: Callable[[bytes], bytes | None], *, close_after: bool = False):
    """A TCP server reading one request at a time; ``answer`` returns the raw reply (None: stay silent)."""
    connections: list[int] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(1)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    (int(h.split(b":")[1]) for h in head.split(b"\r\n") if h.lower().startswith(b"content-length")), 0
                )
                body = await reader.readexactly(length)
                reply = answer(head + body)
                if reply is None:
                    await asyncio.sleep(5)
                    return
                writer.write(reply)
                await writer.drain()
                if close_after:
                    writer.close()
                    return
        except (asyncio.IncompleteReadError, ConnectionError):
            return

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, connections, server.sockets[0].getsockname()[1]


def _run(coro: Coroutine[Any, Any, None]) -> None:
    asyncio.run(coro)


def test_keep_alive_reuses_one_connection() -> None:
    async def main() -> None:
        server, conns, port = await _server(lambda _: OK)
        pool = HTTPPool(local_url(port))
        head = pool.head("POST", "/x")
        for _ in range(5):
            r = await pool.request(head, b'{"a": 1}', timeout=2)
            assert (r.status, r.body, r.headers["content-type"]) == (200, b"{}", "application/json")
        assert len(conns) == 1
        await pool.aclose()
        server.close()

    _run(main())


def test_a_connection_the_server_closed_is_not_reused() -> None:
    async def main() -> None:
        server, conns, port = await _server(lambda _: OK, close_after=True)
        pool = HTTPPool(local_url(port))
        head = pool.head("GET", "/x", content_type=None)
        for _ in range(3):
            assert (await pool.request(head, None, timeout=2)).status == 200
            await asyncio.sleep(0.05)  # the close arrives while the connection is idle
        assert len(conns) == 3
        server.close()

    _run(main())


def test_connection_close_header_is_honoured() -> None:
    reply = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\n{}"

    async def main() -> None:
        server, conns, port = await _server(lambda _: reply)
        pool = HTTPPool(local_url(port))
        head = pool.head("GET", "/x", content_type=None)
        for _ in range(2):
            assert (await pool.request(head, None, timeout=2)).body == b"{}"
        assert len(conns) == 2
        server.close()

    _run(main())


def test_timeout_closes_the_connection() -> None:
    calls: list[int] = []

    def answer(_: bytes) -> bytes | None:
        calls.append(1)
        return None if len(calls) == 1 else OK  # the first request hangs

    async def main() -> None:
        server, conns, port = await _server(answer)
        pool = HTTPPool(local_url(port))
        head = pool.head("GET", "/x", content_type=None)
        with pytest.raises(Timeout):
            await pool.request(head, None, timeout=0.2)
        assert (await pool.request(head, None, timeout=2)).status == 200
        assert len(conns) == 2  # the late answer could never reach the second request
        server.close()

    _run(main())


@pytest.mark.parametrize(
    ("reply", "error"),
    [
        (b"this is not HTTP\r\n\r\n", TransportError),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{}", TransportError),  # closes mid-body
    ],
)
def test_broken_answers_are_transport_errors(reply: bytes, error: type[Exception]) -> None:
    async def main() -> None:
        server, _, port = await _server(lambda _: reply, close_after=True)
        pool = HTTPPool(local_url(port))
        with pytest.raises(error):
            await pool.request(pool.head("GET", "/x", content_type=None), None, timeout=2)
        server.close()

    _run(main())


def test_chunked_body_is_decoded() -> None:
    reply = b'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n{"a\r\n5\r\n": 1}\r\n0\r\n\r\n'

    async def main() -> None:
        server, _, port = await _server(lambda _: reply)
        pool = HTTPPool(local_url(port))
        assert (await pool.request(pool.head("GET", "/x", content_type=None), None, timeout=2)).body == b'{"a": 1}'
        server.close()

    _run(main())


def test_refused_is_a_connect_error() -> None:
    (port,) = free_ports(1)

    async def main() -> None:
        pool = HTTPPool(local_url(port))
        with pytest.raises(ConnectError, match="cannot reach"):
            await pool.request(pool.head("GET", "/x", content_type=None), None, timeout=2)

    _run(main())


def test_only_http_urls() -> None:
    with pytest.raises(ValueError, match="not an http"):
        HTTPPool("ftp://example")


def test_at_most_size_requests_in_flight_and_the_rest_wait() -> None:
    in_flight: list[int] = []
    peak: list[int] = [0]

    async def main() -> None:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            while True:
                try:
                    await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                in_flight.append(1)
                peak[0] = max(peak[0], len(in_flight))
                await asyncio.sleep(0.02)
                in_flight.pop()
                writer.write(OK)
                await writer.drain()

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        pool = HTTPPool(local_url(server.sockets[0].getsockname()[1]), size=3)
        head = pool.head("GET", "/x", content_type=None)
        calls = [asyncio.create_task(pool.request(head, None, timeout=5)) for _ in range(12)]
        calls[5].cancel()  # a waiting caller that gives up does not leak its slot
        done = await asyncio.gather(*calls, return_exceptions=True)
        assert sum(isinstance(r, asyncio.CancelledError) for r in done) == 1
        assert all(r.status == 200 for r in done if not isinstance(r, BaseException))
        assert peak[0] == 3 and pool._busy == 0 and not pool._queue
        await pool.aclose()
        server.close()

    _run(main())
