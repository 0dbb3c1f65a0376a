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


NOISY = 1.5  # the median repeat over the minimum beyond which the host disturbed the timings


def _timing(fn: object) -> tuple[float, float]:
    """(minimum, median) µs per call over the repeats."""
    t = sorted(x / RUNS * 1e6 for x in timeit.repeat(fn, number=RUNS, repeat=REPEATS))  # type: ignore[arg-type]
    return t[0], t[len(t) // 2]


def verdict(timings: dict[str, tuple[float, float]]) -> list[str]:
    gateway, strict = timings["gateway decoder"][0], timings["pydantic strict"][0]
    spread = max(med / low for low, med in timings.values())
    valid = (
        f"VERDICT: valid: the median repeat was within {spread:.2f}x of the minimum for every figure"
        if spread <= NOISY
        else f"VERDICT: noisy: a figure's median repeat was {spread:.2f}x its minimum (> {NOISY:g}x): the host "
        "disturbed the timings; the minima still bound the cost from below"
    )
    return [
        valid,
        f"VERDICT: the gateway's decoder checks a 1x784 body in {gateway:.1f} µs, {strict / gateway:.1f}x less than a "
        f"strict pydantic model ({strict:.1f} µs); its type check (the byte scan) adds "
        f"{gateway - timings['without type check'][0]:.1f} µs",
    ]


def main(argv: list[str] | None = None) -> None:
    import argparse
    from pathlib import Path

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=None, help="report folder (default: reports/validation-<time>)")
    args = p.parse_args(argv)
    body = orjson.dumps({"instances": [np.random.default_rng(0).random(784).tolist()]})
    parsed = parse_json(body)
    clean = b'{"instances": 0}'  # a text the scan passes: the decoder without any type check
    timings = {
        "gateway decoder": _timing(lambda: decode_instances(parse_json(body), MAX_ROWS_PER_REQUEST, raw=body)),
        "without type check": _timing(lambda: decode_instances(parse_json(body), MAX_ROWS_PER_REQUEST, raw=clean)),
        "byte scan alone": _timing(lambda: may_hold_non_numbers(body)),
        "walking every value": _timing(lambda: check_types(parsed["instances"])),
        "pydantic strict": _timing(lambda: np.asarray(Request.model_validate_json(body).instances, np.float32)),
    }
    gateway, strict = timings["gateway decoder"][0], timings["pydantic strict"][0]
    text = [
        f"gateway decoder (orjson + numpy + type scan) : {gateway:7.1f} µs per 1x784 request",
        f"  the same without any type check            : {timings['without type check'][0]:7.1f} µs",
        f"  of which the byte scan for non-numbers     : {timings['byte scan alone'][0]:7.1f} µs",
        f"  walking every value instead of the scan    : {timings['walking every value'][0]:7.1f} µs",
        f"pydantic, strict per-float                   : {strict:7.1f} µs ({strict / gateway:.1f}x the decoder)",
    ]
    print("\n".join(text))

    from load_tests.reports.bench import BenchReport, finish
    from load_tests.runs.harness import folder

    def plot(png: Path) -> None:
        import matplotlib.pyplot as plt

        from load_tests.reports import plots

        fig, ax = plt.subplots(figsize=(8, 3.4))
        names = list(timings)
        ax.barh(names, [timings[n][0] for n in names], label="minimum")
        ax.scatter([timings[n][1] for n in names], names, color="black", marker="|", s=200, label="median")
        ax.set_xlabel(f"µs per 1x784 body ({REPEATS} repeats of {RUNS} calls)")
        ax.grid(axis="x", alpha=0.3)
        ax.legend(fontsize=8)
        plots.save(fig, png)

    report = BenchReport(
        title="What checking a request body costs (`make bench-validation`)",
        verdict=verdict(timings),
        body=["```", *text, "```"],
        figures={n: {"min_us": lo, "median_us": med} for n, (lo, med) in timings.items()},
    )
    finish(folder(args.out, "validation-"), report, plot)


if __name__ == "__main__":
    main()
