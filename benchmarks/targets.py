"""What a benchmark can hit: one entry per endpoint, with its body and a response check."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import orjson

Check = Callable[[bytes], bool]


def _probabilities_ok(rows: list[list[float]]) -> bool:
    arr = np.asarray(rows)
    return arr.ndim == 2 and arr.shape[1] == 10 and bool(np.allclose(arr.sum(axis=1), 1.0, atol=1e-4))


def check_key(key: str) -> Check:
    def check(body: bytes) -> bool:
        try:
            return _probabilities_ok(orjson.loads(body)[key])
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            return False

    return check


@dataclass(frozen=True)
class Target:
    name: str
    url: str
    body: bytes
    check: Check
    content_type: str = "application/json"


def server_targets(row: np.ndarray, tf_rest: int, ts_inference: int) -> list[Target]:
    body = orjson.dumps({"instances": [row.tolist()]})
    return [
        Target("tfserving", f"http://127.0.0.1:{tf_rest}/v1/models/mnist:predict", body, check_key("predictions")),
        Target("torchserve", f"http://127.0.0.1:{ts_inference}/predictions/mnist", body, check_key("predictions")),
        Target(
            "torchserve-onnx", f"http://127.0.0.1:{ts_inference}/predictions/mnist_onnx", body, check_key("predictions")
        ),
    ]


def gateway_targets(row: np.ndarray, gateway: int) -> list[Target]:
    body = orjson.dumps({"instances": [row.tolist()]})
    return [
        Target(f"gateway->{b}", f"http://127.0.0.1:{gateway}/v1/predict?backend={b}", body, check_key("predictions"))
        for b in ("tfserving", "torchserve", "torchserve-onnx")
    ]
