"""docker-compose files, rendered by `docker-compose config` (no engine needed)."""

from __future__ import annotations

from mnist_serving import spec
from tests.deploy.conftest import compose

BASE = "docker-compose.yml"
GPU = "docker-compose.gpu.yml"
REQUIRE_GPU_ENV = spec.REQUIRE_GPU_ENV
STANDIN = "docker-compose.standin.yml"
SERVERS = ("tfserving", "torchserve")


def test_base_services_healthchecks_mean_model_ready() -> None:
    services = compose(BASE)["services"]
    assert set(services) == {"tfserving", "torchserve", "gateway"}  # the load profile is opt-in
    assert "AVAILABLE" in " ".join(services["tfserving"]["healthcheck"]["test"])
    ts_check = " ".join(services["torchserve"]["healthcheck"]["test"])
    assert ts_check == "CMD python -m serving.torchserve.ready"  # every worker READY; /ping is Healthy earlier
    assert "/readyz" in " ".join(services["gateway"]["healthcheck"]["test"])


def test_gateway_waits_for_healthy_servers_and_finds_them_by_name() -> None:
    gateway = compose(BASE)["services"]["gateway"]
    assert {k: v["condition"] for k, v in gateway["depends_on"].items()} == {s: "service_healthy" for s in SERVERS}
    env = gateway["environment"]
    assert env["GATEWAY_TFSERVING_URL"] == "http://tfserving:8501"
    assert env["GATEWAY_TORCHSERVE_URL"] == "http://torchserve:8080"


def test_ports_published_on_localhost_only() -> None:
    for name, service in compose(BASE)["services"].items():
        for port in service.get("ports", []):
            assert port["host_ip"] == "127.0.0.1", (name, port)


def test_gpu_override_reserves_nvidia_devices_and_switches_images() -> None:
    services = compose(BASE, GPU)["services"]
    for name in SERVERS:
        devices = services[name]["deploy"]["resources"]["reservations"]["devices"]
        # One device each, GPU 0 unless TFSERVING_GPU / TORCHSERVE_GPU pick another (two GPUs: one each).
        assert devices == [{"capabilities": ["gpu"], "driver": "nvidia", "device_ids": ["0"]}]
        assert services[name]["image"].split(":")[0].endswith("-gpu")  # the GPU overlays' names too
    assert services["tfserving"]["build"]["args"]["TFSERVING_IMAGE"].endswith("-gpu")
    assert services["torchserve"]["build"]["args"]["VARIANT"] == "gpu"
    assert "deploy" not in services["gateway"]
    for name in SERVERS:  # a server that would compute on the CPU refuses to start
        assert services[name]["environment"][REQUIRE_GPU_ENV] == "1", name
        assert services[name]["environment"]["CUDA_CACHE_PATH"].startswith("/tmp/")  # /tmp is the writable tmpfs
    tf_env = services["tfserving"]["environment"]
    assert tf_env["TF_FORCE_GPU_ALLOW_GROWTH"] == "true" and tf_env["NVIDIA_TF32_OVERRIDE"] == "0"
    assert services["torchserve"]["environment"]["TS_NUMBER_OF_GPU"] == "1"
    assert "nvidia-smi -L" in " ".join(services["tfserving"]["healthcheck"]["test"])
    assert REQUIRE_GPU_ENV not in compose(BASE)["services"]["torchserve"].get("environment", {})


def test_load_profile_runs_locust_master_and_workers_into_a_mounted_folder() -> None:
    services = compose(BASE, GPU, profile="load")["services"]
    master, worker = services["locust-master"], services["locust-worker"]
    command = " ".join(master["command"])
    assert "--master" in command and "--headless" in command and "--csv /reports/compose" in command
    for user in ("TFServingUser", "TorchServeUser", "GatewayTFServingUser", "GatewayCompareUser"):
        assert user in command
    assert "--worker" in " ".join(worker["command"]) and worker["deploy"]["replicas"] == 2
    assert any(v["target"] == "/reports" for v in master["volumes"])
    assert master["environment"]["GATEWAY_URL"] == "http://gateway:8000"


def test_standin_override_swaps_the_tfserving_image_only() -> None:
    base, swapped = compose(BASE)["services"], compose(BASE, STANDIN)["services"]
    assert swapped["tfserving"]["image"] == "mnist-serving/tfserving-standin:0.1.0"
    assert swapped["tfserving"]["build"]["dockerfile"] == "serving/tfserving_standin/Dockerfile"
    for key in ("ports", "healthcheck", "read_only", "restart", "cap_drop"):
        assert swapped["tfserving"][key] == base["tfserving"][key], key
    assert {k: v for k, v in swapped.items() if k != "tfserving"} == {k: v for k, v in base.items() if k != "tfserving"}


def test_published_ports_follow_the_native_env_vars() -> None:
    env = {"GATEWAY_PORT": "18000", "TFSERVING_REST_PORT": "18501", "TORCHSERVE_INFERENCE_PORT": "18080"}
    services = compose(BASE, env=env)["services"]
    published = {name: {p["target"]: int(p["published"]) for p in s.get("ports", [])} for name, s in services.items()}
    assert published["gateway"][8000] == 18000 and published["tfserving"][8501] == 18501
    assert published["torchserve"][8080] == 18080 and published["tfserving"][8500] == 8500  # unset: today's default


def test_torchserve_has_an_exec_temp_folder_and_init() -> None:
    ts = compose(BASE)["services"]["torchserve"]
    assert ts["init"] is True
    assert any(t.startswith("/home/model-server/tmp:exec") for t in ts["tmpfs"]) and "/tmp" in ts["tmpfs"]
