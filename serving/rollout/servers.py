"""Each model server as the rollout drives it, through its own APIs.

- TF Serving: the model config, reloaded whole with ``ModelService.HandleReloadConfigRequest``
  (gRPC, the real server's method): ``specific`` versions and the labels ``stable`` and ``canary``;
  states from the REST model status (LOADING, AVAILABLE, END with the load's error), labels from
  ``/v1/models/{m}/labels/{l}/metadata``. The server checks every label against its AVAILABLE
  versions, loads new versions at its next file-system poll, keeps the old one until the new one is
  AVAILABLE, and unloads a version only after the requests it holds are answered.
- TorchServe: the management API. A version is registered with its workers
  (``POST /models?url=mnist-vN.mar&initial_workers=1``, the batching of the shipped config), is
  ready when every worker is READY and warm (never switched to with 0 workers), becomes the default with
  ``PUT /models/{m}/{v}/set-default`` and leaves with ``DELETE /models/{m}/{v}`` (which drops what is
  queued for it: the rollout drains first). Both archives of a version (TorchScript and ONNX) move
  together.

Both take the held-out rows by version number, so the check runs against exactly the version loaded.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol

import grpc
import httpx
import numpy as np

from mnist_serving.spec import ONNX_MODEL_NAME, STABLE_LABEL, TF_MODEL_NAME, TORCH_MODEL_NAME
from serving.tfserving import config as tf_config
from serving.tfserving import messages
from serving.torchserve import config as ts_config
from serving.torchserve.build_mar import build_versioned, versioned_name
from serving.torchserve.ready import WARM_REQUESTS

log = logging.getLogger("serving.rollout")

CANARY_LABEL = "canary"
HTTP_TIMEOUT_S = 10.0
# Where rollouts run, TF Serving polls its file system every second (serving/environments.py): a
# reloaded policy is taken up within that. An END left from an earlier load of the same version is
# believed only after three polls' time.
TF_FILE_SYSTEM_POLL_S = 1.0
STALE_END_S = 3 * TF_FILE_SYSTEM_POLL_S


class LoadFailed(Exception):
    """The version did not load, or not in time: it is refused."""


class ServerError(Exception):
    """A server refused a step or could not be reached: the rollout stops and says which."""


class ModelServer(Protocol):
    name: str
    backends: tuple[str, ...]  # the gateway's backend names this server answers for

    def serving(self) -> int | None:
        """The version a request without one goes to now."""
        ...

    def loaded(self) -> list[int]:
        """Every version loaded and serving."""
        ...

    def canary(self) -> int | None:
        """The version loaded beside the default as a canary, if any."""
        ...

    def prepare(self) -> bool:
        """Make the version serving now explicit before anything moves; True if that changed it."""
        ...

    def load(self, version: int, timeout_s: float) -> None:
        """Ask for ``version`` beside the one serving (raises LoadFailed)."""
        ...

    def wait_ready(self, version: int, timeout_s: float, poll_s: float) -> str:
        """Until ``version`` is ready (raises LoadFailed); says how it is."""
        ...

    def answers(self, version: int, rows: np.ndarray) -> dict[str, np.ndarray]:
        """Each backend's probabilities for ``rows``, from ``version`` by number."""
        ...

    def mark_canary(self, version: int) -> None: ...

    def switch(self, version: int) -> None:
        """Requests without a version go to ``version`` from now on."""
        ...

    def remove(self, version: int, timeout_s: float, poll_s: float) -> None:
        """Unload ``version`` (never the default) and wait until it is gone."""
        ...

    def persist(self) -> None:
        """Write what serves now into the files a restart reads (native runs)."""
        ...

    def close(self) -> None: ...


# ---- TF Serving ----------------------------------------------------------------------------------


class TFServing:
    name = "tfserving"
    backends: tuple[str, ...] = ("tfserving",)

    def __init__(self, rest_url: str, grpc_address: str, base_path: str, config_file: Path | None = None):
        self.rest, self.base_path, self.config_file = rest_url, base_path, config_file
        self.grpc_address = grpc_address
        self.model = TF_MODEL_NAME
        self._before: dict[int, tuple[str, str] | None] = {}  # a version's status when its load was asked
        self._http = httpx.Client(base_url=rest_url, timeout=HTTP_TIMEOUT_S)

    def close(self) -> None:
        self._http.close()

    # -- reading

    def states(self) -> dict[int, tuple[str, str]]:
        """version -> (state, error message), as the model status lists them."""
        r = self._get(f"/v1/models/{self.model}")
        if r.status_code == 404:
            return {}
        _check(self.name, r)
        out = {}
        for s in r.json()["model_version_status"]:
            out[int(s["version"])] = (s["state"], s.get("status", {}).get("error_message", ""))
        return out

    def loaded(self) -> list[int]:
        return sorted(v for v, (state, _) in self.states().items() if state == "AVAILABLE")

    def label(self, label: str) -> int | None:
        r = self._get(f"/v1/models/{self.model}/labels/{label}/metadata")
        return int(r.json()["model_spec"]["version"]) if r.status_code == 200 else None

    def serving(self) -> int | None:
        loaded = self.loaded()
        stable = self.label(STABLE_LABEL)
        return stable if stable in loaded else (loaded[-1] if loaded else None)

    def canary(self) -> int | None:
        return self.label(CANARY_LABEL)

    # -- acting: every step sends the whole config (the versions to keep and the labels)

    def reload(self, versions: list[int], labels: Mapping[str, int]) -> None:
        config = tf_config.model_server_config(self.base_path, versions, labels)
        request = messages.ReloadConfigRequest()
        request.config.CopyFrom(config)
        with grpc.insecure_channel(self.grpc_address) as channel:
            call = channel.unary_unary(
                messages.RELOAD_CONFIG_METHOD,
                request_serializer=lambda m: m.SerializeToString(),
                response_deserializer=messages.ReloadConfigResponse.FromString,
            )
            try:
                response = call(request, timeout=60)
            except grpc.RpcError as exc:
                why = f"{exc.code().name}: {exc.details()}"
                raise ServerError(f"{self.name}: the config reload was refused: {why}") from exc
        if response.status.error_code:
            raise ServerError(f"{self.name}: the config reload was refused: {response.status.error_message}")
        log.info("tfserving: reloaded versions %s labels %s", versions, dict(labels))
        if self.config_file is not None:  # a restart reads the same config
            tf_config.write_model_config(Path(self.base_path), self.config_file, versions, labels)

    def _labels(self, stable: int, canary: int | None = None) -> dict[str, int]:
        return {STABLE_LABEL: stable, **({CANARY_LABEL: canary} if canary is not None else {})}

    def prepare(self) -> bool:
        """Label the version serving ``stable`` if nothing is (the images start with no label, the
        gateway then follows the newest AVAILABLE version, which a load would change)."""
        serving = self.serving()
        if serving is None:
            raise ServerError(f"{self.name}: no version is AVAILABLE")
        if self.label(STABLE_LABEL) == serving:
            return False
        self.reload(self.loaded(), self._labels(serving, self.canary()))
        return True

    def load(self, version: int, timeout_s: float) -> None:
        serving = self._serving()
        self._before[version] = self.states().get(version)
        versions = sorted({*self.loaded(), version})
        self.reload(versions, self._labels(serving, self._kept_canary(version)))

    def wait_ready(self, version: int, timeout_s: float, poll_s: float) -> str:
        """AVAILABLE, or END with the load's error. A version loaded before (and unloaded, or failed)
        still shows its old END until the server's next file-system poll takes the new policy up:
        that END counts only once a few polls have passed."""
        started = time.monotonic()
        before = self._before.get(version)
        state = "not listed"
        while time.monotonic() - started < timeout_s:
            now = self.states().get(version)
            state, error = now or ("not listed", "")
            if state == "AVAILABLE":
                return "AVAILABLE"
            stale = now == before and time.monotonic() - started < STALE_END_S
            if state == "END" and not stale:
                raise LoadFailed(f"version {version} did not load: {error or 'END'}")
            time.sleep(poll_s)
        raise LoadFailed(f"version {version} was not AVAILABLE within {timeout_s:g} s (last state: {state})")

    def answers(self, version: int, rows: np.ndarray) -> dict[str, np.ndarray]:
        r = _call(
            self.name,
            self._http,
            "POST",
            f"/v1/models/{self.model}/versions/{version}:predict",
            json={"instances": rows.tolist()},
        )
        _check(self.name, r)
        return {"tfserving": np.asarray(r.json()["predictions"], dtype=np.float64)}

    def mark_canary(self, version: int) -> None:
        self.reload(sorted({*self.loaded(), version}), self._labels(self._serving(), version))

    def switch(self, version: int) -> None:
        self.reload(sorted({*self.loaded(), version}), self._labels(version))

    def remove(self, version: int, timeout_s: float, poll_s: float) -> None:
        serving = self._serving()
        if version == serving:
            raise ServerError(f"{self.name}: version {version} is the one serving; it is not removed")
        keep = sorted(set(self.loaded()) - {version}) or [serving]
        canary = self.canary()
        self.reload(keep, self._labels(serving, canary if canary in keep and canary != serving else None))
        deadline = time.monotonic() + timeout_s
        while self.states().get(version, ("END", ""))[0] != "END":
            if time.monotonic() > deadline:
                raise ServerError(f"{self.name}: version {version} still loaded {timeout_s:g} s after its removal")
            time.sleep(poll_s)

    def persist(self) -> None:
        """Every reload already wrote the config file (natively)."""

    # -- helpers

    def _serving(self) -> int:
        serving = self.serving()
        if serving is None:
            raise ServerError(f"{self.name}: no version is AVAILABLE")
        return serving

    def _kept_canary(self, loading: int) -> int | None:
        canary = self.canary()
        return canary if canary is not None and canary != loading and canary in self.loaded() else None

    def _get(self, path: str) -> httpx.Response:
        try:
            return self._http.get(path)
        except httpx.HTTPError as exc:
            raise ServerError(f"{self.name} at {self.rest} did not answer: {exc}") from exc


# ---- TorchServe ----------------------------------------------------------------------------------

TS_MODELS = {TORCH_MODEL_NAME: "torchserve", ONNX_MODEL_NAME: "torchserve-onnx"}  # model -> gateway backend
# REGISTRATION: asynchronous (``synchronous=false``), then the workers are watched until READY.
# A synchronous registration holds TorchServe's Netty thread until the workers are up, and this
# config runs one (number_of_netty_threads=1, shared by the inference and management APIs): measured
# here, requests to the version serving stalled 1.5 s (idle) to 3.5 s (under 100 req/s; 203 of 1,159
# failed through the gateway) during a synchronous registration; asynchronously the worst was 40 ms.


class TorchServe:
    name = "torchserve"
    backends: tuple[str, ...] = tuple(TS_MODELS.values())

    def __init__(
        self,
        inference_url: str,
        management_url: str,
        artifacts: Path,
        model_store: Path | None = None,
        config_file: Path | None = None,
    ):
        """``model_store``: where TorchServe finds archives (natively: a missing one is built there);
        ``config_file``: the config.properties a restart reads (natively: rewritten after a switch)."""
        self.inference, self.management = inference_url, management_url
        self.artifacts, self.model_store, self.config_file = artifacts, model_store, config_file
        self._mgmt = httpx.Client(base_url=management_url, timeout=HTTP_TIMEOUT_S)
        self._infer = httpx.Client(base_url=inference_url, timeout=HTTP_TIMEOUT_S)
        props = ts_config.read(config_file) if config_file is not None and config_file.exists() else ts_config.read()
        self._model_settings = ts_config.models(props)

    def close(self) -> None:
        self._mgmt.close()
        self._infer.close()

    # -- reading

    def describe(self, model: str, version: int | str = "all") -> list[dict[str, Any]]:
        try:
            r = self._mgmt.get(f"/models/{model}/{version}")
        except httpx.HTTPError as exc:
            raise ServerError(f"{self.name} management API at {self.management} did not answer: {exc}") from exc
        if r.status_code == 404:
            return []
        _check(self.name, r)
        entries: list[dict[str, Any]] = r.json()
        return entries

    def versions(self, model: str) -> set[int]:
        """Every version of ``model`` registered."""
        return {int(str(d["modelVersion"])) for d in self.describe(model)}

    def _default(self, model: str) -> int | None:
        try:
            r = self._mgmt.get(f"/models/{model}")
        except httpx.HTTPError as exc:
            raise ServerError(f"{self.name} management API at {self.management} did not answer: {exc}") from exc
        if r.status_code != 200:
            return None
        (d,) = r.json()
        return int(d["modelVersion"])

    def serving(self) -> int | None:
        return self._default(TORCH_MODEL_NAME)

    def loaded(self) -> list[int]:
        every = [set(self.versions(m)) for m in TS_MODELS]
        return sorted(set.intersection(*every)) if every else []

    def canary(self) -> int | None:
        serving = self.serving()
        others = [v for v in self.loaded() if v != serving]
        return max(others) if others else None

    # -- acting

    def prepare(self) -> bool:
        if self.serving() is None:
            raise ServerError(f"{self.name}: {TORCH_MODEL_NAME} has no default version")
        return False

    def load(self, version: int, timeout_s: float) -> None:
        self._archives(version)

        def register(model: str) -> None:
            m = self._model_settings[model]
            params = {
                "url": versioned_name(model, version),
                "initial_workers": m["minWorkers"],
                "batch_size": m["batchSize"],
                "max_batch_delay": m["maxBatchDelay"],
                "response_timeout": m["responseTimeout"],
                "synchronous": "false",  # see REGISTRATION below; wait_ready watches the workers
            }
            try:
                r = self._mgmt.post("/models", params=params, timeout=timeout_s)
            except httpx.TimeoutException as exc:
                raise LoadFailed(
                    f"{model} version {version}: no answer to its registration within {timeout_s:g} s"
                ) from exc
            except httpx.HTTPError as exc:
                raise ServerError(f"{self.name} management API did not answer: {exc}") from exc
            if r.status_code == 409 and version in self.versions(model):
                return  # registered already (a canary, or a rollout that was interrupted)
            if r.status_code >= 300:
                raise LoadFailed(
                    f"{model} version {version}: registration refused: HTTP {r.status_code}: {_message(r)}"
                )

        _each(register, list(TS_MODELS))

    def wait_ready(self, version: int, timeout_s: float, poll_s: float) -> str:
        """Every worker of both models READY; a worker that TorchServe restarts before it is READY
        (a new process id) failed to load the version: refused at once, not after the timeout."""
        deadline = time.monotonic() + timeout_s
        for model in TS_MODELS:
            first_pid: dict[str, int] = {}
            while True:
                (d, *_) = self.describe(model, version) or [{}]
                if not d:
                    raise LoadFailed(f"{model} version {version} is not registered (any more)")
                workers = d.get("workers", [])
                states = [str(w.get("status")) for w in workers]
                if states and all(st == "READY" for st in states):
                    break
                for w in workers:
                    pid = int(w.get("pid") or -1)
                    if pid > 0 and first_pid.setdefault(str(w.get("id")), pid) != pid:
                        raise LoadFailed(
                            f"{model} version {version}: its worker failed to load it and was restarted "
                            f"(TorchServe's log names the error)"
                        )
                if time.monotonic() > deadline:
                    seen = ", ".join(states) or "none"
                    raise LoadFailed(f"{model} version {version}: workers not READY within {timeout_s:g} s ({seen})")
                time.sleep(poll_s)
        body = {"instances": [[0.0] * 784]}
        started = time.monotonic()
        for model in TS_MODELS:  # TorchServe's own request path, as the start-up warm-up does
            for _ in range(WARM_REQUESTS):
                r = _call(self.name, self._infer, "POST", f"/predictions/{model}/{version}", json=body)
                if r.status_code != 200:
                    raise LoadFailed(f"{model} version {version}: a warm-up request failed: HTTP {r.status_code}")
        return f"workers READY, warmed with {WARM_REQUESTS} requests per model in {time.monotonic() - started:.1f} s"

    def answers(self, version: int, rows: np.ndarray) -> dict[str, np.ndarray]:
        out = {}
        for model, backend in TS_MODELS.items():
            r = _call(
                self.name, self._infer, "POST", f"/predictions/{model}/{version}", json={"instances": rows.tolist()}
            )
            _check(self.name, r)
            out[backend] = np.asarray(r.json()["predictions"], dtype=np.float64)
        return out

    def mark_canary(self, version: int) -> None:
        """Nothing to mark: a registered version that is not the default is the canary."""

    def switch(self, version: int) -> None:
        for model in TS_MODELS:
            r = _call(self.name, self._mgmt, "PUT", f"/models/{model}/{version}/set-default")
            if r.status_code != 200:
                raise ServerError(
                    f"{self.name}: set-default {model} {version} refused: HTTP {r.status_code}: {_message(r)}"
                )

    def remove(self, version: int, timeout_s: float, poll_s: float) -> None:
        for model in TS_MODELS:
            if version == self._default(model):
                raise ServerError(f"{self.name}: {model} version {version} is the default; it is not removed")
            deadline = time.monotonic() + timeout_s
            while True:
                r = _call(self.name, self._mgmt, "DELETE", f"/models/{model}/{version}", timeout=timeout_s)
                if r.status_code in (200, 404) or version not in self.versions(model):
                    break
                # TorchServe answers 500 ("Interrupted while cleaning resources") when stopping the
                # version's worker did not complete in its own wait; the version may still be listed.
                if r.status_code != 500 or time.monotonic() > deadline:
                    why = f"HTTP {r.status_code}: {_message(r)}"
                    raise ServerError(f"{self.name}: DELETE {model} {version} refused: {why}")
                log.warning("torchserve: DELETE %s %s: %s; asking again", model, version, _message(r))
                time.sleep(1.0)

    def persist(self) -> None:
        if self.config_file is None:
            return
        serving = self.serving()
        if serving is not None and self.model_store is not None:
            props = ts_config.read(self.config_file)
            ts_config.write_config(self.config_file, self.model_store, serving, props=props)

    # -- helpers

    def _archives(self, version: int) -> None:
        """Natively, build ``version``'s archives into the run's store when missing (trained after
        the stack started); elsewhere they must be in the store already (compose mounts
        artifacts/model-store, which training fills)."""
        names = [versioned_name(m, version) for m in TS_MODELS]
        if self.model_store is not None:
            if not all((self.model_store / n).exists() for n in names):
                build_versioned(self.artifacts, self.model_store, version)
            return
        store = self.artifacts / "model-store"
        missing = [n for n in names if not (store / n).exists()]
        if missing:
            raise LoadFailed(f"{', '.join(missing)} not in {store}: `make train VERSION={version}` builds them")


def _each(fn: Callable[[str], None], items: list[str]) -> None:
    """``fn`` on every item at once (TorchServe starts each model's worker in parallel)."""
    with ThreadPoolExecutor(max_workers=len(items)) as pool:
        for f in [pool.submit(fn, i) for i in items]:
            f.result()


def _call(name: str, client: httpx.Client, method: str, url: str, **kwargs: Any) -> httpx.Response:
    try:
        return client.request(method, url, **kwargs)
    except httpx.HTTPError as exc:
        raise ServerError(f"{name}: {method} {url} got no answer: {type(exc).__name__}: {exc}") from exc


def _message(r: httpx.Response) -> str:
    try:
        body = r.json()
    except ValueError:
        return r.text[:300]
    return str(body.get("message") or body.get("error") or body)[:300] if isinstance(body, dict) else str(body)[:300]


def _check(name: str, r: httpx.Response) -> None:
    if r.status_code != 200:
        raise ServerError(
            f"{name}: {r.request.method} {r.request.url.path} answered HTTP {r.status_code}: {_message(r)}"
        )
