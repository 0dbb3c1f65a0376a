"""Every documented input error: status code and a message that names the problem."""

from __future__ import annotations

import io

import httpx
import numpy as np
import pytest
from PIL import Image

ROW = [0.0] * 784


def _body(instances: str) -> bytes:
    return ('{"instances": [' + instances + "]}").encode()


def _values(v: object, n: int = 784) -> str:
    return "[" + ",".join([str(v)] * n) + "]"


def _last(v: object, odd: str) -> str:
    """A 784-value row whose last value is ``odd``."""
    return "[" + ",".join([str(v)] * 783 + [odd]) + "]"


def _image(fmt: str, size: tuple[int, int] = (50, 50), color: int = 255) -> bytes:
    buf = io.BytesIO()
    Image.new("L", size, color).save(buf, format=fmt)
    return buf.getvalue()


JSON_CASES = [
    ("invalid-json", b"{not json", 400, "not valid JSON"),
    ("not-an-object", b"[1, 2]", 422, '"instances"'),
    ("empty", b'{"instances": []}', 422, "at least one row"),
    ("wrong-length", b'{"instances": [[0.1, 0.2]]}', 422, "row 0 has 2 values"),
    ("second-row-wrong", _body(_values(0.0) + ", [0.5]"), 422, "row 1 has 1 values"),
    ("bad-28x28", _body(str([[0.0] * 28] * 27)), 422, "row 0 is not 28x28"),
    ("not-numbers", _body(_values('"x"')), 422, "non-number"),
    ("out-of-range-255", _body(_values(255)), 422, "divide by 255"),
    ("negative", _body(_values(-0.5)), 422, "[0, 1]"),
    ("non-finite", _body(_values("1e400")), 422, "NaN or infinite"),
    ("nan", _body(_values("NaN")), 422, "NaN or infinite"),
    ("too-many-rows", _body(",".join([_values(0.0)] * 257)), 413, "257 rows"),
    ("booleans", _body(_values("true")), 422, "row 0 holds a non-number at position 0: a boolean (true)"),
    ("one-boolean", _body(_values(0.5) + "," + _last(0.5, "false")), 422, "row 1 holds a non-number at position 783"),
    ("numeric-strings", _body(_values('"0.1"')), 422, 'row 0 holds a non-number at position 0: a string ("0.1")'),
    ("null", _body(_last(0.0, "null")), 422, "row 0 holds a non-number at position 783: null"),
    ("boolean-in-28x28", _body(str([[0.0] * 28] * 27 + [[0.0] * 27 + ["true"]]).replace("'", "")), 422, "a boolean"),
    # An integer literal no float holds (the stdlib parser reads it exactly): refused, not a 500.
    ("huge-integer", _body(_last(0.0, "1" + "0" * 400)), 422, "too large"),
    # Deeper than the stdlib parser recurses (the duplicate-key check's exact parse): a 400, not a 500.
    ("too-deep", b'{"instances": ' + b"[" * 1010 + b'"x"' + b"]" * 1010 + b"}", 400, "nests too deeply"),
    # A key twice, hidden behind an escape or outside "instances": every parser would read one of them.
    (
        "escaped-duplicate",
        b'{"\\u0069nstances": [' + _values(1.0).encode() + b'], "instances": [' + _values(0.0).encode() + b"]}",
        400,
        'the key "instances" appears more than once',
    ),
    (
        "duplicate-signature",
        b'{"instances": [' + _values(0.0).encode() + b'], "signature_name": "serving_default", '
        b'"signature_name": "other"}',
        400,
        'the key "signature_name" appears more than once',
    ),
    (
        "duplicate-input",
        b'{"inputs": {"pixels": [' + _values(1.0).encode() + b'], "pixels": [' + _values(0.0).encode() + b"]}}",
        400,
        'the key "pixels" appears more than once',
    ),
    # What orjson refuses for its text stays refused (its fallback parser, for NaN and 1e400, would take it).
    ("lone-surrogate", _body('["\\ud800",' + _values(0, 783)[1:]), 400, "a lone \\uD800-\\uDFFF escape"),
    ("bom", b"\xef\xbb\xbf" + _body(_values(0.0)), 400, "UTF-8 without a BOM"),
    ("utf-16", _body(_values(0.0)).decode().encode("utf-16"), 400, "UTF-8 without a BOM"),
    # Values too deep to write back in the message: named, not a 500.
    (
        "deep-object",
        _body("[" + '{"a":' * 400 + "1" + "}" * 400 + "," + _values(0, 783)[1:]),
        422,
        "an object nested too deeply to show",
    ),
    (
        "deep-list",
        _body("[0," + "[" * 1000 + "]" * 1000 + "," + _values(0, 782)[1:]),
        422,
        "a list nested too deeply to show",
    ),
    (
        "deep-signature",
        b'{"instances": [' + _values(0.0).encode() + b'], "signature_name": ' + b"[" * 1000 + b"]" * 1000 + b"}",
        422,
        "not a list nested too deeply to show",
    ),
]


@pytest.mark.parametrize(("body", "status", "needle"), [c[1:] for c in JSON_CASES], ids=[c[0] for c in JSON_CASES])
def test_json_errors(gw: httpx.Client, gw_url: str, body: bytes, status: int, needle: str) -> None:
    r = gw.post(f"{gw_url}/v1/predict", content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert error["status"] == status and needle in error["message"], error


def test_body_too_large(gw: httpx.Client, gw_url: str) -> None:
    r = gw.post(
        f"{gw_url}/v1/predict", content=b" " * (4 * 1024 * 1024 + 1), headers={"Content-Type": "application/json"}
    )
    assert r.status_code == 413 and "exceeds" in r.json()["error"]["message"]


def test_wrong_content_type(gw: httpx.Client, gw_url: str) -> None:
    r = gw.post(f"{gw_url}/v1/predict", content=b"a=b", headers={"Content-Type": "text/plain"})
    assert r.status_code == 415 and "application/json" in r.json()["error"]["message"]


def test_unknown_backend(gw: httpx.Client, gw_url: str) -> None:
    r = gw.post(f"{gw_url}/v1/predict", params={"backend": "triton"}, json={"instances": [ROW]})
    assert r.status_code == 400 and "triton" in r.json()["error"]["message"]


def _bomb() -> bytes:
    buf = io.BytesIO()
    Image.new("1", (12000, 12000), 1).save(buf, format="PNG")  # 144 Mpx, a few KB compressed
    return buf.getvalue()


IMAGE_CASES = [
    ("not-an-image", b"hello, I am text", 415, "not an image"),
    ("empty-file", b"", 422, "empty"),
    ("unsupported-type", _image("ICO", (32, 32)), 415, "ICO images are not accepted"),
    ("blank", _image("PNG"), 422, "no digit found"),
    ("decompression-bomb", _bomb(), 413, "pixels"),
]


@pytest.mark.parametrize(("data", "status", "needle"), [c[1:] for c in IMAGE_CASES], ids=[c[0] for c in IMAGE_CASES])
def test_image_errors(gw: httpx.Client, gw_url: str, data: bytes, status: int, needle: str) -> None:
    r = gw.post(f"{gw_url}/v1/predict/image", files={"file": ("x", data, "application/octet-stream")})
    assert r.status_code == status, r.text
    assert needle in r.json()["error"]["message"]


def test_image_route_needs_multipart_file(gw: httpx.Client, gw_url: str) -> None:
    assert gw.post(f"{gw_url}/v1/predict/image", json={"instances": [ROW]}).status_code == 415
    r = gw.post(f"{gw_url}/v1/predict/image", files={"other": ("x.png", _image("PNG"), "image/png")})
    assert r.status_code == 422 and "'file'" in r.json()["error"]["message"]


def test_unknown_route_is_json_404(gw: httpx.Client, gw_url: str) -> None:
    r = gw.get(f"{gw_url}/v1/nothing")
    assert r.status_code == 404 and r.json()["error"]["type"] == "not_found"
    r = gw.get(f"{gw_url}/v2/nothing")  # under /v2, in the Open Inference Protocol's own error shape
    assert r.status_code == 404 and r.json()["type"] == "not_found" and "/docs" in r.json()["error"]


def test_gateway_survives_all_of_it(gw: httpx.Client, gw_url: str) -> None:
    assert gw.get(f"{gw_url}/healthz").status_code == 200
    assert gw.post(f"{gw_url}/v1/predict", json={"instances": [np.zeros(784).tolist()]}).status_code == 200


def test_strings_elsewhere_in_the_body_do_not_reject_numbers(gw: httpx.Client, gw_url: str) -> None:
    body = b'{"instances": [' + _values(0.0).encode() + b'], "signature_name": "serving_default"}'
    r = gw.post(f"{gw_url}/v1/predict", content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 200, r.text
