"""The rendered Kubernetes objects: schema-valid, wired together, hardened, GPU where asked."""

from __future__ import annotations

from typing import Any

import kubernetes_validate
import pytest

from tests.deploy.conftest import K8S_VERSION, RENDERED

Objects = list[dict[str, Any]]


def validate(doc: dict[str, Any]) -> None:
    """Strict schema validation; an unknown kind raises instead of warning."""
    kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


@pytest.mark.parametrize("name", list(RENDERED))
def test_every_object_validates_strictly(rendered: dict[str, Objects], name: str) -> None:
    assert rendered[name]
    for doc in rendered[name]:
        validate(doc)


def test_unknown_kind_is_a_failure() -> None:
    with pytest.raises(kubernetes_validate.SchemaNotFoundError):
        validate({"apiVersion": "v1", "kind": "Bogus", "metadata": {"name": "x"}})


def _kind(objs: Objects, kind: str) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in objs if o["kind"] == kind}


def _pod_specs(objs: Objects) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o["spec"]["template"] for o in objs if o["kind"] in ("Deployment", "Job")}


@pytest.mark.parametrize("name", list(RENDERED))
def test_services_select_pods_and_target_real_ports(rendered: dict[str, Objects], name: str) -> None:
    templates = _pod_specs(rendered[name]).values()
    for svc in _kind(rendered[name], "Service").values():
        selector = svc["spec"]["selector"]
        matches = [t for t in templates if selector.items() <= t["metadata"]["labels"].items()]
        assert matches, f"service {svc['metadata']['name']} selects no pod"
        ports = {p["name"] for t in matches for c in t["spec"]["containers"] for p in c.get("ports", [])}
        numbers = {p["containerPort"] for t in matches for c in t["spec"]["containers"] for p in c.get("ports", [])}
        for port in svc["spec"]["ports"]:
            assert port["targetPort"] in ports | numbers, (svc["metadata"]["name"], port)


@pytest.mark.parametrize("name", list(RENDERED))
def test_workload_selectors_match_their_pods(rendered: dict[str, Objects], name: str) -> None:
    for dep in _kind(rendered[name], "Deployment").values():
        assert dep["spec"]["selector"]["matchLabels"].items() <= dep["spec"]["template"]["metadata"]["labels"].items()


@pytest.mark.parametrize("name", list(RENDERED))
def test_containers_have_probes_resources_and_run_unprivileged(rendered: dict[str, Objects], name: str) -> None:
    for pod_name, template in _pod_specs(rendered[name]).items():
        spec = template["spec"]
        assert spec["securityContext"]["runAsNonRoot"] is True and spec["securityContext"]["runAsUser"] != 0
        for c in spec["containers"]:
            where = f"{pod_name}/{c['name']}"
            assert "readinessProbe" in c and "livenessProbe" in c, where
            assert {"cpu", "memory"} <= c["resources"]["requests"].keys(), where
            assert {"cpu", "memory"} <= c["resources"]["limits"].keys(), where
            sc = c["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False and sc["capabilities"]["drop"] == ["ALL"], where
            assert sc["readOnlyRootFilesystem"] is True, where
            image = c["image"]
            assert ":" in image and not image.endswith(":latest"), where


def test_deployments_have_startup_probes_reflecting_model_readiness(rendered: dict[str, Objects]) -> None:
    deps = _kind(rendered["cpu"], "Deployment")
    assert set(deps) == {"tfserving", "torchserve", "gateway"}
    probe = {n: str(d["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]) for n, d in deps.items()}
    assert "AVAILABLE" in probe["tfserving"] and "READY" in probe["torchserve"] and "/readyz" in probe["gateway"]
    for d in deps.values():
        assert "startupProbe" in d["spec"]["template"]["spec"]["containers"][0]


@pytest.mark.parametrize("overlay", ["cpu", "gpu"])
def test_hpas_and_pdbs_target_existing_deployments(rendered: dict[str, Objects], overlay: str) -> None:
    deps = _kind(rendered[overlay], "Deployment")
    hpas = _kind(rendered[overlay], "HorizontalPodAutoscaler")
    assert set(hpas) == set(deps)
    for hpa in hpas.values():
        assert hpa["spec"]["scaleTargetRef"]["name"] in deps
    for pdb in _kind(rendered[overlay], "PodDisruptionBudget").values():
        labels = pdb["spec"]["selector"]["matchLabels"]
        assert any(labels.items() <= d["spec"]["template"]["metadata"]["labels"].items() for d in deps.values())


def test_configmaps_come_from_the_shared_server_configs(rendered: dict[str, Objects]) -> None:
    maps = {n.rsplit("-", 1)[0]: m for n, m in _kind(rendered["cpu"], "ConfigMap").items()}
    assert {"models.config", "batching.config", "monitoring.config"} == set(maps["tfserving-config"]["data"])
    assert "disable_token_authorization=true" in maps["torchserve-config"]["data"]["config.properties"]


def test_gpu_overlay_requests_gpus_for_model_servers_only(rendered: dict[str, Objects]) -> None:
    deps = _kind(rendered["gpu"], "Deployment")
    for name in ("tfserving", "torchserve"):
        spec = deps[name]["spec"]["template"]["spec"]
        assert spec["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"
        assert spec["containers"][0]["image"].endswith("-gpu")
        assert spec["nodeSelector"] and spec["tolerations"][0]["key"] == "nvidia.com/gpu"
    assert "nvidia.com/gpu" not in deps["gateway"]["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]
    cpu = _kind(rendered["cpu"], "Deployment")
    assert all(
        "nvidia.com/gpu" not in d["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]
        for d in cpu.values()
    )


def test_network_policies_leave_the_gateway_as_the_only_way_in(rendered: dict[str, Objects]) -> None:
    policies = _kind(rendered["cpu"], "NetworkPolicy")
    deny = policies["default-deny-ingress"]["spec"]
    assert deny["podSelector"] == {} and deny["policyTypes"] == ["Ingress"] and "ingress" not in deny
    deps = _kind(rendered["cpu"], "Deployment")
    for policy in policies.values():
        spec = policy["spec"]
        targets = (
            [
                n
                for n, d in deps.items()
                if spec["podSelector"].get("matchLabels", {}).items()
                <= d["spec"]["template"]["metadata"]["labels"].items()
            ]
            if spec["podSelector"]
            else []
        )
        for rule in spec.get("ingress", []):
            if "from" not in rule:  # open to any source: only the gateway may be
                assert targets == ["gateway"], policy["metadata"]["name"]
            else:
                allowed = [p["podSelector"]["matchLabels"] for p in rule["from"]]
                assert allowed in (
                    [{"app.kubernetes.io/name": "gateway"}, {"app.kubernetes.io/component": "load-test"}],
                ), allowed
                assert set(targets) == {"tfserving", "torchserve"}


def test_gateway_has_an_ingress(rendered: dict[str, Objects]) -> None:
    (ingress,) = _kind(rendered["cpu"], "Ingress").values()
    backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend["name"] == "gateway"


def test_load_test_jobs_target_in_cluster_services(rendered: dict[str, Objects]) -> None:
    jobs = _kind(rendered["load-test"], "Job")
    assert set(jobs) == {"locust-master", "locust-worker"}
    master = jobs["locust-master"]["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e["value"] for e in master["env"]}
    assert env["GATEWAY_URL"] == "http://gateway:8000" and "--headless" in master["args"]
    assert jobs["locust-master"]["spec"]["activeDeadlineSeconds"] <= 900  # bounded
    assert any(v.get("persistentVolumeClaim") for v in jobs["locust-master"]["spec"]["template"]["spec"]["volumes"])
