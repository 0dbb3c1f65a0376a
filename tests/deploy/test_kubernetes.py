"""The rendered Kubernetes objects: every overlay renders with no flags, validates strictly (CRDs too),
and holds what a platform engineer relies on: rollouts, shutdown, scaling, GPUs, Ingress, monitoring."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from mnist_serving import ports
from mnist_serving import spec as contract
from mnist_serving.spec import K8S_NAMESPACE
from tests.conftest import REPO
from tests.deploy.conftest import RENDERED, render_dir
from tests.deploy.kube import restricted_violations, validate

Objects = list[dict[str, Any]]
K8S = REPO / "k8s"
SERVERS = ("tfserving", "torchserve")
WITH_GATEWAY = [n for n in RENDERED if n != "load-test"]  # every variant that deploys the stack
API_KEYS_SECRET = "gateway-api-keys"  # docs/kubernetes.md says how to create it


def _torchserve_configmap_file() -> str:
    """What TorchServe's one config owner renders for the ConfigMap (`make k8s-config`)."""
    from serving.torchserve import config

    return config.rendered_for_kubernetes()


def _tfserving_configmap_file(name: str) -> str:
    from serving.tfserving import config

    return config.rendered_for_kubernetes(name)


def _kind(objs: Objects, kind: str) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in objs if o["kind"] == kind}


def _pods(objs: Objects) -> dict[str, dict[str, Any]]:
    """name -> pod spec, for Deployments, Jobs, Pods and KServe predictors."""
    out = {}
    for o in objs:
        if o["kind"] in ("Deployment", "Job"):
            out[o["metadata"]["name"]] = o["spec"]["template"]["spec"]
        elif o["kind"] == "InferenceService":
            out[o["metadata"]["name"]] = o["spec"]["predictor"]
    return out


def _main_container(pod: dict[str, Any]) -> dict[str, Any]:
    return pod["containers"][0]


def _cpu(quantity: str) -> float:
    return float(quantity[:-1]) / 1000 if quantity.endswith("m") else float(quantity)


# ---- rendering, schemas, roots -------------------------------------------------------------------


@pytest.mark.parametrize("name", list(RENDERED))
def test_every_object_validates_strictly(rendered: dict[str, Objects], name: str) -> None:
    assert rendered[name]
    for doc in rendered[name]:
        validate(doc)


def test_unknown_kind_is_a_failure() -> None:
    with pytest.raises(kubernetes_validate.SchemaNotFoundError):
        validate({"apiVersion": "v1", "kind": "Bogus", "metadata": {"name": "x"}})


@pytest.mark.parametrize(
    ("kind", "path"),
    [("InferenceService", ("spec", "predictor")), ("ServiceMonitor", ("spec",)), ("InferenceService", ())],
)
def test_an_unknown_field_in_a_custom_resource_fails(rendered: dict[str, Objects], kind: str, path: tuple) -> None:
    docs = rendered["kserve"] + rendered["cpu-prometheus"]
    doc = yaml.safe_load(yaml.safe_dump(next(d for d in docs if d["kind"] == kind)))
    validate(doc)
    target = doc
    for key in path:
        target = target[key]
    target["minReplicaz"] = 2
    with pytest.raises(jsonschema.ValidationError, match="minReplicaz"):
        validate(doc)


@pytest.mark.parametrize("name", list(RENDERED))
def test_everything_lands_in_the_namespace(rendered: dict[str, Objects], name: str) -> None:
    for doc in rendered[name]:
        if doc["kind"] != "Namespace":
            assert doc["metadata"].get("namespace") == K8S_NAMESPACE, (doc["kind"], doc["metadata"]["name"])


def _kustomizations() -> list[Path]:
    return sorted(K8S.rglob("kustomization.yaml"))


def file_references(kustomization: Path) -> list[str]:
    """Every file (not folder) a kustomization reads: resources, generator files, patches, configurations."""
    k = yaml.safe_load(kustomization.read_text())
    refs = [r for r in k.get("resources", []) if (kustomization.parent / r).is_file()]
    for gen in k.get("configMapGenerator", []) + k.get("secretGenerator", []):
        refs += [f.split("=", 1)[-1] for f in gen.get("files", [])]
    refs += [p["path"] for p in k.get("patches", []) if "path" in p]
    refs += k.get("configurations", [])
    return refs


def outside_root(kustomization: Path) -> list[str]:
    root = kustomization.parent.resolve()
    return [r for r in file_references(kustomization) if not (root / r).resolve().is_relative_to(root)]


@pytest.mark.parametrize("kustomization", _kustomizations(), ids=lambda p: str(p.parent.relative_to(K8S)))
def test_no_file_reference_leaves_its_kustomization_root(kustomization: Path) -> None:
    assert outside_root(kustomization) == []


def test_the_root_check_sees_every_kind_of_reference() -> None:
    assert len(file_references(K8S / "config/kustomization.yaml")) == 4  # generator files
    assert "gpu-model-server.yaml" in file_references(K8S / "overlays/gpu/kustomization.yaml")  # patches
    assert "name-references.yaml" in file_references(K8S / "kserve/kustomization.yaml")  # configurations
    assert "tfserving.yaml" in file_references(K8S / "base/kustomization.yaml")  # resources


def test_the_root_check_catches_what_kustomize_refuses(tmp_path: Path) -> None:
    (tmp_path / "shared.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n")
    overlay = tmp_path / "overlay"
    overlay.mkdir()
    (overlay / "kustomization.yaml").write_text("resources: [../shared.yaml]\n")
    assert outside_root(overlay / "kustomization.yaml") == ["../shared.yaml"]
    with pytest.raises(AssertionError, match="is not in or below"):
        render_dir(overlay)


def test_every_kustomization_is_rendered_or_a_component() -> None:
    rendered = {p.resolve() for p in RENDERED.values()}
    for k in _kustomizations():
        kind = yaml.safe_load(k.read_text()).get("kind", "Kustomization")
        assert k.parent.resolve() in rendered or kind == "Component" or k.parent.name in ("base", "common", "config")


@pytest.mark.parametrize("name", ["models.config", "batching.config", "monitoring.config"])
def test_tfserving_configmap_files_are_what_their_owner_renders(name: str) -> None:
    from serving.tfserving import config

    assert (K8S / "config" / name).read_text() == config.rendered_for_kubernetes(name), "run `make k8s-config`"


def test_torchserve_configmap_is_what_its_owner_renders() -> None:
    from serving.torchserve import config

    assert config.kubernetes_file_is_current(K8S / "config/config.properties"), "run `make k8s-config`"


def test_configmaps_carry_the_shared_server_configs(rendered: dict[str, Objects]) -> None:
    for variant in ("cpu", "kserve"):
        maps = {n.rsplit("-", 1)[0]: m for n, m in _kind(rendered[variant], "ConfigMap").items()}
        tf = maps["tfserving-config"]["data"]
        assert tf["batching.config"] == _tfserving_configmap_file("batching.config")
        assert maps["torchserve-config"]["data"]["config.properties"] == _torchserve_configmap_file()


@pytest.mark.parametrize("name", list(RENDERED))
def test_every_configmap_a_pod_mounts_exists(rendered: dict[str, Objects], name: str) -> None:
    maps = set(_kind(rendered[name], "ConfigMap"))
    for pod_name, pod in _pods(rendered[name]).items():
        for v in pod.get("volumes", []):
            if "configMap" in v:
                assert v["configMap"]["name"] in maps, (pod_name, v)


# ---- wiring and hardening ------------------------------------------------------------------------


def _templates(objs: Objects) -> list[tuple[dict[str, str], list[dict[str, Any]]]]:
    """(pod labels, containers) of every pod template: Deployments, Jobs and KServe predictors."""
    out = [
        (o["spec"]["template"]["metadata"]["labels"], o["spec"]["template"]["spec"]["containers"])
        for o in objs
        if o["kind"] in ("Deployment", "Job")
    ]
    return out + [
        (o["spec"]["predictor"]["labels"], o["spec"]["predictor"]["containers"])
        for o in objs
        if o["kind"] == "InferenceService"
    ]


@pytest.mark.parametrize("name", list(RENDERED))
def test_services_select_pods_and_target_real_ports(rendered: dict[str, Objects], name: str) -> None:
    templates = _templates(rendered[name])
    for svc in _kind(rendered[name], "Service").values():
        selector = svc["spec"]["selector"]
        matches = [containers for labels, containers in templates if selector.items() <= labels.items()]
        assert matches, f"service {svc['metadata']['name']} selects no pod"
        ports = {p["name"] for cs in matches for c in cs for p in c.get("ports", [])}
        numbers = {p["containerPort"] for cs in matches for c in cs for p in c.get("ports", [])}
        for port in svc["spec"]["ports"]:
            assert port["targetPort"] in ports | numbers, (svc["metadata"]["name"], port)


@pytest.mark.parametrize("name", list(RENDERED))
def test_workload_selectors_match_their_pods(rendered: dict[str, Objects], name: str) -> None:
    for dep in _kind(rendered[name], "Deployment").values():
        assert dep["spec"]["selector"]["matchLabels"].items() <= dep["spec"]["template"]["metadata"]["labels"].items()


@pytest.mark.parametrize("name", list(RENDERED))
def test_pods_satisfy_restricted_pod_security_and_have_probes_and_resources(
    rendered: dict[str, Objects], name: str
) -> None:
    for pod_name, pod in _pods(rendered[name]).items():
        assert restricted_violations(pod) == [], pod_name
        for c in pod["containers"]:
            where = f"{pod_name}/{c['name']}"
            assert "readinessProbe" in c, where
            assert {"cpu", "memory"} <= c["resources"]["requests"].keys(), where
            assert {"cpu", "memory"} <= c["resources"]["limits"].keys(), where
            assert c["securityContext"]["readOnlyRootFilesystem"] is True, where
            image = c["image"]
            assert ":" in image and not image.endswith(":latest"), where


def test_restricted_check_catches_a_root_pod() -> None:
    pod = {"containers": [{"name": "c", "securityContext": {"runAsUser": 0}}], "hostNetwork": True}
    problems = restricted_violations(pod)
    assert "hostNetwork" in problems and "c: runAsNonRoot" in problems and "c: allowPrivilegeEscalation" in problems


def test_readiness_means_the_model_is_loaded(rendered: dict[str, Objects]) -> None:
    for variant, names in (
        ("cpu", {"tfserving": "tfserving", "torchserve": "torchserve"}),
        ("kserve", {"tfserving": "mnist-tfserving", "torchserve": "mnist-torchserve"}),
    ):
        pods = _pods(rendered[variant])
        assert "AVAILABLE" in str(_main_container(pods[names["tfserving"]])["readinessProbe"])
        assert "serving.torchserve.ready" in str(_main_container(pods[names["torchserve"]])["readinessProbe"])
    deps = _kind(rendered["cpu"], "Deployment")
    assert set(deps) == {"tfserving", "torchserve", "gateway"}
    assert "/readyz" in str(_main_container(deps["gateway"]["spec"]["template"]["spec"])["readinessProbe"])
    for d in deps.values():
        assert "startupProbe" in _main_container(d["spec"]["template"]["spec"])


# ---- images --------------------------------------------------------------------------------------


def test_the_base_sets_no_images_and_every_overlay_sets_all_it_uses() -> None:
    for shared in ("base", "common", "config"):
        assert "images" not in yaml.safe_load((K8S / shared / "kustomization.yaml").read_text())
    for name, folder in RENDERED.items():
        k = yaml.safe_load((folder / "kustomization.yaml").read_text())
        if name in ("gpu-operator", "cpu-prometheus"):
            assert "images" not in k  # they inherit gpu's / cpu's
            continue
        assert {i["name"] for i in k["images"]} >= {"mnist-serving/gateway"} or name == "load-test"
        assert all(i["newName"] and i["newTag"] for i in k["images"])


def test_gpu_image_names_agree_everywhere(rendered: dict[str, Objects]) -> None:
    """The GPU overlays, KServe's GPU variant, the compose GPU override and `make k8s-images` all name
    the same GPU images."""
    from containers import images
    from tests.deploy.conftest import compose

    want = {s: images.IMAGES[s].repository("", gpu=True) for s in SERVERS}
    services = compose("docker-compose.yml", "docker-compose.gpu.yml")["services"]
    for server in SERVERS:
        assert services[server]["image"].split(":")[0] == want[server]
    for name in ("gpu", "gpu-operator", "kserve-gpu"):
        used = {_main_container(p)["image"].split(":")[0] for p in _pods(rendered[name]).values()}
        assert set(want.values()) <= used, name
    for overlay in ("gpu", "gpu-operator", "kserve-gpu"):  # make k8s-images OVERLAY=... accepts each
        folder, gpu = images.OVERLAYS[overlay]
        assert gpu and set(images.used_images(folder / "kustomization.yaml")) >= {
            images.IMAGES[s].name for s in SERVERS
        }


def test_gpu_overlay_uses_its_own_model_server_images(rendered: dict[str, Objects]) -> None:
    def images(name: str) -> dict[str, str]:
        return {n: _main_container(p)["image"] for n, p in _pods(rendered[name]).items()}

    cpu, gpu = images("cpu"), images("gpu")
    for server in SERVERS:
        assert gpu[server].split(":")[0] == cpu[server].split(":")[0] + "-gpu"
    assert gpu["gateway"] == cpu["gateway"]


# ---- GPUs ----------------------------------------------------------------------------------------


GPU_PODS = {"gpu": SERVERS, "gpu-operator": SERVERS, "kserve-gpu": ("mnist-tfserving", "mnist-torchserve")}


@pytest.mark.parametrize("name", sorted(GPU_PODS))
def test_gpu_model_servers_refuse_to_compute_on_the_cpu(rendered: dict[str, Objects], name: str) -> None:
    pods = _pods(rendered[name])
    for server in GPU_PODS[name]:
        container = _main_container(pods[server])
        env = {e["name"]: e.get("value") for e in container.get("env", [])}
        assert env.get(contract.REQUIRE_GPU_ENV) == "1", (name, server)
        assert env["CUDA_CACHE_PATH"].startswith("/tmp/")  # /tmp is an emptyDir: writable
        assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
        # Host memory for a CUDA context plus cuDNN and cuBLAS.
        assert container["resources"]["limits"]["memory"] in ("6Gi", "8Gi"), (name, server)
        if "tfserving" in server:
            assert env["TF_FORCE_GPU_ALLOW_GROWTH"] == "true" and env["NVIDIA_TF32_OVERRIDE"] == "0"
            probe = " ".join(container["readinessProbe"]["exec"]["command"])
            assert "AVAILABLE" in probe and "nvidia-smi -L" in probe  # the real server ignores REQUIRE_GPU
        else:
            assert env["TS_NUMBER_OF_GPU"] == "1"
    cpu_env = _main_container(_pods(rendered["cpu"])["torchserve"]).get("env", [])
    assert contract.REQUIRE_GPU_ENV not in {e["name"] for e in cpu_env}


def test_gpu_pods_are_scheduled_by_their_limit_not_a_hard_node_label(rendered: dict[str, Objects]) -> None:
    for name in ("gpu", "gpu-operator"):
        deps = _kind(rendered[name], "Deployment")
        for server in SERVERS:
            spec = deps[server]["spec"]["template"]["spec"]
            assert _main_container(spec)["resources"]["limits"]["nvidia.com/gpu"] == "1"
            assert spec["tolerations"][0]["key"] == "nvidia.com/gpu"
            assert ("nodeSelector" in spec) == (name == "gpu-operator")
            assert (spec.get("runtimeClassName") == "nvidia") == (name == "gpu-operator")
        assert (
            "nvidia.com/gpu" not in _main_container(deps["gateway"]["spec"]["template"]["spec"])["resources"]["limits"]
        )
    for d in _kind(rendered["cpu"], "Deployment").values():
        assert "nvidia.com/gpu" not in _main_container(d["spec"]["template"]["spec"])["resources"]["limits"]


def test_gpu_rollouts_need_no_spare_gpu_and_scaling_is_capped(rendered: dict[str, Objects]) -> None:
    deps = _kind(rendered["gpu"], "Deployment")
    hpas = _kind(rendered["gpu"], "HorizontalPodAutoscaler")
    for server in SERVERS:
        strategy = deps[server]["spec"]["strategy"]
        assert strategy.get("type") == "Recreate" or strategy["rollingUpdate"]["maxSurge"] == 0
        assert hpas[server]["spec"]["maxReplicas"] <= 2
        # Never the last replica: a rollout or drain takes one of two down, the other serves.
        assert hpas[server]["spec"]["minReplicas"] >= 2 and strategy["rollingUpdate"]["maxUnavailable"] == 1
        # Scaled on queue latency (prometheus-adapter), not on the CPU of a GPU pod.
        assert all(
            m["type"] == "Pods" and "latency" in m["pods"]["metric"]["name"] for m in hpas[server]["spec"]["metrics"]
        )
    for isvc in _kind(rendered["kserve-gpu"], "InferenceService").values():
        assert isvc["spec"]["predictor"]["minReplicas"] == isvc["spec"]["predictor"]["maxReplicas"] == 2
    assert deps["gateway"]["spec"]["strategy"]["rollingUpdate"]["maxSurge"] == 1  # no GPU: surge is fine


def _torchserve_workers() -> int:
    from serving.torchserve import config

    return sum(int(m["maxWorkers"]) for m in config.models(config.read(K8S / "config/config.properties")).values())


@pytest.mark.parametrize("name", ["cpu", "gpu", "kserve"])
def test_torch_threads_times_workers_fit_the_cpu_limit(rendered: dict[str, Objects], name: str) -> None:
    pod = _pods(rendered[name])["torchserve" if name != "kserve" else "mnist-torchserve"]
    c = _main_container(pod)
    threads = int(next(e["value"] for e in c["env"] if e["name"] == "OMP_NUM_THREADS"))
    assert _torchserve_workers() == 2
    assert threads * _torchserve_workers() <= _cpu(c["resources"]["limits"]["cpu"])


# ---- Ingress and API keys ------------------------------------------------------------------------


def _mebibytes(size: str) -> float:
    number, unit = re.fullmatch(r"(\d+)([kmg]?)", size.lower()).groups()  # type: ignore[union-attr]
    return int(number) * {"": 1 / 2**20, "k": 1 / 1024, "m": 1, "g": 1024}[unit]


def test_ingress_admits_what_the_gateway_accepts_and_hides_metrics(rendered: dict[str, Objects]) -> None:
    (ingress,) = _kind(rendered["cpu"], "Ingress").values()
    largest = max(
        contract.MAX_JSON_BODY_BYTES, contract.MAX_IMAGE_BYTES + 64 * 1024
    )  # the gateway's defaults + multipart
    body = _mebibytes(ingress["metadata"]["annotations"]["nginx.ingress.kubernetes.io/proxy-body-size"])
    assert largest / 2**20 <= body <= largest / 2**20 + 2
    assert ingress["spec"]["tls"][0]["secretName"] and ingress["spec"]["tls"][0]["hosts"]
    paths = [p for rule in ingress["spec"]["rules"] for p in rule["http"]["paths"]]
    for path in ("/metrics", "/healthz", "/readyz"):
        for p in paths:
            prefix = p["path"].rstrip("/") + "/"
            routed = path == p["path"] if p["pathType"] == "Exact" else path == p["path"] or path.startswith(prefix)
            assert not routed, (path, p)
    assert {"/v1", "/docs", "/openapi.json"} <= {p["path"] for p in paths}
    assert all(p["backend"]["service"]["name"] == "gateway" for p in paths)


def _gateway_env(objs: Objects) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in _main_container(_pods(objs)["gateway"])["env"]}


@pytest.mark.parametrize("name", WITH_GATEWAY)
def test_auth_fails_closed_without_the_secret(rendered: dict[str, Objects], name: str) -> None:
    """No Secret: the pod does not start (optional false); no key: the gateway refuses to start."""
    env = _gateway_env(rendered[name])
    ref = env["GATEWAY_API_KEYS"]["valueFrom"]["secretKeyRef"]
    assert ref["optional"] is False and ref["name"] == API_KEYS_SECRET and ref["key"]
    assert env["GATEWAY_REQUIRE_API_KEYS"]["value"] == "true"
    worker = _main_container(_kind(rendered["load-test"], "Job")["locust-worker"]["spec"]["template"]["spec"])
    (load_ref,) = [e["valueFrom"]["secretKeyRef"] for e in worker["env"] if e["name"] == "GATEWAY_API_KEYS"]
    assert load_ref == ref  # the load test authenticates with the same Secret


@pytest.mark.parametrize("name", WITH_GATEWAY)
def test_the_gateway_never_calls_torchserve_management(rendered: dict[str, Objects], name: str) -> None:
    assert _gateway_env(rendered[name])["GATEWAY_TORCHSERVE_MANAGEMENT_URL"]["value"] == ""


@pytest.mark.parametrize("name", WITH_GATEWAY)
def test_torchserve_management_listens_on_the_pods_loopback_only(rendered: dict[str, Objects], name: str) -> None:
    """Reachable by the pod itself (its readiness probe), by nothing outside: no container port, no
    Service port, bound to loopback."""
    management = {ports.TORCHSERVE_MANAGEMENT, ports.TORCHSERVE_GRPC_MANAGEMENT}
    pods = _pods(rendered[name])
    (ts,) = [_main_container(p) for n, p in pods.items() if n.endswith("torchserve")]
    env = {e["name"]: e.get("value") for e in ts["env"]}
    assert env["TS_MANAGEMENT_ADDRESS"] == ports.local_url(ports.TORCHSERVE_MANAGEMENT)
    assert env["TS_GRPC_MANAGEMENT_ADDRESS"] == ports.LOOPBACK
    assert not {p["containerPort"] for p in ts["ports"]} & management
    for svc in _kind(rendered[name], "Service").values():
        assert not {p["port"] for p in svc["spec"]["ports"]} & management, svc["metadata"]["name"]


@pytest.mark.parametrize("name", [n for n in WITH_GATEWAY if n != "kserve-canary"])  # Knative: REST only
def test_grpc_is_balanced_over_headless_services(rendered: dict[str, Objects], name: str) -> None:
    """dns:///<headless Service>:<port>: the gateway's channel resolves every ready pod (round robin)."""
    env = _gateway_env(rendered[name])
    services = _kind(rendered[name], "Service")
    templates = _templates(rendered[name])
    for server, variable, port in (
        ("tfserving", "GATEWAY_TFSERVING_GRPC_ADDRESS", ports.TFSERVING_GRPC),
        ("torchserve", "GATEWAY_TORCHSERVE_GRPC_ADDRESS", ports.TORCHSERVE_GRPC_INFERENCE),
    ):
        match = re.fullmatch(r"dns:///([a-z0-9-]+):(\d+)", env[variable]["value"])
        assert match, env[variable]
        svc = services[match[1]]["spec"]
        assert int(match[2]) == port and svc["clusterIP"] == "None" and not svc.get("publishNotReadyAddresses")
        assert [p["targetPort"] for p in svc["ports"]] == [port]
        selected = [cs for labels, cs in templates if svc["selector"].items() <= labels.items()]
        assert selected and all(port in {p["containerPort"] for c in cs for p in c["ports"]} for cs in selected)
        assert all(
            labels["app.kubernetes.io/name"] == server
            for labels, _ in templates
            if svc["selector"].items() <= labels.items()
        )


@pytest.mark.parametrize("name", list(RENDERED))
def test_every_emptydir_has_a_size_limit(rendered: dict[str, Objects], name: str) -> None:
    """Sized from what each server writes (comments beside them); on a GPU /tmp also holds CUDA's cache."""
    gpu = name in GPU_PODS
    for pod_name, pod in _pods(rendered[name]).items():
        for v in pod.get("volumes", []):
            if "emptyDir" in v:
                limit = v["emptyDir"].get("sizeLimit")
                assert limit, (pod_name, v["name"])
                if gpu and v["name"] == "tmp" and pod_name in GPU_PODS[name]:
                    assert _mebibytes(limit.lower().removesuffix("i")) >= 1024 + 128, (pod_name, limit)


# ---- shutdown, scale, availability ---------------------------------------------------------------


@pytest.mark.parametrize("name", ["cpu", "gpu", "kserve"])
def test_every_server_drains_before_it_stops(rendered: dict[str, Objects], name: str) -> None:
    for pod_name, pod in _pods(rendered[name]).items():
        c = _main_container(pod)
        pre_stop = c["lifecycle"]["preStop"]["exec"]["command"]
        assert pre_stop[0] == "sleep", pod_name
        grace = pod["terminationGracePeriodSeconds"]
        assert int(pre_stop[1]) + 3 <= grace <= 60, pod_name


def test_torchserve_image_forwards_sigterm() -> None:
    dockerfile = (REPO / "serving/torchserve/Dockerfile").read_text()
    assert 'ENTRYPOINT ["python", "-m", "serving.torchserve.launch"' in dockerfile


@pytest.mark.parametrize("name", ["cpu", "gpu", "gpu-operator", "cpu-prometheus"])
def test_hpas_own_the_scale_and_pdbs_keep_one_serving(rendered: dict[str, Objects], name: str) -> None:
    deps = _kind(rendered[name], "Deployment")
    hpas = _kind(rendered[name], "HorizontalPodAutoscaler")
    pdbs = _kind(rendered[name], "PodDisruptionBudget")
    assert set(hpas) == set(deps) == set(pdbs)
    for dep_name, dep in deps.items():
        assert "replicas" not in dep["spec"], dep_name  # an apply would reset what the HPA chose
        hpa, pdb = hpas[dep_name], pdbs[dep_name]
        assert hpa["spec"]["scaleTargetRef"]["name"] == dep_name
        labels = dep["spec"]["template"]["metadata"]["labels"]
        assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
        if name.startswith("cpu") or dep_name == "gateway":
            assert hpa["spec"]["minReplicas"] >= 2, dep_name
            assert pdb["spec"].get("maxUnavailable", 1) <= hpa["spec"]["minReplicas"] - 1
        spread = dep["spec"]["template"]["spec"]["topologySpreadConstraints"][0]
        assert spread["topologyKey"] == "kubernetes.io/hostname"
        assert spread["labelSelector"]["matchLabels"].items() <= labels.items()


def test_serving_signal_hpas_use_the_adapter_rules(rendered: dict[str, Objects]) -> None:
    rules = yaml.safe_load((K8S / "components/hpa-serving-signal/prometheus-adapter-rules.yaml").read_text())
    exported = {r["name"]["as"] for r in rules}
    hpas = _kind(rendered["cpu-prometheus"], "HorizontalPodAutoscaler")
    for server in SERVERS:
        (metric,) = hpas[server]["spec"]["metrics"]
        assert metric["type"] == "Pods" and metric["pods"]["metric"]["name"] in exported
    assert _kind(rendered["cpu"], "HorizontalPodAutoscaler")["torchserve"]["spec"]["metrics"][0]["type"] == "Resource"


# ---- network policies and monitoring -------------------------------------------------------------


def test_metrics_ports_admitted_from_monitoring_are_the_scraped_ones(rendered: dict[str, Objects]) -> None:
    objs = rendered["cpu-prometheus"]
    services = _kind(objs, "Service")
    scraped = set()
    for monitor in _kind(objs, "ServiceMonitor").values():
        (svc,) = [
            s
            for s in services.values()
            if monitor["spec"]["selector"]["matchLabels"].items() <= s["metadata"]["labels"].items()
        ]
        for endpoint in monitor["spec"]["endpoints"]:
            (port,) = [p for p in svc["spec"]["ports"] if p["name"] == endpoint["port"]]
            scraped.add(port["port"])
    assert set(_kind(objs, "ServiceMonitor")) == {"gateway", "tfserving", "torchserve"}
    policy = _kind(objs, "NetworkPolicy")["metrics-from-monitoring"]
    assert {p["port"] for p in policy["spec"]["ingress"][0]["ports"]} == scraped
    assert "ServiceMonitor" not in {o["kind"] for o in rendered["cpu"]}  # optional: CRD-less clusters apply


def test_dashboard_ships_with_the_monitoring_component(rendered: dict[str, Objects]) -> None:
    (dashboard,) = [
        m
        for m in _kind(rendered["cpu-prometheus"], "ConfigMap").values()
        if "grafana_dashboard" in m["metadata"].get("labels", {})
    ]
    titles = " ".join(p["title"] for p in yaml.safe_load(dashboard["data"]["mnist-serving.json"])["panels"])
    for needed in ("requests/s", "p50", "p99", "errors", "queue", "batch size"):
        assert needed in titles, needed


# ---- KServe ---------------------------------------------------------------------------------------


def test_kserve_variant_points_the_gateway_at_the_predictors(rendered: dict[str, Objects]) -> None:
    objs = rendered["kserve"]
    isvcs = _kind(objs, "InferenceService")
    assert set(isvcs) == {"mnist-tfserving", "mnist-torchserve"}
    assert not _kind(objs, "Deployment").keys() - {"gateway"}
    for isvc in isvcs.values():
        assert isvc["apiVersion"] == "serving.kserve.io/v1beta1"
        assert isvc["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == "RawDeployment"
        (container,) = isvc["spec"]["predictor"]["containers"]
        assert container["name"] == "kserve-container" and container["image"].startswith("mnist-serving/")
        labels = isvc["spec"]["predictor"]["labels"]
        assert labels["app.kubernetes.io/component"] == "model-server"  # the NetworkPolicies apply
    env = {e["name"]: e.get("value") for e in _main_container(_pods(objs)["gateway"])["env"]}
    first_port = {n: i["spec"]["predictor"]["containers"][0]["ports"][0]["containerPort"] for n, i in isvcs.items()}
    assert first_port == {"mnist-tfserving": 8501, "mnist-torchserve": 8080}  # KServe maps it to port 80
    assert env["GATEWAY_TFSERVING_URL"] == "http://mnist-tfserving-predictor:80"
    assert env["GATEWAY_TORCHSERVE_URL"] == "http://mnist-torchserve-predictor:80"
    assert env["GATEWAY_TORCHSERVE_MANAGEMENT_URL"] == ""  # out of reach, as in every variant
    assert env["GATEWAY_TFSERVING_GRPC_ADDRESS"] == f"dns:///tfserving-grpc:{ports.TFSERVING_GRPC}"  # headless


# ---- load test ------------------------------------------------------------------------------------


def test_load_test_jobs_are_bounded_and_write_per_run(rendered: dict[str, Objects]) -> None:
    jobs = _kind(rendered["load-test"], "Job")
    assert set(jobs) == {"locust-master", "locust-worker"}
    master = jobs["locust-master"]["spec"]["template"]["spec"]
    env = {e["name"]: e.get("value") for e in _main_container(master)["env"]}
    assert env["GATEWAY_URL"] == "http://gateway:8000" and "--headless" in _main_container(master)["args"]
    for key in ("LOCUST_CSV", "LOCUST_HTML", "LOAD_EXACT_OUT"):
        assert env[key].startswith("/reports/$(LOAD_RUN)/"), key
    assert "$(LOAD_RUN)" in " ".join(_main_container(master)["command"])
    assert all(j["spec"]["activeDeadlineSeconds"] <= 900 for j in jobs.values())
    assert any(v.get("persistentVolumeClaim") for v in master["volumes"])


def test_worker_probes_are_cheap_and_patient(rendered: dict[str, Objects]) -> None:
    worker = _main_container(_kind(rendered["load-test"], "Job")["locust-worker"]["spec"]["template"]["spec"])
    for probe in ("readinessProbe", "livenessProbe"):
        p = worker[probe]
        assert "python" not in str(p["exec"]["command"]) and ":15B5 01" in p["exec"]["command"][-1]
        assert p["timeoutSeconds"] >= 5
    assert 5557 == 0x15B5  # the master's port, as /proc/net/tcp writes it
