"""A response counts as a success only if it is right, not merely 200."""

from __future__ import annotations

import math
from typing import Any

import orjson

PROBABILITY_SUM_TOLERANCE = 1e-4


def problem(body: bytes, *, compare: bool = False) -> str | None:
    """None when the body is a correct answer for one row, else what is wrong with it."""
    return answer(body, compare=compare)[0]


def answer(body: bytes, *, compare: bool = False, v2: bool = False) -> tuple[str | None, str]:
    """(``problem``'s verdict, the gateway's ``backend`` field or ""), from one parse; ``v2``: an Open
    Inference Protocol answer (its model name says the backend)."""
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        return "response is not JSON", ""
    if v2:
        return _v2(payload)
    if compare:
        results = payload.get("results", {}) if isinstance(payload, dict) else {}
        if len(results) < 2:
            return "compare answer lacks results", ""
        for name, result in results.items():
            issue = _one(result)
            if issue:
                return f"{name}: {issue}", ""
        return None, ""
    backend = payload.get("backend", "") if isinstance(payload, dict) else ""
    return _one(payload), backend if isinstance(backend, str) else ""


def _v2(payload: Any) -> tuple[str | None, str]:
    from mnist_serving.oip import MODELS, PROBABILITIES

    if not isinstance(payload, dict) or not isinstance(payload.get("outputs"), list):
        return "answer has no outputs list", ""
    if "error" in payload:
        return f"error answer: {payload['error']}", ""
    backend = MODELS.get(str(payload.get("model_name")), "")
    out = next((o for o in payload["outputs"] if isinstance(o, dict) and o.get("name") == PROBABILITIES), None)
    data = out.get("data") if out else None
    if not isinstance(data, list) or len(data) != 10:
        return f"{PROBABILITIES} are not 1x10", backend
    if not math.isclose(sum(data), 1.0, abs_tol=PROBABILITY_SUM_TOLERANCE):
        return f"probabilities sum to {sum(data):.6f}", backend
    return None, backend


def _one(payload: Any) -> str | None:
    if not isinstance(payload, dict):
        return "response is not an object"
    if "error" in payload:
        return f"error answer: {payload['error']}"
    predictions = payload.get("predictions")
    if not isinstance(predictions, list) or len(predictions) != 1 or len(predictions[0]) != 10:
        return "predictions are not 1x10"
    if not math.isclose(sum(predictions[0]), 1.0, abs_tol=PROBABILITY_SUM_TOLERANCE):
        return f"probabilities sum to {sum(predictions[0]):.6f}"
    labels = payload.get("labels")
    if labels is not None and (len(labels) != 1 or not 0 <= labels[0] <= 9):
        return "label missing or out of range"
    return None


def tensor_problem(probs: Any) -> str | None:
    """None when a binary (gRPC) answer holds 10 probabilities summing to 1."""
    if len(probs) != 10:
        return f"answer holds {len(probs)} values, not 10"
    if not math.isclose(float(sum(probs)), 1.0, abs_tol=PROBABILITY_SUM_TOLERANCE):
        return f"probabilities sum to {float(sum(probs)):.6f}"
    return None
