"""A new user off the documented path (issue #36): parameters are strict, and every error names the
fix. Each case is one a user met: the old answer was a 200 for something else, or a message that did
not say what to do."""

from __future__ import annotations

import io

import httpx
import numpy as np
import orjson
import pytest
from PIL import Image

from tests.gateway.conftest import png_bytes

ROW = [0.0] * 784


def _error(r: httpx.Response) -> dict[str, object]:
    body = r.json()
    assert "error" in body, body
    error: dict[str, object] = body["error"]
    return error


@pytest.mark.parametrize(
    ("path", "params", "fix"),
    [
        (
            "/v1/compare",
            {"backend": "torchserve"},
            "did you mean 'backends'?",
        ),  # singular: was 200 for the default pair
        ("/v1/predict", {"backends": "nope"}, "did you mean 'backend'?"),  # was 200 from the default backend
        ("/v1/predict", {"verison": "1"}, "did you mean 'version'?"),
        ("/v1/predict/image", {"includeinput": "true"}, "did you mean 'include_input'?"),
    ],
)
def test_an_unknown_parameter_is_422_naming_the_ones_allowed(gw, gw_url, path: str, params, fix: str) -> None:
    r = gw.post(f"{gw_url}{path}", params=params, json={"instances": [ROW]})
    error = _error(r)
    assert r.status_code == 422 and error["type"] == "unknown_parameter" and fix in str(error["message"]), r.text
    assert "this route takes:" in str(error["message"])


def test_a_version_that_is_not_loaded_is_404_not_the_default(gw, gw_url) -> None:
    """/v1/predict?version=2 answered from version 1."""
    r = gw.post(f"{gw_url}/v1/predict", params={"backend": "tfserving", "version": "2"}, json={"instances": [ROW]})
    error = _error(r)
    assert r.status_code == 404 and error["type"] == "unknown_version" and "loaded: 1" in str(error["message"])
    r = gw.post(f"{gw_url}/v1/predict", params={"backend": "torchserve", "version": "1"}, json={"instances": [ROW]})
    assert r.status_code == 200 and r.json()["model_version"] == "1"


def test_keras_style_rows_get_a_shape_hint(gw, gw_url) -> None:
    """[N, 28, 28, 1] rows: "row 0 holds a non-number ([0.0])", with no word about the shape."""
    rows = np.zeros((2, 28, 28, 1)).tolist()
    r = gw.post(f"{gw_url}/v1/predict", json={"instances": rows})
    error = _error(r)
    assert r.status_code == 422 and "channel axis" in str(error["message"]) and "x[..., 0]" in str(error["message"])


def test_an_image_posted_to_the_rows_route_is_pointed_at_the_image_route(gw, gw_url, digit_pngs) -> None:
    r = gw.post(f"{gw_url}/v1/predict", files={"file": ("d.png", digit_pngs[0].read_bytes(), "image/png")})
    assert r.status_code == 415 and "/v1/predict/image" in str(_error(r)["message"])


def test_a_text_field_named_file_is_told_to_send_the_file(gw, gw_url) -> None:
    """curl -F file=hello (no @): "no file field named 'file'" although there was one."""
    r = gw.post(f"{gw_url}/v1/predict/image", files={"file": (None, "hello")})
    error = _error(r)
    assert r.status_code == 422 and error["type"] == "file_is_text" and "-F file=@digit.png" in str(error["message"])


def test_noise_with_contrast_is_not_called_blank(gw, gw_url) -> None:
    """A noise JPEG has contrast: "blank or has no contrast" was wrong."""
    noise = np.random.default_rng(0).integers(0, 256, (200, 200), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(noise, mode="L").save(buf, format="JPEG")
    r = gw.post(f"{gw_url}/v1/predict/image", files={"file": ("noise.jpg", buf.getvalue(), "image/jpeg")})
    error = _error(r)
    assert r.status_code == 422 and error["type"] == "no_digit", r.text
    assert "blank" not in str(error["message"]) and "nothing stands out" in str(error["message"])
    r = gw.post(f"{gw_url}/v1/predict/image", files={"file": ("white.png", png_bytes(np.ones(784)), "image/png")})
    assert r.status_code == 422 and _error(r)["type"] == "blank_image"  # all one shade: blank indeed


def test_compare_past_its_deadline_is_504_like_each_backend(gw, gw_url) -> None:
    """Each inner error was a 504, the whole a 503 all_backends_failed."""
    r = gw.post(f"{gw_url}/v1/compare", json={"instances": [ROW]}, headers={"X-Request-Timeout-Ms": "0"})
    error = _error(r)
    assert r.status_code == 504 and error["type"] == "all_backends_failed"
    results = error["results"]
    assert isinstance(results, dict) and {e["error"]["status"] for e in results.values()} == {504}


def test_compare_names_the_rows_where_the_models_differ(gw, gw_url, digits) -> None:
    rows = digits[0][:40]
    body = gw.post(f"{gw_url}/v1/compare", json={"instances": rows.tolist()}).json()
    tf = np.asarray(body["results"]["tfserving"]["labels"])
    ts = np.asarray(body["results"]["torchserve"]["labels"])
    assert body["disagreeing_rows"] == np.flatnonzero(tf != ts).tolist()
    tf_p = np.asarray(body["results"]["tfserving"]["predictions"])
    ts_p = np.asarray(body["results"]["torchserve"]["predictions"])
    gaps = np.abs(tf_p - ts_p).max(axis=1)
    assert body["max_abs_probability_diff_row"] == int(gaps.argmax())
    assert body["max_abs_probability_diff"] == pytest.approx(float(gaps.max()), abs=1e-6)


def test_tf_serving_columnar_inputs_are_taken(gw, gw_url, digits) -> None:
    """TF Serving's own columnar form ("inputs") was a 422."""
    row = digits[0][0].tolist()
    by_rows = gw.post(f"{gw_url}/v1/predict", json={"instances": [row]}).json()
    for body in (
        {"inputs": [row]},
        {"inputs": {"pixels": [row]}},
        {"signature_name": "serving_default", "inputs": [row]},
    ):
        r = gw.post(f"{gw_url}/v1/predict", content=orjson.dumps(body))
        assert r.status_code == 200 and r.json()["labels"] == by_rows["labels"], r.text
    r = gw.post(f"{gw_url}/v1/predict", json={"instances": [row], "instance": 1})
    assert r.status_code == 422 and "did you mean 'instances'?" in str(_error(r)["message"])


def test_every_answer_says_whether_it_is_uncertain(gw, gw_url, digits) -> None:
    body = gw.post(f"{gw_url}/v1/predict", json={"instances": digits[0][:5].tolist()}).json()
    probs = np.asarray(body["predictions"])
    from mnist_serving.spec import UNCERTAIN_BELOW

    assert body["uncertain"] == (probs.max(axis=1) < UNCERTAIN_BELOW).tolist()


def test_backends_name_their_implementation_and_versions(gw, gw_url) -> None:
    backends = gw.get(f"{gw_url}/v1/backends").json()["backends"]
    assert all(b["implementation"] in ("real", "standin") for b in backends), backends  # TorchServe too
    assert all(b["versions"] == ["1"] for b in backends)
