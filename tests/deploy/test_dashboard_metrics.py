"""The Grafana dashboard and the prometheus-adapter rules query metrics the real servers export.

Scraped from the session's running stack (TF Serving stand-in, real TorchServe, the gateway) after
one prediction through each path, so a renamed or missing metric fails here, not on a user's cluster."""

from __future__ import annotations

import json
import re

import httpx
import numpy as np
import pytest
import yaml

from mnist_serving.ports import local_url
from tests.conftest import REPO

MONITORING = REPO / "k8s/components"
# PromQL words that are not metric names.
_PROMQL = {
    "sum",
    "by",
    "rate",
    "histogram_quantile",
    "le",
    "clamp_min",
    "namespace",
    "status",
    "backend",
    "kind",
    "model_name",
    "pod",
    "interval",
    "rate_interval",
}


def _metric_names(expr: str) -> set[str]:
    expr = re.sub(r"\{[^}]*\}", "", expr)  # label matchers
    expr = re.sub(r"\[[^\]]*\]", "", expr)  # ranges
    expr = re.sub(r"\([^()]*\)(?=\s*\()", "", expr)
    words = set(re.findall(r"[:a-zA-Z_][:a-zA-Z0-9_]*", expr)) - _PROMQL
    return {w for w in words if not re.fullmatch(r"e\d*|\d+", w) and w not in {"GroupBy", "LabelMatchers"}}


def _dashboard_exprs() -> list[str]:
    dashboard = json.loads((MONITORING / "monitoring/dashboard.json").read_text())
    return [t["expr"] for p in dashboard["panels"] for t in p["targets"]]


def _adapter_exprs() -> list[str]:
    rules = yaml.safe_load((MONITORING / "hpa-serving-signal/prometheus-adapter-rules.yaml").read_text())
    return [e for r in rules for e in (r["seriesQuery"], r["metricsQuery"])]


_HISTOGRAM = ("_bucket", "_sum", "_count")


def _sample_names(text: str) -> set[str]:
    """Names exactly as exposed (TorchServe's and TF Serving's counters carry no `_total`; a parser
    would normalise that away), plus those only declared so far (a labelled counter with no error yet)."""
    names = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            names |= {name + s for s in _HISTOGRAM} if kind == "histogram" else {name}
        elif line and not line.startswith("#"):
            names.add(re.split(r"[{ ]", line, maxsplit=1)[0])
    return names


@pytest.fixture(scope="module")
def exported(serving_stack) -> set[str]:
    """Every sample name the three services export (or declare) once they have served a request."""
    p = serving_stack.ports
    row = {"instances": [np.linspace(0, 1, 784).round(4).tolist()]}
    with httpx.Client(timeout=30) as http:
        for backend in ("tfserving", "torchserve"):
            r = http.post(local_url(p.gateway, "/v1/predict"), params={"backend": backend}, json=row)
            assert r.status_code == 200, r.text
        names = set()
        for url in (
            local_url(p.tfserving_rest, "/monitoring/prometheus/metrics"),
            local_url(p.torchserve_metrics, "/metrics"),
            local_url(p.gateway, "/metrics"),
        ):
            text = http.get(url).text
            names |= _sample_names(text)
    return names


def test_expressions_name_metrics() -> None:
    names = _metric_names(_dashboard_exprs()[1])
    assert names == {"gateway_request_latency_seconds_bucket"}, names


@pytest.mark.parametrize("expr", _dashboard_exprs() + _adapter_exprs())
def test_every_queried_metric_is_exported(exported: set[str], expr: str) -> None:
    missing = _metric_names(expr) - exported
    assert not missing, f"{missing} not exported (have e.g. {sorted(exported)[:8]})"
