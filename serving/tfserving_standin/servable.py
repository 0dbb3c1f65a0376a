"""One loaded model version: a TF1 session over the SavedModel, as TF Serving's bundle loader makes it."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

from serving.tfserving_standin.errors import invalid, not_found

log = logging.getLogger("tfserving_standin")
tf.get_logger().setLevel("ERROR")  # deprecation notices for the TF1 loader we use on purpose

SERVE_TAG = "serve"
DEFAULT_SIGNATURE = "serving_default"
WARMUP_PATH = Path("assets.extra") / "tf_serving_warmup_requests"
MAX_WARMUP_RECORDS = 1000  # the real server's cap


_KINDS = {"b": "booleans", "U": "strings", "S": "strings", "O": "mixed or null values"}


class Signature:
    """A signature's tensors and a compiled callable for the full set of outputs."""

    def __init__(self, session: Any, sig: Any):
        self.def_ = sig
        self.input_names = sorted(sig.inputs)
        self.output_names = sorted(sig.outputs)
        self.dtypes = {k: tf.dtypes.as_dtype(v.dtype).as_numpy_dtype for k, v in sig.inputs.items()}
        self.shapes = {
            k: None if v.tensor_shape.unknown_rank else [d.size for d in v.tensor_shape.dim]
            for k, v in sig.inputs.items()
        }
        # make_callable skips sess.run's per-call graph lookups: the hot path.
        self._run = session.make_callable(
            [sig.outputs[k].name for k in self.output_names], [sig.inputs[k].name for k in self.input_names]
        )

    def check(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Cast to the signature's dtypes and check names and shapes; errors are INVALID_ARGUMENT."""
        if set(inputs) != set(self.input_names):
            raise invalid(f"input names {sorted(inputs)} do not match the signature's inputs {self.input_names}")
        out = {}
        for name, value in inputs.items():
            want_dtype = np.dtype(self.dtypes[name])
            got = np.asarray(value).dtype
            if want_dtype.kind in "fiu" and got.kind not in "fiu":
                # TF Serving refuses strings and booleans for a numeric tensor; numpy would convert them.
                raise invalid(f"input '{name}' expects {want_dtype.name} values, got {_KINDS.get(got.kind, got.name)}")
            try:
                arr = np.asarray(value, dtype=self.dtypes[name])
            except (TypeError, ValueError) as exc:
                raise invalid(f"input '{name}' cannot be read as {self.dtypes[name].__name__}: {exc}") from exc
            want = self.shapes[name]
            if want is not None and (
                arr.ndim != len(want) or any(w not in (-1, g) for w, g in zip(want, arr.shape, strict=True))
            ):
                raise invalid(f"input '{name}' has shape {list(arr.shape)}, the signature expects {want}")
            out[name] = arr
        return out

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        values = self._run(*[inputs[k] for k in self.input_names])
        return dict(zip(self.output_names, values, strict=True))


class Servable:
    def __init__(
        self, name: str, version: int, path: Path, intra_op_threads: int = 0, inter_op_threads: int | None = None
    ):
        """Thread pools as tensorflow_model_server's --tensorflow_{intra,inter}_op_parallelism (0: TF's
        default, one per core; inter None: as intra)."""
        self.name, self.version, self.path = name, version, path
        self.graph = tf.Graph()
        config = tf.compat.v1.ConfigProto(
            intra_op_parallelism_threads=intra_op_threads,
            inter_op_parallelism_threads=intra_op_threads if inter_op_threads is None else inter_op_threads,
        )
        self.session = tf.compat.v1.Session(graph=self.graph, config=config)
        with self.graph.as_default():
            meta = tf.compat.v1.saved_model.loader.load(self.session, [SERVE_TAG], str(path))
            self.signature_defs = {k: v for k, v in meta.signature_def.items() if not k.startswith("__")}
            self.signatures = {k: Signature(self.session, v) for k, v in self.signature_defs.items()}
        log.info("loaded servable %s version %d from %s", name, version, path)

    def signature(self, name: str) -> Signature:
        sig = self.signatures.get(name or DEFAULT_SIGNATURE)
        if sig is None:
            raise not_found(f'Serving signature name: "{name}" not found in signature def')
        return sig

    def warmup(self) -> int:
        """Replay the PredictRequests in assets.extra, as the real server does before serving."""
        from tensorflow_serving.apis import prediction_log_pb2

        f = self.path / WARMUP_PATH
        if not f.exists():
            return 0
        count = 0
        for raw in tf.compat.v1.io.tf_record_iterator(str(f)):
            log_ = prediction_log_pb2.PredictionLog.FromString(raw)
            if log_.WhichOneof("log_type") != "predict_log":
                continue
            request = log_.predict_log.request
            sig = self.signature(request.model_spec.signature_name)
            sig.run(sig.check({k: tf.make_ndarray(v) for k, v in request.inputs.items()}))
            count += 1
            if count >= MAX_WARMUP_RECORDS:
                break
        return count

    def close(self) -> None:
        self.session.close()
