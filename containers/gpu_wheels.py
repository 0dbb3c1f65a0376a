"""``python -m containers.gpu_wheels``: snapshot the metadata of the GPU image's CUDA wheels into
``containers/gpu_wheels.json`` (name, version, the wheel it resolves to, ``Requires-Dist``), read with
pip's metadata-only resolution (PEP 658: no multi-GB download). tests/deploy/test_gpu_stack.py checks
from the snapshot, offline, that every CUDA wheel of the image needs the same CUDA and cuDNN majors.
Run it again whenever requirements/torchserve*.txt changes a pin (the test fails until you do)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SNAPSHOT = Path(__file__).with_name("gpu_wheels.json")
PLATFORM = ("--platform", "manylinux_2_28_x86_64", "--python-version", "3.11", "--only-binary=:all:")
CUDA_WHEELS = ("torch", "onnxruntime-gpu")  # the wheels that carry CUDA code in the TorchServe GPU image


def pins() -> dict[str, str]:
    """name -> version pinned for the GPU image (torchserve.txt, then torchserve-gpu.txt on top)."""
    out: dict[str, str] = {}
    for name in ("torchserve.txt", "torchserve-gpu.txt"):
        for line in (REPO / "requirements" / name).read_text().splitlines():
            m = re.match(r"^([A-Za-z0-9_.-]+)==([^\s#;]+)", line.strip())
            if m:
                out[m[1].lower()] = m[2]
    return out


def metadata(name: str, version: str) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        # --isolated: the public index only (this machine's pip config adds local CPU wheels).
        cmd = [sys.executable, "-m", "pip", "install", "--isolated", "--dry-run", "--no-deps", "--ignore-installed",
               "--quiet", "--report", str(report), f"{name}=={version}", *PLATFORM, "--target", tmp]  # fmt: skip
        subprocess.run(cmd, check=True, capture_output=True, timeout=300)
        item = json.loads(report.read_text())["install"][0]
    return {
        "name": item["metadata"]["name"],
        "version": item["metadata"]["version"],
        "wheel": item["download_info"]["url"].rsplit("/", 1)[-1],
        "requires_dist": item["metadata"].get("requires_dist", []),
    }


def main() -> int:
    pinned = pins()
    snapshot = {name: metadata(name, pinned[name]) for name in CUDA_WHEELS}
    SNAPSHOT.write_text(json.dumps(snapshot, indent=1) + "\n")
    print(f"wrote {SNAPSHOT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
