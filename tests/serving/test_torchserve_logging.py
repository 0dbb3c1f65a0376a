"""TorchServe's logging (serving/torchserve/log4j2.xml) against the real server: nothing is written
per request, warnings and errors still are, as JSON lines in the project's shape."""

from __future__ import annotations

from pathlib import Path

import httpx
import orjson

from serving.native.stack import ServingStack

REPO = Path(__file__).resolve().parents[2]
REQUESTS = 2000
MAX_NEW_LINES = 200  # the bound; TorchServe's default config writes ~12 lines per request


def _lines(stack: ServingStack) -> dict[Path, int]:
    files = [*(stack.run_dir / "torchserve-logs").glob("*.log"), stack.run_dir / "torchserve.log"]
    return {f: len(f.read_bytes().splitlines()) for f in files if f.exists()}


def test_two_thousand_requests_write_almost_nothing(stack: ServingStack, ts_url: str, rows) -> None:
    before = _lines(stack)
    body = orjson.dumps({"instances": [rows[0].tolist()]})
    with httpx.Client(timeout=30) as client:
        for i in range(REQUESTS):
            model = ("mnist", "mnist_onnx")[i % 2]
            r = client.post(f"{ts_url}/predictions/{model}", content=body, headers={"Content-Type": "application/json"})
            assert r.status_code == 200
        bad = client.post(f"{ts_url}/predictions/mnist", content=b'{"instances": [[1, 2]]}')  # a warning's worth
        assert bad.status_code == 400
        # A PNG sent form-encoded (`curl --data-binary @digit.png`): the frontend's form decoder throws on
        # its bytes and TorchServe answers 500 itself; the exception must stay one JSON line.
        png = (REPO / "examples" / "digit-9.png").read_bytes()
        form = client.post(
            f"{ts_url}/predictions/mnist", content=png, headers={"Content-Type": "application/x-www-form-urlencoded"}
        )
        assert form.status_code == 500 and "Bad string" in form.json()["message"], form.text
    after = _lines(stack)
    new = {f.name: after[f] - before.get(f, 0) for f in after if after[f] != before.get(f, 0)}
    assert sum(new.values()) < MAX_NEW_LINES, new
    entries = [
        orjson.loads(line) for line in (stack.run_dir / "torchserve-logs" / "ts_log.log").read_bytes().splitlines()
    ]
    assert all(set(e) == {"ts", "level", "logger", "msg"} for e in entries)  # JSON lines in the gateway's shape
    thrown = [e for e in entries if "ErrorDataDecoderException" in e["msg"]]
    assert thrown and "\n\tat io.netty" in thrown[-1]["msg"], "the stack trace is inside the line"
    assert any(e["level"] == "warn" for e in entries), "warnings are still written"
    # INFO only from the frontend's start-up (version, config, listeners: how the image tests see epoll)
    assert {e["logger"] for e in entries if e["level"] == "info"} <= {"org.pytorch.serve.ModelServer"}
