"""A model version ships on Kubernetes by a rolling update of the servers' Deployments (a new image),
or by KServe's canary; these are the settings that keep it from failing a request, checked on the
rendered manifests against the measured and reasoned sizes in serving/rollout/settings.py:
a new pod first (maxUnavailable 0), readiness that means "model loaded", a preStop pause that
outlasts the gateway's follow time and a request's budget, a grace period longer than the pause
plus the server's measured exit, and KServe's canaryTrafficPercent in its documented variant."""

from __future__ import annotations

from typing import Any

import pytest

from serving.rollout.settings import GATEWAY_FOLLOW_S, REQUEST_BUDGET_S, SIGTERM_EXIT_S
from serving.torchserve.launch import STOP_GRACE_S

Objects = list[dict[str, Any]]
# variant -> {server: its workload's name}
WORKLOADS = {
    "cpu": {"tfserving": "tfserving", "torchserve": "torchserve", "gateway": "gateway"},
    "cpu-prometheus": {"tfserving": "tfserving", "torchserve": "torchserve", "gateway": "gateway"},
    "gpu": {"tfserving": "tfserving", "torchserve": "torchserve", "gateway": "gateway"},
    "kserve": {"tfserving": "mnist-tfserving", "torchserve": "mnist-torchserve", "gateway": "gateway"},
    "kserve-canary": {"tfserving": "mnist-tfserving", "torchserve": "mnist-torchserve", "gateway": "gateway"},
}
READY = {"tfserving": "AVAILABLE", "torchserve": "serving.torchserve.ready", "gateway": "/readyz"}


def _pods(objs: Objects) -> dict[str, dict[str, Any]]:
    out = {}
    for o in objs:
        if o["kind"] == "Deployment":
            out[o["metadata"]["name"]] = o["spec"]["template"]["spec"]
        elif o["kind"] == "InferenceService":
            out[o["metadata"]["name"]] = o["spec"]["predictor"]
    return out


def _of(objs: Objects, kind: str) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in objs if o["kind"] == kind}


@pytest.mark.parametrize("variant", ["cpu", "cpu-prometheus"])
def test_a_rolling_update_adds_a_ready_pod_before_an_old_one_leaves(rendered: dict[str, Objects], variant: str) -> None:
    for name, dep in _of(rendered[variant], "Deployment").items():
        assert dep["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": 0}, name
        # listed in the endpoints (and followed by the gateway) before an old pod starts leaving
        assert dep["spec"]["minReadySeconds"] >= GATEWAY_FOLLOW_S, name


def test_gpu_rollouts_keep_one_pod_serving_instead(rendered: dict[str, Objects]) -> None:
    """On GPUs a rollout needs no spare GPU: one pod at a time goes (maxUnavailable 1), and with two
    replicas (the HPA's floor) and a PDB of one the other serves meanwhile."""
    deps, hpas = _of(rendered["gpu"], "Deployment"), _of(rendered["gpu"], "HorizontalPodAutoscaler")
    for name in ("tfserving", "torchserve"):
        assert deps[name]["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 0, "maxUnavailable": 1}
        assert hpas[name]["spec"]["minReplicas"] >= 2


@pytest.mark.parametrize("variant", list(WORKLOADS))
def test_readiness_means_the_model_is_loaded(rendered: dict[str, Objects], variant: str) -> None:
    pods = _pods(rendered[variant])
    for server, name in WORKLOADS[variant].items():
        probe = pods[name]["containers"][0]["readinessProbe"]
        assert READY[server] in str(probe), (variant, server)


@pytest.mark.parametrize("variant", list(WORKLOADS))
def test_the_pause_outlasts_the_follow_and_the_grace_period_the_pause_and_the_exit(
    rendered: dict[str, Objects], variant: str
) -> None:
    pods = _pods(rendered[variant])
    for server, name in WORKLOADS[variant].items():
        pod = pods[name]
        pause = int(pod["containers"][0]["lifecycle"]["preStop"]["exec"]["command"][1])
        grace = pod["terminationGracePeriodSeconds"]
        # Nothing in flight when SIGTERM comes: none of the servers answers what it holds then.
        assert pause >= GATEWAY_FOLLOW_S + REQUEST_BUDGET_S, (variant, server, pause)
        assert grace > pause + SIGTERM_EXIT_S[server], (variant, server, grace)
        if server == "torchserve":  # the image's launcher kills what is left STOP_GRACE_S after SIGTERM
            assert grace >= pause + STOP_GRACE_S, (variant, grace)


def test_the_kserve_canary_variant_splits_traffic_in_serverless_mode(rendered: dict[str, Objects]) -> None:
    services = _of(rendered["kserve-canary"], "InferenceService")
    assert set(services) == {"mnist-tfserving", "mnist-torchserve"}
    for name, isvc in services.items():
        assert 0 < isvc["spec"]["predictor"]["canaryTrafficPercent"] < 100, name
        annotations = isvc["metadata"]["annotations"]
        assert annotations["serving.kserve.io/deploymentMode"] == "Serverless", name  # KServe splits only there
        assert "serving.kserve.io/autoscalerClass" not in annotations
        (port,) = isvc["spec"]["predictor"]["containers"][0]["ports"]  # Knative takes one port
        assert port["name"] == "http1", name
    # the plain KServe variant stays in RawDeployment, without a split
    for isvc in _of(rendered["kserve"], "InferenceService").values():
        assert "canaryTrafficPercent" not in isvc["spec"]["predictor"]
    # the gateway talks REST to the predictors (Knative carries one protocol)
    (gateway,) = [c for c in _pods(rendered["kserve-canary"])["gateway"]["containers"] if c["name"] == "gateway"]
    env = {e["name"]: e.get("value") for e in gateway["env"]}
    assert env.get("GATEWAY_TFSERVING_PROTOCOL", "rest") == env.get("GATEWAY_TORCHSERVE_PROTOCOL", "rest") == "rest"


def test_knative_reaches_the_predictors_through_the_default_deny_policies(rendered: dict[str, Objects]) -> None:
    policies = _of(rendered["kserve-canary"], "NetworkPolicy")
    inbound = policies["model-servers-from-knative"]["spec"]
    sources = [(r["from"][0], {p["port"] for p in r["ports"]}) for r in inbound["ingress"]]
    assert (
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "knative-serving"}}},
        {8012, 9090},
    ) in sources
    outbound = policies["gateway-to-knative"]["spec"]
    assert {p["port"] for r in outbound["egress"] for p in r["ports"]} == {8012}
    assert "model-servers-from-knative" not in _of(rendered["kserve"], "NetworkPolicy")
