"""The Open Inference Protocol (KServe v2) on the gateway, spoken by a client written elsewhere:
Triton's own client (tritonclient, http and grpc), against the session's real servers."""

from __future__ import annotations

import warnings

import httpx
import numpy as np
import orjson
import pytest

from mnist_serving import oip
from mnist_serving.ports import local_address, local_url
from mnist_serving.spec import MAX_JSON_BODY_BYTES
from serving.native.stack import ServingStack

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import tritonclient.grpc as grpcclient
    import tritonclient.grpc.service_pb2 as triton_pb2
    import tritonclient.http as httpclient
    from tritonclient.utils import InferenceServerException

MODELS = ["mnist-tfserving", "mnist-torchserve", "mnist-torchserve-onnx", "mnist"]
_ROW = {"inputs": [{"name": "pixels", "shape": [1, 784], "datatype": "FP32", "data": [0.0] * 784}]}


def _fields(descriptor) -> dict[str, tuple[int, int, bool, str]]:
    return {f.name: (f.number, f.type, f.is_repeated, f.message_type.full_name if f.message_type else "")
            for f in descriptor.fields}  # fmt: skip


def test_the_declared_messages_are_the_published_ones() -> None:
    """Every message the gateway declares (mnist_serving/oip.py) against Triton's generated classes
    (its grpc_service.proto is a superset of KServe's grpc_predict_v2.proto): names, numbers, types."""
    service = triton_pb2.DESCRIPTOR.services_by_name["GRPCInferenceService"]
    assert service.full_name == oip.SERVICE
    for method, (request, response) in oip.METHODS.items():
        theirs = service.methods_by_name[method]
        assert (request.DESCRIPTOR.full_name, response.DESCRIPTOR.full_name) == (
            theirs.input_type.full_name, theirs.output_type.full_name)  # fmt: skip
    for name, cls in oip.MESSAGES.items():
        theirs = triton_pb2.DESCRIPTOR.message_types_by_name[name]
        mine = cls.DESCRIPTOR
        assert _fields(mine).items() <= _fields(theirs).items(), name
        for nested in mine.nested_types:
            assert _fields(nested).items() <= _fields(theirs.nested_types_by_name[nested.name]).items()


@pytest.fixture(scope="module")
def clients(serving_stack: ServingStack):
    p = serving_stack.ports
    http = httpclient.InferenceServerClient(local_address(p.gateway))
    grpc = grpcclient.InferenceServerClient(local_address(p.gateway_grpc))
    yield http, grpc
    http.close()
    grpc.close()


def test_triton_clients_list_and_check_the_gateway(clients) -> None:
    http, grpc = clients
    for c in (http, grpc):
        assert c.is_server_live() and c.is_server_ready()
        for model in MODELS:
            assert c.is_model_ready(model), model
    meta = http.get_server_metadata()
    assert meta["name"] == oip.SERVER_NAME and "binary_tensor_data" in meta["extensions"]
    model = http.get_model_metadata("mnist-torchserve")
    assert model["versions"] == ["1"] and model["inputs"] == [
        {"name": "pixels", "datatype": "FP32", "shape": [-1, 784]}
    ]
    assert {o["name"] for o in model["outputs"]} == {"probabilities", "label", "uncertain"}
    gmeta = grpc.get_model_metadata("mnist-tfserving")
    assert list(gmeta.versions) == ["1"] and gmeta.inputs[0].name == "pixels"
    assert not http.is_model_ready("mnist-torchserve", "99")
    with pytest.raises(InferenceServerException, match="no model 'mnist-tensorflow'"):
        http.get_model_metadata("mnist-tensorflow")


def _infer(client, module, model: str, rows: np.ndarray, binary: bool = True, version: str = ""):
    tensor = module.InferInput("pixels", list(rows.shape), "FP32")
    if module is httpclient:
        tensor.set_data_from_numpy(rows, binary_data=binary)
        outputs = [module.InferRequestedOutput(n, binary_data=binary) for n in ("probabilities", "label", "uncertain")]
    else:
        tensor.set_data_from_numpy(rows)
        outputs = [module.InferRequestedOutput(n) for n in ("probabilities", "label", "uncertain")]
    return client.infer(model, [tensor], outputs=outputs, model_version=version)


@pytest.mark.parametrize("model", MODELS)
def test_the_same_rows_get_the_same_labels_through_v1_and_v2(clients, serving_stack, digits, model: str) -> None:
    http, grpc = clients
    rows = digits[0][:16].astype(np.float32)
    backend = oip.MODELS[model]
    v1 = httpx.post(f"{local_url(serving_stack.ports.gateway)}/v1/predict", params={"backend": backend},
                    json={"instances": rows.tolist()}, timeout=20).json()  # fmt: skip
    answers = [
        _infer(http, httpclient, model, rows),  # binary tensors both ways (tritonclient's default)
        _infer(http, httpclient, model, rows, binary=False),  # JSON data
        _infer(http, httpclient, model, rows.reshape(-1, 28, 28)),  # 28x28 images
        _infer(grpc, grpcclient, model, rows),
    ]
    for result in answers:
        assert result.as_numpy("label").tolist() == v1["labels"]
        np.testing.assert_allclose(result.as_numpy("probabilities"), np.asarray(v1["predictions"]), atol=1e-6)
        assert result.as_numpy("uncertain").tolist() == v1["uncertain"]
    assert _infer(http, httpclient, model, rows).get_response()["model_version"] == "1"


def test_a_version_path_names_the_version_and_an_unknown_one_is_404(clients, serving_stack, digits) -> None:
    http, grpc = clients
    rows = digits[0][:2].astype(np.float32)
    for model in ("mnist-tfserving", "mnist-torchserve"):
        assert _infer(http, httpclient, model, rows, version="1").get_response()["model_version"] == "1"
        with pytest.raises(InferenceServerException, match="no version '7'"):
            _infer(http, httpclient, model, rows, version="7")
        with pytest.raises(InferenceServerException, match="no version '7'"):
            _infer(grpc, grpcclient, model, rows, version="7")


@pytest.mark.parametrize(
    ("body", "status", "fix"),
    [
        ({"inputs": [{"name": "pixels", "shape": [1, 784], "datatype": "FP64", "data": [0.0] * 784}]}, 400, "FP32"),
        ({"inputs": [{"name": "pixels", "shape": [1, 28, 28, 1], "datatype": "FP32", "data": [0.0] * 784}]}, 400,
         "channel axis"),
        ({"inputs": [{"name": "image", "shape": [1, 784], "datatype": "FP32", "data": [0.0] * 784}]}, 400, "'pixels'"),
        ({"inputs": [{"name": "pixels", "shape": [1, 784], "datatype": "FP32", "data": [0.0] * 784}], "input": 1},
         422, "did you mean 'inputs'"),
        ({"instances": [[0.0] * 784]}, 400, "/v1/predict"),
        ({"inputs": [{"name": "pixels", "shape": [2, 784], "datatype": "FP32", "data": [0.0] * 784}]}, 400,
         "needs 1568 values"),
        # Malformed optional fields: one clear message each, never a 500 (nor one message per character).
        ({**_ROW, "parameters": "binary_data_output"}, 400, "the request's 'parameters' must be a JSON object"),
        ({**_ROW, "parameters": [1]}, 400, "the request's 'parameters' must be a JSON object"),
        ({"inputs": [{**_ROW["inputs"][0], "parameters": 5}]}, 400, "an input's 'parameters' must be a JSON object"),
        ({**_ROW, "outputs": 5}, 400, '"outputs" must be a list'),
        ({**_ROW, "outputs": [{"name": "label", "parameters": "x"}]}, 400,
         "an output's 'parameters' must be a JSON object"),
        ({**_ROW, "outputs": [{"name": ["label"]}]}, 400, "outputs are probabilities, label"),
        ({**_ROW, "outputs": [{"name": {"a": 1}}]}, 400, "outputs are probabilities, label"),
        # A key twice in one object is ambiguous (a parser keeps one of them): refused, as on /v1.
        (b'{"inputs": [], ' + orjson.dumps(_ROW)[1:], 400, 'the key "inputs" appears more than once'),
        (orjson.dumps(_ROW).replace(b'"FP32"', b'"FP64","datatype":"FP32"'), 400,
         'the key "datatype" appears more than once'),
        # ... also when escapes make up for the repeated key's quotes (the cheap check must not be fooled).
        (orjson.dumps({**_ROW, "parameters": {"binary_data_output": False}})[:-1] +
         b',"parameters":{"binary_data_output":true},"id":"' + b"\\u0022" * 4 + b'"}', 400,
         'the key "parameters" appears more than once'),
        # An escaped key with "data" written last elsewhere: the fast type check must not be fooled.
        (b'{"inputs":[{"name":"pixels","shape":[1,784],"datatype":"FP32","d\\u0061ta":[true' + b",0" * 783 +
         b']}],"id":"data"}', 400, "other than JSON numbers"),
        # Values numpy would convert without a word: refused, as on /v1.
        ({"inputs": [{**_ROW["inputs"][0], "data": ["0.5"] * 784}]}, 400, "other than JSON numbers"),
        ({"inputs": [{**_ROW["inputs"][0], "data": [True] + [0.5] * 783}]}, 400, "other than JSON numbers"),
        ({"inputs": [{**_ROW["inputs"][0], "data": [None] * 784}]}, 400, "other than JSON numbers"),
        (orjson.dumps(_ROW).replace(b"[0.0,", b"[1" + b"0" * 400 + b",", 1), 400, "too large for FP32"),
        # Nesting as deep as the parser allows, where the request's fields are walked: a 400, not a 500.
        (orjson.dumps(_ROW)[:-1] + b',"id":' + b"[" * 600 + b"]" * 600 + b"}", 400, '"id" must be a string'),
        (orjson.dumps(_ROW)[:-1] + b',"outputs":[' + b"[" * 600 + b"]" * 600 + b"]}", 400, "is an object with a name"),
        ({**_ROW, "id": 5}, 400, '"id" must be a string'),
        ({**_ROW, "outputs": [{"name": "label"}, {"name": "label"}]}, 400, "requested twice"),
        ({**_ROW, "parameters": {"binary_data_output": "no"}}, 400, "must be true or false, got \"no\""),
        ({"inputs": [{**_ROW["inputs"][0], "parameters": {"binary_data_size": 3136}}]}, 400, "send one of them"),
    ],
)  # fmt: skip
def test_v2_errors_follow_the_protocol_and_name_the_fix(serving_stack, body, status: int, fix: str) -> None:
    content = body if isinstance(body, bytes) else orjson.dumps(body)
    r = httpx.post(f"{local_url(serving_stack.ports.gateway)}/v2/models/mnist/infer", content=content)
    assert r.status_code == status, r.text
    error = r.json()
    assert isinstance(error["error"], str) and fix in error["error"], error  # the protocol's {"error": "..."}


@pytest.mark.parametrize(
    ("header", "body", "fix"),
    [
        ("\u00b2", orjson.dumps(_ROW), "the JSON header's length"),  # str.isdigit() says yes; int() says no
        ("abc", orjson.dumps(_ROW), "the JSON header's length"),
        (None, orjson.dumps({"inputs": [{**_ROW["inputs"][0], "parameters": {"binary_data_size": 3136},
                                         "data": None}]}) + b"\xff" * 3136, "Inference-Header-Content-Length"),
    ],
)  # fmt: skip
def test_the_binary_header_is_checked_and_its_absence_named(serving_stack, header, body: bytes, fix: str) -> None:
    headers = {} if header is None else {"Inference-Header-Content-Length": header.encode("latin-1")}
    r = httpx.post(f"{local_url(serving_stack.ports.gateway)}/v2/models/mnist/infer", content=body, headers=headers)
    assert r.status_code == 400 and fix in r.json()["error"], r.text


def test_a_header_sent_twice_is_refused_not_guessed(serving_stack) -> None:
    url = f"{local_url(serving_stack.ports.gateway)}/v2/models/mnist/infer"
    for name, values in (("X-Request-Timeout-Ms", ("0", "5000")), ("Inference-Header-Content-Length", ("10", "20"))):
        r = httpx.post(url, content=orjson.dumps(_ROW), headers=[(name, v) for v in values])
        assert r.status_code == 400 and r.json()["type"] == "invalid_header", r.text
        assert f"{name} is given more than once" in r.json()["error"]


def test_an_unknown_version_is_404_on_auto_and_on_ready(serving_stack) -> None:
    """auto checks the version on the backend it picks, as a named backend does: 404 naming what is
    loaded, not the backend's own error as a 502."""
    base = local_url(serving_stack.ports.gateway)
    for r in (
        httpx.post(f"{base}/v2/models/mnist/versions/9/infer", content=orjson.dumps(_ROW)),
        httpx.get(f"{base}/v2/models/mnist/versions/9/ready"),
        httpx.get(f"{base}/v2/models/mnist-torchserve/versions/9/ready"),
    ):
        assert r.status_code == 404 and r.json()["type"] == "unknown_version", r.text
    v1 = httpx.post(f"{base}/v1/predict?version=9", json={"instances": [[0.0] * 784]})
    assert v1.status_code == 404 and v1.json()["error"]["type"] == "unknown_version", v1.text
    slash = httpx.post(f"{base}/v2/models/mnist/infer/", content=orjson.dumps(_ROW))
    assert slash.status_code == 404 and slash.json()["type"] == "not_found", slash.text


def test_a_version_cannot_smuggle_a_request_into_the_backend(serving_stack) -> None:
    """A version goes into TF Serving's URL: CR/LF in it once added a second request on a pooled
    connection (its answer then went to another client). Now only numbers and labels get through."""
    base = local_url(serving_stack.ports.gateway)
    smuggled = "stable/metadata HTTP/1.1\r\nHost: a\r\n\r\nGET /v1/models/mnist/labels/stable"
    labels_before = [b.get("labels") for b in httpx.get(f"{base}/v1/backends").json()["backends"]]
    for backend in ("tfserving", "auto", "torchserve"):
        params = {"backend": backend, "version": smuggled}
        r = httpx.post(f"{base}/v1/predict", params=params, json={"instances": [[0.0] * 784]})
        assert r.status_code == 404 and "a number or a label" in r.json()["error"]["message"], r.text
    r = httpx.post(f"{base}/v2/models/mnist/infer", content=orjson.dumps(_ROW))
    assert r.status_code == 200, r.text
    assert [b.get("labels") for b in httpx.get(f"{base}/v1/backends").json()["backends"]] == labels_before


def test_a_body_that_repeats_no_key_is_answered(serving_stack) -> None:
    """The duplicate check's cheap guard (the quotes in the text vs in the parsed request) sends a
    quote written as an escape to the exact parse, which must clear a valid body."""
    body = {**_ROW, "id": '"inputs"', "outputs": [{"name": "label"}, {"name": "probabilities"}]}
    escaped = orjson.dumps(body).replace(b'\\"inputs\\"', b"\\u0022inputs\\u0022")
    assert b"u0022" in escaped
    for content in (orjson.dumps(body), escaped):
        r = httpx.post(f"{local_url(serving_stack.ports.gateway)}/v2/models/mnist/infer", content=content)
        assert r.status_code == 200, r.text
        assert r.json()["id"] == '"inputs"' and [o["name"] for o in r.json()["outputs"]] == ["label", "probabilities"]


def test_gateway_refusals_on_v2_have_the_protocols_shape(serving_stack) -> None:
    """The middleware refuses an oversized body before any route runs: on /v2 in the protocol's
    shape too, and on /v1 in the gateway's own."""
    big = b"[" + b"0," * (MAX_JSON_BODY_BYTES // 2) + b"0]"
    base = local_url(serving_stack.ports.gateway)
    v2 = httpx.post(f"{base}/v2/models/mnist/infer", content=big)
    assert v2.status_code == 413, v2.text
    assert v2.json()["type"] == "body_too_large" and "exceeds the limit" in v2.json()["error"], v2.json()
    v1 = httpx.post(f"{base}/v1/predict", content=big)
    assert v1.status_code == 413 and v1.json()["error"]["type"] == "body_too_large", v1.text


def test_v2_errors_over_grpc_are_status_codes(clients) -> None:
    _, grpc = clients
    tensor = grpcclient.InferInput("pixels", [1, 784], "FP64")
    tensor.set_data_from_numpy(np.zeros((1, 784)))
    with pytest.raises(InferenceServerException) as info:
        grpc.infer("mnist-tfserving", [tensor])
    assert info.value.status() == "StatusCode.INVALID_ARGUMENT" and "FP32" in info.value.message()
    good = grpcclient.InferInput("pixels", [1, 784], "FP32")
    good.set_data_from_numpy(np.zeros((1, 784), dtype=np.float32))
    with pytest.raises(InferenceServerException) as info:
        grpc.infer("mnist", [good], model_version="9")
    assert info.value.status() == "StatusCode.NOT_FOUND" and "no version '9'" in info.value.message()


def _grpc_request(**extra: object):
    request = oip.ModelInferRequest(model_name="mnist")
    tensor = request.inputs.add(name="pixels", datatype="FP32", shape=[1, 784])
    request.raw_input_contents.append(np.zeros(784, dtype="<f4").tobytes())
    if extra.get("parameter"):
        tensor.parameters["foo"].int64_param = 1
    if extra.get("two_raw"):
        request.raw_input_contents.append(b"\0" * 3136)
    if extra.get("contents"):
        tensor.contents.fp32_contents.extend([0.0] * 784)
    for name in extra.get("outputs", ()):  # type: ignore[attr-defined]
        request.outputs.add(name=name)
    if extra.get("classification"):
        request.outputs.add(name="label").parameters["classification"].int64_param = 3
    if extra.get("int_contents"):
        del request.raw_input_contents[:]
        tensor.contents.fp32_contents.extend([0.0] * 784)
        tensor.contents.int_contents.extend([1])
    return request


@pytest.mark.parametrize(
    ("extra", "fix"),
    [
        ({"parameter": True}, "an input's parameters has no field 'foo'"),  # as REST refuses it
        ({"two_raw": True}, "2 raw_input_contents"),
        ({"contents": True}, "send one of them"),
        ({"outputs": ("label", "label")}, "requested twice"),
        ({"classification": True}, "classification extension is not offered"),
        ({"int_contents": True}, "the input holds int_contents"),
    ],
)
def test_grpc_requests_are_as_strict_as_rest(extra: dict[str, object], fix: str) -> None:
    from gateway.app.core.errors import APIError
    from gateway.app.protocol import v2

    assert v2.decode_grpc(_grpc_request(), 256).rows.shape == (1, 784)
    with pytest.raises(APIError) as info:
        v2.decode_grpc(_grpc_request(**extra), 256)
    assert fix in info.value.message
