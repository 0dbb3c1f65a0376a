"""Who may reach whom, computed from the rendered NetworkPolicies by selector matching (tests/deploy/
netpol.py, itself tested on a tiny synthetic case first), for every variant: default deny both ways;
the gateway reaches exactly the model servers' inference ports (and DNS); its port 8000 is open to
the ingress controller's namespace, the load test and monitoring only; TorchServe's management ports
to no one. Every port comes from mnist_serving/ports.py."""

from __future__ import annotations

from typing import Any

import pytest

from mnist_serving import ports
from mnist_serving.spec import K8S_NAMESPACE as NS
from tests.deploy.netpol import Pod, Policies, pods_of

Objects = list[dict[str, Any]]
VARIANTS = ["cpu", "gpu", "gpu-operator", "cpu-prometheus", "kserve", "kserve-gpu"]
DNS = 53
LOCUST = 5557  # the Locust master's port (k8s/load-test)
INGRESS_NAMESPACE = "ingress-nginx"  # where the ingress controller runs; k8s/common/network-policies.yaml
INFERENCE = {
    "tfserving": {ports.TFSERVING_GRPC, ports.TFSERVING_REST},
    "torchserve": {ports.TORCHSERVE_INFERENCE, ports.TORCHSERVE_GRPC_INFERENCE},
}
# What the monitoring namespace may scrape, on any pod (one policy, so one place names the namespace;
# each pod listens on its own only): the gateway's /metrics, TF Serving's (its REST port), TorchServe's.
MONITORED = {ports.GATEWAY, ports.TFSERVING_REST, ports.TORCHSERVE_METRICS}
MANAGEMENT = {ports.TORCHSERVE_MANAGEMENT, ports.TORCHSERVE_GRPC_MANAGEMENT}
PORTS = {
    ports.TFSERVING_GRPC,
    ports.TFSERVING_REST,
    ports.TORCHSERVE_INFERENCE,
    ports.TORCHSERVE_MANAGEMENT,
    ports.TORCHSERVE_METRICS,
    ports.TORCHSERVE_GRPC_INFERENCE,
    ports.TORCHSERVE_GRPC_MANAGEMENT,
    ports.GATEWAY,
    LOCUST,
    DNS,
}
# Pods outside what we render, and one more inside: who might knock.
OUTSIDE = [
    Pod("ingress-nginx-controller", INGRESS_NAMESPACE, {"app.kubernetes.io/name": "ingress-nginx"}),
    Pod("prometheus", "monitoring", {"app.kubernetes.io/name": "prometheus"}),
    Pod("coredns", "kube-system", {"k8s-app": "kube-dns"}, {"dns": DNS}),
    Pod("someone", "default", {"app": "someone"}),
    Pod("debug", NS, {"app.kubernetes.io/name": "debug"}),  # any other pod in our own namespace
]


def role(pod: Pod) -> str:
    """tfserving, torchserve, gateway, locust-master ... (KServe's predictors carry the same labels)."""
    return pod.labels.get("app.kubernetes.io/name") or pod.labels.get("k8s-app") or pod.name


def world(objs: Objects) -> tuple[Policies, list[Pod]]:
    policies = [o for o in objs if o["kind"] == "NetworkPolicy"]
    namespaces = {o["metadata"]["name"]: o["metadata"].get("labels", {}) for o in objs if o["kind"] == "Namespace"}
    for extra in ("default", "kube-system", "monitoring", INGRESS_NAMESPACE):
        namespaces.setdefault(extra, {})
    return Policies(policies, namespaces), [*pods_of(objs), *OUTSIDE]


def reachable(policies: Policies, src: Pod, pods: list[Pod]) -> set[tuple[str, int, str]]:
    return {
        (role(dst), port, proto)
        for dst in pods
        if dst is not src
        for port in PORTS
        for proto in ("TCP", "UDP")
        if policies.allowed(src, dst, port, proto)
    }


def admitted(policies: Policies, dst: Pod, pods: list[Pod], port: int) -> set[str]:
    return {role(src) for src in pods if src is not dst and policies.allowed(src, dst, port)}


@pytest.fixture(scope="module")
def stacks(rendered: dict[str, Objects]) -> dict[str, Objects]:
    """Each variant with the in-cluster load test deployed next to it."""
    return {v: rendered[v] + rendered["load-test"] for v in VARIANTS}


def _one(pods: list[Pod], name: str) -> Pod:
    (pod,) = [p for p in pods if role(p) == name and p.namespace == NS]
    return pod


# ---- the evaluator itself, on a case small enough to check by hand --------------------------------


def test_the_evaluator_on_a_tiny_synthetic_case() -> None:
    def policy(name: str, ns: str, spec: dict[str, Any]) -> dict[str, Any]:
        return {"kind": "NetworkPolicy", "metadata": {"name": name, "namespace": ns}, "spec": spec}

    web = Pod("web", "a", {"app": "web"}, {"http": 80, "admin": 81})
    client = Pod("client", "a", {"app": "client"})
    stranger = Pod("stranger", "b", {"app": "client"})
    friend = Pod("friend", "c", {"app": "client"})
    open_ns = Pod("open", "d", {"app": "x"})
    deny = policy("deny", "a", {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]})
    web_in = policy(
        "web-in",
        "a",
        {
            "podSelector": {"matchLabels": {"app": "web"}},
            "ingress": [  # no policyTypes: Ingress only
                {"from": [{"podSelector": {"matchLabels": {"app": "client"}}}], "ports": [{"port": "http"}]},
                {
                    "from": [
                        {
                            "namespaceSelector": {"matchLabels": {"team": "friends"}},
                            "podSelector": {
                                "matchExpressions": [{"key": "app", "operator": "In", "values": ["client"]}]
                            },
                        }
                    ],
                    "ports": [{"port": 80, "endPort": 81}],
                },
            ],
        },
    )
    client_out = policy(
        "client-out",
        "a",
        {
            "podSelector": {"matchLabels": {"app": "client"}},
            "egress": [{"to": [{"podSelector": {}}], "ports": [{"port": 80}]}],
        },
    )
    ps = Policies([deny, web_in, client_out], {"a": {}, "b": {}, "c": {"team": "friends"}, "d": {}})
    assert Policies.types(web_in) == ["Ingress"] and Policies.types(client_out) == ["Ingress", "Egress"]
    assert ps.allowed(client, web, 80)  # egress to any pod of a on 80, ingress from app=client on "http"
    assert not ps.allowed(client, web, 81)  # "admin" is not admitted from a's clients, nor is egress open
    assert not ps.allowed(client, web, 80, "UDP")
    assert not ps.allowed(web, client, 80)  # web's egress is denied (default deny), client's ingress too
    assert not ps.allowed(stranger, web, 80)  # a podSelector alone means the policy's own namespace
    assert ps.allowed(friend, web, 81)  # namespace AND pod selector, and the port range 80-81
    assert not ps.allowed(friend, web, 82)
    assert ps.allowed(open_ns, friend, 9999)  # no policy selects either: not isolated
    assert not ps.allowed(open_ns, web, 80)


# ---- the rendered variants ----------------------------------------------------------------------------


@pytest.mark.parametrize("variant", VARIANTS)
def test_default_deny_both_ways(rendered: dict[str, Objects], variant: str) -> None:
    policies = [o for o in rendered[variant] if o["kind"] == "NetworkPolicy"]
    deny = {
        t
        for p in policies
        if p["spec"]["podSelector"] == {}
        for t in Policies.types(p)
        if not p["spec"].get(t.lower())  # no rule at all: denies that direction
    }
    assert deny == {"Ingress", "Egress"}


@pytest.mark.parametrize("variant", VARIANTS)
def test_the_gateway_reaches_exactly_the_inference_ports_and_dns(stacks: dict[str, Objects], variant: str) -> None:
    policies, pods = world(stacks[variant])
    gateway = _one(pods, "gateway")
    want = {(server, port, "TCP") for server, numbers in INFERENCE.items() for port in numbers}
    assert reachable(policies, gateway, pods) == want | {("kube-dns", DNS, "UDP"), ("kube-dns", DNS, "TCP")}
    torchserve = _one(pods, "torchserve")
    for port in MANAGEMENT | {ports.TORCHSERVE_METRICS}:
        assert not policies.allowed(gateway, torchserve, port), port


@pytest.mark.parametrize("variant", VARIANTS)
def test_port_8000_is_open_to_the_ingress_namespace_the_load_test_and_monitoring_only(
    stacks: dict[str, Objects], variant: str
) -> None:
    policies, pods = world(stacks[variant])
    assert admitted(policies, _one(pods, "gateway"), pods, ports.GATEWAY) == {
        "ingress-nginx",  # the controller, in its namespace
        "locust-master",
        "locust-worker",
        "prometheus",
    }
    # The Open Inference Protocol over gRPC: from the ingress namespace only (the load test speaks REST;
    # metrics are REST).
    assert admitted(policies, _one(pods, "gateway"), pods, ports.GATEWAY_GRPC) == {"ingress-nginx"}


@pytest.mark.parametrize("variant", VARIANTS)
def test_model_servers_admit_inference_from_the_gateway_and_load_test_and_management_from_no_one(
    stacks: dict[str, Objects], variant: str
) -> None:
    policies, pods = world(stacks[variant])
    callers = {"gateway", "locust-master", "locust-worker"}
    for server in INFERENCE:
        pod = _one(pods, server)
        for port in PORTS - {DNS}:
            want = (callers if port in INFERENCE[server] else set()) | ({"prometheus"} if port in MONITORED else set())
            assert admitted(policies, pod, pods, port) == want, (server, port)
    for port in MANAGEMENT:
        assert admitted(policies, _one(pods, "torchserve"), pods, port) == set()


@pytest.mark.parametrize("variant", ["cpu", "kserve"])
def test_the_load_test_reaches_only_what_it_measures(stacks: dict[str, Objects], variant: str) -> None:
    policies, pods = world(stacks[variant])
    measured = {("gateway", ports.GATEWAY, "TCP")} | {
        (server, port, "TCP") for server, numbers in INFERENCE.items() for port in numbers
    }
    dns = {("kube-dns", DNS, "UDP"), ("kube-dns", DNS, "TCP")}
    for name in ("locust-master", "locust-worker"):
        master = set() if name == "locust-master" else {("locust-master", LOCUST, "TCP")}
        assert reachable(policies, _one(pods, name), pods) == measured | dns | master, name


@pytest.mark.parametrize("variant", VARIANTS)
def test_nothing_else_in_the_namespace_gets_out_or_in(stacks: dict[str, Objects], variant: str) -> None:
    policies, pods = world(stacks[variant])
    debug = _one(pods, "debug")
    assert reachable(policies, debug, pods) == {("kube-dns", DNS, "UDP"), ("kube-dns", DNS, "TCP")}
    for server in INFERENCE:
        assert reachable(policies, _one(pods, server), pods) == {("kube-dns", DNS, "UDP"), ("kube-dns", DNS, "TCP")}


def test_the_ingress_namespace_is_named_in_one_place(rendered: dict[str, Objects]) -> None:
    selectors = [
        (p["metadata"]["name"], peer["namespaceSelector"])
        for p in rendered["cpu"]
        if p["kind"] == "NetworkPolicy"
        for rule in p["spec"].get("ingress", [])
        for peer in rule.get("from", [])
        if "namespaceSelector" in peer
    ]
    named = [
        name for name, sel in selectors if sel == {"matchLabels": {"kubernetes.io/metadata.name": INGRESS_NAMESPACE}}
    ]
    assert named == ["gateway-ingress"], selectors
