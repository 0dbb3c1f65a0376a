"""Which versions of which models are served, their labels, and the predict path shared by REST and gRPC.

The lifecycle is the real server's (``ServerCore`` with an ``AspiredVersionsManager``):

- The model config names each model's base path, version policy and labels. A file-system poll
  (``--file_system_poll_wait_seconds``: every N s; 0 once at start; negative never) turns the
  policy and the version folders on disk into the *aspired* versions.
- The manager loads and unloads one version at a time, in the order of TF Serving's
  availability-preserving policy (``policy.py``): a new version is loaded (and warmed up) before an
  old one is unloaded, and a version that fails to load leaves the others serving. A load that fails
  is retried ``--max_num_load_retries`` times, ``--load_retry_interval_micros`` apart, then the
  version ends with its error. An unloaded version first finishes the requests it holds.
- ``reload`` (``ModelService.HandleReloadConfigRequest``, or a changed ``--model_config_file`` when
  ``--model_config_file_poll_wait_seconds`` is set) takes a new config: labels are checked first and
  must point at AVAILABLE versions (unless ``--allow_version_labels_for_unavailable_models`` and the
  label is new or unchanged), else the whole reload is refused; the new policy takes effect at the
  next file-system poll, as in the real server (whose reload only changes the source's config).
- States as the real server reports them: START, LOADING, AVAILABLE, UNLOADING, END (with the
  load's error when it failed).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from enum import IntEnum
from pathlib import Path
from typing import Any

from serving.tfserving_standin import metrics
from serving.tfserving_standin.batching import Batcher, Tensors
from serving.tfserving_standin.configs import Batching, ConfigError
from serving.tfserving_standin.errors import ServingError, invalid, not_found
from serving.tfserving_standin.policy import Phase, Snapshot, next_action
from serving.tfserving_standin.servable import Servable

log = logging.getLogger("tfserving_standin")


class State(IntEnum):
    """``ModelVersionStatus.State`` (tensorflow_serving/apis/get_model_status.proto)."""

    START = 10
    LOADING = 20
    AVAILABLE = 30
    UNLOADING = 40
    END = 50


@dataclass
class Version:
    number: int
    path: Path
    state: State = State.START
    servable: Servable | None = None
    error: str = ""  # why its load failed (state END)
    failed_while_aspired: bool = False  # not retried until it is un-aspired and aspired again
    in_flight: int = 0
    idle: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self.idle.set()


@dataclass(frozen=True)
class VersionStatus:
    version: int
    state: State
    error: str


@dataclass
class Model:
    name: str
    config: Any  # ModelConfig
    versions: dict[int, Version] = field(default_factory=dict)
    labels: dict[str, int] = field(default_factory=dict)
    aspired: set[int] = field(default_factory=set)
    missing: set[int] = field(default_factory=set)  # policy versions not on disk, last poll
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    settled: asyncio.Event = field(default_factory=asyncio.Event)  # nothing left to load or unload
    task: asyncio.Task[None] | None = None

    @property
    def base_path(self) -> Path:
        return Path(self.config.base_path)

    def available(self) -> list[int]:
        return sorted(v.number for v in self.versions.values() if v.state is State.AVAILABLE)

    def snapshots(self) -> list[Snapshot]:
        out = []
        for v in self.versions.values():
            aspired = v.number in self.aspired
            if v.state is State.END:
                if aspired and v.failed_while_aspired:
                    out.append(Snapshot(v.number, True, Phase.ERROR))
                continue
            phase = {
                State.START: Phase.NEW,
                State.LOADING: Phase.LOADING,
                State.AVAILABLE: Phase.READY,
                State.UNLOADING: Phase.UNLOADING,
            }[v.state]
            out.append(Snapshot(v.number, aspired, phase))
        known = {s.version for s in out}
        out += [Snapshot(n, True, Phase.NEW) for n in sorted(self.aspired - known)]
        return out


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


@dataclass(frozen=True)
class Lifecycle:
    """The real server's flags for loading and polling (their defaults are tensorflow_model_server's)."""

    warmup: bool = True
    file_system_poll_wait_s: float = 1.0
    max_num_load_retries: int = 5
    load_retry_interval_s: float = 60.0
    allow_version_labels_for_unavailable_models: bool = False


def failed_precondition(message: str) -> ServingError:
    import grpc

    return ServingError(grpc.StatusCode.FAILED_PRECONDITION, message)


class ModelManager:
    def __init__(
        self,
        batching: Batching | None,
        intra_op_threads: int = 0,
        inter_op_threads: int | None = None,
        lifecycle: Lifecycle | None = None,
        load: Callable[[str, int, Path], Servable] | None = None,
    ):
        """``load``: how a version is loaded (tests inject failures); default a warmed-up Servable."""
        self.models: dict[str, Model] = {}
        self.lifecycle = lifecycle or Lifecycle()
        self._batching = batching
        self._intra_op_threads, self._inter_op_threads = intra_op_threads, inter_op_threads
        threads = batching.num_batch_threads if batching else 4
        self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="session-run")
        # Loads and unloads on a thread of their own, one at a time, beside the serving threads.
        self._loader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="load-unload")
        self._load = load or self._load_servable
        self._batchers: dict[tuple[str, int, str], Batcher] = {}
        self._poller: asyncio.Task[None] | None = None
        self._config_lock = asyncio.Lock()

    # ---- configuration -----------------------------------------------------------------------

    async def start(self, model_config: Any) -> None:
        """The first config: check it, poll the file system, load, and fail unless every model has
        an AVAILABLE version (the real server does not start otherwise)."""
        self._validate(model_config)
        self._check_labels(model_config, first=True)
        for cfg in model_config.model_config_list.config:
            self.models[cfg.name] = self._new_model(cfg)
        self.poll()
        for model in self.models.values():
            await model.settled.wait()
        for model in self.models.values():
            if not model.available():
                errors = "; ".join(f"version {v.number}: {v.error}" for v in model.versions.values() if v.error)
                raise ConfigError(
                    f"model {model.name}: no version became available under {model.base_path}"
                    + (f" ({errors})" if errors else "")
                )
        poll_s = self.lifecycle.file_system_poll_wait_s
        if poll_s > 0:
            self._poller = asyncio.create_task(self._poll_every(poll_s))

    async def reload(self, model_config: Any) -> None:
        """``HandleReloadConfigRequest``: labels first (refused as a whole if one points at a
        version that is not AVAILABLE), then each model's base path and policy, applied by the next
        file-system poll; models no longer listed are unloaded."""
        async with self._config_lock:
            self._validate(model_config)
            self._check_labels(model_config, first=False)
            listed = {cfg.name for cfg in model_config.model_config_list.config}
            for cfg in model_config.model_config_list.config:
                model = self.models.get(cfg.name)
                if model is None:
                    self.models[cfg.name] = self._new_model(cfg)
                else:
                    model.config = cfg
                    model.labels = dict(cfg.version_labels)
            for name in set(self.models) - listed:
                self.models[name].aspired = set()  # un-aspired at once, as the real source does
                self.models[name].labels = {}
                self._wake(self.models[name])
            log.info("reloaded the model config: %s", self.describe_config(model_config))

    @staticmethod
    def describe_config(model_config: Any) -> str:
        parts = []
        for cfg in model_config.model_config_list.config:
            policy = cfg.model_version_policy
            kind = policy.WhichOneof("policy_choice") if policy.ByteSize() else "latest"
            which = list(policy.specific.versions) if kind == "specific" else kind
            parts.append(f"{cfg.name}: versions {which}, labels {dict(cfg.version_labels)}")
        return "; ".join(parts)

    def _validate(self, model_config: Any) -> None:
        if model_config.WhichOneof("config") != "model_config_list":
            raise invalid("only a model_config_list is supported")
        names = [cfg.name for cfg in model_config.model_config_list.config]
        if len(set(names)) != len(names):
            raise invalid(f"model names must be unique: {names}")
        for cfg in model_config.model_config_list.config:
            if cfg.model_platform not in ("", "tensorflow"):
                raise invalid(f"model {cfg.name}: platform {cfg.model_platform!r} is not supported")
            if not cfg.base_path:
                raise invalid(f"model {cfg.name}: no base_path")

    def _check_labels(self, model_config: Any, first: bool) -> None:
        """ServerCore::UpdateModelVersionLabelMap: a label must point at an AVAILABLE version; with
        --allow_version_labels_for_unavailable_models, a new or unchanged label may point anywhere."""
        for cfg in model_config.model_config_list.config:
            model = self.models.get(cfg.name)
            for label, version in cfg.version_labels.items():
                if self.lifecycle.allow_version_labels_for_unavailable_models:
                    current = None if model is None else model.labels.get(label)
                    if current is None or current == version:
                        continue
                if first or model is None or version not in model.available():
                    raise failed_precondition(
                        f"Request to assign label to version {version} of model {cfg.name}, "
                        "which is not currently available for inference"
                    )

    def _new_model(self, cfg: Any) -> Model:
        model = Model(cfg.name, cfg, labels=dict(cfg.version_labels))
        model.task = asyncio.create_task(self._reconcile(model))
        return model

    # ---- the file-system source --------------------------------------------------------------

    def poll(self) -> None:
        """One file-system poll: each model's aspired versions from its policy and the folders on disk."""
        for model in self.models.values():
            if not model.config.base_path:
                continue
            policy = model.config.model_version_policy
            on_disk = versions_on_disk(model.base_path)
            chosen = set(select_versions(policy, on_disk))
            wanted = set(policy.specific.versions) if policy.WhichOneof("policy_choice") == "specific" else set()
            missing = wanted - set(on_disk)
            if missing != model.missing and missing:
                log.warning("model %s: versions %s not found under %s", model.name, sorted(missing), model.base_path)
            model.missing = missing
            if chosen != model.aspired:
                log.info("model %s: aspired versions %s", model.name, sorted(chosen))
                for v in model.versions.values():
                    if v.number not in chosen:
                        v.failed_while_aspired = False  # tried again if it is aspired again
                model.aspired = chosen
                self._wake(model)

    async def _poll_every(self, seconds: float) -> None:
        while True:
            await asyncio.sleep(seconds)
            try:
                self.poll()
            except OSError as exc:  # the real source logs a file-system error and polls again
                log.error("file-system poll failed: %s", exc)

    @staticmethod
    def _wake(model: Model) -> None:
        model.settled.clear()
        model.wake.set()

    # ---- loading and unloading ---------------------------------------------------------------

    async def _reconcile(self, model: Model) -> None:
        while True:
            action = next_action(model.snapshots())
            if action is None:
                model.settled.set()
                await model.wake.wait()
                model.wake.clear()
                continue
            if action.kind == "load":
                await self._load_version(model, action.version)
            else:
                await self._unload_version(model, action.version)

    def _load_servable(self, name: str, number: int, path: Path) -> Servable:
        servable = Servable(name, number, path, self._intra_op_threads, self._inter_op_threads)
        if self.lifecycle.warmup:
            n = servable.warmup()
            log.info("warmed up %s version %d with %d records", name, number, n)
        return servable

    async def _load_version(self, model: Model, number: int) -> None:
        version = model.versions[number] = Version(number, model.base_path / str(number), State.LOADING)
        loop = asyncio.get_running_loop()
        attempts = 1 + max(0, self.lifecycle.max_num_load_retries)
        for attempt in range(attempts):
            if attempt:
                await asyncio.sleep(self.lifecycle.load_retry_interval_s)
                if number not in model.aspired:  # un-aspired meanwhile: the real manager cancels retries
                    break
            started = time.monotonic()
            try:
                version.servable = await loop.run_in_executor(
                    self._loader, self._load, model.name, number, version.path
                )
            except Exception as exc:
                version.error = f"{type(exc).__name__}: {exc}".strip()[:500]
                log.error(
                    "loading %s version %d failed (attempt %d of %d): %s",
                    model.name, number, attempt + 1, attempts, version.error,
                )  # fmt: skip
                continue
            version.state, version.error = State.AVAILABLE, ""
            metrics.model_version_state.labels(model.name, str(number)).set(1)
            log.info("%s version %d AVAILABLE (loaded in %.2f s)", model.name, number, time.monotonic() - started)
            return
        version.state, version.failed_while_aspired = State.END, number in model.aspired

    async def _unload_version(self, model: Model, number: int) -> None:
        version = model.versions[number]
        version.state = State.UNLOADING  # no new request resolves it from here on
        metrics.model_version_state.labels(model.name, str(number)).set(0)
        await version.idle.wait()  # the requests it holds finish first (the real server's handles)
        for key in [k for k in self._batchers if k[:2] == (model.name, number)]:
            self._batchers.pop(key).close()
        servable, version.servable = version.servable, None
        if servable is not None:
            await asyncio.get_running_loop().run_in_executor(self._loader, servable.close)
        version.state = State.END
        log.info("%s version %d unloaded", model.name, number)

    # ---- requests ----------------------------------------------------------------------------

    def resolve(self, name: str, version: int | None = None, label: str | None = None) -> Servable:
        model = self.models.get(name)
        if model is None:
            raise not_found(f"Servable not found for request: Latest({name})")
        if label is not None:
            if label not in model.labels:
                raise not_found(f"Unrecognized servable version label: {label}")
            version = model.labels[label]
        if version is None:
            available = model.available()
            if not available:
                raise not_found(f"Servable not found for request: Latest({name})")
            version = available[-1]
        entry = model.versions.get(version)
        if entry is None or entry.state is not State.AVAILABLE or entry.servable is None:
            raise not_found(f"Servable not found for request: Specific({name}, {version})")
        return entry.servable

    def status(self, name: str, version: int | None = None, label: str | None = None) -> list[VersionStatus]:
        """The versions asked about (all the model's, newest first as the real server lists them, or
        the one named) with their states."""
        model = self.models.get(name)
        if model is None:
            raise not_found(f"Could not find any versions of model {name}")
        if label is not None:
            if label not in model.labels:
                raise not_found(f"Unrecognized servable version label: {label}")
            version = model.labels[label]
        entries = sorted(model.versions.values(), key=lambda v: -v.number)
        if version is not None:
            entries = [v for v in entries if v.number == version]
            if not entries:
                raise not_found(f"Could not find version {version} of model {name}")
        if not entries:
            raise not_found(f"Could not find any versions of model {name}")
        return [VersionStatus(v.number, v.state, v.error) for v in entries]

    async def predict(
        self, servable: Servable, signature_name: str, inputs: Tensors, output_filter: list[str], api: str
    ) -> Tensors:
        """Called right after ``resolve`` (no await between): the version counts the request as
        held until it is answered, and is not unloaded before."""
        entry = self.models[servable.name].versions[servable.version]
        entry.in_flight += 1
        entry.idle.clear()
        try:
            return await self._predict(servable, signature_name, inputs, output_filter, api)
        finally:
            entry.in_flight -= 1
            if entry.in_flight == 0:
                entry.idle.set()

    async def _predict(
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
        if self._poller is not None:
            self._poller.cancel()
        for model in self.models.values():
            if model.task is not None:
                model.task.cancel()
        for b in self._batchers.values():
            b.close()
        self._executor.shutdown(wait=False, cancel_futures=True)
        self._loader.shutdown(wait=False, cancel_futures=True)
        for model in self.models.values():
            for v in model.versions.values():
                if v.servable is not None:
                    v.servable.close()
