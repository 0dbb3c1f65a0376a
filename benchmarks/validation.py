"""``python -m benchmarks.validation``: why the gateway validates with orjson + numpy, not pydantic.

Times decoding one request of one 784-value row both ways.
"""

from __future__ import annotations

import timeit

import numpy as np
import orjson
from pydantic import BaseModel, Field, confloat

from gateway.app.protocol.rows import decode_instances, parse_json

Pixel = confloat(ge=0.0, le=1.0, allow_inf_nan=False)


class Request(BaseModel):
    instances: list[list[Pixel]] = Field(min_length=1, max_length=256)  # type: ignore[valid-type]


def main() -> None:
    body = orjson.dumps({"instances": [np.random.default_rng(0).random(784).tolist()]})
    runs = 2000
    fast = timeit.timeit(lambda: decode_instances(parse_json(body), 256), number=runs) / runs
    slow = (
        timeit.timeit(lambda: np.asarray(Request.model_validate_json(body).instances, np.float32), number=runs) / runs
    )
    print(f"orjson + numpy checks : {fast * 1e6:7.1f} µs per 1x784 request")
    print(f"pydantic per-float    : {slow * 1e6:7.1f} µs per 1x784 request ({slow / fast:.1f}x)")


if __name__ == "__main__":
    main()
