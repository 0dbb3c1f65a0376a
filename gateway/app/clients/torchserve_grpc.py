"""TorchServe over gRPC: ``InferenceAPIsService/Predictions`` with the same JSON body as REST."""

from __future__ import annotations

import grpc
import numpy as np
import orjson

from gateway.app.clients import protos
from gateway.app.clients.base import Prediction, Status
from gateway.app.clients.grpc_common import raise_for, unary_stub
from gateway.app.clients.torchserve_rest import TorchServeStatus, parse_torchserve


class TorchServeGRPCClient:
    protocol = "grpc"

    def __init__(self, name: str, address: str, model: str, timeout: float, status: TorchServeStatus):
        self.name, self.address = name, address
        self._model, self._timeout, self._status = model, timeout, status
        self._channel, self._predict = unary_stub(address, protos.TORCHSERVE_PREDICTIONS, protos.PredictionResponse)

    async def predict(self, rows: np.ndarray) -> Prediction:
        request = protos.PredictionsRequest(model_name=self._model)
        request.input["body"] = orjson.dumps({"instances": rows}, option=orjson.OPT_SERIALIZE_NUMPY)
        try:
            response = await self._predict(request, timeout=self._timeout)
        except grpc.aio.AioRpcError as exc:
            raise_for(self.name, exc)
        return parse_torchserve(self.name, 200, response.prediction, len(rows), await self._status.current_version())

    async def status(self) -> Status:
        return await self._status.status()

    async def aclose(self) -> None:
        await self._channel.close()
        await self._status.aclose()
