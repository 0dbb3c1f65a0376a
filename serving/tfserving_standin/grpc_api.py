"""gRPC: PredictionService (Predict, GetModelMetadata) and ModelService (GetModelStatus,
HandleReloadConfigRequest)."""

from __future__ import annotations

import logging
import time
from typing import Any

import grpc
import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_management_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from serving.tfserving_standin import metrics
from serving.tfserving_standin.errors import ServingError, invalid
from serving.tfserving_standin.manager import ModelManager
from serving.tfserving_standin.servable import Servable

log = logging.getLogger("tfserving_standin")
_UNKNOWN = 2  # tensorflow.error.Code UNKNOWN: a load's error as the real server reports it


def _resolve(manager: ModelManager, spec: Any) -> Servable:
    choice = spec.WhichOneof("version_choice")
    version = spec.version.value if choice == "version" else None
    label = spec.version_label if choice == "version_label" else None
    return manager.resolve(spec.name, version, label)


# DataType enum -> numpy dtype, for the numeric types numpy decodes directly (others: tf.make_ndarray).
_NUMPY_DTYPES = {1: np.float32, 2: np.float64, 3: np.int32, 9: np.int64}
_VALUE_FIELDS = {1: "float_val", 2: "double_val", 3: "int_val", 9: "int64_val"}


def to_ndarray(proto: Any) -> np.ndarray:
    """A TensorProto as an array; numpy reads tensor_content and the repeated fields directly
    (tf.make_ndarray costs ~12 µs a call, which is most of a small request's decode)."""
    dtype = _NUMPY_DTYPES.get(proto.dtype)
    if dtype is None or proto.tensor_shape.unknown_rank:
        return tf.make_ndarray(proto)
    shape = [d.size for d in proto.tensor_shape.dim]
    if proto.tensor_content:
        return np.frombuffer(proto.tensor_content, dtype=dtype).reshape(shape)
    values = np.asarray(getattr(proto, _VALUE_FIELDS[proto.dtype]), dtype=dtype)
    size = int(np.prod(shape))
    if values.size == size:
        return values.reshape(shape)
    if values.size == 1:  # a single value fills the tensor, as in TensorFlow
        return np.full(shape, values[0], dtype=dtype)
    raise ValueError(f"{values.size} values for a tensor of shape {shape}")


def from_ndarray(value: np.ndarray, proto: Any) -> None:
    """Fill a response TensorProto the way TF Serving does by default (the typed repeated field)."""
    dtype = next((k for k, v in _NUMPY_DTYPES.items() if v == value.dtype), None)
    if dtype is None:
        proto.CopyFrom(tf.make_tensor_proto(value))
        return
    proto.dtype = dtype
    for d in value.shape:
        proto.tensor_shape.dim.add(size=d)
    getattr(proto, _VALUE_FIELDS[dtype]).extend(value.ravel().tolist())


class PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
    def __init__(self, manager: ModelManager):
        self.manager = manager

    async def Predict(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        start = time.perf_counter()
        status = "OK"
        name = request.model_spec.name
        try:
            servable = _resolve(self.manager, request.model_spec)
            try:
                inputs = {k: to_ndarray(v) for k, v in request.inputs.items()}
            except (TypeError, ValueError) as exc:
                raise invalid(f"malformed TensorProto: {exc}") from exc
            signature = request.model_spec.signature_name
            outputs = await self.manager.predict(servable, signature, inputs, list(request.output_filter), "predict")
            response = predict_pb2.PredictResponse()
            response.model_spec.name = name
            response.model_spec.version.value = servable.version
            response.model_spec.signature_name = signature or "serving_default"
            for k, v in outputs.items():
                from_ndarray(v, response.outputs[k])
            return response
        except ServingError as exc:
            status = exc.code.name
            await context.abort(exc.code, exc.message)
        finally:
            metrics.request_count.labels(name, status, "GRPC").inc()
            metrics.request_latency.labels(name, "predict", "GRPC").observe((time.perf_counter() - start) * 1e6)

    async def GetModelMetadata(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        try:
            if list(request.metadata_field) != ["signature_def"]:
                raise invalid("Metadata field signature_def must be the only requested field")
            servable = _resolve(self.manager, request.model_spec)
        except ServingError as exc:
            await context.abort(exc.code, exc.message)
        sig_map = get_model_metadata_pb2.SignatureDefMap()
        for k, v in servable.signature_defs.items():
            sig_map.signature_def[k].CopyFrom(v)
        response = get_model_metadata_pb2.GetModelMetadataResponse()
        response.model_spec.name = request.model_spec.name
        response.model_spec.version.value = servable.version
        response.metadata["signature_def"].Pack(sig_map)
        return response

    async def _unimplemented(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "only Predict and GetModelMetadata are served")

    Classify = Regress = MultiInference = _unimplemented


class ModelService(model_service_pb2_grpc.ModelServiceServicer):
    def __init__(self, manager: ModelManager):
        self.manager = manager

    async def GetModelStatus(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        spec = request.model_spec
        choice = spec.WhichOneof("version_choice")
        try:
            statuses = self.manager.status(
                spec.name,
                spec.version.value if choice == "version" else None,
                spec.version_label if choice == "version_label" else None,
            )
        except ServingError as exc:
            await context.abort(exc.code, exc.message)
        response = get_model_status_pb2.GetModelStatusResponse()
        for s in statuses:
            status = response.model_version_status.add(version=s.version, state=int(s.state))
            if s.error:
                status.status.error_code = _UNKNOWN
                status.status.error_message = s.error
        return response

    async def HandleReloadConfigRequest(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        """The real server's answer: the status both as the call's and in the response."""
        try:
            await self.manager.reload(request.config)
        except ServingError as exc:
            log.error("ReloadConfig failed: %s", exc.message)
            await context.abort(exc.code, exc.message)
        return model_management_pb2.ReloadConfigResponse()


def add_services(server: grpc.aio.Server, manager: ModelManager) -> None:
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(PredictionService(manager), server)
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(ModelService(manager), server)
