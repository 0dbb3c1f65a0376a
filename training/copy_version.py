"""A cheap model version for rollout tests and ``make load-rollout``: a copy of a trained version
under a new number, recorded in the manifest by training's own writers (seconds, no training). Its
answers are its source's; what a rollout of it measures is the rollout."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from training import archives, manifest
from training.exported import artifact_paths, entries


def copy_version(root: Path, source: int, version: int) -> Path:
    """Version ``version`` of ``root``: ``source``'s SavedModel, TorchScript and ONNX files, its
    archives rebuilt with ``modelVersion`` ``version``, and ``source``'s manifest record (so the
    same held-out check) under the new number."""
    src, dst = artifact_paths(root, source), artifact_paths(root, version)
    shutil.copytree(src["savedmodel"], dst["savedmodel"])
    shutil.copytree(src["torchscript"].parent, dst["torchscript"].parent)
    record = {**manifest.Manifest.load(root).version(source).raw, "version": version}
    record["created"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    built = entries(root, dst) + archives.build_version(root, version)
    return manifest.record_version(root, record, built, manifest.load(root)["held_out_check"])
