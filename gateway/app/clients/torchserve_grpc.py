"""TorchServe over gRPC: ``InferenceAPIsService/Predictions`` with the rows as a binary tensor.

The input ``tensor`` holds the rows as little-endian float32 bytes, and the project's handler
answers with the probabilities the same way: no JSON is encoded or parsed on either side.
"""

from __future__ import annotations

import grpc
import numpy as np

from gateway.app.clients.base import BackendError, ClientSettings, Prediction, Status
from gateway.app.clients.grpc_common import raise_for, unary_stub
from gateway.app.clients.torchserve_rest import TorchServeStatus, check_version
from mnist_serving import protos
from mnist_serving.spec import NUM_CLASSES, TORCHSERVE_TENSOR_INPUT


class TorchServeGRPCClient:
    protocol = "grpc"

    def __init__(self, settings: ClientSettings):
        s = settings
        self.name, self.address = s.name, s.grpc_address
        self._model, self._timeout, self._status = s.model, s.timeout_s, TorchServeStatus(s)
        self._channel, self._predict = unary_stub(
            s.grpc_address, protos.TORCHSERVE_PREDICTIONS, protos.PredictionResponse
        )

    async def predict(
        self, rows: np.ndarray, json_body: bytes | None = None, *, timeout: float, version: str | None = None
    ) -> Prediction:
        target = check_version(self.name, version) if version is not None else await self._status.default_version()
        request = protos.PredictionsRequest(model_name=self._model, model_version=target)
        request.input[TORCHSERVE_TENSOR_INPUT] = np.ascontiguousarray(rows, dtype="<f4").tobytes()
        try:
            response = await self._predict(request, timeout=min(timeout, self._timeout))
        except grpc.aio.AioRpcError as exc:
            raise_for(self.name, exc)
        probs = np.frombuffer(response.prediction, dtype="<f4")
        if probs.size != len(rows) * NUM_CLASSES:
            raise BackendError(self.name, f"answer holds {probs.size} values, expected {len(rows)}x{NUM_CLASSES}")
        return Prediction(probs.reshape(len(rows), NUM_CLASSES), target)

    async def status(self) -> Status:
        return await self._status.status()

    async def aclose(self) -> None:
        await self._channel.close()
        await self._status.aclose()
