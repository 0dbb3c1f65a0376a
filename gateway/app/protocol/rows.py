"""``{"instances": [row, ...]}`` to a float32 [n, 784] array.

orjson parses and numpy checks the whole batch at once; a per-float pydantic model costs ~140 µs
for one 784-value row (see benchmarks/validation.py). Only on failure do we walk the rows to name
the one that is wrong.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import orjson

from gateway.app.core.errors import APIError, bad_request, too_large, unprocessable
from mnist_serving.spec import IMAGE_SIDE, INPUT_DIM


def parse_json(raw: bytes) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        # Error path only: the stdlib parser reads NaN, Infinity and 1e400, so the value check
        # below can say "non-finite" instead of a bare syntax error.
        try:
            return json.loads(raw)
        except (ValueError, RecursionError):
            raise bad_request("invalid_json", f"body is not valid JSON: {exc}") from exc


def decode_instances(body: Any, max_rows: int) -> np.ndarray:
    if not isinstance(body, dict) or "instances" not in body:
        raise unprocessable("missing_instances", 'body must be a JSON object with an "instances" list')
    instances = body["instances"]
    if not isinstance(instances, list) or not instances:
        raise unprocessable("empty_instances", '"instances" must be a non-empty list of rows')
    if len(instances) > max_rows:
        raise too_large("too_many_rows", f"{len(instances)} rows in one request; the limit is {max_rows}")
    try:
        arr = np.asarray(instances, dtype=np.float32)
    except (TypeError, ValueError):
        raise _explain(instances) from None
    if arr.ndim == 3 and arr.shape[1:] == (IMAGE_SIDE, IMAGE_SIDE):
        arr = arr.reshape(len(arr), INPUT_DIM)
    if arr.ndim != 2 or arr.shape[1] != INPUT_DIM:
        raise _explain(instances)
    return check_values(arr)


def check_values(arr: np.ndarray) -> np.ndarray:
    finite = np.isfinite(arr)
    if not finite.all():
        row = int(np.argwhere(~finite)[0][0])
        raise unprocessable("non_finite", f"row {row} has a NaN or infinite value")
    lo, hi = float(arr.min()), float(arr.max())
    if lo < 0.0 or hi > 1.0:
        hint = " — pixel values look like 0..255: divide by 255" if hi > 1.0 and hi <= 255.0 and lo >= 0 else ""
        raise unprocessable("out_of_range", f"values must be in [0, 1]; got min {lo:g}, max {hi:g}{hint}")
    return arr


def _explain(instances: list[Any]) -> APIError:
    """Name the first row that is not 784 numbers or 28 rows of 28 numbers."""
    want = f"{INPUT_DIM} numbers or {IMAGE_SIDE} rows of {IMAGE_SIDE}"
    for i, row in enumerate(instances):
        if not isinstance(row, list):
            return unprocessable("bad_row", f"row {i} is {type(row).__name__}; each row must be {want}")
        if row and isinstance(row[0], list):
            if len(row) != IMAGE_SIDE or any(not isinstance(r, list) or len(r) != IMAGE_SIDE for r in row):
                return unprocessable(
                    "wrong_shape", f"row {i} is not {IMAGE_SIDE}x{IMAGE_SIDE}; each row must be {want}"
                )
            flat = [v for r in row for v in r]
        else:
            if len(row) != INPUT_DIM:
                return unprocessable("wrong_length", f"row {i} has {len(row)} values; each row must be {want}")
            flat = row
        bad = [v for v in flat if not isinstance(v, (int, float))]
        if bad:
            return unprocessable("not_a_number", f"row {i} holds a non-number ({bad[0]!r}); values must be numbers")
    return unprocessable("wrong_shape", f"rows mix shapes; each row must be {want}")
