"""The three config files, parsed as text protos exactly as the real server parses them.

``ModelServerConfig`` comes from tensorflow-serving-api. The batching and monitoring messages
are not in that package, so their schemas are declared here with the field names of
``session_bundle_config.proto`` and ``monitoring_config.proto``; unknown fields are errors.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, text_format, wrappers_pb2
from tensorflow_serving.config import model_server_config_pb2

_PACKAGE = "tensorflow.serving"
_F = descriptor_pb2.FieldDescriptorProto


def _build_messages() -> tuple[type[Any], type[Any]]:
    pool = descriptor_pool.DescriptorPool()
    pool.AddSerializedFile(wrappers_pb2.DESCRIPTOR.serialized_pb)
    f = descriptor_pb2.FileDescriptorProto(
        name="mnist_serving_standin_configs.proto",
        package=_PACKAGE,
        syntax="proto3",
        dependency=["google/protobuf/wrappers.proto"],
    )
    batching = f.message_type.add(name="BatchingParameters")
    wrapped = [
        ("max_batch_size", "Int64Value"),
        ("batch_timeout_micros", "Int64Value"),
        ("max_enqueued_batches", "Int64Value"),
        ("num_batch_threads", "Int64Value"),
        ("thread_pool_name", "StringValue"),
        ("pad_variable_length_inputs", "BoolValue"),
        ("enable_large_batch_splitting", "BoolValue"),
        ("max_execution_batch_size", "Int64Value"),
    ]
    for number, (name, kind) in enumerate(wrapped, start=1):
        batching.field.add(
            name=name,
            number=number,
            type=_F.TYPE_MESSAGE,
            label=_F.LABEL_OPTIONAL,
            type_name=f".google.protobuf.{kind}",
        )
    batching.field.add(name="allowed_batch_sizes", number=20, type=_F.TYPE_INT64, label=_F.LABEL_REPEATED)
    prom = f.message_type.add(name="PrometheusConfig")
    prom.field.add(name="enable", number=1, type=_F.TYPE_BOOL, label=_F.LABEL_OPTIONAL)
    prom.field.add(name="path", number=2, type=_F.TYPE_STRING, label=_F.LABEL_OPTIONAL)
    monitoring = f.message_type.add(name="MonitoringConfig")
    monitoring.field.add(
        name="prometheus_config",
        number=1,
        type=_F.TYPE_MESSAGE,
        label=_F.LABEL_OPTIONAL,
        type_name=f".{_PACKAGE}.PrometheusConfig",
    )
    pool.Add(f)
    return (
        message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{_PACKAGE}.BatchingParameters")),
        message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{_PACKAGE}.MonitoringConfig")),
    )


BatchingParameters, MonitoringConfig = _build_messages()


class ConfigError(ValueError):
    pass


def _parse(path: str | Path, message: Any, what: str) -> Any:
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {path}: {exc.strerror}") from exc
    try:
        return text_format.Parse(text, message)
    except text_format.ParseError as exc:
        raise ConfigError(f"{what} {path}: {exc}") from exc


def load_model_config(path: str | Path) -> Any:
    config = _parse(path, model_server_config_pb2.ModelServerConfig(), "model config")
    if not config.model_config_list.config:
        raise ConfigError(f"model config {path} lists no models")
    return config


def single_model_config(name: str, base_path: str) -> Any:
    """What ``--model_name``/``--model_base_path`` mean when no config file is given."""
    config = model_server_config_pb2.ModelServerConfig()
    config.model_config_list.config.add(name=name, base_path=base_path, model_platform="tensorflow")
    return config


@dataclass(frozen=True)
class Batching:
    max_batch_size: int = 1000  # the real server's defaults when a field is unset
    batch_timeout_micros: int = 0
    max_enqueued_batches: int = 10
    num_batch_threads: int = 4
    # With splitting, max_batch_size bounds a task (request) and max_execution_batch_size a run.
    enable_large_batch_splitting: bool = False
    max_execution_batch_size: int = 0  # 0: unset, i.e. max_batch_size

    @property
    def execution_batch_size(self) -> int:
        """Rows one session run takes."""
        if self.enable_large_batch_splitting and self.max_execution_batch_size:
            return self.max_execution_batch_size
        return self.max_batch_size

    @property
    def max_enqueued_rows(self) -> int:
        return self.execution_batch_size * self.max_enqueued_batches


def load_batching(path: str | Path | None) -> Batching:
    if not path:
        return Batching()
    p = _parse(path, BatchingParameters(), "batching parameters")
    d = Batching()

    def pick(field: str, default: int) -> int:
        return int(getattr(p, field).value) if p.HasField(field) else default

    batching = Batching(
        max_batch_size=pick("max_batch_size", d.max_batch_size),
        batch_timeout_micros=pick("batch_timeout_micros", d.batch_timeout_micros),
        max_enqueued_batches=pick("max_enqueued_batches", d.max_enqueued_batches),
        num_batch_threads=pick("num_batch_threads", d.num_batch_threads),
        enable_large_batch_splitting=bool(p.enable_large_batch_splitting.value),
        max_execution_batch_size=pick("max_execution_batch_size", d.max_execution_batch_size),
    )
    if min(batching.max_batch_size, batching.max_enqueued_batches, batching.num_batch_threads) < 1:
        raise ConfigError(f"batching parameters {path}: sizes and thread counts must be positive")
    if batching.max_execution_batch_size > batching.max_batch_size:
        raise ConfigError(f"batching parameters {path}: max_execution_batch_size exceeds max_batch_size")
    return batching


def load_monitoring(path: str | Path | None) -> str | None:
    """The Prometheus path if enabled, else None."""
    if not path:
        return None
    m = _parse(path, MonitoringConfig(), "monitoring config")
    if not m.prometheus_config.enable:
        return None
    return m.prometheus_config.path or "/monitoring/prometheus/metrics"
