"""TorchServe handler for the MNIST models: TorchScript (``.pt``) or ONNX (``.onnx``).

TorchServe hands ``handle`` a list of requests (server-side batching). Every valid row of every
request runs in one forward pass; a malformed request gets its own 400 and does not fail its
batch-mates. Bodies: ``{"instances": [[784 floats], ...]}``, a bare list of rows, or one row; or a
binary ``tensor`` input of float32 rows (gRPC), answered with float32 probabilities.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any

import numpy as np

_loads: Any
try:  # TorchServe hands JSON bodies over undecoded (decode_input_request=false): decode them fast here
    from orjson import loads as _loads
except ImportError:  # a bare machine without it (the GPU kit): the standard library
    _loads = json.loads

try:  # packed beside this file in the .mar (``--extra-files``)
    from spec import (  # type: ignore[import-not-found]
        INPUT_DIM,
        INPUT_NAME,
        MAX_ROWS_PER_REQUEST,
        NUM_CLASSES,
        OUTPUT_NAME,
        REQUIRE_GPU_ENV,
        TORCHSERVE_TENSOR_INPUT,
    )
except ImportError:  # imported from the repository (tests, tooling)
    from mnist_serving.spec import (
        INPUT_DIM,
        INPUT_NAME,
        MAX_ROWS_PER_REQUEST,
        NUM_CLASSES,
        OUTPUT_NAME,
        REQUIRE_GPU_ENV,
        TORCHSERVE_TENSOR_INPUT,
    )

log = logging.getLogger(__name__)

# A request input with this name holds the rows as little-endian float32 bytes (the gateway's gRPC
# client sends it), and its answer is the probabilities the same way: no JSON on either side.
TENSOR_INPUT = TORCHSERVE_TENSOR_INPUT
VERSION_HEADER = "X-Model-Version"


class BadRequest(ValueError):
    pass


class GPURequired(RuntimeError):
    """REQUIRE_GPU is set and the model would run on the CPU: the worker must not become READY."""


def gpu_required() -> bool:
    return os.environ.get(REQUIRE_GPU_ENV, "").strip().lower() in ("1", "true", "yes")


# An image sent straight to TorchServe (rather than to the gateway, which decodes images) is named
# as one, with where to send it, instead of a JSON decoder's complaint about its bytes.
IMAGE_SIGNATURES = {b"\x89PNG": "PNG", b"\xff\xd8\xff": "JPEG", b"GIF8": "GIF", b"BM": "BMP", b"RIFF": "WebP"}
ROWS_HINT = (
    f'TorchServe takes JSON rows of {INPUT_DIM} numbers ({{"instances": [[...]]}}); to classify an image, '
    'send it to the gateway: POST /v1/predict/image with a multipart field "file"'
)


# A form-encoded or multipart body reaches the handler as form fields, not as "body": `curl
# --data-binary @digit.png` without a Content-Type sends application/x-www-form-urlencoded, whose
# decoder in the frontend keeps only the pieces it can split at '&' and '=', their names URL-decoded
# as UTF-8 (bytes that are not UTF-8 become U+FFFD); `curl -F file=@digit.png` sends multipart, a
# field per file with its bytes intact. So the magic bytes are looked for in both shapes.
FORM_IMAGE_MARKERS = {"PNG": ("PNG",), "JPEG": ("JFIF", "Exif"), "GIF": ("GIF8",), "WebP": ("WEBP",)}


def _image_format(payload: bytes | bytearray | str) -> str | None:
    head = payload[:4].encode("utf-8", "surrogateescape") if isinstance(payload, str) else bytes(payload[:4])
    return next((name for magic, name in IMAGE_SIGNATURES.items() if head.startswith(magic)), None)


def form_body(request: dict[str, Any]) -> BadRequest:
    """What to say about a request that came as form fields (possibly none) instead of a JSON body."""
    found = (_image_format(v) for v in request.values() if isinstance(v, (bytes, bytearray, str)))
    image = next((name for name in found if name is not None), None)
    if image is None:
        head = "".join(f"{k}={v if isinstance(v, str) else ''}" for k, v in list(request.items())[:2])[:16]
        image = next((name for name, marks in FORM_IMAGE_MARKERS.items() if any(m in head for m in marks)), None)
    if image is not None:
        return BadRequest(f"the body is a {image} image, not rows: {ROWS_HINT}")
    return BadRequest(
        "the body came as form data, not JSON (curl --data-binary sends application/x-www-form-urlencoded "
        f"unless given -H 'Content-Type: application/json'): {ROWS_HINT}"
    )


def parse_rows(payload: Any) -> np.ndarray:
    """One request's body to a float32 [n, 784] array; BadRequest names the problem."""
    if isinstance(payload, (bytes, bytearray, str)):
        image = _image_format(payload)
        if image is not None:
            raise BadRequest(f"the body is a {image} image, not rows: {ROWS_HINT}")
    if isinstance(payload, (bytes, bytearray)):
        try:
            payload = _loads(payload)
        except ValueError as exc:  # orjson.JSONDecodeError is a ValueError too
            raise BadRequest(f"body is not valid JSON ({exc}): {ROWS_HINT}") from exc
    if isinstance(payload, dict):
        if "instances" not in payload:
            raise BadRequest("JSON object must have an 'instances' list")
        payload = payload["instances"]
    if not isinstance(payload, list) or not payload:
        raise BadRequest("expected a non-empty list of rows of 784 numbers")
    if not isinstance(payload[0], list):
        payload = [payload]  # a single flat row
    try:
        rows = np.asarray(payload)
    except (TypeError, ValueError) as exc:
        raise BadRequest(f"rows must be lists of {INPUT_DIM} numbers of equal length") from exc
    if rows.dtype.kind not in "fiu":  # strings, booleans, null or ragged rows; numpy would convert some
        kind = {"b": "booleans", "U": "strings"}.get(rows.dtype.kind)
        raise BadRequest(
            f"rows must be lists of {INPUT_DIM} numbers" + (f", not {kind}" if kind else " of equal length")
        )
    rows = rows.astype(np.float32, copy=False)
    if rows.ndim != 2 or rows.shape[1] != INPUT_DIM:
        raise BadRequest(f"each row must have {INPUT_DIM} numbers; got shape {list(rows.shape)}")
    if len(rows) > MAX_ROWS_PER_REQUEST:
        raise BadRequest(f"at most {MAX_ROWS_PER_REQUEST} rows per request; got {len(rows)}")
    if not np.isfinite(rows).all():
        raise BadRequest("rows contain NaN or infinity")
    return rows


def parse_tensor(payload: Any) -> np.ndarray:
    """A binary ``tensor`` input (gRPC): rows of INPUT_DIM little-endian float32 values."""
    raw = bytes(payload)
    row_bytes = INPUT_DIM * 4
    if not raw or len(raw) % row_bytes:
        raise BadRequest(f"tensor must hold whole rows of {INPUT_DIM} float32 values; got {len(raw)} bytes")
    rows = np.frombuffer(raw, dtype="<f4").reshape(-1, INPUT_DIM)
    if len(rows) > MAX_ROWS_PER_REQUEST:
        raise BadRequest(f"at most {MAX_ROWS_PER_REQUEST} rows per request; got {len(rows)}")
    if not np.isfinite(rows).all():
        raise BadRequest("rows contain NaN or infinity")
    return rows


# Warm-up before the worker reports READY: every forward-pass size it can see, in powers of two up to
# the row limit (TorchServe concatenates a batch's rows, so a pass holds 1 .. MAX_ROWS_PER_REQUEST
# rows and more with several requests), each run a few times. TorchScript's profiling executor
# specialises and optimises the graph over its first runs, and CUDA initialises its context and
# kernels lazily: without this the first user requests paid ~40 ms on this CPU machine and ~100 ms
# on an H200 (shared/gpu/h200-2026-11-28). TF Serving does the same with the warmup records in the
# SavedModel's assets.extra (training/keras_model.py writes them; the stand-in replays them too).
WARMUP_RUNS = 3


def warmup_sizes(batch_size: int) -> list[int]:
    """Forward-pass sizes to warm: powers of two up to the largest pass, and that largest pass."""
    largest = max(1, batch_size) * MAX_ROWS_PER_REQUEST
    sizes, n = [], 1
    while n < largest:
        sizes.append(n)
        n *= 2
    return [*sizes, largest]


class MnistHandler:
    def __init__(self) -> None:
        self.initialized = False
        self.device = "cpu"
        self.version = ""  # the archive's modelVersion: every answer names it (X-Model-Version)
        self._predict: Any = None

    def initialize(self, context: Any) -> None:
        import torch

        props = context.system_properties
        model_dir = props["model_dir"]
        serialized = context.manifest["model"]["serializedFile"]
        self.version = str(context.manifest["model"].get("modelVersion", ""))
        path = os.path.join(model_dir, serialized)
        gpu_id = props.get("gpu_id")
        use_cuda = torch.cuda.is_available() and gpu_id is not None
        if gpu_required() and not use_cuda:
            raise GPURequired(
                f"{REQUIRE_GPU_ENV}=1 but {serialized} would run on the CPU: torch.cuda.is_available() is "
                f"{torch.cuda.is_available()}, TorchServe assigned gpu_id {gpu_id} (check the NVIDIA driver, "
                "the container runtime and number_of_gpu)"
            )
        threads = int(os.environ.get("OMP_NUM_THREADS", "0") or 0)
        if threads:
            torch.set_num_threads(threads)
        if serialized.endswith(".onnx"):
            self._predict = self._onnx(path, use_cuda, gpu_id, threads)
        else:
            self.device = f"cuda:{gpu_id}" if use_cuda else "cpu"
            module = torch.jit.load(path, map_location=self.device).eval()

            def run(rows: np.ndarray) -> np.ndarray:
                with torch.inference_mode():
                    return module(torch.from_numpy(rows).to(self.device)).cpu().numpy()

            self._predict = run
        seconds = self.warm_up(int(props.get("batch_size") or 1))
        log.info("loaded %s on %s; warmed up in %.0f ms", serialized, self.device, seconds * 1000)
        self.initialized = True

    def warm_up(self, batch_size: int) -> float:
        """Run every forward-pass size WARMUP_RUNS times on the model's device; returns the seconds taken."""
        import time

        start = time.perf_counter()
        for n in warmup_sizes(batch_size):
            rows = np.zeros((n, INPUT_DIM), dtype=np.float32)
            for _ in range(WARMUP_RUNS):
                self._predict(rows)
        return time.perf_counter() - start

    def _onnx(self, path: str, use_cuda: bool, gpu_id: Any, threads: int) -> Any:
        import onnxruntime as ort

        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        providers: list[Any] = ["CPUExecutionProvider"]
        if use_cuda and "CUDAExecutionProvider" in ort.get_available_providers():
            if hasattr(ort, "preload_dlls"):  # load CUDA and cuDNN from the nvidia-* wheels torch brought
                ort.preload_dlls()
            providers.insert(0, ("CUDAExecutionProvider", {"device_id": int(gpu_id)}))
        session = ort.InferenceSession(path, options, providers=providers)
        self.device = session.get_providers()[0]
        # The session's first provider is the one that loaded: get_available_providers() lists CUDA
        # even when its libraries (CUDA, cuDNN of the right majors) cannot load, and ORT falls back.
        if gpu_required() and self.device != "CUDAExecutionProvider":
            raise GPURequired(
                f"{REQUIRE_GPU_ENV}=1 but ONNX Runtime's session runs on {self.device} (available: "
                f"{', '.join(ort.get_available_providers())}; onnxruntime-gpu needs the CUDA and cuDNN majors it was "
                "built for)"
            )

        def run(rows: np.ndarray) -> np.ndarray:
            return session.run([OUTPUT_NAME], {INPUT_NAME: rows})[0]

        return run

    def handle(self, data: list[dict[str, Any]], context: Any) -> list[Any]:
        parsed: list[np.ndarray | None] = []
        binary: list[bool] = []
        responses: list[Any] = [None] * len(data)
        for i, request in enumerate(data):
            tensor = request.get(TENSOR_INPUT)
            binary.append(tensor is not None)
            try:
                if tensor is not None:
                    parsed.append(parse_tensor(tensor))
                else:
                    body = request.get("body") if request.get("body") is not None else request.get("data")
                    if body is None:
                        raise form_body(request)
                    parsed.append(parse_rows(body))
            except BadRequest as exc:
                parsed.append(None)
                context.set_response_status(code=400, phrase="Bad Request", idx=i)
                responses[i] = _json({"code": 400, "type": "BadRequest", "message": str(exc)})
        valid = [rows for rows in parsed if rows is not None]
        if valid:
            probs = self._predict(np.concatenate(valid))
            if probs.shape[1:] != (NUM_CLASSES,):
                raise RuntimeError(f"model returned shape {probs.shape}")
            offset = 0
            for i, rows in enumerate(parsed):
                if rows is not None:
                    part = probs[offset : offset + len(rows)]
                    responses[i] = (
                        np.ascontiguousarray(part, dtype="<f4").tobytes()
                        if binary[i]
                        else _json({"predictions": part.tolist()})
                    )
                    offset += len(rows)
        for i in range(len(data)):
            ok_binary = binary[i] and parsed[i] is not None
            context.set_response_content_type(i, "application/octet-stream" if ok_binary else "application/json")
            # How many requests shared this forward pass: makes server-side batching observable.
            context.set_response_header(i, "X-Batch-Requests", str(len(data)))
            # Where the model ran (cpu, cuda:0, or ONNX Runtime's provider): a GPU run can show it used one.
            context.set_response_header(i, "X-Model-Device", self.device)
            # Which version computed it: the gateway reads it where it cannot ask the management API
            # which version is the default (Kubernetes), and during a rollout two versions answer.
            context.set_response_header(i, VERSION_HEADER, self.version)
        return responses


def _json(payload: dict[str, Any]) -> bytes:
    # Serialised here: TorchServe would pretty-print a dict, tripling the bytes on the wire.
    return json.dumps(payload, separators=(",", ":")).encode()


_service = MnistHandler()


def handle(data: list[dict[str, Any]] | None, context: Any) -> list[Any] | None:
    """TorchServe's module-level entry point."""
    if not _service.initialized:
        _service.initialize(context)
    if data is None:
        return None
    return _service.handle(data, context)
