"""``python -m containers.offline [base|wheels|build|all]``: the project's images without Docker Hub
and without a package index inside the builds (``make up-offline`` and the container test).

1. base: a Debian bookworm root file system made by ``mmdebstrap`` on the host, imported into the
   engine, and the committed python base (docker/python-base/Dockerfile: Debian's python3.11, a
   virtual environment first on PATH) built on it. Skipped when the images exist.
2. wheels: each image's pinned requirements downloaded on the host into ``.wheelhouse/<image>``;
   skipped when the requirements file has not changed since (a stamp holds its hash).
3. build: every image with the classic builder (``DOCKER_BUILDKIT=0``; no buildx needed), on the
   python base, installing from its wheelhouse (``PIP_NO_INDEX``/``PIP_FIND_LINKS`` build args).

The Dockerfiles' defaults stay what users want: the official python image and the package index.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
WHEELHOUSE = REPO / ".wheelhouse"
DEBIAN_IMAGE = "mnist-serving/debian:bookworm"
PYTHON_BASE = "mnist-serving/python-base:3.11-bookworm"
# What the base root file system carries beyond Debian's minimal one: Python for every image.
BASE_PACKAGES = ("python3.11", "python3.11-venv", "ca-certificates", "passwd")
DEBIAN_MIRROR = "http://deb.debian.org/debian"


@dataclass(frozen=True)
class Image:
    name: str  # also the wheelhouse folder
    dockerfile: str
    requirements: str
    tag: str


IMAGES = (
    Image("gateway", "gateway/Dockerfile", "requirements/gateway.txt", "mnist-serving/gateway:0.1.0"),
    Image(
        "torchserve", "serving/torchserve/Dockerfile", "requirements/torchserve.txt", "mnist-serving/torchserve:0.1.0"
    ),
    Image(
        "tfserving-standin",
        "serving/tfserving_standin/Dockerfile",
        "requirements/tfserving-standin.txt",
        "mnist-serving/tfserving-standin:0.1.0",
    ),
    Image("locust", "load_tests/Dockerfile", "requirements/load.txt", "mnist-serving/locust:0.1.0"),
)


@dataclass(frozen=True)
class Built:
    image: Image
    seconds: float
    size_bytes: int


def _run(cmd: list[str], **kwargs: object) -> None:
    """Quiet unless it fails; then its output explains why."""
    proc = subprocess.run(cmd, capture_output=True, text=True, **kwargs)  # type: ignore[call-overload]
    if proc.returncode != 0:
        output = f"{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
        raise RuntimeError(f"{' '.join(cmd[:6])} ... failed ({proc.returncode}):\n{output}")


def image_exists(tag: str) -> bool:
    return subprocess.run(["docker", "image", "inspect", tag], capture_output=True).returncode == 0


def image_size(tag: str) -> int:
    out = subprocess.run(["docker", "image", "inspect", "-f", "{{.Size}}", tag], capture_output=True, check=True)
    return int(out.stdout.strip())


def base(force: bool = False) -> None:
    """The Debian root file system image and the python base on it (cached in the engine)."""
    if force or not image_exists(DEBIAN_IMAGE):
        print(f"base: bootstrapping Debian bookworm with mmdebstrap -> {DEBIAN_IMAGE}", flush=True)
        start = time.monotonic()
        with tempfile.TemporaryDirectory(prefix="mnist-rootfs-") as tmp:
            tar = Path(tmp) / "rootfs.tar"
            _run(
                [
                    "mmdebstrap",
                    "--variant=minbase",
                    "--quiet",
                    f"--include={','.join(BASE_PACKAGES)}",
                    "--aptopt=Acquire::Check-Valid-Until false",
                    "bookworm",
                    str(tar),
                    DEBIAN_MIRROR,
                ]
            )
            _run(["docker", "import", str(tar), DEBIAN_IMAGE])
        print(f"base: {DEBIAN_IMAGE} in {time.monotonic() - start:.0f} s", flush=True)
    if force or not image_exists(PYTHON_BASE):
        _build("docker/python-base/Dockerfile", PYTHON_BASE, {"DEBIAN_IMAGE": DEBIAN_IMAGE})


def _requirements_hash(requirements: Path) -> str:
    """The requirements file and every file it includes with -r."""
    digest = hashlib.sha256()
    for line in requirements.read_text().splitlines():
        digest.update(line.encode())
        if line.startswith("-r "):
            digest.update(_requirements_hash(requirements.parent / line[3:].strip()).encode())
    return digest.hexdigest()


def wheels(image: Image) -> Path:
    """Download the image's pinned requirements (and their dependencies) on the host, once."""
    folder = WHEELHOUSE / image.name
    stamp = folder / ".requirements.sha256"
    wanted = _requirements_hash(REPO / image.requirements)
    if stamp.exists() and stamp.read_text() == wanted:
        return folder
    print(f"wheels: downloading {image.requirements} into {folder.relative_to(REPO)}", flush=True)
    folder.mkdir(parents=True, exist_ok=True)
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--quiet",
            "--dest",
            str(folder),
            "-r",
            str(REPO / image.requirements),
        ],
        cwd=REPO,
    )
    stamp.write_text(wanted)
    return folder


def _build(dockerfile: str, tag: str, args: dict[str, str]) -> float:
    start = time.monotonic()
    cmd = ["docker", "build", "--quiet", "-f", dockerfile, "-t", tag]
    for key, value in args.items():
        cmd += ["--build-arg", f"{key}={value}"]
    env = {**os.environ, "DOCKER_BUILDKIT": "0"}  # the classic builder: no buildx on Debian's docker.io
    _run([*cmd, "."], cwd=REPO, env=env)
    return time.monotonic() - start


def build(image: Image) -> Built:
    folder = wheels(image)
    args = {
        "PYTHON_IMAGE": PYTHON_BASE,
        "WHEELHOUSE": folder.relative_to(REPO).as_posix(),
        "PIP_NO_INDEX": "1",
        "PIP_FIND_LINKS": "/wheels",
    }
    seconds = _build(image.dockerfile, image.tag, args)
    built = Built(image, seconds, image_size(image.tag))
    print(f"build: {image.tag} in {seconds:.0f} s, {built.size_bytes / 1e6:,.0f} MB", flush=True)
    return built


def build_all() -> list[Built]:
    if not (REPO / "artifacts" / "manifest.json").exists():
        raise SystemExit("no trained models in artifacts/: run `make train` first")
    base()
    return [build(image) for image in IMAGES]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("step", choices=["base", "wheels", "build", "all"], nargs="?", default="all")
    args = p.parse_args(argv)
    if args.step == "base":
        base()
    elif args.step == "wheels":
        for image in IMAGES:
            wheels(image)
    else:
        build_all()
    return 0


if __name__ == "__main__":
    sys.exit(main())
