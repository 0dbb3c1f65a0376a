"""``python -m serving.torchserve.build_mar``: pack TorchScript and ONNX artifacts into .mar archives."""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from mnist_serving.spec import ONNX_MODEL_NAME, TORCH_MODEL_NAME

HERE = Path(__file__).resolve().parent
HANDLER = HERE / "mnist_handler.py"
SPEC = HERE.parent.parent / "mnist_serving" / "spec.py"


def latest_version(artifacts: Path) -> int:
    """The manifest's newest good version (a version marked bad is never the default)."""
    manifest = json.loads((artifacts / "manifest.json").read_text())
    if manifest.get("latest_version") is None:
        raise ValueError(f"{artifacts / 'manifest.json'} lists no good version: run `make train`")
    return int(manifest["latest_version"])


def build(artifacts: Path, out: Path, version: int | None = None) -> dict[str, Path]:
    """Write ``mnist.mar`` and ``mnist_onnx.mar`` for ``version`` (default: latest) into ``out``, with
    ``modelVersion`` ``version`` in their MANIFEST.json (``build_versioned``: every version side by side)."""
    version = version or latest_version(artifacts)
    src = artifacts / "torchserve" / str(version)
    out.mkdir(parents=True, exist_ok=True)
    archiver = shutil.which("torch-model-archiver", path=str(Path(sys.executable).parent)) or "torch-model-archiver"
    built = {}
    with tempfile.TemporaryDirectory() as tmp:
        spec = Path(tmp) / "spec.py"  # the handler imports it as a top-level module inside the archive
        shutil.copy(SPEC, spec)
        for model_name, file in ((TORCH_MODEL_NAME, "mnist.pt"), (ONNX_MODEL_NAME, "mnist.onnx")):
            serialized = src / file
            if not serialized.exists():
                raise FileNotFoundError(f"{serialized} is missing: run `make train` first")
            subprocess.run(
                [
                    archiver,
                    "--model-name",
                    model_name,
                    "--version",
                    str(version),
                    "--serialized-file",
                    str(serialized),
                    "--handler",
                    str(HANDLER),
                    "--extra-files",
                    str(spec),
                    "--export-path",
                    str(out),
                    "--force",
                ],
                check=True,
            )
            built[model_name] = out / f"{model_name}.mar"
    (out / "VERSION").write_text(f"{version}\n")
    return built


def versioned_name(model_name: str, version: int) -> str:
    """``mnist-v2.mar``: TorchServe 0.12 looks a registration URL up by its file name alone, in its one
    model store folder (``ModelArchive.downloadModel``: ``new File(modelStore, getName(url))``), so
    archives of several versions must differ by name, not by folder, to be registered side by side."""
    return f"{model_name}-v{version}.mar"


def build_versioned(artifacts: Path, store: Path, version: int) -> dict[str, Path]:
    """``build`` for ``version``, the archives named ``versioned_name`` in ``store`` beside other versions'."""
    store.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=store) as tmp:
        built = build(artifacts, Path(tmp), version)
        return {name: path.replace(store / versioned_name(name, version)) for name, path in built.items()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--artifacts", type=Path, default=Path("artifacts"))
    p.add_argument("--out", type=Path, default=Path("artifacts/model-store"))
    p.add_argument("--version", type=int, default=None, help="model version (default: latest in the manifest)")
    p.add_argument(
        "--versioned",
        action="store_true",
        help="name the archives mnist-vN.mar (a store that takes other versions beside them; the image's)",
    )
    args = p.parse_args(argv)
    if args.versioned:
        version = args.version or latest_version(args.artifacts)
        built = build_versioned(args.artifacts, args.out, version)
        (args.out / "VERSION").write_text(f"{version}\n")
    else:
        built = build(args.artifacts, args.out, args.version)
    for name, path in built.items():
        print(f"built {name}: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
