"""TF Serving's gRPC contract: PredictionService and ModelService."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from mnist_serving.ports import local_address
from tests.training.test_artifacts import session_predict
from training.train import artifact_paths


@pytest.fixture(scope="module")
def channel(stack) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(local_address(stack.ports.tfserving_grpc)) as ch:
        yield ch


def _request(rows: np.ndarray, name: str = "mnist", version: int | None = None) -> predict_pb2.PredictRequest:
    req = predict_pb2.PredictRequest()
    req.model_spec.name = name
    req.model_spec.signature_name = "serving_default"
    if version is not None:
        req.model_spec.version.value = version
    req.inputs["pixels"].CopyFrom(tf.make_tensor_proto(rows.astype(np.float32)))
    return req


def test_predict_matches_in_process(channel: grpc.Channel, rows: np.ndarray, artifact_dir) -> None:
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    resp = stub.Predict(_request(rows[:8]), timeout=10)
    out = tf.make_ndarray(resp.outputs["probabilities"])
    expected, _ = session_predict(artifact_paths(artifact_dir, 1)["savedmodel"], rows[:8])
    np.testing.assert_allclose(out, expected, atol=1e-6)
    assert resp.model_spec.version.value == 1


def test_predict_by_label(channel: grpc.Channel, rows: np.ndarray) -> None:
    req = _request(rows[:1])
    req.model_spec.version_label = "stable"
    resp = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(req, timeout=10)
    assert tf.make_ndarray(resp.outputs["probabilities"]).shape == (1, 10)


@pytest.mark.parametrize(
    ("req", "code"),
    [
        (_request(np.zeros((1, 5))), grpc.StatusCode.INVALID_ARGUMENT),
        (_request(np.zeros((1, 784)), name="nope"), grpc.StatusCode.NOT_FOUND),
        (_request(np.zeros((1, 784)), version=42), grpc.StatusCode.NOT_FOUND),
    ],
    ids=["bad-shape", "unknown-model", "unknown-version"],
)
def test_predict_errors(channel: grpc.Channel, req: predict_pb2.PredictRequest, code: grpc.StatusCode) -> None:
    with pytest.raises(grpc.RpcError) as err:
        prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(req, timeout=10)
    assert err.value.code() == code and err.value.details()


def test_get_model_metadata(channel: grpc.Channel) -> None:
    req = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
    req.model_spec.name = "mnist"
    resp = prediction_service_pb2_grpc.PredictionServiceStub(channel).GetModelMetadata(req, timeout=10)
    sig_map = get_model_metadata_pb2.SignatureDefMap()
    resp.metadata["signature_def"].Unpack(sig_map)
    sig = sig_map.signature_def["serving_default"]
    assert list(sig.inputs) == ["pixels"] and list(sig.outputs) == ["probabilities"]


def test_get_model_status(channel: grpc.Channel) -> None:
    req = get_model_status_pb2.GetModelStatusRequest()
    req.model_spec.name = "mnist"
    resp = model_service_pb2_grpc.ModelServiceStub(channel).GetModelStatus(req, timeout=10)
    assert [(s.version, s.state) for s in resp.model_version_status] == [
        (1, get_model_status_pb2.ModelVersionStatus.AVAILABLE)
    ]
