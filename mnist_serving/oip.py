"""The Open Inference Protocol (KServe v2: Triton, KServe, MLServer) as the gateway speaks it: its
model names, tensors and gRPC messages.

The gRPC messages are declared here (as mnist_serving/protos.py declares the servers' own), with the
names and field numbers of KServe's published ``grpc_predict_v2.proto`` (package ``inference``,
service ``GRPCInferenceService``; Apache-2.0); tests/gateway/test_oip.py checks every field against
the generated classes of Triton's client, whose ``grpc_service.proto`` is a superset of it.
"""

from __future__ import annotations

from typing import Any, Final

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

from mnist_serving.spec import INPUT_NAME, NUM_CLASSES, OUTPUT_NAME

# One model name per backend, and one for the gateway's routing policy (``auto``).
MODELS: Final = {
    "mnist": "auto",
    "mnist-tfserving": "tfserving",
    "mnist-torchserve": "torchserve",
    "mnist-torchserve-onnx": "torchserve-onnx",
}
MODEL_OF_BACKEND: Final = {backend: model for model, backend in MODELS.items()}
SERVER_NAME: Final = "mnist-serving"
EXTENSIONS: Final = ("binary_tensor_data",)  # Triton's binary data extension, on the REST routes
# The tensors: rows of 784 pixels (or 28x28 images) in; probabilities, the label and whether the
# answer is uncertain out.
INPUT: Final = INPUT_NAME
PROBABILITIES: Final = OUTPUT_NAME
LABEL: Final = "label"
UNCERTAIN: Final = "uncertain"
OUTPUTS: Final = {PROBABILITIES: ("FP32", [-1, NUM_CLASSES]), LABEL: ("INT64", [-1]), UNCERTAIN: ("BOOL", [-1])}
SERVICE: Final = "inference.GRPCInferenceService"

_F = descriptor_pb2.FieldDescriptorProto
_OPT, _REP = _F.LABEL_OPTIONAL, _F.LABEL_REPEATED
_S, _B, _I64, _BYTES, _MSG = _F.TYPE_STRING, _F.TYPE_BOOL, _F.TYPE_INT64, _F.TYPE_BYTES, _F.TYPE_MESSAGE


def _field(msg: Any, name: str, number: int, type_: int, label: int = _OPT, type_name: str = "") -> Any:
    f = msg.field.add(name=name, number=number, type=type_, label=label)
    if type_name:
        f.type_name = type_name
    return f


def _parameters(msg: Any, number: int, path: str) -> None:
    """``map<string, InferParameter> parameters = number;``"""
    entry = msg.nested_type.add(name="ParametersEntry")
    entry.options.map_entry = True
    _field(entry, "key", 1, _S)
    _field(entry, "value", 2, _MSG, type_name=".inference.InferParameter")
    _field(msg, "parameters", number, _MSG, _REP, f".inference.{path}.ParametersEntry")


def _build() -> dict[str, type[Any]]:
    f = descriptor_pb2.FileDescriptorProto(name="mnist_serving/grpc_predict_v2.proto", package="inference",
                                           syntax="proto3")  # fmt: skip
    for name in ("ServerLiveRequest", "ServerReadyRequest", "ServerMetadataRequest"):
        f.message_type.add(name=name)
    _field(f.message_type.add(name="ServerLiveResponse"), "live", 1, _B)
    _field(f.message_type.add(name="ServerReadyResponse"), "ready", 1, _B)
    for name in ("ModelReadyRequest", "ModelMetadataRequest"):
        m = f.message_type.add(name=name)
        _field(m, "name", 1, _S)
        _field(m, "version", 2, _S)
    _field(f.message_type.add(name="ModelReadyResponse"), "ready", 1, _B)
    m = f.message_type.add(name="ServerMetadataResponse")
    _field(m, "name", 1, _S)
    _field(m, "version", 2, _S)
    _field(m, "extensions", 3, _S, _REP)
    m = f.message_type.add(name="ModelMetadataResponse")
    t = m.nested_type.add(name="TensorMetadata")
    _field(t, "name", 1, _S)
    _field(t, "datatype", 2, _S)
    _field(t, "shape", 3, _I64, _REP)
    _field(m, "name", 1, _S)
    _field(m, "versions", 2, _S, _REP)
    _field(m, "platform", 3, _S)
    _field(m, "inputs", 4, _MSG, _REP, ".inference.ModelMetadataResponse.TensorMetadata")
    _field(m, "outputs", 5, _MSG, _REP, ".inference.ModelMetadataResponse.TensorMetadata")

    p = f.message_type.add(name="InferParameter")
    p.oneof_decl.add(name="parameter_choice")
    for name, number, type_ in (("bool_param", 1, _B), ("int64_param", 2, _I64), ("string_param", 3, _S),
                                ("double_param", 4, _F.TYPE_DOUBLE), ("uint64_param", 5, _F.TYPE_UINT64)):  # fmt: skip
        _field(p, name, number, type_).oneof_index = 0
    c = f.message_type.add(name="InferTensorContents")
    for name, number, type_ in (("bool_contents", 1, _B), ("int_contents", 2, _F.TYPE_INT32),
                                ("int64_contents", 3, _I64), ("uint_contents", 4, _F.TYPE_UINT32),
                                ("uint64_contents", 5, _F.TYPE_UINT64), ("fp32_contents", 6, _F.TYPE_FLOAT),
                                ("fp64_contents", 7, _F.TYPE_DOUBLE), ("bytes_contents", 8, _BYTES)):  # fmt: skip
        _field(c, name, number, type_, _REP)

    def tensor(parent: Any, name: str, path: str) -> None:
        t = parent.nested_type.add(name=name)
        _field(t, "name", 1, _S)
        _field(t, "datatype", 2, _S)
        _field(t, "shape", 3, _I64, _REP)
        _parameters(t, 4, f"{path}.{name}")
        _field(t, "contents", 5, _MSG, type_name=".inference.InferTensorContents")

    req = f.message_type.add(name="ModelInferRequest")
    tensor(req, "InferInputTensor", "ModelInferRequest")
    out = req.nested_type.add(name="InferRequestedOutputTensor")
    _field(out, "name", 1, _S)
    _parameters(out, 2, "ModelInferRequest.InferRequestedOutputTensor")
    _field(req, "model_name", 1, _S)
    _field(req, "model_version", 2, _S)
    _field(req, "id", 3, _S)
    _parameters(req, 4, "ModelInferRequest")
    _field(req, "inputs", 5, _MSG, _REP, ".inference.ModelInferRequest.InferInputTensor")
    _field(req, "outputs", 6, _MSG, _REP, ".inference.ModelInferRequest.InferRequestedOutputTensor")
    _field(req, "raw_input_contents", 7, _BYTES, _REP)

    resp = f.message_type.add(name="ModelInferResponse")
    tensor(resp, "InferOutputTensor", "ModelInferResponse")
    _field(resp, "model_name", 1, _S)
    _field(resp, "model_version", 2, _S)
    _field(resp, "id", 3, _S)
    _parameters(resp, 4, "ModelInferResponse")
    _field(resp, "outputs", 5, _MSG, _REP, ".inference.ModelInferResponse.InferOutputTensor")
    _field(resp, "raw_output_contents", 6, _BYTES, _REP)

    pool = descriptor_pool.DescriptorPool()
    pool.Add(f)
    names = [m.name for m in f.message_type]
    return {n: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"inference.{n}")) for n in names}


MESSAGES: Final = _build()
# The service's unary methods: name -> (request class, response class).
METHODS: Final = {
    name: (MESSAGES[f"{name}Request"], MESSAGES[f"{name}Response"])
    for name in ("ServerLive", "ServerReady", "ModelReady", "ServerMetadata", "ModelMetadata", "ModelInfer")
}
ModelInferRequest = MESSAGES["ModelInferRequest"]
ModelInferResponse = MESSAGES["ModelInferResponse"]
