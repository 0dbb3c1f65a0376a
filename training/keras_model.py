"""Keras: build, train and export a SavedModel the real TensorFlow Serving can load.

Keras 3 with plain ``tf.saved_model.save`` can write a SavedModel whose variables the
session-based loader of TF Serving cannot find. ``keras.export.ExportArchive`` tracks the
variables and lets us name the signature's input and output exactly.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

from mnist_serving.spec import INPUT_DIM, INPUT_NAME, NUM_CLASSES, OUTPUT_NAME, SIGNATURE_NAME, TF_MODEL_NAME
from training.history import History
from training.hyperparams import HyperParams

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import tensorflow as tf

WARMUP_FILE = "tf_serving_warmup_requests"
# Batches per compiled call: the same updates, far less Python per step (measured ~2x faster here).
STEPS_PER_EXECUTION = 64
WARMUP_BATCH_SIZES = (1, 8)


def build(hp: HyperParams) -> keras.Model:
    return keras.Sequential(
        [
            keras.Input(shape=(INPUT_DIM,), name=INPUT_NAME),
            keras.layers.Dense(hp.hidden, activation="relu", **_init(hp, INPUT_DIM)),
            keras.layers.Dropout(hp.dropout),
            keras.layers.Dense(NUM_CLASSES, activation="softmax", **_init(hp, hp.hidden)),
        ],
        name="mnist_mlp",
    )


def _init(hp: HyperParams, fan_in: int) -> dict[str, keras.initializers.Initializer]:
    """PyTorch's ``nn.Linear`` default when ``hp.init == "torch"``: U(+-1/sqrt(fan_in)) for both."""
    if hp.init == "own":
        return {}
    if hp.init != "torch":
        raise ValueError(f"unknown init {hp.init!r}")
    bound = fan_in**-0.5
    return {
        # VarianceScaling's uniform limit is sqrt(3 * scale / fan_in): scale 1/3 gives 1/sqrt(fan_in).
        "kernel_initializer": keras.initializers.VarianceScaling(1 / 3, "fan_in", "uniform"),
        "bias_initializer": keras.initializers.RandomUniform(-bound, bound),
    }


class _Progress(keras.callbacks.Callback):
    def __init__(self, history: History):
        super().__init__()
        self.history_ = history

    def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        logs = logs or {}
        self.history_.add(logs["loss"], logs["accuracy"], logs["val_loss"], logs["val_accuracy"])


def train(
    hp: HyperParams, x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray
) -> tuple[keras.Model, History]:
    keras.utils.set_random_seed(hp.seed)
    model = build(hp)
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=hp.learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
        steps_per_execution=STEPS_PER_EXECUTION,
    )
    history = History("keras")
    start = time.perf_counter()
    model.fit(
        x_train,
        y_train,
        epochs=hp.epochs,
        batch_size=hp.batch_size,
        validation_data=(x_test, y_test),
        callbacks=[_Progress(history), keras.callbacks.LearningRateScheduler(lambda epoch, _: hp.lr_at(epoch))],
        verbose=0,
    )
    history.seconds = round(time.perf_counter() - start, 2)
    return model, history


def weights(model: keras.Model) -> list[np.ndarray]:
    """The trained weights: kernel [in, out] and bias of each Dense (``torch_model.weights``' layout)."""
    return [np.asarray(w, dtype=np.float32) for w in model.get_weights()]


def from_weights(hp: HyperParams, ws: list[np.ndarray]) -> keras.Model:
    """The network carrying weights trained elsewhere, e.g. by PyTorch (``torch_model.weights``)."""
    model = build(hp)
    model.set_weights([np.asarray(w, dtype=np.float32) for w in ws])
    return model


def predict(model: keras.Model, x: np.ndarray) -> np.ndarray:
    return np.asarray(model.predict(x, batch_size=1024, verbose=0))


def export_saved_model(model: keras.Model, export_dir: Path, warmup_rows: np.ndarray) -> None:
    """Write ``export_dir`` (a TF Serving version folder) with signature and warmup records."""
    archive = keras.export.ExportArchive()
    archive.track(model)
    spec = tf.TensorSpec(shape=(None, INPUT_DIM), dtype=tf.float32, name=INPUT_NAME)

    def serve(pixels: tf.Tensor) -> dict[str, tf.Tensor]:
        return {OUTPUT_NAME: model(pixels, training=False)}

    archive.add_endpoint(name=SIGNATURE_NAME, fn=serve, input_signature=[spec])
    archive.write_out(str(export_dir), verbose=False)
    _write_warmup(export_dir, warmup_rows)


def _write_warmup(export_dir: Path, rows: np.ndarray) -> None:
    """TF Serving replays these PredictionLogs at load, so the first real request is not slow."""
    from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2

    folder = export_dir / "assets.extra"
    folder.mkdir(parents=True, exist_ok=True)
    with tf.io.TFRecordWriter(str(folder / WARMUP_FILE)) as writer:
        for n in WARMUP_BATCH_SIZES:
            request = predict_pb2.PredictRequest(
                model_spec=model_pb2.ModelSpec(name=TF_MODEL_NAME, signature_name=SIGNATURE_NAME),
            )
            request.inputs[INPUT_NAME].CopyFrom(tf.make_tensor_proto(rows[:n].astype(np.float32)))
            log = prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request))
            writer.write(log.SerializeToString())
