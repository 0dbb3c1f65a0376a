"""``{"instances": [row, ...]}`` to a float32 [n, 784] array.

orjson parses and numpy checks the whole batch at once; a per-float pydantic model costs more
(see gateway/benchmarks/validation.py). Only on failure do we walk the rows to name the one that is wrong.

numpy turns ``true`` into 1.0 and ``"0.1"`` into 0.1 without a word, while TF Serving rejects both
for a float tensor. Rather than look at 784 Python objects per row, the raw body after the
"instances" key is searched for the first byte of the only JSON tokens that can carry them (a quote,
``t``rue, ``f``alse, ``n``ull): a body of numbers has none, so the valid path pays four memchr
scans, and the rows are walked only when one shows up.
"""

from __future__ import annotations

import difflib
import json
import math
import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from gateway.app.core.errors import APIError, bad_request, too_large, unprocessable
from mnist_serving.spec import IMAGE_SIDE, INPUT_DIM, INPUT_NAME, SIGNATURE_NAME


def parse_json(raw: bytes) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        # Error path only: the stdlib parser reads NaN, Infinity and 1e400, so the value check
        # below can say "non-finite" instead of a bare syntax error. What orjson refuses for its
        # text stays refused: a BOM or UTF-16/32 (JSON is UTF-8, and the bytes may be forwarded
        # as they are), and a lone surrogate escape, which is no character at all.
        if _SURROGATE.search(raw):
            raise bad_request("invalid_json", f"body is not valid JSON: {exc} (a lone \\uD800-\\uDFFF escape)") from exc
        try:
            return json.loads(raw.decode("utf-8"))
        except (ValueError, RecursionError):
            raise bad_request("invalid_json", f"body is not valid JSON (UTF-8 without a BOM): {exc}") from exc


def show(value: Any) -> str:
    """``value`` in an error message: as the client wrote it (JSON, not Python's repr), cut short,
    and never an error of its own (too deep to write, or an integer beyond 64 bits)."""
    if type(value) is int and not -(2**63) <= value < 2**64:
        return f"an integer of {len(str(abs(value)))} digits"
    if type(value) is float and not math.isfinite(value):
        return str(value)  # NaN, Infinity: orjson would write null
    try:
        text = orjson.dumps(value).decode()
    except orjson.JSONEncodeError:
        return f"{_JSON_TYPE.get(type(value), 'a list')} nested too deeply to show"
    except RecursionError:
        return "a value nested too deeply to show"
    return text if len(text) <= 60 else text[:57] + "..."


_SURROGATE = re.compile(rb"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


@dataclass(frozen=True)
class Instances:
    """Validated rows, and the request's own JSON when a backend can take it as it is."""

    array: np.ndarray  # float32 [n, 784]
    json: bytes | None = None  # set when the body is exactly {"instances": [[784 numbers], ...]}


def decode_request(raw: bytes, max_rows: int) -> Instances:
    """A JSON request body to validated rows. The body is kept for forwarding when it holds nothing
    but flat rows of numbers: TF Serving and TorchServe accept those bytes unchanged, and not
    re-encoding 784 floats per row is the cheapest work of all."""
    body = parse_json(raw)
    refuse_duplicate_keys(raw, body)
    if type(body) is dict and (len(body) != 1 or "instances" not in body):
        return Instances(decode_instances(_instances_of(body), max_rows))  # another form: re-encoded
    array = decode_instances(body, max_rows, raw)
    canonical = type(body["instances"][0]) is list and type(body["instances"][0][0]) is not list
    return Instances(array, raw if canonical else None)


_FIELDS = ("instances", "inputs", "signature_name")


def _instances_of(body: dict[str, Any]) -> dict[str, Any]:
    """TF Serving's other request forms as ``{"instances": rows}``: its columnar ``{"inputs": rows}``
    or ``{"inputs": {"pixels": rows}}``, and ``signature_name`` (only the model's own). Any other
    field is refused with the ones this route takes."""
    if "instances" not in body and "inputs" not in body:
        sent = ", ".join(repr(k) for k in body) or "none"
        close = next((m for k in body for m in difflib.get_close_matches(k, _FIELDS[:2], n=1, cutoff=0.6)), None)
        hint = f"; did you mean {close!r}?" if close else ""
        raise unprocessable(
            "missing_instances", f'the body has no "instances" list (fields sent: {sent}){hint}: {_SHAPE_HINT}'
        )
    for key in body:
        if key not in _FIELDS:
            close = difflib.get_close_matches(key, _FIELDS, n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise unprocessable(
                "unknown_field", f"the body has no field {show(key)}{hint} (it takes: instances, or TF Serving's "
                "inputs; signature_name)",
            )  # fmt: skip
    signature = body.get("signature_name", SIGNATURE_NAME)
    if signature != SIGNATURE_NAME:
        raise unprocessable(
            "unknown_signature", f"the model's one signature is {SIGNATURE_NAME!r}, not {show(signature)}"
        )
    if "instances" in body and "inputs" in body:
        raise unprocessable(
            "ambiguous_body", 'send "instances" (rows) or "inputs" (TF Serving\'s columnar form), not both'
        )
    if "inputs" not in body:
        return body
    inputs = body["inputs"]
    if isinstance(inputs, dict):
        if set(inputs) != {INPUT_NAME}:
            raise unprocessable(
                "unknown_input", f'"inputs" names the model\'s one input {INPUT_NAME!r}, not {show(list(inputs))}'
            )
        inputs = inputs[INPUT_NAME]
    return {"instances": inputs}


def decode_instances(body: Any, max_rows: int, raw: bytes | None = None) -> np.ndarray:
    """``raw``: the JSON text ``body`` was parsed from, for the fast type check (else rows are walked)."""
    if not isinstance(body, dict) or "instances" not in body:
        raise unprocessable("missing_instances", 'body must be a JSON object with an "instances" list')
    instances = body["instances"]
    if not isinstance(instances, list):
        what = _JSON_TYPE.get(type(instances), "a number")
        raise unprocessable("instances_not_a_list", f'"instances" is {what}; it must be a list of rows: {_SHAPE_HINT}')
    if not instances:
        raise unprocessable("empty_instances", f'"instances" is empty; it must hold at least one row: {_SHAPE_HINT}')
    _refuse_unwrapped(instances)
    if len(instances) > max_rows:
        raise too_large("too_many_rows", f"{len(instances)} rows in one request; the limit is {max_rows}")
    if raw is None or may_hold_non_numbers(raw):
        check_types(instances)
    try:
        arr = np.asarray(instances, dtype=np.float32)
    except OverflowError:  # an integer literal beyond any float (the stdlib parser reads it exactly)
        raise unprocessable("out_of_range", "a value is too large for a number; values must be in [0, 1]") from None
    except (TypeError, ValueError):
        raise _explain(instances) from None
    if arr.ndim == 3 and arr.shape[1:] == (IMAGE_SIDE, IMAGE_SIDE):
        arr = arr.reshape(len(arr), INPUT_DIM)
    elif arr.ndim == 4 and arr.shape[1:] == (IMAGE_SIDE, IMAGE_SIDE, 1):
        raise unprocessable(
            "wrong_shape",
            f"rows are {IMAGE_SIDE}x{IMAGE_SIDE}x1 (Keras' channel axis): drop the last axis, x[..., 0] or "
            f"x.reshape(len(x), {INPUT_DIM}) in numpy",
        )
    if arr.ndim != 2 or arr.shape[1] != INPUT_DIM:
        raise _explain(instances)
    return check_values(arr)


_KEY = b'"instances"'


# The fields whose values are rows of numbers here (TF Serving's "inputs" too): the duplicate check
# does not walk them.
ROWS_FIELDS = frozenset(("instances", "inputs"))


def _quotes(value: Any, opaque: frozenset[str]) -> int:
    """The quote characters the JSON text of ``value`` holds when no object repeats a key and no
    string holds an escape. Iterative (a body may nest as deep as the parser allows); a list is
    walked only when its first item is a string or a container, and ``opaque`` fields not at all:
    what is skipped can only make the text hold more quotes than counted, which sends the check to
    its exact parse, never past it."""
    n, stack = 0, [value]
    while stack:
        v = stack.pop()
        kind = type(v)
        if kind is str:
            n += 2
        elif kind is dict:
            for key, item in v.items():
                n += 2
                if key not in opaque:
                    stack.append(item)
        elif kind is list and v and type(v[0]) in (str, dict, list):
            stack.extend(x for x in v if type(x) in (str, dict, list))
    return n


def refuse_duplicate_keys(raw: bytes, parsed: Any, opaque: frozenset[str] = ROWS_FIELDS) -> None:
    """A key given twice in one object: JSON parsers keep one of them (orjson the last, TF Serving's
    RapidJSON the first), so the request is ambiguous; refused rather than guessed. A repeated key
    leaves quotes in the text that ``parsed`` lacks: a byte count (~0.3 ns a byte) and a search for
    escapes (which could hide quotes) decide whether the exact, slower parse must run. ``opaque``:
    the fields holding numbers, not walked."""
    if b"\\" in raw or raw.count(b'"') != _quotes(parsed, opaque):
        _refuse_duplicate_keys_exactly(raw)


def _refuse_duplicate_keys_exactly(raw: bytes) -> None:
    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        keys = [k for k, _ in items]
        dup = next((k for k in keys if keys.count(k) > 1), None)
        if dup is not None:
            raise bad_request(
                "duplicate_key", f'the key "{dup:.60}" appears more than once in one object; send it once'
            )
        return dict(items)

    try:
        json.loads(raw, object_pairs_hook=pairs)
    except RecursionError:
        raise bad_request("invalid_json", "the JSON nests too deeply; a request is a few levels deep") from None


_SHAPE_HINT = '{"instances": [row, ...]}, a row being 784 numbers in [0, 1] or 28 rows of 28'


def _refuse_unwrapped(instances: list[Any]) -> None:
    """The likeliest mistake: one row (or one 28x28 image) sent as "instances" itself. Refused with
    the fix rather than read as 784 one-value rows (TF Serving would refuse it too). Two type checks
    on the valid path."""
    first = instances[0]
    if type(first) in (int, float):
        raise unprocessable(
            "unwrapped_row",
            f'"instances" holds {len(instances)} numbers, not rows: wrap the row in a list, '
            '{"instances": [row]} (Python: {"instances": [x.flatten().tolist()]})',
        )
    if (
        len(instances) == IMAGE_SIDE
        and type(first) is list
        and len(first) == IMAGE_SIDE
        and first
        and type(first[0]) in (int, float)
    ):
        raise unprocessable(
            "unwrapped_image",
            f'"instances" is one {IMAGE_SIDE}x{IMAGE_SIDE} image ({IMAGE_SIDE} rows of {IMAGE_SIDE} numbers), not a '
            'list of images: wrap it in a list, {"instances": [image]} (Python: {"instances": [x.tolist()]})',
        )


def may_hold_non_numbers(raw: bytes, key: bytes = _KEY) -> bool:
    """False only when nothing after ``key`` (written out, quotes included) can start a string,
    true, false or null, and no escape could have spelled the key elsewhere.

    One memchr per byte (``bytes.find``) is ~0.2 µs on a 15 KB row; ``b"true" in raw`` is ~10 µs.
    """
    start = raw.find(key)
    if start < 0 or b"\\" in raw:
        return True
    start += len(key)
    return (
        raw.find(b'"', start) >= 0
        or raw.find(b"t", start) >= 0
        or raw.find(b"f", start) >= 0
        or (raw.find(b"n", start) >= 0)
    )


_JSON_TYPE = {str: "a string", bool: "a boolean", type(None): "null", dict: "an object", list: "a list"}


def check_types(instances: list[Any]) -> None:
    """422 naming the first row holding a value that is not a JSON number (rows of numbers pass)."""
    for i, row in enumerate(instances):
        if not isinstance(row, list):
            continue  # a shape problem, reported by _explain
        for j, v in enumerate(row):
            values = v if type(v) is list else (v,)  # 28 rows of 28, or 784 numbers
            for value in values:
                kind = type(value)
                if kind is not float and kind is not int and kind is not list:
                    what = _JSON_TYPE.get(kind, kind.__name__)
                    raise unprocessable(
                        "not_a_number",
                        f"row {i} holds a non-number at position {j}: {what} ({show(value)}); "
                        "pixel values must be JSON numbers, not strings, booleans or null",
                    )


def check_values(arr: np.ndarray) -> np.ndarray:
    """Finite and in [0, 1]. The valid path is two reductions: NaN makes min/max NaN and an infinity
    lands outside [0, 1], so only a failed range check looks further."""
    lo, hi = float(arr.min()), float(arr.max())
    if lo >= 0.0 and hi <= 1.0:
        return arr
    finite = np.isfinite(arr)
    if not finite.all():
        row = int(np.argwhere(~finite)[0][0])
        raise unprocessable("non_finite", f"row {row} has a NaN or infinite value")
    hint = " — pixel values look like 0..255: divide by 255" if hi > 1.0 and hi <= 255.0 and lo >= 0 else ""
    raise unprocessable("out_of_range", f"values must be in [0, 1]; got min {lo:g}, max {hi:g}{hint}")


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
        bad = [v for v in flat if type(v) not in (int, float)]
        if bad:
            return unprocessable("not_a_number", f"row {i} holds a non-number ({show(bad[0])}); values must be numbers")
    return unprocessable("wrong_shape", f"rows mix shapes; each row must be {want}")
