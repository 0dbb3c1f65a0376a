"""Each server's settings per environment: the one table, read by everything that starts a server.

A server's base configuration is its shipped files (``serving/torchserve/config.properties``,
``serving/tfserving/*.config``), owned by ``serving/torchserve/config.py`` and
``serving/tfserving/config.py``. What differs between environments is only what is declared here:

- TorchServe: the process environment. ``TS_<KEY>`` variables override config.properties keys
  (``enable_envvars_config=true``); ``OMP_NUM_THREADS`` sets each worker's compute threads.
- TF Serving: ``tensorflow_model_server``'s flags beyond ports and config files, and its environment.

Where each environment gets them: ``native`` from ``serving/native`` (the launchers read this table);
``compose`` and ``compose-gpu`` from docker-compose.yml / docker-compose.gpu.yml and the images'
defaults; ``kubernetes`` and ``kubernetes-gpu`` from k8s/base and k8s/overlays/gpu (and the KServe
overlays alike). The YAML states the values so a reader sees them where they apply;
tests/deploy/test_server_settings.py fails when any of them differs from this table, and
tests/serving/test_environments.py checks the running native servers against it.

Why these values: TorchServe's CPU values were measured on the 2-core machine by ``make
bench-tuning`` (docs/load-testing.md#tuning). TF Serving's are reasoned, not measured: the real
server cannot run here, and the stand-in's threading is not the C++ server's. The GPU values follow
the GPU pods' 4-CPU limit and were not measured (no GPU machine was available for them).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType


class Environment(StrEnum):
    NATIVE = "native"
    COMPOSE = "compose"
    COMPOSE_GPU = "compose-gpu"
    KUBERNETES = "kubernetes"
    KUBERNETES_GPU = "kubernetes-gpu"

    @property
    def gpu(self) -> bool:
        return self.value.endswith("-gpu")


def _frozen(d: Mapping[str, str]) -> Mapping[str, str]:
    return MappingProxyType(dict(d))


@dataclass(frozen=True)
class TorchServeSettings:
    env: Mapping[str, str]  # the server process's environment; TS_* keys override config.properties


@dataclass(frozen=True)
class TFServingSettings:
    flags: Mapping[str, str]  # tensorflow_model_server --name=value, beyond ports and config files
    env: Mapping[str, str] = field(default_factory=lambda: _frozen({}))

    def argv(self) -> list[str]:
        return [f"--{name}={value}" for name, value in self.flags.items()]


# ---- TorchServe ----------------------------------------------------------------------------------
# On a CPU: one compute thread per worker, one worker per model (config.properties) = 2 threads for
# the 2 CPUs the pods get. More threads (OMP 2) or workers (2 per model) only contended on 2 cores
# (bench-tuning). On a GPU the CPU threads only feed the device: 2 per worker, 2 workers = 4 CPUs.
_TS_CPU = {"OMP_NUM_THREADS": "1"}
_TS_GPU = {
    "OMP_NUM_THREADS": "2",
    "REQUIRE_GPU": "1",  # refuse to load on the CPU (mnist_serving/spec.py)
    "TS_NUMBER_OF_GPU": "1",  # TorchServe counts GPUs with nvidia-smi, which some hosts keep off the PATH
    "CUDA_CACHE_PATH": "/tmp/cuda-cache",  # writable (the root file system is read-only): no PTX recompiles
}
# Where `make rollout` runs (natively, compose) it registers a new version beside the one serving,
# switches the default and unregisters the old one through the management API (serving/rollout), so
# the model API is on there (config.properties keeps it off). Its port is on 127.0.0.1 natively and
# published on 127.0.0.1 only in compose. On Kubernetes it stays off: a version ships as a new image
# by a Deployment's rolling update, and the management API listens on the pod's loopback only.
_TS_ROLLOUT = {"TS_ENABLE_MODEL_API": "true"}

TORCHSERVE: Mapping[Environment, TorchServeSettings] = MappingProxyType(
    {
        Environment.NATIVE: TorchServeSettings(_frozen({**_TS_CPU, **_TS_ROLLOUT})),
        Environment.COMPOSE: TorchServeSettings(_frozen({**_TS_CPU, **_TS_ROLLOUT})),
        Environment.COMPOSE_GPU: TorchServeSettings(_frozen({**_TS_GPU, **_TS_ROLLOUT})),
        Environment.KUBERNETES: TorchServeSettings(_frozen(_TS_CPU)),
        Environment.KUBERNETES_GPU: TorchServeSettings(_frozen(_TS_GPU)),
    }
)

# ---- TF Serving ----------------------------------------------------------------------------------
# Thread pools sized to the CPUs the server gets, not the host's: tensorflow_model_server sizes its
# op pools and REST threads from the cores it can see, which in a container is the whole node
# (64 cores -> 256 REST threads and 64-thread op pools under a 2-CPU limit: throttling).
# - intra/inter-op 1 on a CPU: one thread per op, as the floor and TorchServe's OMP_NUM_THREADS=1;
#   batching (batching.config, num_batch_threads 1) is what runs batches in parallel.
# - REST threads 2 per CPU: a REST call's JSON parsing runs on them, beside the batch thread.
# - model warm-up on (the SavedModel carries tf_serving_warmup_requests: the first call is warm).
# - where `make rollout` runs (natively, compose) the file system is polled every second (the
#   default): a reloaded config (ModelService.HandleReloadConfigRequest) only changes the source's
#   policy, and the new version loads at the next poll; with 0 it never would. On Kubernetes a
#   version ships as a new image, the files never change: poll once (0).
# - there, a version that fails to load is not retried (max_num_load_retries 0; the default retries
#   5 times a minute apart): the rollout sees it END with its error at once, refuses it, and the
#   version serving now never stopped. Retry by running the rollout again.
# - natively the runner's models.config names the version it serves and labels it `stable` from the
#   start, which the real server refuses at start-up (no version is AVAILABLE yet) unless
#   allow_version_labels_for_unavailable_models; moving an existing label still needs its version
#   AVAILABLE (tensorflow_serving/model_servers/server_core.cc).
_TF_COMMON = {"enable_model_warmup": "true"}
_TF_CPU = {
    **_TF_COMMON,
    "tensorflow_intra_op_parallelism": "1",
    "tensorflow_inter_op_parallelism": "1",
    "rest_api_num_threads": "4",
}
_TF_GPU = {
    **_TF_COMMON,
    "tensorflow_intra_op_parallelism": "2",
    "tensorflow_inter_op_parallelism": "2",
    "rest_api_num_threads": "8",
}
_TF_FIXED_FILES = {"file_system_poll_wait_seconds": "0"}
_TF_ROLLOUT = {"max_num_load_retries": "0"}
_TF_NATIVE = {**_TF_CPU, **_TF_ROLLOUT, "allow_version_labels_for_unavailable_models": "true"}
_TF_GPU_ENV = {
    "REQUIRE_GPU": "1",
    "TF_FORCE_GPU_ALLOW_GROWTH": "true",  # else TF reserves nearly all GPU memory at load
    "NVIDIA_TF32_OVERRIDE": "0",  # TF32 off: answers match the CPU's (TF enables it on Ampere and later)
    "CUDA_CACHE_PATH": "/tmp/cuda-cache",
}

TFSERVING: Mapping[Environment, TFServingSettings] = MappingProxyType(
    {
        Environment.NATIVE: TFServingSettings(_frozen(_TF_NATIVE)),
        Environment.COMPOSE: TFServingSettings(_frozen({**_TF_CPU, **_TF_ROLLOUT})),
        Environment.COMPOSE_GPU: TFServingSettings(_frozen({**_TF_GPU, **_TF_ROLLOUT}), _frozen(_TF_GPU_ENV)),
        Environment.KUBERNETES: TFServingSettings(_frozen({**_TF_CPU, **_TF_FIXED_FILES})),
        Environment.KUBERNETES_GPU: TFServingSettings(_frozen({**_TF_GPU, **_TF_FIXED_FILES}), _frozen(_TF_GPU_ENV)),
    }
)


def table_markdown() -> str:
    """The override table as Markdown (serving/README.md shows it; a test keeps the two equal)."""
    rows = ["| environment | TorchServe environment | TF Serving flags | TF Serving environment |", "|---|---|---|---|"]
    for env in Environment:
        ts, tf = TORCHSERVE[env], TFSERVING[env]
        rows.append(f"| {env} | {_cell(ts.env)} | {' '.join(f'`{a}`' for a in tf.argv())} | {_cell(tf.env) or '—'} |")
    return "\n".join(rows)


def _cell(values: Mapping[str, str]) -> str:
    return " ".join(f"`{k}={v}`" for k, v in values.items())


if __name__ == "__main__":
    print(table_markdown())
