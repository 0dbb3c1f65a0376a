"""Request bodies made of real MNIST test digits (200 of the held-out split, committed in data/)."""

from __future__ import annotations

import io
from functools import cache
from pathlib import Path

import numpy as np
import orjson
from PIL import Image

DATA = Path(__file__).resolve().parents[1] / "data" / "mnist_test_sample.npz"


@cache
def digits() -> tuple[np.ndarray, np.ndarray]:
    with np.load(DATA) as npz:
        return npz["x"].astype(np.float32) / 255.0, npz["y"].astype(np.int64)


@cache
def json_bodies() -> list[bytes]:
    """One ``{"instances": [row]}`` body per digit."""
    rows, _ = digits()
    return [orjson.dumps({"instances": [row.tolist()]}) for row in rows]


@cache
def v2_bodies() -> list[bytes]:
    """One Open Inference Protocol (KServe v2) request per digit: an FP32 [1, 784] input."""
    from mnist_serving.oip import INPUT

    rows, _ = digits()
    return [
        orjson.dumps({"inputs": [{"name": INPUT, "shape": [1, row.size], "datatype": "FP32", "data": row.tolist()}]})
        for row in rows
    ]


@cache
def png_files() -> list[bytes]:
    rows, _ = digits()
    out = []
    for row in rows:
        buf = io.BytesIO()
        Image.fromarray(np.round(row.reshape(28, 28) * 255).astype(np.uint8), mode="L").save(buf, format="PNG")
        out.append(buf.getvalue())
    return out


@cache
def grpc_requests(method: str, model: str) -> list[bytes]:
    """One serialised gRPC request per digit, the row as raw float32 bytes (what a binary client
    sends): TF Serving's ``PredictRequest`` with ``tensor_content``, or TorchServe's
    ``PredictionsRequest`` with the handler's ``tensor`` input."""
    from mnist_serving import protos  # the messages, declared without generated code
    from mnist_serving.spec import INPUT_NAME, SIGNATURE_NAME, TORCHSERVE_TENSOR_INPUT

    rows, _ = digits()
    out = []
    for row in rows:
        raw = np.ascontiguousarray(row[None, :], dtype="<f4").tobytes()
        if method == protos.TF_PREDICT:
            req = protos.PredictRequest()
            req.model_spec.name, req.model_spec.signature_name = model, SIGNATURE_NAME
            tensor = req.inputs[INPUT_NAME]
            tensor.dtype = protos.DT_FLOAT
            tensor.tensor_shape.dim.add(size=1)
            tensor.tensor_shape.dim.add(size=row.size)
            tensor.tensor_content = raw
        elif method == protos.TORCHSERVE_PREDICTIONS:
            req = protos.PredictionsRequest(model_name=model)
            req.input[TORCHSERVE_TENSOR_INPUT] = raw
        else:
            raise ValueError(f"no request builder for {method}")
        out.append(req.SerializeToString())
    return out


def grpc_probabilities(method: str, answer: bytes) -> np.ndarray:
    """The 10 probabilities in a serialised gRPC answer of either server."""
    from mnist_serving import protos
    from mnist_serving.spec import OUTPUT_NAME

    if method == protos.TF_PREDICT:
        out = protos.PredictResponse.FromString(answer).outputs[OUTPUT_NAME]
        return np.frombuffer(out.tensor_content, "<f4") if out.tensor_content else np.asarray(out.float_val)
    return np.frombuffer(protos.PredictionResponse.FromString(answer).prediction, "<f4")
