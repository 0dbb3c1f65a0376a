"""Kubernetes image names and tags, set per overlay (never in the base).

    python -m containers.images tag                                   # <version>-<model hash>
    python -m containers.images set --overlay gpu --registry REG      # rewrite the overlay's images:
    python -m containers.images build --overlay cpu --registry REG [--push]   (make k8s-images)

The tag is the project version plus a hash of the trained artifacts (their sha256 in
artifacts/manifest.json): retraining changes it, so a new model rolls out instead of hitting a node's
cached image under an unchanged tag. GPU overlays use their own image names (`…-gpu`), so pointing
the CPU overlay at a registry can never put a CPU image under a GPU limit. `set` does what
`kustomize edit set image` does, for the overlay's `images:` block only, keeping its comments.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

from containers.offline import IMAGES as BUILT_OFFLINE

REPO = Path(__file__).resolve().parent.parent
K8S = REPO / "k8s"
OVERLAYS = {  # overlay name -> (kustomization folder, GPU images?)
    "cpu": (K8S / "overlays" / "cpu", False),
    "gpu": (K8S / "overlays" / "gpu", True),
    "gpu-operator": (K8S / "overlays" / "gpu", True),  # sets no images of its own: it builds on gpu's
    "kserve-gpu": (K8S / "kserve-gpu", True),
    "kserve": (K8S / "kserve", False),
    "kserve-canary": (K8S / "overlays" / "kserve-canary", False),
    "load-test": (K8S / "load-test", False),
}
TFSERVING_GPU_IMAGE = "tensorflow/serving:2.20.0-gpu"
# torch 2.13.0's Linux wheel on PyPI is the CUDA 13.0 build, the CUDA major onnxruntime-gpu 1.31.1 needs
# (requirements/torchserve-gpu.txt; tests/deploy/test_gpu_stack.py reads both wheels' metadata).
TORCH_GPU_INDEX = "https://pypi.org/simple"


@dataclass(frozen=True)
class KubeImage:
    name: str  # the name the manifests use, e.g. mnist-serving/gateway
    dockerfile: str
    gpu_build_args: tuple[tuple[str, str], ...] | None = None  # None: the same image on GPU nodes

    def repository(self, registry: str, gpu: bool) -> str:
        suffix = "-gpu" if gpu and self.gpu_build_args is not None else ""
        return f"{registry.rstrip('/')}/{self.name}{suffix}" if registry else f"{self.name}{suffix}"


_DOCKERFILE = {i.name: i.dockerfile for i in BUILT_OFFLINE}  # the Dockerfiles the container test builds
IMAGES = {
    "gateway": KubeImage("mnist-serving/gateway", _DOCKERFILE["gateway"]),
    "tfserving": KubeImage(
        "mnist-serving/tfserving", "serving/tfserving/Dockerfile", (("TFSERVING_IMAGE", TFSERVING_GPU_IMAGE),)
    ),
    "torchserve": KubeImage(
        "mnist-serving/torchserve",
        _DOCKERFILE["torchserve"],
        (("VARIANT", "gpu"), ("TORCH_INDEX_URL", TORCH_GPU_INDEX)),
    ),
    "locust": KubeImage("mnist-serving/locust", _DOCKERFILE["locust"]),
}
_IMAGES_BLOCK = re.compile(r"^images:\n(?:[ -].*\n|#.*\n)*", re.MULTILINE)


def version() -> str:
    return str(tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"])


def model_tag(manifest: Path) -> str:
    """<version>-<12 hex of the artifacts' hashes>: changes whenever any trained artifact does."""
    artifacts = json.loads(manifest.read_text())["artifacts"]
    digest = hashlib.sha256()
    for a in sorted(artifacts, key=lambda a: a["path"]):
        digest.update(f"{a['path']}={a['sha256']}\n".encode())
    return f"{version()}-{digest.hexdigest()[:12]}"


def used_images(kustomization: Path) -> list[str]:
    """The image names an overlay's `images:` block sets (in file order)."""
    match = _IMAGES_BLOCK.search(kustomization.read_text())
    return re.findall(r"name: ([\w./-]+),", match.group(0)) if match else []


def set_images(kustomization: Path, registry: str, tag: str, gpu: bool) -> str:
    """Rewrite the `images:` block of one kustomization.yaml; returns the new block."""
    text = kustomization.read_text()
    match = _IMAGES_BLOCK.search(text)
    if not match:
        raise SystemExit(f"{kustomization}: no top-level images: block to rewrite")
    by_name = {i.name: i for i in IMAGES.values()}
    lines = ["images:"]
    for name in used_images(kustomization):
        new_name = by_name[name].repository(registry, gpu)
        lines.append(f"  - {{name: {name}, newName: {new_name}, newTag: {tag}}}")
    block = "\n".join(lines) + "\n"
    kustomization.write_text(text[: match.start()] + block + text[match.end() :])
    return block


def build(overlay: str, registry: str, tag: str, push: bool) -> None:
    folder, gpu = OVERLAYS[overlay]
    by_name = {i.name: i for i in IMAGES.values()}
    wanted = used_images(folder / "kustomization.yaml") + used_images(OVERLAYS["load-test"][0] / "kustomization.yaml")
    for name in dict.fromkeys(wanted):
        image = by_name[name]
        ref = f"{image.repository(registry, gpu)}:{tag}"
        args = [a for k, v in (image.gpu_build_args or ()) if gpu for a in ("--build-arg", f"{k}={v}")]
        print(f"building {ref}", flush=True)
        subprocess.run(["docker", "build", "-f", image.dockerfile, *args, "-t", ref, "."], cwd=REPO, check=True)
        if push:
            subprocess.run(["docker", "push", ref], check=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("step", choices=["tag", "set", "build"])
    p.add_argument("--overlay", choices=list(OVERLAYS), default="cpu")
    p.add_argument("--registry", default="", help="e.g. registry.example.com/team (empty: local names)")
    p.add_argument("--tag", help="default: <version>-<model hash> from the manifest")
    p.add_argument("--manifest", type=Path, default=REPO / "artifacts" / "manifest.json")
    p.add_argument("--push", action="store_true")
    args = p.parse_args(argv)
    tag = args.tag or model_tag(args.manifest)
    if args.step == "tag":
        print(tag)
        return 0
    if args.step == "build":
        build(args.overlay, args.registry, tag, args.push)
    folder, gpu = OVERLAYS[args.overlay]
    print(set_images(folder / "kustomization.yaml", args.registry, tag, gpu), end="")
    if args.overlay != "load-test":  # the load test runs against whichever overlay is deployed
        print(set_images(OVERLAYS["load-test"][0] / "kustomization.yaml", args.registry, tag, False), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
