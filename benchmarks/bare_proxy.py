"""The floor a gateway hop is measured against: a bare ASGI app on the gateway's own server stack
(uvicorn with httptools and uvloop) that forwards each POST body to a backend with aiohttp and
returns its answer. No validation, routing, metrics, logs or error mapping.

    python -m benchmarks.bare_proxy --port 9000 --target http://127.0.0.1:8501
"""

from __future__ import annotations

import argparse
from typing import Any

import aiohttp
import uvicorn

HEADERS = {"Content-Type": "application/json"}


def build(target: str) -> Any:
    session: aiohttp.ClientSession | None = None

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        nonlocal session
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    session = aiohttp.ClientSession(skip_auto_headers=("User-Agent",))
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    if session is not None:
                        await session.close()
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        assert session is not None
        query = scope["query_string"].decode()
        url = target + scope["path"] + (f"?{query}" if query else "")
        async with session.post(url, data=body, headers=HEADERS) as r:
            content = await r.read()
            status = r.status
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(content)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": content})

    return app


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--target", required=True, help="backend base URL; the request path is appended")
    args = p.parse_args()
    uvicorn.run(
        build(args.target.rstrip("/")),
        host="127.0.0.1",
        port=args.port,
        log_level="warning",
        access_log=False,
        http="httptools",
        loop="uvloop",
    )


if __name__ == "__main__":
    main()
