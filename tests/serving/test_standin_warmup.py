"""TF Serving's side of warm models: the SavedModel carries warmup records (`make train` writes them),
which the real server replays before it reports AVAILABLE with --enable_model_warmup (its default).
The stand-in honours the same flag the same way: every record is run through the signature."""

from __future__ import annotations

from pathlib import Path

from serving.tfserving_standin.servable import Servable
from training.keras_model import WARMUP_BATCH_SIZES
from training.train import artifact_paths


def test_the_stand_in_replays_every_warmup_record(artifacts: Path) -> None:
    path = artifact_paths(artifacts, 1)["savedmodel"]
    servable = Servable("mnist", 1, path, intra_op_threads=1)
    try:
        assert servable.warmup() == len(WARMUP_BATCH_SIZES)  # one record per batch size, each run
    finally:
        servable.close()
