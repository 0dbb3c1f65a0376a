"""The floor's gRPC side: the matching server's own method and messages, on the floor's event loop.

``savedmodel`` answers TF Serving's ``PredictionService/Predict`` (input ``pixels`` float32 [n, 784],
output ``probabilities`` float32 [n, 10], both as ``tensor_content``; ``float_val`` is read too, as TF
Serving does; ``model_spec`` echoed with the artifact's version). ``torchscript`` and ``onnx`` answer
TorchServe's ``InferenceAPIsService/Predictions`` with the project handler's binary ``tensor`` input,
checked by the handler's own ``parse_tensor``, answered with the probabilities as little-endian float32
bytes. The model name is not checked (the floor serves one model). Malformed input is
INVALID_ARGUMENT naming the problem; a failing model INTERNAL. When batching, the requests that shared
the pass are sent in the trailing metadata ``x-batch-requests``, as REST's ``X-Batch-Requests`` header.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import grpc
import numpy as np
from google.protobuf.message import DecodeError

from load_tests.servers.floor_batching import Infer
from mnist_serving import protos
from mnist_serving.spec import (
    INPUT_DIM,
    INPUT_NAME,
    MAX_ROWS_PER_REQUEST,
    NUM_CLASSES,
    OUTPUT_NAME,
    SIGNATURE_NAME,
    TF_MODEL_NAME,
    TF_PREDICT_METHOD,
    TORCHSERVE_PREDICTIONS_METHOD,
    TORCHSERVE_TENSOR_INPUT,
)
from serving.torchserve.mnist_handler import BadRequest, parse_tensor

BATCH_METADATA = "x-batch-requests"  # gRPC metadata keys are lower case
STOP_GRACE_S = 1.0  # on SIGTERM: answer what is in flight, briefly (a floor holds nothing worth a longer wait)
Handler = Callable[[Any, grpc.aio.ServicerContext], Awaitable[Any]]


def tf_rows(request: Any) -> np.ndarray:
    """A PredictRequest's ``pixels`` as float32 [n, 784]; BadRequest names the problem."""
    if list(request.inputs) != [INPUT_NAME]:
        raise BadRequest(f"inputs must be exactly {{'{INPUT_NAME}'}}; got {sorted(request.inputs)}")
    tensor = request.inputs[INPUT_NAME]
    if tensor.dtype != protos.DT_FLOAT:
        raise BadRequest(f"'{INPUT_NAME}' must be DT_FLOAT ({protos.DT_FLOAT}); got dtype {tensor.dtype}")
    shape = tuple(d.size for d in tensor.tensor_shape.dim)
    if len(shape) != 2 or shape[1] != INPUT_DIM or not 0 < shape[0] <= MAX_ROWS_PER_REQUEST:
        raise BadRequest(f"'{INPUT_NAME}' must have shape [1..{MAX_ROWS_PER_REQUEST}, {INPUT_DIM}]; got {list(shape)}")
    values = shape[0] * INPUT_DIM
    if tensor.tensor_content:
        if len(tensor.tensor_content) != 4 * values:
            raise BadRequest(
                f"tensor_content holds {len(tensor.tensor_content)} bytes; shape {list(shape)} needs {4 * values}"
            )
        return np.frombuffer(tensor.tensor_content, "<f4").reshape(shape)
    if len(tensor.float_val) != values:
        raise BadRequest(f"float_val holds {len(tensor.float_val)} values; shape {list(shape)} needs {values}")
    return np.asarray(tensor.float_val, np.float32).reshape(shape)


def _tf_answer(request: Any, probs: np.ndarray, version: int) -> Any:
    response = protos.PredictResponse()
    out = response.outputs[OUTPUT_NAME]
    out.dtype = protos.DT_FLOAT
    out.tensor_shape.dim.add(size=len(probs))
    out.tensor_shape.dim.add(size=NUM_CLASSES)
    out.tensor_content = np.ascontiguousarray(probs, "<f4").tobytes()
    response.model_spec.name = request.model_spec.name or TF_MODEL_NAME
    response.model_spec.version.value = version
    response.model_spec.signature_name = request.model_spec.signature_name or SIGNATURE_NAME
    return response


def _torchserve_rows(request: Any) -> np.ndarray:
    if TORCHSERVE_TENSOR_INPUT not in request.input:
        raise BadRequest(f"expected the input '{TORCHSERVE_TENSOR_INPUT}' (rows as little-endian float32 bytes)")
    return parse_tensor(request.input[TORCHSERVE_TENSOR_INPUT])


def _torchserve_answer(request: Any, probs: np.ndarray, version: int) -> Any:  # as _tf_answer; uses probs only
    return protos.PredictionResponse(prediction=np.ascontiguousarray(probs, "<f4").tobytes())


def handler(kind: str, infer: Infer, version: int) -> tuple[str, Handler, Any]:
    """(method, the coroutine that answers its serialised requests, response serialiser) for ``kind``."""
    if kind == "savedmodel":
        method, rows_of, answer = TF_PREDICT_METHOD, tf_rows, _tf_answer
        request_type, response_type = protos.PredictRequest, protos.PredictResponse
    else:
        method, rows_of, answer = TORCHSERVE_PREDICTIONS_METHOD, _torchserve_rows, _torchserve_answer
        request_type, response_type = protos.PredictionsRequest, protos.PredictionResponse

    parse = request_type.FromString

    async def predict(raw: bytes, context: grpc.aio.ServicerContext) -> Any:
        # Parsed here, not by grpcio: bytes that are no such message are INVALID_ARGUMENT, not INTERNAL.
        try:
            request = parse(raw)
            rows = rows_of(request)
        except DecodeError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"not a {request_type.DESCRIPTOR.name}: {exc}")
        except BadRequest as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        try:
            probs, batch = await infer(rows)
        except Exception as exc:  # the model failed: a clear INTERNAL, the server stays up
            await context.abort(grpc.StatusCode.INTERNAL, f"model failed: {type(exc).__name__}: {exc}")
        if batch:
            context.set_trailing_metadata(((BATCH_METADATA, str(batch)),))
        return answer(request, probs, version)

    return method, predict, response_type.SerializeToString


async def start(kind: str, infer: Infer, version: int, port: int, host: str = "127.0.0.1") -> grpc.aio.Server:
    """A started grpc.aio server on the running event loop, answering ``kind``'s method."""
    method, predict, serialise = handler(kind, infer, version)
    service, name = method.strip("/").split("/")
    # so_reuseport off: a port another server holds is an error here, not a silent second listener.
    server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
    rpc = grpc.unary_unary_rpc_method_handler(predict, response_serializer=serialise)
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service, {name: rpc}),))
    try:
        bound = server.add_insecure_port(f"{host}:{port}")
    except RuntimeError as exc:  # grpcio >= 1.5x raises instead of returning 0
        raise SystemExit(f"cannot serve gRPC on {host}:{port}: {exc}") from exc
    if bound == 0:
        raise SystemExit(f"cannot serve gRPC on {host}:{port}")
    await server.start()
    return server
