"""Binary tensors without TensorFlow's helpers: the stand-in's TensorProto codec (checked against
tf.make_ndarray / tf.make_tensor_proto) and the TorchServe handler's float32 payload."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2

from serving.tfserving_standin.grpc_api import from_ndarray, to_ndarray
from serving.torchserve.mnist_handler import BadRequest, parse_tensor


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int32, np.int64])
@pytest.mark.parametrize("shape", [(1, 784), (3, 4), (5,)])
def test_codec_agrees_with_tensorflow(dtype: type, shape: tuple[int, ...]) -> None:
    value: np.ndarray = (np.random.default_rng(0).random(shape) * 100).astype(dtype)
    content = tf.make_tensor_proto(value)  # tensor_content
    fields = tf.make_tensor_proto(value.ravel().tolist(), dtype=tf.as_dtype(dtype), shape=shape)  # typed values
    for proto in (content, fields):
        np.testing.assert_array_equal(to_ndarray(proto), tf.make_ndarray(proto))
    response = predict_pb2.PredictResponse()
    from_ndarray(value, response.outputs["x"])
    np.testing.assert_array_equal(tf.make_ndarray(response.outputs["x"]), value)
    assert not response.outputs["x"].tensor_content  # the typed field, as TF Serving answers by default


def test_single_value_fills_the_tensor_and_others_fall_back() -> None:
    proto = tf.make_tensor_proto(0.5, dtype=tf.float32, shape=[2, 2])
    np.testing.assert_array_equal(to_ndarray(proto), np.full((2, 2), 0.5, np.float32))
    strings = tf.make_tensor_proto(np.array([b"a", b"b"]))
    assert to_ndarray(strings).tolist() == [b"a", b"b"]  # not numeric: TensorFlow decodes it


def test_handler_binary_tensor() -> None:
    rows = np.random.default_rng(1).random((3, 784)).astype("<f4")
    np.testing.assert_array_equal(parse_tensor(bytearray(rows.tobytes())), rows)
    for bad, needle in (
        (b"", "whole rows"),
        (b"\x00" * 100, "whole rows"),
        (np.full(784, np.nan, "<f4").tobytes(), "NaN"),
    ):
        with pytest.raises(BadRequest, match=needle):
            parse_tensor(bad)
    with pytest.raises(BadRequest, match="at most 256 rows"):
        parse_tensor(np.zeros((257, 784), "<f4").tobytes())
