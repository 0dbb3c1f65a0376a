"""``python -m training.archives``: TorchServe model archives per version, recorded in the manifest.

``artifacts/model-store/mnist-v<N>.mar`` and ``mnist_onnx-v<N>.mar`` pack version N's TorchScript and
ONNX files with the handler, ``modelVersion`` N in their MANIFEST.json: every version sits in the one
folder TorchServe takes as its model store (it finds a registration URL by file name only), and
``POST /models?url=mnist-v<N>.mar`` registers version N beside the others. ``make train`` builds them;
``make mar`` rebuilds them (every version) after the handler changed, since an archive carries its handler.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from mnist_serving.spec import ONNX_MODEL_NAME, TORCH_MODEL_NAME
from serving.torchserve.build_mar import build_versioned, versioned_name
from training import manifest

STORE = "model-store"
# name in the manifest -> (the model the archive registers, the gateway backend that serves it)
ARCHIVES = {"torchscript_mar": (TORCH_MODEL_NAME, "torchserve"), "onnx_mar": (ONNX_MODEL_NAME, "torchserve-onnx")}


def paths(root: Path, version: int) -> dict[str, Path]:
    """Manifest name -> where version ``version``'s archive lives."""
    return {name: root / STORE / versioned_name(model, version) for name, (model, _) in ARCHIVES.items()}


def remove(root: Path, version: int) -> None:
    for p in paths(root, version).values():
        p.unlink(missing_ok=True)


def build_version(root: Path, version: int) -> list[dict[str, Any]]:
    """Build version ``version``'s archives from ``root/torchserve/<version>/``; their manifest entries."""
    built = build_versioned(root, root / STORE, version)
    return [
        {
            "name": name,
            "framework": "pytorch",
            "format": "torchserve_mar",
            "backend": backend,
            "model_name": model,
            "path": built[model].relative_to(root).as_posix(),
            "sha256": manifest.sha256_path(built[model]),
        }
        for name, (model, backend) in ARCHIVES.items()
    ]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--artifacts", type=Path, default=Path("artifacts"))
    p.add_argument("--version", type=int, help="only this version (default: every version in the manifest)")
    args = p.parse_args(argv)
    data = manifest.load(args.artifacts)
    versions = [args.version] if args.version else [v["version"] for v in data.get("versions", [])]
    if not versions:
        print(f"error: no versions in {args.artifacts / manifest.MANIFEST}: run `make train`", file=sys.stderr)
        return 2
    for n in versions:
        entries = build_version(args.artifacts, n)
        manifest.update_artifacts(args.artifacts, n, entries)
        for e in entries:
            print(f"built version {n} {e['model_name']}: {args.artifacts / e['path']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
