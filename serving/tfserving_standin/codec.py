"""TF Serving's REST predict formats: row (``instances``/``predictions``) and columnar (``inputs``/``outputs``)."""

from __future__ import annotations

from typing import Any

import numpy as np

from serving.tfserving_standin.batching import Tensors
from serving.tfserving_standin.errors import invalid


def decode_predict(body: Any, input_names: list[str]) -> tuple[Tensors, bool]:
    """Return (named inputs, row_format)."""
    if not isinstance(body, dict):
        raise invalid("JSON Value: request body must be an object with 'instances' or 'inputs'")
    has_rows, has_cols = "instances" in body, "inputs" in body
    if has_rows == has_cols:
        raise invalid("JSON Value: exactly one of 'instances' (row format) or 'inputs' (columnar) is required")
    if has_rows:
        return _rows(body["instances"], input_names), True
    return _columns(body["inputs"], input_names), False


def _array(value: Any, what: str) -> np.ndarray:
    try:
        arr = np.asarray(value)
    except ValueError as exc:  # ragged nesting
        raise invalid(f"{what}: tensor is ragged or malformed: {exc}") from exc
    if arr.dtype == object:
        raise invalid(f"{what}: tensor is ragged or mixes types")
    return arr


def _rows(instances: Any, input_names: list[str]) -> Tensors:
    if not isinstance(instances, list) or not instances:
        raise invalid("'instances' must be a non-empty list")
    if all(isinstance(row, dict) for row in instances):
        names = set(instances[0])
        if names != set(input_names) or any(set(r) != names for r in instances):
            raise invalid(f"every instance must name exactly the inputs {input_names}")
        return {k: _array([r[k] for r in instances], f"instances[*].{k}") for k in input_names}
    if len(input_names) != 1:
        raise invalid(f"the signature has {len(input_names)} inputs; each instance must be an object naming them")
    return {input_names[0]: _array(instances, "instances")}


def _columns(inputs: Any, input_names: list[str]) -> Tensors:
    if isinstance(inputs, dict):
        if set(inputs) != set(input_names):
            raise invalid(f"'inputs' must name exactly the inputs {input_names}")
        return {k: _array(v, f"inputs.{k}") for k, v in inputs.items()}
    if len(input_names) != 1:
        raise invalid(f"the signature has {len(input_names)} inputs; 'inputs' must be an object naming them")
    return {input_names[0]: _array(inputs, "inputs")}


def encode_predict(outputs: Tensors, row_format: bool) -> dict[str, Any]:
    if row_format:
        if len(outputs) == 1:
            return {"predictions": next(iter(outputs.values()))}
        n = len(next(iter(outputs.values())))
        return {"predictions": [{k: v[i] for k, v in outputs.items()} for i in range(n)]}
    if len(outputs) == 1:
        return {"outputs": next(iter(outputs.values()))}
    return {"outputs": outputs}
