"""The row decoder's fast type check, without a server."""

from __future__ import annotations

import numpy as np
import orjson
import pytest

from gateway.app.core.errors import APIError
from gateway.app.protocol.rows import decode_instances, may_hold_non_numbers

ROW = np.linspace(0, 1, 784).tolist()


@pytest.mark.parametrize(
    ("raw", "suspect"),
    [
        (orjson.dumps({"instances": [ROW]}), False),
        (orjson.dumps({"instances": [[1e-7, 0, 1] * 261 + [0]]}), False),  # exponents and integers are numbers
        (orjson.dumps({"instances": [ROW], "x": "y"}), True),
        (orjson.dumps({"x": "true", "instances": [ROW]}), False),  # only what follows the key counts
        (b"[[0.1]]", True),
        (b'{"instances": [[true]]}', True),
        (b'{"instances": [[false]]}', True),
        (b'{"instances": [[null]]}', True),
    ],
)
def test_byte_scan(raw: bytes, suspect: bool) -> None:
    assert may_hold_non_numbers(raw) is suspect


@pytest.mark.parametrize("raw", [True, False])
def test_same_answer_with_and_without_the_raw_text(raw: bool) -> None:
    good = {"instances": [ROW, ROW]}
    text = orjson.dumps(good)
    np.testing.assert_array_equal(
        decode_instances(good, 256, text if raw else None), np.asarray(good["instances"], np.float32)
    )
    bad = {"instances": [ROW, [*ROW[:-1], True]]}
    with pytest.raises(APIError, match="row 1 holds a non-number at position 783: a boolean"):
        decode_instances(bad, 256, orjson.dumps(bad) if raw else None)
