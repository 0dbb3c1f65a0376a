"""One CUDA stack per GPU image, read from the pinned wheels' metadata (containers/gpu_wheels.json,
a snapshot of PyPI's metadata for the pins), not by eye: torch and onnxruntime-gpu must need the same
CUDA major and the same cuDNN major, or ONNX Runtime's CUDA provider cannot load and it falls back to
the CPU. And the GPU image, compose and `make k8s-images` build with exactly that stack."""

from __future__ import annotations

import json
import re

from containers import gpu_wheels, images
from tests.conftest import REPO
from tests.deploy.conftest import compose

SNAPSHOT = json.loads(gpu_wheels.SNAPSHOT.read_text())


def cuda_major(requires: list[str]) -> set[int]:
    """CUDA majors a wheel needs: cuda-toolkit==13.0.3, nvidia-cuda-runtime~=13.0 or ...-cu12~=12.0."""
    majors = set()
    for req in requires:
        m = re.match(r"^(cuda-toolkit|nvidia-cuda-runtime(?:-cu\d+)?)\S*?\s*[=~]=\s*(\d+)", req)
        if m:
            majors.add(int(m[2]))
    return majors


def cudnn(requires: list[str]) -> set[tuple[int, int]]:
    """(CUDA major of the build, cuDNN major) of every nvidia-cudnn-cuNN requirement."""
    out = set()
    for req in requires:
        m = re.match(r"^nvidia-cudnn-cu(\d+)\s*[=~]=\s*(\d+)", req)
        if m:
            out.add((int(m[1]), int(m[2])))
    return out


def test_the_snapshot_is_of_the_pins() -> None:
    pinned = gpu_wheels.pins()
    for name in gpu_wheels.CUDA_WHEELS:
        assert SNAPSHOT[name]["version"] == pinned[name], f"re-run python -m containers.gpu_wheels ({name})"
        assert "manylinux" in SNAPSHOT[name]["wheel"]


def test_torch_and_onnxruntime_gpu_need_the_same_cuda_and_cudnn_majors() -> None:
    torch_req, ort_req = SNAPSHOT["torch"]["requires_dist"], SNAPSHOT["onnxruntime-gpu"]["requires_dist"]
    assert cuda_major(torch_req) == cuda_major(ort_req) == {13}
    assert cudnn(torch_req) == cudnn(ort_req) == {(13, 9)}


def test_the_checks_tell_a_mismatch() -> None:
    """The CUDA 12 build of onnxruntime-gpu (1.26) next to CUDA 13 torch: what the check must catch."""
    cu12 = ["nvidia-cuda-runtime-cu12~=12.0; extra == 'cuda'", "nvidia-cudnn-cu12~=9.0; extra == 'cudnn'"]
    assert cuda_major(cu12) == {12} != cuda_major(SNAPSHOT["torch"]["requires_dist"])
    assert cudnn(cu12) == {(12, 9)}


def test_the_gpu_image_builds_that_stack_everywhere() -> None:
    dockerfile = (REPO / "serving/torchserve/Dockerfile").read_text()
    assert "requirements/torchserve-gpu.txt" in dockerfile and "cu128" not in dockerfile
    gpu_args = dict(images.IMAGES["torchserve"].gpu_build_args or ())
    assert gpu_args == {"VARIANT": "gpu", "TORCH_INDEX_URL": images.TORCH_GPU_INDEX}
    assert images.TORCH_GPU_INDEX == "https://pypi.org/simple"  # torch 2.13.0 there is the CUDA 13 build
    services = compose("docker-compose.yml", "docker-compose.gpu.yml")["services"]
    assert services["torchserve"]["build"]["args"] == gpu_args
