"""``python -m load_tests.servers.floor KIND [--port N] [--artifacts DIR] [--device D]
[--batch-size N --batch-delay-ms D] [--grpc-port G]``: the floor of each server.

The very same artifact the servers load (KIND: ``torchscript``, ``onnx`` or ``savedmodel``, the
manifest's latest version), in-process, behind the leanest HTTP route a well-kept library gives:
one aiohttp process, one event loop, no batching, one compute thread (as each server's model executor
on this machine), orjson both ways. It takes the servers' JSON contract (``{"instances": [[784
floats], ...]}`` -> ``{"predictions": [[10 probabilities], ...]}``), so the load generator checks its
answers exactly as theirs. What a server adds over this, at the same offered rate and in the same run,
is what the server itself costs.

Two options make floors a batching server or a gRPC route can be set against (a floor that does
less than the server is asked to do flatters neither):

``--batch-size N --batch-delay-ms D`` (N > 1): the *batching floor*, batching as the servers do
(floor_batching.py): up to N rows per forward pass; the pass runs once N rows wait or D ms after its
oldest request arrived (TF Serving's ``max_execution_batch_size`` / ``batch_timeout_micros``, TorchServe's
``batchSize`` / ``maxBatchDelay``), on one compute thread beside the event loop; while a pass runs the
next batch keeps filling, as in both servers. Rows are counted, as TF Serving does (TorchServe counts
requests: the same for the load tools' one-row requests). A request larger than N rows runs alone:
split into N-row passes for ``savedmodel`` (TF Serving's large-batch splitting), whole for
``torchscript``/``onnx`` (TorchServe never splits a request). Each answer carries ``X-Batch-Requests``:
the requests that shared its pass, as the project's TorchServe handler reports it. A lone request
waits D plus the timer's lag and one thread hand-off (in-process here, D = 1 ms: p50 1.26 ms).
N = 1 (whatever D) is the plain floor: a batch of one is full at once, in both servers too.

``--grpc-port G``: the same process and event loop also serve gRPC on 127.0.0.1:G with the matching
server's own method and messages (floor_grpc.py: TF Serving's ``Predict`` for ``savedmodel``,
TorchServe's ``Predictions`` with the binary ``tensor`` input for the others), so the gRPC load users
target it unchanged and gRPC routes get a floor without JSON. Both protocols share one batcher. The
batch size comes back in the trailing metadata ``x-batch-requests``.

Without these options the floor is exactly the plain one above. Bad input is 400 (gRPC:
INVALID_ARGUMENT) naming the problem; a failing model 500 (INTERNAL); neither ends the server.
"""

from __future__ import annotations

import argparse
import os
import warnings
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from aiohttp import web

from load_tests.servers.floor_batching import Batcher, Infer, Predict, inline
from mnist_serving import ports
from mnist_serving.spec import INPUT_DIM, INPUT_NAME, MAX_ROWS_PER_REQUEST, OUTPUT_NAME, SIGNATURE_NAME

KINDS = ("torchscript", "onnx", "savedmodel")
DEFAULT_PORTS = {"torchscript": ports.FLOOR_TORCHSCRIPT, "onnx": ports.FLOOR_ONNX, "savedmodel": ports.FLOOR_SAVEDMODEL}
PATH = "/predict"
BATCH_HEADER = "X-Batch-Requests"  # as serving/torchserve/mnist_handler.py: requests that shared the pass
# Warm-up: every pass size the plain floor sees (powers of two up to the row limit), each 3 times,
# as the TorchServe handler does (kernels, caches, TorchScript's profiling executor).
WARM_SIZES = (1, 2, 4, 8, 16, 32, 64, 128, 256)


def _entry(artifacts: Path, kind: str) -> dict[str, Any]:
    manifest = orjson.loads((artifacts / "manifest.json").read_bytes())
    entries = [a for a in manifest["artifacts"] if a["name"] == kind]
    if not entries:
        raise SystemExit(f"no {kind} artifact in {artifacts / 'manifest.json'}: run `make train`")
    return max(entries, key=lambda a: a.get("model_version", 0))


def artifact(artifacts: Path, kind: str) -> Path:
    """The manifest's latest ``kind`` artifact."""
    return artifacts / _entry(artifacts, kind)["path"]


def load(kind: str, path: Path, device: str = "cpu") -> Predict:
    """A rows -> probabilities function over the artifact, on one thread (TorchScript: on ``device``)."""
    if kind == "torchscript":
        import torch

        torch.set_num_threads(1)
        # gRPC rows are read-only views of the request bytes, only read: torch's warning says nothing here.
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        model = torch.jit.load(str(path), map_location=device).eval()

        def torchscript(rows: np.ndarray) -> np.ndarray:
            with torch.inference_mode():
                return model(torch.from_numpy(rows).to(device)).cpu().numpy()

        return torchscript
    if kind == "onnx":
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = opts.inter_op_num_threads = 1
        session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name

        def onnx(rows: np.ndarray) -> np.ndarray:
            return np.asarray(session.run(None, {name: rows})[0])

        return onnx
    if kind == "savedmodel":
        import tensorflow as tf

        # A TF1 session with a compiled callable: the cheapest call into a SavedModel signature.
        graph = tf.Graph()
        config = tf.compat.v1.ConfigProto(intra_op_parallelism_threads=1, inter_op_parallelism_threads=1)
        session = tf.compat.v1.Session(graph=graph, config=config)
        with graph.as_default():
            meta = tf.compat.v1.saved_model.loader.load(session, ["serve"], str(path))
        sig = meta.signature_def[SIGNATURE_NAME]
        run = session.make_callable([sig.outputs[OUTPUT_NAME].name], [sig.inputs[INPUT_NAME].name])

        def savedmodel(rows: np.ndarray) -> np.ndarray:
            return np.asarray(run(rows)[0])

        return savedmodel
    raise ValueError(f"unknown floor kind {kind!r}; one of {KINDS}")


def _error(status: int, message: str) -> web.Response:
    return web.Response(status=status, body=orjson.dumps({"error": message}), content_type="application/json")


def app(infer: Infer) -> web.Application:
    """POST /predict and GET /ready; ``infer`` from floor_batching (``inline`` for the plain floor)."""

    async def handle(request: web.Request) -> web.Response:
        try:
            rows = np.asarray(orjson.loads(await request.read())["instances"], dtype=np.float32)
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            return _error(400, f"expected {{'instances': [[{INPUT_DIM} numbers], ...]}}: {exc}")
        if rows.ndim != 2 or rows.shape[1] != INPUT_DIM or not 0 < len(rows) <= MAX_ROWS_PER_REQUEST:
            return _error(400, f"rows must be 1..{MAX_ROWS_PER_REQUEST} lists of {INPUT_DIM} numbers")
        try:
            probs, batch = await infer(rows)
        except Exception as exc:  # the model failed: a clear 500, the server stays up
            return _error(500, f"model failed: {type(exc).__name__}: {exc}")
        return web.Response(
            body=orjson.dumps({"predictions": probs}, option=orjson.OPT_SERIALIZE_NUMPY),
            content_type="application/json",
            headers={BATCH_HEADER: str(batch)} if batch else None,
        )

    async def ready(_: web.Request) -> web.Response:
        return web.Response(text="ok")

    application = web.Application()
    application.router.add_post(PATH, handle)
    application.router.add_get("/ready", ready)
    return application


def _args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("kind", choices=KINDS)
    p.add_argument("--port", type=int, default=None)
    p.add_argument("--artifacts", type=Path, default=Path("artifacts"))
    p.add_argument("--device", default="cpu", help="torchscript only: cpu or cuda:N (default: %(default)s)")
    p.add_argument("--batch-size", type=int, default=1, help="rows per forward pass; > 1 batches (default: 1)")
    p.add_argument("--batch-delay-ms", type=float, default=None, help="with --batch-size: the longest wait to fill")
    p.add_argument("--grpc-port", type=int, default=None, help="also serve the matching server's gRPC method here")
    args = p.parse_args(argv)
    if args.batch_size < 1:
        p.error("--batch-size must be >= 1")
    if args.batch_size > 1 and args.batch_delay_ms is None:
        p.error("--batch-size N (N > 1) needs --batch-delay-ms D")
    if args.batch_delay_ms is not None and args.batch_delay_ms < 0:
        p.error("--batch-delay-ms must be >= 0")
    return args


def main(argv: list[str] | None = None) -> None:
    args = _args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    port = args.port or int(os.environ.get(f"FLOOR_{args.kind.upper()}_PORT", DEFAULT_PORTS[args.kind]))
    entry = _entry(args.artifacts.resolve(), args.kind)
    predict = load(args.kind, args.artifacts.resolve() / entry["path"], args.device)
    batcher: Batcher | None = None
    if args.batch_size > 1:
        batcher = Batcher(predict, args.batch_size, args.batch_delay_ms / 1000, split=args.kind == "savedmodel")
        batcher.warm(sorted({*WARM_SIZES, args.batch_size}))  # on its compute thread
    else:
        for n in WARM_SIZES:
            for _ in range(3):
                predict(np.zeros((n, INPUT_DIM), np.float32))
    infer = batcher or inline(predict)
    application = app(infer)
    if args.grpc_port is not None:
        from load_tests.servers import floor_grpc  # grpcio only when asked for

        async def grpc_side(_: web.Application) -> AsyncIterator[None]:
            # Started in aiohttp's start-up, so on its loop and before /ready answers.
            server = await floor_grpc.start(args.kind, infer, int(entry.get("model_version", 1)), args.grpc_port)
            yield
            await server.stop(floor_grpc.STOP_GRACE_S)

        application.cleanup_ctx.append(grpc_side)
    try:
        web.run_app(application, host="127.0.0.1", port=port, access_log=None, print=None)
    finally:
        if batcher is not None:
            batcher.close()


if __name__ == "__main__":
    main()
