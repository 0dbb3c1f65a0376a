"""``python -m serving.torchserve.ready [MANAGEMENT_URL]``: exit 0 only when every worker of every
model is READY. TorchServe's ``/ping`` says Healthy before its workers have loaded a model, so this is
the readiness check everywhere: the native runner (``all_ready``), the image's HEALTHCHECK, compose's
healthcheck and the Kubernetes and KServe probes (the command). Stdlib only: it runs in the image."""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from typing import Any

from mnist_serving.ports import TORCHSERVE_MANAGEMENT, local_url
from mnist_serving.spec import ONNX_MODEL_NAME, TORCH_MODEL_NAME

MODELS = (TORCH_MODEL_NAME, ONNX_MODEL_NAME)
TIMEOUT_S = 2.0
# A description of one model: one entry per version, as the management API's GET /models/<name>.
Describe = Callable[[str], list[dict[str, Any]] | None]


def every_worker_ready(entries: Iterable[dict[str, Any]] | None) -> bool:
    """At least one worker, and every worker of every version READY."""
    workers = [w for entry in entries or () for w in entry.get("workers", [])]
    return bool(workers) and all(w.get("status") == "READY" for w in workers)


def all_ready(describe: Describe, models: Iterable[str] = MODELS) -> bool:
    return all(every_worker_ready(describe(name)) for name in models)


def _describe_over_http(management_url: str) -> Describe:
    def describe(name: str) -> list[dict[str, Any]] | None:
        try:
            with urllib.request.urlopen(f"{management_url}/models/{name}", timeout=TIMEOUT_S) as r:
                entries: list[dict[str, Any]] = json.load(r)
                return entries
        except (urllib.error.URLError, OSError, ValueError):
            return None

    return describe


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    url = args[0] if args else local_url(TORCHSERVE_MANAGEMENT)
    return 0 if all_ready(_describe_over_http(url.rstrip("/"))) else 1


if __name__ == "__main__":
    sys.exit(main())
