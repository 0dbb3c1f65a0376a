"""``python -m load_tests.servers.floor KIND [--port N] [--artifacts DIR]``: the floor of each server.

The very same artifact the servers load (KIND: ``torchscript``, ``onnx`` or ``savedmodel``, the
manifest's latest version), in-process, behind the leanest HTTP route a well-kept library gives:
one aiohttp process, one event loop, no batching, one compute thread (as each server's model executor
on this machine), orjson both ways. It takes the servers' JSON contract (``{"instances": [[784
floats], ...]}`` -> ``{"predictions": [[10 probabilities], ...]}``), so the load generator checks its
answers exactly as theirs. What a server adds over this, at the same offered rate and in the same run,
is what the server itself costs.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import orjson
from aiohttp import web

from mnist_serving import ports
from mnist_serving.spec import INPUT_DIM, INPUT_NAME, MAX_ROWS_PER_REQUEST, OUTPUT_NAME, SIGNATURE_NAME

KINDS = ("torchscript", "onnx", "savedmodel")
DEFAULT_PORTS = {"torchscript": ports.FLOOR_TORCHSCRIPT, "onnx": ports.FLOOR_ONNX, "savedmodel": ports.FLOOR_SAVEDMODEL}
PATH = "/predict"
Predict = Callable[[np.ndarray], np.ndarray]


def artifact(artifacts: Path, kind: str) -> Path:
    """The manifest's latest ``kind`` artifact."""
    manifest = orjson.loads((artifacts / "manifest.json").read_bytes())
    entries = [a for a in manifest["artifacts"] if a["name"] == kind]
    if not entries:
        raise SystemExit(f"no {kind} artifact in {artifacts / 'manifest.json'}: run `make train`")
    return artifacts / max(entries, key=lambda a: a.get("model_version", 0))["path"]


def load(kind: str, path: Path, device: str = "cpu") -> Predict:
    """A rows -> probabilities function over the artifact, on one thread (TorchScript: on ``device``)."""
    if kind == "torchscript":
        import torch

        torch.set_num_threads(1)
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


def app(predict: Predict) -> web.Application:
    async def handle(request: web.Request) -> web.Response:
        try:
            rows = np.asarray(orjson.loads(await request.read())["instances"], dtype=np.float32)
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            return _error(400, f"expected {{'instances': [[{INPUT_DIM} numbers], ...]}}: {exc}")
        if rows.ndim != 2 or rows.shape[1] != INPUT_DIM or not 0 < len(rows) <= MAX_ROWS_PER_REQUEST:
            return _error(400, f"rows must be 1..{MAX_ROWS_PER_REQUEST} lists of {INPUT_DIM} numbers")
        probs = predict(rows)
        return web.Response(
            body=orjson.dumps({"predictions": probs}, option=orjson.OPT_SERIALIZE_NUMPY),
            content_type="application/json",
        )

    async def ready(_: web.Request) -> web.Response:
        return web.Response(text="ok")

    application = web.Application()
    application.router.add_post(PATH, handle)
    application.router.add_get("/ready", ready)
    return application


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("kind", choices=KINDS)
    p.add_argument("--port", type=int, default=None)
    p.add_argument("--artifacts", type=Path, default=Path("artifacts"))
    p.add_argument("--device", default="cpu", help="torchscript only: cpu or cuda:N (default: %(default)s)")
    args = p.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    port = args.port or int(os.environ.get(f"FLOOR_{args.kind.upper()}_PORT", DEFAULT_PORTS[args.kind]))
    predict = load(args.kind, artifact(args.artifacts.resolve(), args.kind), args.device)
    for n in (1, 2, 4, 8, 16, 32, 64, 128, 256):  # warm, as the TorchServe handler does: every size, kernels, caches
        for _ in range(3):
            predict(np.zeros((n, INPUT_DIM), np.float32))
    web.run_app(app(predict), host="127.0.0.1", port=port, access_log=None, print=None)


if __name__ == "__main__":
    main()
