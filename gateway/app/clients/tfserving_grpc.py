"""TF Serving over gRPC: ``PredictionService/Predict`` with the tensor as raw float32 bytes."""

from __future__ import annotations

import grpc
import numpy as np

from gateway.app.clients.base import BackendError, ClientSettings, Prediction, Status
from gateway.app.clients.grpc_common import raise_for, unary_stub
from gateway.app.clients.tfserving_rest import TFServingRESTClient
from mnist_serving import protos
from mnist_serving.spec import INPUT_NAME, NUM_CLASSES, OUTPUT_NAME, SIGNATURE_NAME


class TFServingGRPCClient:
    protocol = "grpc"

    def __init__(self, settings: ClientSettings):
        s = settings
        self.name, self.address = s.name, s.grpc_address
        self._model, self._label, self._timeout = s.model, s.version_label, s.timeout_s
        self._channel, self._predict = unary_stub(s.grpc_address, protos.TF_PREDICT, protos.PredictResponse)
        # Readiness and version over REST, where TF Serving reports the implementation.
        self._status = TFServingRESTClient(s)

    async def predict(
        self, rows: np.ndarray, json_body: bytes | None = None, *, timeout: float, version: str | None = None
    ) -> Prediction:
        """A version by number or by label (TF Serving resolves labels itself; its answer names the
        version that computed it)."""
        request = protos.PredictRequest()
        request.model_spec.name = self._model
        request.model_spec.signature_name = SIGNATURE_NAME
        version = version if version is not None else (self._label or None)
        if version is not None and version.isdigit():
            request.model_spec.version.value = int(version)
        elif version is not None:
            request.model_spec.version_label = version
        tensor = request.inputs[INPUT_NAME]
        tensor.dtype = protos.DT_FLOAT
        for d in rows.shape:
            tensor.tensor_shape.dim.add(size=d)
        tensor.tensor_content = np.ascontiguousarray(rows, dtype=np.float32).tobytes()
        try:
            response = await self._predict(request, timeout=min(timeout, self._timeout))
        except grpc.aio.AioRpcError as exc:
            raise_for(self.name, exc)
        out = response.outputs[OUTPUT_NAME]
        if out.dtype != protos.DT_FLOAT:
            raise BackendError(self.name, f"output dtype {out.dtype} is not DT_FLOAT")
        shape = tuple(d.size for d in out.tensor_shape.dim)
        flat = np.frombuffer(out.tensor_content, np.float32) if out.tensor_content else np.asarray(out.float_val)
        if flat.size != int(np.prod(shape)) or shape != (len(rows), NUM_CLASSES):
            raise BackendError(self.name, f"output tensor has shape {list(shape)}")
        return Prediction(flat.reshape(shape), str(response.model_spec.version.value))

    async def status(self) -> Status:
        return await self._status.status()

    async def aclose(self) -> None:
        await self._channel.close()
        await self._status.aclose()
