"""Open Inference Protocol (KServe v2) requests to rows, and answers back, over REST (JSON, with
Triton's binary tensor data extension) and gRPC (``inference.ModelInferRequest``).

One input, ``pixels``: FP32, shape ``[N, 784]`` or ``[N, 28, 28]``, its data a flat row-major list,
a nested list, raw bytes after the JSON header (REST: ``parameters.binary_data_size`` and the
``Inference-Header-Content-Length`` header) or ``raw_input_contents`` / ``fp32_contents`` (gRPC).
Outputs: ``probabilities`` FP32 ``[N, 10]``, ``label`` INT64 ``[N]``, ``uncertain`` BOOL ``[N]``; all of
them unless the request names some, each as JSON data or binary (``binary_data``). Values are checked
as on /v1 (protocol/rows.py: finite, in [0, 1]); every field the protocol does not define is refused
with the ones it does, and every shape or type mistake names the fix.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson

from gateway.app.core.errors import APIError, bad_request, too_large
from gateway.app.protocol.rows import check_values, may_hold_non_numbers, parse_json, refuse_duplicate_keys, show
from mnist_serving import oip
from mnist_serving.spec import IMAGE_SIDE, INPUT_DIM, UNCERTAIN_BELOW

HEADER_LENGTH = "inference-header-content-length"
_NUMBERS = frozenset(("data",))  # the one field holding numbers (not walked by the duplicate check)
_REQUEST_KEYS = ("id", "parameters", "inputs", "outputs")
_INPUT_KEYS = ("name", "shape", "datatype", "parameters", "data")
_OUTPUT_KEYS = ("name", "parameters")
_REQUEST_PARAMETERS = ("binary_data_output",)
_INPUT_PARAMETERS = ("binary_data_size",)
_OUTPUT_PARAMETERS = ("binary_data", "classification")
_DTYPES: dict[str, np.dtype[Any]] = {"FP32": np.dtype("<f4"), "INT64": np.dtype("<i8"), "BOOL": np.dtype("?")}
_EXAMPLE = f'{{"inputs": [{{"name": "{oip.INPUT}", "shape": [1, {INPUT_DIM}], "datatype": "FP32", "data": [...]}}]}}'


@dataclass(frozen=True)
class Requested:
    name: str
    binary: bool = False


@dataclass(frozen=True)
class V2Request:
    rows: np.ndarray  # float32 [n, 784]
    id: str = ""
    outputs: tuple[Requested, ...] = field(default_factory=tuple)  # empty: every output, as JSON


def _refuse_unknown(what: str, given: Iterable[str], allowed: tuple[str, ...]) -> None:
    for key in given:
        if key not in allowed:
            close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            takes = ", ".join(allowed) or "none"
            raise APIError(422, "unknown_field", f"{what} has no field {key[:60]!r}{hint} (it takes: {takes})")


def _object(what: str, value: Any, example: str) -> dict[str, Any]:
    """An optional JSON object (``parameters``): absent or null is empty, anything else is refused."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise bad_request("bad_parameters", f"{what} must be a JSON object such as {example}, got {show(value)}")
    return value


def _flag(what: str, value: Any, default: bool) -> bool:
    """A boolean parameter: true or false, not a string or a number that merely looks like one."""
    if value is None:
        return default
    if type(value) is not bool:
        raise bad_request("bad_parameters", f"{what} must be true or false, got {show(value)}")
    return value


def _holds_bool(values: list[Any]) -> bool:
    stack = [values]
    while stack:
        for v in stack.pop():
            if type(v) is bool:
                return True
            if type(v) is list:
                stack.append(v)
    return False


def _numbers(values: list[Any], text: bytes) -> np.ndarray:
    """``data``'s JSON numbers as float32. numpy would read "0.5", true and null as numbers without a
    word. When nothing after the "data" key can start a string, true, false or null (``data`` last,
    as tritonclient sends it without outputs: four memchr scans), the values are numbers; otherwise
    numpy's own dtype shows strings, null and objects, and booleans are looked for."""
    plain = not may_hold_non_numbers(text, b'"data"')
    try:
        arr = np.asarray(values, dtype=np.float32) if plain else np.asarray(values)
    except OverflowError:
        raise bad_request("bad_data", '"data" holds an integer too large for FP32: send numbers in [0, 1]') from None
    except (TypeError, ValueError):
        raise bad_request(
            "bad_data", '"data" holds ragged lists or values that are not numbers: a flat or nested list of numbers'
        ) from None
    if not plain and (arr.dtype.kind not in "fiu" or ((b"true" in text or b"false" in text) and _holds_bool(values))):
        raise bad_request(
            "bad_data",
            '"data" holds something other than JSON numbers (a string, true/false, null, an object, or an integer '
            "too large for FP32): send numbers in [0, 1]",
        )
    return arr.astype(np.float32, copy=False).reshape(-1)


def _rows(data: np.ndarray, shape: list[int], max_rows: int) -> np.ndarray:
    """The input's values as [n, 784] float32, from the shape the client declared."""
    n = shape[0] if shape else 0
    if len(shape) == 4 and shape[1:] == [IMAGE_SIDE, IMAGE_SIDE, 1]:
        raise bad_request(
            "wrong_shape",
            f"shape {shape} has Keras' channel axis: send [{n}, {IMAGE_SIDE}, {IMAGE_SIDE}] or [{n}, {INPUT_DIM}] "
            "(x[..., 0] or x.reshape(len(x), -1) in numpy)",
        )
    if not (shape[1:] == [INPUT_DIM] or shape[1:] == [IMAGE_SIDE, IMAGE_SIDE]):
        raise bad_request(
            "wrong_shape",
            f"shape {shape} is not [N, {INPUT_DIM}] or [N, {IMAGE_SIDE}, {IMAGE_SIDE}]: one row per image",
        )
    if n < 1:
        raise bad_request("wrong_shape", f"shape {shape} holds no rows; send at least one")
    if n > max_rows:
        raise too_large("too_many_rows", f"{n} rows in one request; the limit is {max_rows}")
    if data.size != n * INPUT_DIM:
        raise bad_request("wrong_shape", f"shape {shape} needs {n * INPUT_DIM} values; the data holds {data.size}")
    return check_values(data.reshape(n, INPUT_DIM))


def _shape(value: Any) -> list[int]:
    if not isinstance(value, list) or not all(type(d) is int and d >= 0 for d in value):
        raise bad_request("wrong_shape", f"shape must be a list of non-negative integers, got {show(value)}")
    return value


def _datatype(value: Any) -> None:
    if value != "FP32":
        raise bad_request(
            "wrong_datatype",
            f"datatype {show(value)}: the model takes FP32 (astype(np.float32) in numpy; 'FP32' in tritonclient)",
        )


def _input_name(name: Any) -> None:
    if name != oip.INPUT:
        raise bad_request("unknown_input", f"the model's one input is {oip.INPUT!r}, not {show(name)}")


def _requested(outputs: Any, binary_default: bool) -> tuple[Requested, ...]:
    if outputs is None:
        return tuple(Requested(n, binary_default) for n in oip.OUTPUTS) if binary_default else ()
    _output_list(outputs)
    out: list[Requested] = []
    for o in outputs:
        if not isinstance(o, dict):
            raise bad_request("bad_output", f"each requested output is an object with a name, got {show(o)}")
        _refuse_unknown("a requested output", o, _OUTPUT_KEYS)
        params = _object("an output's 'parameters'", o.get("parameters"), '{"binary_data": true}')
        _refuse_unknown("an output's parameters", params, _OUTPUT_PARAMETERS)
        if params.get("classification"):
            raise bad_request("unsupported_parameter", "the classification extension is not offered; read 'label'")
        name = o.get("name")
        if type(name) is not str or name not in oip.OUTPUTS:
            raise bad_request("unknown_output", f"no output {show(name)}; outputs are {', '.join(oip.OUTPUTS)}")
        if any(r.name == name for r in out):
            raise bad_request("bad_output", f"the output {name!r} is requested twice; name each once")
        out.append(Requested(name, _flag("binary_data", params.get("binary_data"), binary_default)))
    return tuple(out)


def _output_list(outputs: Any) -> None:
    if not isinstance(outputs, list):
        raise bad_request("bad_output", f'"outputs" must be a list like [{{"name": "label"}}], got {show(outputs)}')
    if len(outputs) > len(oip.OUTPUTS):
        raise bad_request(
            "bad_output", f"{len(outputs)} outputs requested; the model has {len(oip.OUTPUTS)}: name each once"
        )


def decode_rest(body: bytes, header_length: str | None, max_rows: int) -> V2Request:
    """A REST infer body (JSON, or a JSON header and binary tensors after it)."""
    binary = b""
    if header_length is not None:
        if not (header_length.isascii() and header_length.isdigit()) or int(header_length) > len(body):
            raise bad_request(
                "invalid_header",
                f"Inference-Header-Content-Length {header_length[:20]!r} must be the JSON header's length in bytes "
                f"(a whole number, at most the body's {len(body)})",
            )
        cut = int(header_length)
        body, binary = body[:cut], body[cut:]
    try:
        request = parse_json(body)
    except APIError:
        if header_length is None and b"binary_data_size" in body:
            raise bad_request(
                "invalid_json",
                "binary tensor data follows the JSON: send the Inference-Header-Content-Length header with the "
                "JSON's length in bytes",
            ) from None
        raise
    if not isinstance(request, dict):
        raise bad_request("bad_request_body", f"the body must be a JSON object like {_EXAMPLE}")
    if "instances" in request:
        raise bad_request("wrong_protocol", 'v2 takes {"inputs": [...]}; {"instances": [...]} goes to /v1/predict')
    _refuse_unknown("an inference request", request, _REQUEST_KEYS)
    request_id = request.get("id", "")
    if type(request_id) is not str:
        raise bad_request("bad_id", f'"id" must be a string (it is echoed in the answer), got {show(request_id)}')
    params = _object("the request's 'parameters'", request.get("parameters"), '{"binary_data_output": true}')
    inputs = request.get("inputs")
    if not isinstance(inputs, list) or len(inputs) != 1 or not isinstance(inputs[0], dict):
        raise bad_request("bad_inputs", f'"inputs" must hold the one input {oip.INPUT!r}: {_EXAMPLE}')
    if request.get("outputs") is not None:
        _output_list(request["outputs"])
    refuse_duplicate_keys(body, request, _NUMBERS)  # the fields' types are known now: the walk is short
    _refuse_unknown("the request's parameters", params, _REQUEST_PARAMETERS)
    tensor = inputs[0]
    _refuse_unknown("an input", tensor, _INPUT_KEYS)
    _input_name(tensor.get("name"))
    _datatype(tensor.get("datatype"))
    shape = _shape(tensor.get("shape"))
    tparams = _object("an input's 'parameters'", tensor.get("parameters"), '{"binary_data_size": 3136}')
    _refuse_unknown("an input's parameters", tparams, _INPUT_PARAMETERS)
    size = tparams.get("binary_data_size")
    if size is not None:
        if "data" in tensor:
            raise bad_request("bad_binary_data", 'the input has both "data" and binary_data_size: send one of them')
        if type(size) is not int or size != len(binary):
            raise bad_request(
                "bad_binary_data", f"binary_data_size {show(size)} but {len(binary)} bytes follow the header"
            )
        if size % 4:
            raise bad_request("bad_binary_data", f"{size} bytes are not whole FP32 values (4 bytes each)")
        data = np.frombuffer(binary, dtype="<f4").astype(np.float32, copy=False)
    else:
        if binary:
            raise bad_request(
                "bad_binary_data", "binary data follows the header but no input declares binary_data_size"
            )
        values = tensor.get("data")
        if not isinstance(values, list):
            raise bad_request("bad_data", f'"data" must be a list of numbers (flat, row-major, or nested): {_EXAMPLE}')
        data = _numbers(values, body)
    binary_default = _flag("binary_data_output", params.get("binary_data_output"), False)
    return V2Request(_rows(data, shape, max_rows), request_id, _requested(request.get("outputs"), binary_default))


def outputs_of(probabilities: np.ndarray) -> dict[str, np.ndarray]:
    return {
        oip.PROBABILITIES: probabilities.astype(np.float32, copy=False),
        oip.LABEL: probabilities.argmax(axis=1).astype(np.int64),
        oip.UNCERTAIN: probabilities.max(axis=1) < UNCERTAIN_BELOW,
    }


def encode_rest(
    model: str, version: str, request_id: str, probabilities: np.ndarray, requested: tuple[Requested, ...]
) -> tuple[bytes, dict[str, str]]:
    """The answer's bytes and headers: JSON, or a JSON header with the binary outputs after it."""
    values = outputs_of(probabilities)
    wanted = requested or tuple(Requested(n) for n in oip.OUTPUTS)
    outputs, blobs = [], []
    for r in wanted:
        array = values[r.name]
        datatype = oip.OUTPUTS[r.name][0]
        entry: dict[str, Any] = {"name": r.name, "datatype": datatype, "shape": list(array.shape)}
        if r.binary:
            blob = np.ascontiguousarray(array, dtype=_DTYPES[datatype]).tobytes()
            entry["parameters"] = {"binary_data_size": len(blob)}
            blobs.append(blob)
        else:
            entry["data"] = array.reshape(-1)
        outputs.append(entry)
    answer: dict[str, Any] = {"model_name": model, "model_version": version, "outputs": outputs}
    if request_id:
        answer["id"] = request_id
    header = orjson.dumps(answer, option=orjson.OPT_SERIALIZE_NUMPY)
    if not blobs:
        return header, {}
    return header + b"".join(blobs), {"Inference-Header-Content-Length": str(len(header))}


def _param_value(p: Any) -> Any:
    kind = p.WhichOneof("parameter_choice")
    return getattr(p, kind) if kind else None


def decode_grpc(request: Any, max_rows: int) -> V2Request:
    """An ``inference.ModelInferRequest`` (raw_input_contents, or fp32_contents)."""
    _refuse_unknown("the request's parameters", request.parameters, _REQUEST_PARAMETERS)
    if len(request.inputs) != 1:
        raise bad_request("bad_inputs", f"the request must hold the one input {oip.INPUT!r}, not {len(request.inputs)}")
    tensor = request.inputs[0]
    _input_name(tensor.name)
    _datatype(tensor.datatype)
    _refuse_unknown("an input's parameters", tensor.parameters, ())
    shape = list(tensor.shape)
    if len(request.raw_input_contents) > 1:
        raise bad_request("bad_inputs", f"{len(request.raw_input_contents)} raw_input_contents for the one input")
    if request.raw_input_contents and tensor.HasField("contents"):
        raise bad_request("bad_inputs", "the input has both raw_input_contents and contents: send one of them")
    if request.raw_input_contents:
        raw = request.raw_input_contents[0]
        if len(raw) % 4:
            raise bad_request("bad_binary_data", f"{len(raw)} bytes are not whole FP32 values (4 bytes each)")
        data = np.frombuffer(raw, dtype="<f4")
    else:
        others = [f.name for f, _ in tensor.contents.ListFields() if f.name != "fp32_contents"]
        if others:
            raise bad_request("wrong_datatype", f"the input holds {', '.join(others)}: FP32 data goes in fp32_contents")
        data = np.asarray(tensor.contents.fp32_contents, dtype=np.float32)
    outputs: list[Requested] = []
    for o in request.outputs:
        _refuse_unknown("an output's parameters", o.parameters, _OUTPUT_PARAMETERS)
        if "classification" in o.parameters:
            raise bad_request("unsupported_parameter", "the classification extension is not offered; read 'label'")
        if o.name not in oip.OUTPUTS:
            raise bad_request("unknown_output", f"no output {o.name[:60]!r}; outputs are {', '.join(oip.OUTPUTS)}")
        if any(r.name == o.name for r in outputs):
            raise bad_request("bad_output", f"the output {o.name!r} is requested twice; name each once")
        outputs.append(Requested(o.name))
    return V2Request(_rows(data, shape, max_rows), request.id, tuple(outputs))


def encode_grpc(model: str, version: str, request_id: str, probabilities: np.ndarray,
                requested: tuple[Requested, ...]) -> Any:  # fmt: skip
    """An ``inference.ModelInferResponse`` with raw_output_contents (what Triton's client reads)."""
    values = outputs_of(probabilities)
    response = oip.ModelInferResponse(model_name=model, model_version=version, id=request_id)
    for r in requested or tuple(Requested(n) for n in oip.OUTPUTS):
        array = values[r.name]
        datatype = oip.OUTPUTS[r.name][0]
        response.outputs.add(name=r.name, datatype=datatype, shape=list(array.shape))
        response.raw_output_contents.append(np.ascontiguousarray(array, dtype=_DTYPES[datatype]).tobytes())
    return response


def tensor_metadata() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The model's inputs and outputs as the metadata routes state them."""
    inputs = [{"name": oip.INPUT, "datatype": "FP32", "shape": [-1, INPUT_DIM]}]
    outputs = [{"name": n, "datatype": d, "shape": s} for n, (d, s) in oip.OUTPUTS.items()]
    return inputs, outputs


def known_model(name: str, models: Mapping[str, str]) -> str:
    """The backend behind a v2 model name (404 naming the models otherwise)."""
    backend = models.get(name)
    if backend is None:
        close = difflib.get_close_matches(name, list(models), n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise APIError(404, "unknown_model", f"no model {name[:60]!r}{hint} (models: {', '.join(models)})")
    return backend
