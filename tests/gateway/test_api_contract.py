"""The API a user meets first, against the running gateway: an OpenAPI document that validates and
that real requests and answers match, /docs and /redoc with no network, errors that name the fix,
one Content-Type rule, and the limits the docs state (at each limit and one byte over)."""

from __future__ import annotations

import io
from typing import Any

import httpx
import jsonschema
import numpy as np
import orjson
import pytest
from openapi_spec_validator import validate as validate_spec
from PIL import Image

from mnist_serving.spec import MAX_IMAGE_BYTES, MAX_JSON_BODY_BYTES
from tests.gateway.conftest import png_bytes


@pytest.fixture(scope="module")
def spec(gw: httpx.Client, gw_url: str) -> dict[str, Any]:
    return gw.get(f"{gw_url}/openapi.json").json()


def conforms(spec: dict[str, Any], schema: dict[str, Any], value: Any) -> None:
    """``value`` against a schema of the document (OpenAPI 3.1 schemas are JSON Schema 2020-12)."""
    jsonschema.Draft202012Validator({**schema, "components": spec["components"]}).validate(value)


def response_schema(spec: dict[str, Any], path: str, method: str, status: int) -> dict[str, Any]:
    content = spec["paths"][path][method]["responses"][str(status)]["content"]
    return content["application/json"]["schema"]


def test_the_document_is_valid_openapi_and_describes_every_route(spec: dict[str, Any]) -> None:
    validate_spec(spec)
    paths = spec["paths"]
    v2 = {
        "/v2",
        "/v2/health/live",
        "/v2/health/ready",
        "/v2/models/{model}",
        "/v2/models/{model}/ready",
        "/v2/models/{model}/infer",
        "/v2/models/{model}/versions/{version}",
        "/v2/models/{model}/versions/{version}/ready",
        "/v2/models/{model}/versions/{version}/infer",
    }
    assert set(paths) == {"/v1/predict", "/v1/predict/image", "/v1/compare", "/v1/backends", "/healthz", "/readyz",
                          "/metrics", "/v1/backends/{backend}/canary", *v2}  # fmt: skip
    predict = paths["/v1/predict"]["post"]
    body = predict["requestBody"]["content"]["application/json"]["schema"]
    assert body["properties"]["instances"]["maxItems"] == 256 and body["required"] == ["instances"]
    assert "X-Request-Timeout-Ms" in [p["name"] for p in predict["parameters"]]
    assert paths["/v1/predict/image"]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"][
        "properties"]["file"]["format"] == "binary"  # fmt: skip
    assert set(paths["/v1/compare"]["post"]["requestBody"]["content"]) == {"multipart/form-data", "application/json"}
    assert set(paths["/metrics"]["get"]["responses"]["200"]["content"]) == {"text/plain"}
    for path, ops in paths.items():
        for method, op in ops.items():
            for status, answer in op["responses"].items():
                if status.startswith(("4", "5")) and path not in ("/readyz", "/v2/health/ready"):
                    ref = answer["content"]["application/json"]["schema"]["$ref"]
                    shape = "V2ErrorResponse" if path.startswith("/v2") else "ErrorResponse"  # the protocol's own
                    assert ref == f"#/components/schemas/{shape}", (path, status)
                if status == "200" and path != "/metrics":
                    assert "$ref" in answer["content"]["application/json"]["schema"], (path, method)
    assert "HTTPValidationError" not in spec["components"]["schemas"]  # FastAPI's shape is not ours


def test_real_answers_match_the_declared_schemas(spec, gw: httpx.Client, gw_url: str, digit_pngs) -> None:
    example = spec["paths"]["/v1/predict"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    request = {"instances": example["properties"]["instances"]["examples"][0]}
    conforms(spec, example, request)
    r = gw.post(f"{gw_url}/v1/predict?backend=torchserve", json=request)
    assert r.status_code == 200 and r.json()["labels"] == [9]  # the documented example is a real 9
    conforms(spec, response_schema(spec, "/v1/predict", "post", 200), r.json())
    png = digit_pngs[0].read_bytes()
    r = gw.post(f"{gw_url}/v1/predict/image?include_input=true", files={"file": ("d.png", png, "image/png")})
    conforms(spec, response_schema(spec, "/v1/predict/image", "post", 200), r.json())
    r = gw.post(f"{gw_url}/v1/compare", files={"file": ("d.png", png, "image/png")})
    conforms(spec, response_schema(spec, "/v1/compare", "post", 200), r.json())
    for path in ("/v1/backends", "/healthz", "/readyz"):
        conforms(spec, response_schema(spec, path, "get", 200), gw.get(f"{gw_url}{path}").json())
    assert gw.get(f"{gw_url}/metrics").headers["content-type"].startswith("text/plain")
    errors = [
        gw.post(f"{gw_url}/v1/predict", json={"instances": [[0.5] * 10]}),
        gw.post(f"{gw_url}/v1/predict", content=b"{", headers={"Content-Type": "application/json"}),
        gw.post(f"{gw_url}/v1/predict", content=b"x", headers={"Content-Type": "text/plain"}),
        gw.post(f"{gw_url}/v1/predict?backend=nope", json={"instances": [[0.5] * 784]}),
    ]
    assert [e.status_code for e in errors] == [422, 400, 415, 400]
    for e in errors:
        conforms(spec, response_schema(spec, "/v1/predict", "post", e.status_code), e.json())


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_pages_need_no_network(gw: httpx.Client, gw_url: str, page: str) -> None:
    html = gw.get(f"{gw_url}{page}").text
    assert "cdn." not in html and "https://" not in html.replace("https://github.com", "")
    assets = [a.split('"')[0] for a in html.split('"/docs-assets/')[1:]]
    assert assets, html
    for asset in assets:
        r = gw.get(f"{gw_url}/docs-assets/{asset}")
        assert r.status_code == 200 and len(r.content) > 1000, asset


ROW = [0.5] * 784


@pytest.mark.parametrize(
    ("body", "kind", "needle"),
    [
        ({"instances": ROW}, "unwrapped_row", '{"instances": [row]}'),
        ({"instances": [[0.5] * 28 for _ in range(28)]}, "unwrapped_image", '{"instances": [image]}'),
        ({"instances": "abc"}, "instances_not_a_list", "is a string"),
        ({"instances": []}, "empty_instances", "at least one row"),
        ({"rows": [ROW]}, "missing_instances", '"instances"'),
        ({"instances": [[200.0] * 784]}, "out_of_range", "divide by 255"),
    ],
)
def test_errors_name_the_fix(gw: httpx.Client, gw_url: str, body: Any, kind: str, needle: str) -> None:
    r = gw.post(f"{gw_url}/v1/predict", json=body)
    assert r.status_code == 422 and r.json()["error"]["type"] == kind, r.text
    assert needle in r.json()["error"]["message"]


def test_wrong_method_is_405_with_allow(gw: httpx.Client, gw_url: str) -> None:
    r = gw.get(f"{gw_url}/v1/predict")
    assert r.status_code == 405 and r.headers["allow"] == "POST"
    assert r.json()["error"] == {"status": 405, "type": "method_not_allowed",
                                 "message": "GET is not allowed on /v1/predict; use POST"}  # fmt: skip
    r = gw.get(f"{gw_url}/v1/nothing")
    assert r.status_code == 404 and "see /docs" in r.json()["error"]["message"]


@pytest.mark.parametrize(
    ("content_type", "status"),
    [(None, 200), ("application/json", 200), ("application/json; charset=utf-8", 200), ("text/plain", 415),
     ("application/x-www-form-urlencoded", 415)],
)  # fmt: skip
def test_one_content_type_rule(gw: httpx.Client, gw_url: str, content_type: str | None, status: int) -> None:
    """JSON routes read application/json, or a body sent with no Content-Type; anything else is 415."""
    headers = {"Content-Type": content_type} if content_type else {}
    request = gw.build_request("POST", f"{gw_url}/v1/predict", content=orjson.dumps({"instances": [ROW]}),
                               headers=headers)  # fmt: skip
    if content_type is None:
        request.headers.pop("Content-Type", None)
    r = gw.send(request)
    assert r.status_code == status, r.text
    if status == 415:
        assert "application/json" in r.json()["error"]["message"]


def test_json_limit_holds_at_the_limit_and_one_byte_over(gw: httpx.Client, gw_url: str, digits) -> None:
    body = orjson.dumps({"instances": [digits[0][0].tolist()]})
    at_limit = body[:-1] + b" " * (MAX_JSON_BODY_BYTES - len(body)) + b"}"
    assert len(at_limit) == MAX_JSON_BODY_BYTES
    r = gw.post(f"{gw_url}/v1/predict", content=at_limit, headers={"Content-Type": "application/json"})
    assert r.status_code == 200, r.text
    r = gw.post(f"{gw_url}/v1/predict", content=at_limit + b" ", headers={"Content-Type": "application/json"})
    assert r.status_code == 413 and r.json()["error"]["type"] == "body_too_large"


def test_image_limit_holds_at_the_limit_and_one_byte_over(gw: httpx.Client, gw_url: str, digits) -> None:
    """An image file of exactly GATEWAY_MAX_IMAGE_BYTES (8 MiB, twice the JSON limit) is read."""
    png = png_bytes(digits[0][0])
    at_limit = png + b"\0" * (MAX_IMAGE_BYTES - len(png))  # PNG readers stop at IEND
    r = gw.post(f"{gw_url}/v1/predict/image", files={"file": ("big.png", at_limit, "image/png")})
    assert r.status_code == 200 and r.json()["labels"] == [int(digits[1][0])], r.text
    r = gw.post(f"{gw_url}/v1/predict/image", files={"file": ("big.png", at_limit + b"\0", "image/png")})
    assert r.status_code == 413 and r.json()["error"]["type"] == "image_too_large", r.text


def _image(size: int, shade: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.full((size, size), shade, dtype=np.uint8), mode="L").save(buf, format="PNG")
    return buf.getvalue()


@pytest.mark.parametrize(("size", "shade"), [(28, 0), (28, 255), (28, 128), (500, 255), (500, 0)])
def test_a_blank_image_of_any_size_is_422(gw: httpx.Client, gw_url: str, size: int, shade: int) -> None:
    r = gw.post(f"{gw_url}/v1/predict/image", files={"file": ("blank.png", _image(size, shade), "image/png")})
    assert r.status_code == 422 and r.json()["error"]["type"] == "blank_image", r.text


def _code_error_types() -> set[str]:
    """Every error type the gateway's code (and the image decoder it uses) can answer with."""
    import re

    from tests.conftest import REPO

    sources = [p for p in (REPO / "gateway" / "app").rglob("*.py") if p.name != "schemas.py"]  # not JSON Schema
    sources.append(REPO / "mnist_serving" / "image.py")
    text = "\n".join(p.read_text() for p in sources)
    found = set(re.findall(r'(?:unprocessable|too_large|unsupported|bad_request)\(\s*"([a-z_]+)"', text))
    found |= set(re.findall(r'(?:APIError|Shed)\(\s*(?:\d+|\w+),\s*"([a-z_]+)"', text))
    found |= set(re.findall(r'\bkind(?:, retryable)? = (?:\d+, )?"([a-z_]+)"', text))
    found |= set(re.findall(r'"type": "([a-z_]+)", "message"', text))  # handlers building bodies directly
    found |= set(re.findall(r'\d{3}: "([a-z_]+)"', text))  # the 404/405 names
    found |= set(re.findall(r'_reject\(\s*\w+,\s*(?:[\w\["\]]+,\s*)?\d+,\s*"([a-z_]+)"', text))  # the middleware's own
    return found - {"http_error"}  # any other Starlette status: none is reachable from a route


def test_every_error_type_is_in_the_docs_table() -> None:
    from tests.conftest import REPO

    text = (REPO / "docs" / "gateway.md").read_text()
    table = text[text.index("## Errors") : text.index("## Overload")]
    documented = {line.split("|")[2].strip().strip("`") for line in table.splitlines() if line.startswith("| 4")
                  or line.startswith("| 5")}  # fmt: skip
    code = _code_error_types()
    assert len(code) > 30
    assert code - documented == set(), "in the code, not in docs/gateway.md"
    assert documented - code == set(), "in docs/gateway.md, not in the code"
