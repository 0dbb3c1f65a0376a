"""The few TF Serving config and model-management messages a rollout needs, declared here so it needs
no TensorFlow (importing tensorflow-serving-api's generated classes imports TensorFlow).

Names and field numbers are those of ``tensorflow_serving/config/model_server_config.proto``,
``file_system_storage_path_source.proto``, ``apis/model_management.proto`` and ``apis/status.proto``
(only the fields used here); tests/serving/test_tfserving_config.py checks them against the generated
classes and sends them to the stand-in. ``ModelService.HandleReloadConfigRequest`` is the real
server's gRPC method for a new model config.
"""

from __future__ import annotations

from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

_F = descriptor_pb2.FieldDescriptorProto
_OPT, _REP = _F.LABEL_OPTIONAL, _F.LABEL_REPEATED
_PKG = "tensorflow.serving"
RELOAD_CONFIG_METHOD = "/tensorflow.serving.ModelService/HandleReloadConfigRequest"


def _field(msg: Any, name: str, number: int, type_: int, label: int = _OPT, type_name: str = "") -> Any:
    f = msg.field.add(name=name, number=number, type=type_, label=label)
    if type_name:
        f.type_name = type_name
    return f


def _build() -> dict[str, type[Any]]:
    pool = descriptor_pool.DescriptorPool()
    f = descriptor_pb2.FileDescriptorProto(name="mnist_serving/tfserving_config.proto", package=_PKG, syntax="proto3")

    policy = f.message_type.add(name="ServableVersionPolicy")  # FileSystemStoragePathSourceConfig's
    latest = policy.nested_type.add(name="Latest")
    _field(latest, "num_versions", 1, _F.TYPE_UINT32)
    policy.nested_type.add(name="All")
    specific = policy.nested_type.add(name="Specific")
    _field(specific, "versions", 1, _F.TYPE_INT64, _REP)
    policy.oneof_decl.add(name="policy_choice")
    for name, number in (("latest", 100), ("all", 101), ("specific", 102)):
        kind = name.capitalize()
        _field(policy, name, number, _F.TYPE_MESSAGE, type_name=f".{_PKG}.ServableVersionPolicy.{kind}").oneof_index = 0

    model = f.message_type.add(name="ModelConfig")
    _field(model, "name", 1, _F.TYPE_STRING)
    _field(model, "base_path", 2, _F.TYPE_STRING)
    _field(model, "model_platform", 4, _F.TYPE_STRING)
    _field(model, "model_version_policy", 7, _F.TYPE_MESSAGE, type_name=f".{_PKG}.ServableVersionPolicy")
    entry = model.nested_type.add(name="VersionLabelsEntry")
    entry.options.map_entry = True
    _field(entry, "key", 1, _F.TYPE_STRING)
    _field(entry, "value", 2, _F.TYPE_INT64)
    _field(model, "version_labels", 8, _F.TYPE_MESSAGE, _REP, f".{_PKG}.ModelConfig.VersionLabelsEntry")

    listing = f.message_type.add(name="ModelConfigList")
    _field(listing, "config", 1, _F.TYPE_MESSAGE, _REP, f".{_PKG}.ModelConfig")
    server = f.message_type.add(name="ModelServerConfig")
    server.oneof_decl.add(name="config")
    _field(server, "model_config_list", 1, _F.TYPE_MESSAGE, type_name=f".{_PKG}.ModelConfigList").oneof_index = 0

    status = f.message_type.add(name="StatusProto")
    _field(status, "error_code", 1, _F.TYPE_INT32)  # tensorflow.error.Code; on the wire both are varints
    _field(status, "error_message", 2, _F.TYPE_STRING)
    request = f.message_type.add(name="ReloadConfigRequest")
    _field(request, "config", 1, _F.TYPE_MESSAGE, type_name=f".{_PKG}.ModelServerConfig")
    response = f.message_type.add(name="ReloadConfigResponse")
    _field(response, "status", 1, _F.TYPE_MESSAGE, type_name=f".{_PKG}.StatusProto")
    pool.Add(f)

    def cls(name: str) -> type[Any]:
        return message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{_PKG}.{name}"))

    names = ("ModelServerConfig", "ModelConfig", "ReloadConfigRequest", "ReloadConfigResponse")
    return {n: cls(n) for n in names}


_MESSAGES = _build()
ModelServerConfig = _MESSAGES["ModelServerConfig"]
ModelConfig = _MESSAGES["ModelConfig"]
ReloadConfigRequest = _MESSAGES["ReloadConfigRequest"]
ReloadConfigResponse = _MESSAGES["ReloadConfigResponse"]
