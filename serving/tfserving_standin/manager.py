"""Which versions of which models are served, their labels, and the predict path shared by REST and gRPC."""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from serving.tfserving_standin import metrics
from serving.tfserving_standin.batching import Batcher, Tensors
from serving.tfserving_standin.configs import Batching, ConfigError
from serving.tfserving_standin.errors import invalid, not_found
from serving.tfserving_standin.servable import Servable

log = logging.getLogger("tfserving_standin")


@dataclass
class Model:
    name: str
    versions: dict[int, Servable]
    labels: dict[str, int] = field(default_factory=dict)

    def latest(self) -> int:
        return max(self.versions)


def versions_on_disk(base_path: Path) -> list[int]:
    if not base_path.is_dir():
        return []
    return sorted(int(p.name) for p in base_path.iterdir() if p.name.isdigit() and (p / "saved_model.pb").exists())


def select_versions(policy: Any, available: list[int]) -> list[int]:
    """Apply a ServableVersionPolicy (default: the latest one)."""
    kind = policy.WhichOneof("policy_choice") if policy.ByteSize() else None
    if kind == "all":
        return available
    if kind == "specific":
        return [v for v in available if v in set(policy.specific.versions)]
    n = policy.latest.num_versions if kind == "latest" and policy.latest.num_versions else 1
    return available[-n:]


class ModelManager:
    def __init__(self, batching: Batching | None, intra_op_threads: int = 0, inter_op_threads: int | None = None):
        self.models: dict[str, Model] = {}
        self._batching = batching
        self._intra_op_threads, self._inter_op_threads = intra_op_threads, inter_op_threads
        threads = batching.num_batch_threads if batching else 4
        self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="session-run")
        self._batchers: dict[tuple[str, int, str], Batcher] = {}

    def load(self, model_config: Any, *, warmup: bool = True) -> None:
        for cfg in model_config.model_config_list.config:
            if cfg.model_platform not in ("", "tensorflow"):
                raise ConfigError(f"model {cfg.name}: platform {cfg.model_platform!r} is not supported")
            base = Path(cfg.base_path)
            chosen = select_versions(cfg.model_version_policy, versions_on_disk(base))
            if not chosen:
                raise ConfigError(f"model {cfg.name}: no SavedModel versions under {base}")
            servables = {}
            for v in chosen:
                s = Servable(cfg.name, v, base / str(v), self._intra_op_threads, self._inter_op_threads)
                if warmup:
                    n = s.warmup()
                    log.info("warmed up %s version %d with %d records", cfg.name, v, n)
                servables[v] = s
                metrics.model_version_state.labels(cfg.name, str(v)).set(1)
            labels = dict(cfg.version_labels)
            for label, v in labels.items():
                if v not in servables:
                    raise ConfigError(
                        f"model {cfg.name}: label '{label}' points at version {v}, which is not loaded "
                        f"(loaded: {sorted(servables)})"
                    )
            self.models[cfg.name] = Model(cfg.name, servables, labels)

    def resolve(self, name: str, version: int | None = None, label: str | None = None) -> Servable:
        model = self.models.get(name)
        if model is None:
            raise not_found(f"Servable not found for request: Latest({name})")
        if label is not None:
            if label not in model.labels:
                raise not_found(f"Unrecognized servable version label: {label}")
            version = model.labels[label]
        if version is None:
            return model.versions[model.latest()]
        servable = model.versions.get(version)
        if servable is None:
            raise not_found(f"Servable not found for request: Specific({name}, {version})")
        return servable

    def status(self, name: str, version: int | None = None, label: str | None = None) -> list[int]:
        """Versions whose status is asked for: all of the model's, or the one named."""
        if version is None and label is None:
            self.resolve(name)
            return sorted(self.models[name].versions)
        return [self.resolve(name, version, label).version]

    async def predict(
        self, servable: Servable, signature_name: str, inputs: Tensors, output_filter: list[str], api: str
    ) -> Tensors:
        sig = servable.signature(signature_name)
        checked = sig.check(inputs)
        unknown = [k for k in output_filter if k not in sig.output_names]
        if unknown:
            raise invalid(f"output tensor alias not found in signature: {unknown}; outputs are {sig.output_names}")
        if self._batching is not None and all(a.ndim >= 1 for a in checked.values()):
            key = (servable.name, servable.version, signature_name)
            batcher = self._batchers.get(key)
            if batcher is None:
                batcher = Batcher(sig.run, self._batching, self._executor, servable.name)
                self._batchers[key] = batcher
            outputs = await batcher.submit(checked)
        else:
            start = time.perf_counter()
            outputs = await asyncio.get_running_loop().run_in_executor(self._executor, sig.run, checked)
            metrics.runtime_latency.labels(servable.name, api, "TF1").observe((time.perf_counter() - start) * 1e6)
        if output_filter:
            outputs = {k: outputs[k] for k in output_filter}
        return outputs

    def close(self) -> None:
        for b in self._batchers.values():
            b.close()
        self._executor.shutdown(wait=False, cancel_futures=True)
        for model in self.models.values():
            for s in model.versions.values():
                s.close()
