"""What a benchmark can hit: one entry per endpoint, with its body (answers are checked by
load_tests.generator.checks)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import orjson


@dataclass(frozen=True)
class Target:
    name: str
    url: str
    body: bytes
    content_type: str = "application/json"


def server_targets(row: np.ndarray, tf_rest: int, ts_inference: int) -> list[Target]:
    body = orjson.dumps({"instances": [row.tolist()]})
    return [
        Target("tfserving", f"http://127.0.0.1:{tf_rest}/v1/models/mnist:predict", body),
        Target("torchserve", f"http://127.0.0.1:{ts_inference}/predictions/mnist", body),
        Target("torchserve-onnx", f"http://127.0.0.1:{ts_inference}/predictions/mnist_onnx", body),
    ]


def gateway_targets(row: np.ndarray, gateway: int) -> list[Target]:
    body = orjson.dumps({"instances": [row.tolist()]})
    return [
        Target(f"gateway->{b}", f"http://127.0.0.1:{gateway}/v1/predict?backend={b}", body)
        for b in ("tfserving", "torchserve", "torchserve-onnx")
    ]
