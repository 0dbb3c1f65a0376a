"""The few wire messages the gRPC clients need, declared here so the gateway needs no TensorFlow.

Names and field numbers are those of ``tensorflow/core/framework/tensor.proto``,
``tensorflow_serving/apis/{model,predict}.proto`` and TorchServe's ``inference.proto``; the test
suite checks them against the generated classes of tensorflow-serving-api and against the servers.
"""

from __future__ import annotations

from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, wrappers_pb2

from mnist_serving.spec import TF_PREDICT_METHOD, TORCHSERVE_PREDICTIONS_METHOD

_F = descriptor_pb2.FieldDescriptorProto
_OPT, _REP = _F.LABEL_OPTIONAL, _F.LABEL_REPEATED
DT_FLOAT = 1


def _field(msg: Any, name: str, number: int, type_: int, label: int = _OPT, type_name: str = "") -> None:
    f = msg.field.add(name=name, number=number, type=type_, label=label)
    if type_name:  # an empty type_name still counts as set
        f.type_name = type_name


def _map_entry(msg: Any, name: str, value_type: int, value_type_name: str = "") -> str:
    entry = msg.nested_type.add(name=name)
    entry.options.map_entry = True
    _field(entry, "key", 1, _F.TYPE_STRING)
    _field(entry, "value", 2, value_type, type_name=value_type_name)
    return name


def _build() -> dict[str, type[Any]]:
    pool = descriptor_pool.DescriptorPool()
    pool.AddSerializedFile(wrappers_pb2.DESCRIPTOR.serialized_pb)

    tf = descriptor_pb2.FileDescriptorProto(name="gateway/tensor.proto", package="tensorflow", syntax="proto3")
    shape = tf.message_type.add(name="TensorShapeProto")
    dim = shape.nested_type.add(name="Dim")
    _field(dim, "size", 1, _F.TYPE_INT64)
    _field(dim, "name", 2, _F.TYPE_STRING)
    _field(shape, "dim", 2, _F.TYPE_MESSAGE, _REP, ".tensorflow.TensorShapeProto.Dim")
    _field(shape, "unknown_rank", 3, _F.TYPE_BOOL)
    tensor = tf.message_type.add(name="TensorProto")
    _field(tensor, "dtype", 1, _F.TYPE_INT32)  # the DataType enum; on the wire both are varints
    _field(tensor, "tensor_shape", 2, _F.TYPE_MESSAGE, type_name=".tensorflow.TensorShapeProto")
    _field(tensor, "tensor_content", 4, _F.TYPE_BYTES)
    _field(tensor, "float_val", 5, _F.TYPE_FLOAT, _REP)
    pool.Add(tf)

    ts = descriptor_pb2.FileDescriptorProto(
        name="gateway/predict.proto",
        package="tensorflow.serving",
        syntax="proto3",
        dependency=["google/protobuf/wrappers.proto", "gateway/tensor.proto"],
    )
    spec = ts.message_type.add(name="ModelSpec")
    _field(spec, "name", 1, _F.TYPE_STRING)
    _field(spec, "version", 2, _F.TYPE_MESSAGE, type_name=".google.protobuf.Int64Value")
    spec.oneof_decl.add(name="version_choice")
    spec.field[-1].oneof_index = 0
    _field(spec, "signature_name", 3, _F.TYPE_STRING)
    _field(spec, "version_label", 4, _F.TYPE_STRING)
    spec.field[-1].oneof_index = 0
    req = ts.message_type.add(name="PredictRequest")
    _field(req, "model_spec", 1, _F.TYPE_MESSAGE, type_name=".tensorflow.serving.ModelSpec")
    entry = _map_entry(req, "InputsEntry", _F.TYPE_MESSAGE, ".tensorflow.TensorProto")
    _field(req, "inputs", 2, _F.TYPE_MESSAGE, _REP, f".tensorflow.serving.PredictRequest.{entry}")
    _field(req, "output_filter", 3, _F.TYPE_STRING, _REP)
    resp = ts.message_type.add(name="PredictResponse")
    entry = _map_entry(resp, "OutputsEntry", _F.TYPE_MESSAGE, ".tensorflow.TensorProto")
    _field(resp, "outputs", 1, _F.TYPE_MESSAGE, _REP, f".tensorflow.serving.PredictResponse.{entry}")
    _field(resp, "model_spec", 2, _F.TYPE_MESSAGE, type_name=".tensorflow.serving.ModelSpec")
    pool.Add(ts)

    torch = descriptor_pb2.FileDescriptorProto(
        name="gateway/inference.proto", package="org.pytorch.serve.grpc.inference", syntax="proto3"
    )
    preq = torch.message_type.add(name="PredictionsRequest")
    _field(preq, "model_name", 1, _F.TYPE_STRING)
    _field(preq, "model_version", 2, _F.TYPE_STRING)
    entry = _map_entry(preq, "InputEntry", _F.TYPE_BYTES)
    _field(preq, "input", 3, _F.TYPE_MESSAGE, _REP, f".org.pytorch.serve.grpc.inference.PredictionsRequest.{entry}")
    presp = torch.message_type.add(name="PredictionResponse")
    _field(presp, "prediction", 1, _F.TYPE_BYTES)
    pool.Add(torch)

    def cls(name: str) -> type[Any]:
        return message_factory.GetMessageClass(pool.FindMessageTypeByName(name))

    return {
        "TensorProto": cls("tensorflow.TensorProto"),
        "PredictRequest": cls("tensorflow.serving.PredictRequest"),
        "PredictResponse": cls("tensorflow.serving.PredictResponse"),
        "PredictionsRequest": cls("org.pytorch.serve.grpc.inference.PredictionsRequest"),
        "PredictionResponse": cls("org.pytorch.serve.grpc.inference.PredictionResponse"),
    }


_MESSAGES = _build()
TensorProto = _MESSAGES["TensorProto"]
PredictRequest = _MESSAGES["PredictRequest"]
PredictResponse = _MESSAGES["PredictResponse"]
PredictionsRequest = _MESSAGES["PredictionsRequest"]
PredictionResponse = _MESSAGES["PredictionResponse"]

TF_PREDICT = TF_PREDICT_METHOD
TORCHSERVE_PREDICTIONS = TORCHSERVE_PREDICTIONS_METHOD
