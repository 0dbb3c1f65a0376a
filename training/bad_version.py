"""``python -m training.bad_version --version N --kind KIND``: write a deliberately bad model version.

For the rollout's tests and demo: a version that must never receive traffic. Marked ``"status":
"bad"`` in the manifest (with the kind and the reason), so nothing picks it by default: the
manifest's ``latest_version`` is the newest *good* one. Both kinds copy a good version (``--from``,
default the newest good one) in seconds, without training:

- ``wrong-answers``: loads everywhere, answers confidently and wrongly (the output layer's classes
  rotated by one: a 7 comes back as 8). Its held-out check holds what the version it was copied
  from answers, so a server running it disagrees with its manifest's check on every row.
- ``fails-to-load``: every artifact is garbage in the right place (a SavedModel folder whose
  ``saved_model.pb`` is not a protobuf, a TorchScript and an ONNX file that are not models, archives
  packing them): TF Serving and TorchServe fail to load it.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from training import archives, manifest
from training.hyperparams import HyperParams
from training.train import artifact_paths, model_artifacts

GARBAGE = b"deliberately not a model: written by training/bad_version.py\n"


def write(root: Path, version: int, kind: str, source: int | None = None) -> Path:
    """Write bad version ``version`` of ``kind`` into ``root``, copied from good version ``source``."""
    if kind not in manifest.BAD_KINDS:
        raise ValueError(f"kind must be one of {manifest.BAD_KINDS}, not {kind!r}")
    m = manifest.Manifest.load(root)
    source = source or m.latest_version
    if source is None or source not in m.good_versions:
        raise manifest.ManifestError(f"--from must be a good version of {root}: {m.good_versions}")
    if version in m.good_versions:
        raise ValueError(f"version {version} is a good version: a bad one must not overwrite it, pick a new number")
    src = m.version(source)
    paths, src_paths = artifact_paths(root, version), artifact_paths(root, source)
    archives.remove(root, version)
    for p in (paths["savedmodel"], paths["torchscript"].parent):
        if p.exists():
            shutil.rmtree(p)
    paths["torchscript"].parent.mkdir(parents=True)
    rows = m.check_rows()
    if kind == "wrong-answers":
        accuracy = _wrong_answers(src_paths, paths, src.raw["hyperparameters"], rows, np.asarray(m.check_labels))
        reason = f"version {source}'s weights with the output classes rotated by one: loads, answers wrongly"
    else:
        _fails_to_load(paths)
        accuracy = {"keras": {}, "pytorch": {}}
        reason = "every artifact is garbage in the right place: the servers fail to load it"
    entries = model_artifacts(root, paths) + archives.build_version(root, version)
    record: dict[str, Any] = {
        **{
            k: v
            for k, v in src.raw.items()
            if k not in ("frameworks", "bad", "status", "version", "created", "agreement")
        },
        "version": version,
        "status": manifest.BAD,
        "bad": {"kind": kind, "reason": reason, "from_version": source},
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        # What the servers must answer were this version sound: the source's answers. A server
        # running it disagrees (wrong-answers) or never answers (fails-to-load).
        "held_out_check": src.raw["held_out_check"],
        "frameworks": {
            f: {"library_versions": d["library_versions"], "history": None, "accuracy": accuracy[f], "uncertainty": {}}
            for f, d in src.raw["frameworks"].items()
        },
    }
    check = manifest.load(root)["held_out_check"]
    return manifest.record_version(root, record, entries, check)


def _wrong_answers(
    src: dict[str, Path], out: dict[str, Path], hyper: dict[str, Any], rows: np.ndarray, labels: np.ndarray
) -> dict[str, dict[str, float]]:
    """Each framework's own weights from version ``src``, output classes rotated: class k's logit
    becomes class k+1's. Returns each framework's accuracy on the held-out check's rows."""
    import tensorflow as tf
    import torch

    from training import keras_model, torch_model

    hp = HyperParams(hidden=hyper["hidden"], dropout=hyper["dropout"])
    keras_ws = [v.numpy() for v in tf.saved_model.load(str(src["savedmodel"])).trainable_variables]
    torch_net = torch_model.MnistNet(hp.hidden, hp.dropout)
    torch_net.load_state_dict(torch.jit.load(str(src["torchscript"])).state_dict())
    torch_ws = torch_model.weights(torch_net)

    def rotate(ws: list[np.ndarray]) -> list[np.ndarray]:
        kernel, bias = ws[2], ws[3]
        return [ws[0], ws[1], np.roll(kernel, 1, axis=1), np.roll(bias, 1)]

    keras_net = keras_model.from_weights(hp, rotate(keras_ws))
    keras_model.export_saved_model(keras_net, out["savedmodel"], rows)
    torch_net = torch_model.from_weights(hp, rotate(torch_ws))
    torch_model.export_torchscript(torch_net, out["torchscript"])
    torch_model.export_onnx(torch_net, out["onnx"])
    return {
        "keras": {"held_out_check": float((keras_model.predict(keras_net, rows).argmax(1) == labels).mean())},
        "pytorch": {"held_out_check": float((torch_model.predict(torch_net, rows).argmax(1) == labels).mean())},
    }


def _fails_to_load(out: dict[str, Path]) -> None:
    (out["savedmodel"] / "variables").mkdir(parents=True)
    (out["savedmodel"] / "saved_model.pb").write_bytes(GARBAGE)
    out["torchscript"].write_bytes(GARBAGE)
    out["onnx"].write_bytes(GARBAGE)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--artifacts", type=Path, default=Path("artifacts"))
    p.add_argument("--version", type=int, required=True, help="the bad version's number")
    p.add_argument("--kind", choices=manifest.BAD_KINDS, required=True)
    p.add_argument("--from", dest="source", type=int, help="the good version to copy (default: the newest good one)")
    args = p.parse_args(argv)
    try:
        out = write(args.artifacts, args.version, args.kind, args.source)
    except (manifest.ManifestError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f'wrote bad version {args.version} ({args.kind}) into {args.artifacts}; {out} marks it "status": "bad"')
    return 0


if __name__ == "__main__":
    sys.exit(main())
