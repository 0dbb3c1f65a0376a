"""What a benchmark can hit: one entry per endpoint, with its body (answers are checked by
load_tests.generator.checks)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import orjson

from mnist_serving.ports import local_url
from mnist_serving.spec import ONNX_MODEL_NAME, TF_MODEL_NAME, TORCH_MODEL_NAME


@dataclass(frozen=True)
class Target:
    name: str
    url: str
    body: bytes
    content_type: str = "application/json"


def server_targets(row: np.ndarray, tf_rest: int, ts_inference: int) -> list[Target]:
    body = orjson.dumps({"instances": [row.tolist()]})
    return [
        Target("tfserving", local_url(tf_rest, f"/v1/models/{TF_MODEL_NAME}:predict"), body),
        Target("torchserve", local_url(ts_inference, f"/predictions/{TORCH_MODEL_NAME}"), body),
        Target("torchserve-onnx", local_url(ts_inference, f"/predictions/{ONNX_MODEL_NAME}"), body),
    ]


def gateway_targets(row: np.ndarray, gateway: int) -> list[Target]:
    body = orjson.dumps({"instances": [row.tolist()]})
    return [
        Target(f"gateway->{b}", local_url(gateway, f"/v1/predict?backend={b}"), body)
        for b in ("tfserving", "torchserve", "torchserve-onnx")
    ]
