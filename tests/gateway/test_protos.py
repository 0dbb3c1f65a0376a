"""The gateway's hand-declared wire messages against tensorflow-serving-api's generated ones."""

from __future__ import annotations

import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2

from mnist_serving import protos


def test_predict_request_round_trips_into_the_real_message() -> None:
    rows = np.random.default_rng(0).random((3, 784), dtype=np.float32)
    req = protos.PredictRequest()
    req.model_spec.name = "mnist"
    req.model_spec.version_label = "stable"
    req.model_spec.signature_name = "serving_default"
    t = req.inputs["pixels"]
    t.dtype = protos.DT_FLOAT
    for d in rows.shape:
        t.tensor_shape.dim.add(size=d)
    t.tensor_content = rows.tobytes()
    real = predict_pb2.PredictRequest.FromString(req.SerializeToString())
    assert real.model_spec.name == "mnist" and real.model_spec.version_label == "stable"
    np.testing.assert_array_equal(tf.make_ndarray(real.inputs["pixels"]), rows)


def test_real_predict_response_parses() -> None:
    real = predict_pb2.PredictResponse()
    real.model_spec.version.value = 4
    real.outputs["probabilities"].CopyFrom(tf.make_tensor_proto(np.eye(2, 10, dtype=np.float32)))
    ours = protos.PredictResponse.FromString(real.SerializeToString())
    out = ours.outputs["probabilities"]
    assert ours.model_spec.version.value == 4 and [d.size for d in out.tensor_shape.dim] == [2, 10]
    assert np.frombuffer(out.tensor_content, np.float32).reshape(2, 10)[1, 1] == 1.0
