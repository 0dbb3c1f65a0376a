"""``python -m gateway.benchmarks.validation``: what decoding one request costs, and why it is done this way.

Times decoding one request of one 784-value row (minimum of repeats): the gateway's decoder (orjson, numpy checks and
the byte scan that rejects strings/booleans/null), the byte scan alone, the per-value walk the scan
avoids on valid bodies, and a strict pydantic model doing the same checks.
"""

from __future__ import annotations

import timeit

import numpy as np
import orjson
from pydantic import BaseModel, Field, confloat

from gateway.app.protocol.rows import check_types, decode_instances, may_hold_non_numbers, parse_json
from mnist_serving.spec import MAX_ROWS_PER_REQUEST

# strict: "0.1" and true are refused, as the gateway refuses them
Pixel = confloat(ge=0.0, le=1.0, allow_inf_nan=False, strict=True)
RUNS = 500  # calls per timing
REPEATS = 9  # timings per figure; the minimum is reported, the least disturbed by a noisy host


class Request(BaseModel):
    instances: list[list[Pixel]] = Field(min_length=1, max_length=MAX_ROWS_PER_REQUEST)  # type: ignore[valid-type]


def _us(fn: object) -> float:
    return min(timeit.repeat(fn, number=RUNS, repeat=REPEATS)) / RUNS * 1e6  # type: ignore[arg-type]


def main() -> None:
    body = orjson.dumps({"instances": [np.random.default_rng(0).random(784).tolist()]})
    parsed = parse_json(body)
    gateway = _us(lambda: decode_instances(parse_json(body), MAX_ROWS_PER_REQUEST, raw=body))
    clean = b'{"instances": 0}'  # a text the scan passes: the decoder without any type check
    untyped = _us(lambda: decode_instances(parse_json(body), MAX_ROWS_PER_REQUEST, raw=clean))
    scan = _us(lambda: may_hold_non_numbers(body))
    walk = _us(lambda: check_types(parsed["instances"]))
    strict = _us(lambda: np.asarray(Request.model_validate_json(body).instances, np.float32))
    print(f"gateway decoder (orjson + numpy + type scan) : {gateway:7.1f} µs per 1x784 request")
    print(f"  the same without any type check            : {untyped:7.1f} µs")
    print(f"  of which the byte scan for non-numbers     : {scan:7.1f} µs")
    print(f"  walking every value instead of the scan    : {walk:7.1f} µs")
    print(f"pydantic, strict per-float                   : {strict:7.1f} µs ({strict / gateway:.1f}x the decoder)")


if __name__ == "__main__":
    main()
