# mnist-serving: `make serve` runs the stack natively, `make test` runs the test suite.
# Every target that needs Python depends on `setup`, which is idempotent.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
ARTIFACTS ?= artifacts
VERSION ?= 1
TRAIN_ARGS ?=
SERVERS ?=

.DEFAULT_GOAL := help
.PHONY: help setup train test test-containers lint serve serve-models mar rollout bench-servers bench-tuning bench-gateway bench-overload bench-validation bench-generator gpu-report load compare load-rollout load-sweep load-chaos load-matrix locust-ui up up-gpu up-offline load-compose down k8s-render deploy k8s-images k8s-config k8s-load clean

help: ## list these targets
	@grep -E '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{ \
		n = split($$2, w, " "); line = ""; first = 1; \
		for (i = 1; i <= n; i++) { \
			if (length(line) + length(w[i]) > 84) { printf "  %-17s %s\n", (first ? $$1 : ""), line; line = ""; first = 0 } \
			line = line (line == "" ? "" : " ") w[i] } \
		printf "  %-17s %s\n", (first ? $$1 : ""), line }'

setup: $(STAMP) ## create .venv with everything: training, serving, gateway, load tests, dev tools (needs Java 17; ~5 min once)

$(STAMP): requirements/*.txt
	@command -v java >/dev/null || { echo "setup: Java 17 is needed for TorchServe (apt-get install openjdk-17-jre-headless)"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements/dev.txt
	touch $@

$(ARTIFACTS)/manifest.json: | $(STAMP)
	$(PY) -m training.train --out $(ARTIFACTS) --version $(VERSION) $(TRAIN_ARGS)

train: $(STAMP) ## train both models (~2 min on 2 cores): SavedModel, TorchScript, ONNX and .mar archives of VERSION (default 1; others are kept), listed in artifacts/manifest.json; TRAIN_ARGS="--data mnist.npz" or "--same-weights pytorch"
	$(PY) -m training.train --out $(ARTIFACTS) --version $(VERSION) $(TRAIN_ARGS)

test: $(STAMP) ## the whole test suite with real servers on free ports (~11 min on 2 cores; needs Java, no Docker)
	$(PY) -m pytest

lint: $(STAMP) ## ruff and mypy (~1 min)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy .

serve-models: $(ARTIFACTS)/manifest.json ## run only TF Serving and TorchServe natively until Ctrl-C
	$(PY) -m serving.native --artifacts $(ARTIFACTS) --no-gateway

mar: $(ARTIFACTS)/manifest.json ## rebuild every version's TorchServe archives (artifacts/model-store/mnist-vN.mar, mnist_onnx-vN.mar) after a handler change, and their sha256 in the manifest (make train builds them)
	$(PY) -m training.archives --artifacts $(ARTIFACTS)

serve: $(ARTIFACTS)/manifest.json ## run the whole stack natively until Ctrl-C: both model servers and the gateway on :8000 (trains first if needed; ~1 min to start); SERVERS=torchserve runs a subset
	$(PY) -m serving.native --artifacts $(ARTIFACTS) $(if $(SERVERS),--servers $(SERVERS))

rollout: $(STAMP) ## ship model VERSION to both running servers with no failed request: load it beside the version serving, check it against the manifest's held-out check, switch, unload the old one after it drained (an older VERSION rolls back; a bad one is refused); CANARY=PCT sends PCT % of clients to it and keeps the old one, ROLLOUT_ARGS=--promote or --rollback ends the canary, ROLLOUT_ARGS=--compose acts on the compose stack (docs/rollout.md)
	$(PY) -m serving.rollout $(if $(filter-out file,$(origin VERSION)),--version $(VERSION)) $(if $(CANARY),--canary $(CANARY)) $(ROLLOUT_ARGS)

bench-servers: $(ARTIFACTS)/manifest.json ## benchmark each server hit directly: p50/p99 and req/s at 1, 8 and 32 users (~3 min)
	$(PY) -m benchmarks.servers --artifacts $(ARTIFACTS)

bench-tuning: $(ARTIFACTS)/manifest.json ## benchmark each TorchServe tuning choice: before, tuned, and tuned with one choice undone, side by side beside the floor, open loop, 3 interleaved repeats (~13 min)
	$(PY) -m load_tests.runs.tuning --artifacts $(ARTIFACTS) $(BENCH_ARGS)

bench-gateway: $(ARTIFACTS)/manifest.json ## benchmark the gateway's own cost: it vs a bare proxy, REST vs gRPC (~3 min); BENCH_ARGS=--backend torchserve
	$(PY) -m benchmarks.gateway --artifacts $(ARTIFACTS) $(BENCH_ARGS)

bench-overload: $(ARTIFACTS)/manifest.json ## the gateway offered 3x its capacity to TorchServe: goodput, admitted p99 and refusal p99, 3 repeats with 95 % intervals (~3 min); BENCH_ARGS="--factor 2"
	$(PY) -m benchmarks.overload --artifacts $(ARTIFACTS) $(BENCH_ARGS)

bench-validation: $(STAMP) ## benchmark how fast the gateway checks a request body (decoding, type scan, pydantic; ~30 s)
	$(PY) -m gateway.benchmarks.validation

load: $(ARTIFACTS)/manifest.json ## capacity report: QPS at a p99 SLO of each direct server beside the floor it matches, in blocks until every 95 % interval is within ±10 % (≤ 45 min on 2 cores) -> reports/<time>/; LOAD_ARGS="--list-targets"
	$(PY) -m load_tests.runs.capacity --artifacts $(ARTIFACTS) $(LOAD_ARGS)

compare: $(ARTIFACTS)/manifest.json ## a quick comparison of TF Serving and TorchServe, each beside its floor: p50/p99 at 50, 150 and 300 req/s, open loop, 4 blocks, 95 % intervals, paired ratios and a verdict (~5 min) -> reports/compare-<time>/; COMPARE_ARGS="--rates 100,400"
	$(PY) -m load_tests.runs.compare --artifacts $(ARTIFACTS) $(COMPARE_ARGS)

load-rollout: $(ARTIFACTS)/manifest.json ## model rollouts under open-loop load through the gateway at half its capacity: 1 -> 2 -> back on each server, then two bad versions; failed requests, p99 before/during/after, time to serving, which version answered over time (~6 min natively; LOAD_ARGS=--compose in containers) -> reports/rollout-<time>/
	$(PY) -m load_tests.runs.rollout --artifacts $(ARTIFACTS) $(LOAD_ARGS)

bench-generator: $(ARTIFACTS)/manifest.json ## benchmark the load generator itself: send lag and whole CPU at 500-2,000+ req/s (~1 min); BENCH_ARGS="--sender spin" for the old sender
	$(PY) -m load_tests.runs.calibration $(BENCH_ARGS)

gpu-report: $(ARTIFACTS)/manifest.json ## on an NVIDIA GPU machine: GPU vs CPU, TorchServe on the GPU, capacity beside the floors (~10 min) -> reports/gpu-<time>/
	$(PY) -m load_tests.runs.gpu --artifacts $(ARTIFACTS)

load-sweep: $(ARTIFACTS)/manifest.json ## batching sweep per server (max batch x delay), both bests re-measured 3x (~40 min) -> reports/sweep-<time>/
	$(PY) -m load_tests.runs.sweep --artifacts $(ARTIFACTS) $(LOAD_ARGS)

load-chaos: $(ARTIFACTS)/manifest.json $(STAMP) ## faults under load: `auto` at half capacity for 60 s, at 20 s its server killed, stalled for 3 s, then hung (the supervisor must restart it), one run each (~5 min); CHAOS_ARGS="--faults kill" one of them, CHAOS_ARGS=--compose in containers (kill and stall; needs Docker; ~10 min) -> reports/chaos-<time>/
	$(PY) -m load_tests.runs.chaos --artifacts $(ARTIFACTS) $(CHAOS_ARGS)

load-matrix: $(ARTIFACTS)/manifest.json ## a quick closed-loop look: targets x 1/8/32 users (~5 min; not a capacity figure) -> reports/<time>/
	$(PY) -m load_tests.runs.matrix --artifacts $(ARTIFACTS) $(LOAD_ARGS)

locust-ui: $(STAMP) ## Locust's web UI on 127.0.0.1:8089, against a stack started with `make serve`
	$(VENV)/bin/locust -f load_tests/generator/locustfile.py --web-host 127.0.0.1

# The compose plugin when the engine has it, else a standalone docker-compose (on PATH or in .venv).
COMPOSE ?= $(shell if docker compose version >/dev/null 2>&1; then echo "docker compose"; \
	elif command -v docker-compose >/dev/null 2>&1; then echo docker-compose; else echo $(VENV)/bin/docker-compose; fi)
OFFLINE_FILES := -f docker-compose.yml -f docker-compose.standin.yml
KUSTOMIZE := $(VENV)/bin/kubectl kustomize
# cpu, gpu, gpu-operator, cpu-prometheus (k8s/overlays/*), kserve or kserve-gpu (k8s/kserve*)
OVERLAY ?= cpu
K8S_DIR = $(if $(filter kserve kserve-gpu,$(OVERLAY)),k8s/$(OVERLAY),k8s/overlays/$(OVERLAY))
REGISTRY ?=

up: $(ARTIFACTS)/manifest.json ## docker compose: build the images and start the stack with the real TF Serving image (needs Docker and Docker Hub)
	$(COMPOSE) up -d --build

up-gpu: $(ARTIFACTS)/manifest.json ## docker compose on NVIDIA GPUs (needs Docker, the NVIDIA container toolkit and Docker Hub)
	$(COMPOSE) -f docker-compose.yml -f docker-compose.gpu.yml up -d --build

up-offline: $(ARTIFACTS)/manifest.json $(STAMP) ## docker compose with no Docker Hub or package index in the builds: the TF Serving stand-in, images built from local wheels (needs Docker; ~10 min the first time)
	$(PY) -m containers.offline all
	$(COMPOSE) $(OFFLINE_FILES) up -d --no-build

load-compose: ## run the compose `load` profile: a Locust master and 2 workers, headless (needs a compose stack up) -> reports/compose/
	mkdir -p reports/compose && chmod 0777 reports/compose
	$(COMPOSE) $(if $(wildcard .wheelhouse),$(OFFLINE_FILES)) --profile load up --no-build --exit-code-from locust-master locust-master locust-worker

down: ## docker compose: stop and remove the stack (either variant, load profile included)
	$(COMPOSE) $(OFFLINE_FILES) --profile load down -v --remove-orphans

test-containers: $(ARTIFACTS)/manifest.json $(STAMP) ## the container tests: builds the images offline, starts the compose stack, checks health, predictions, a crash, stop and load (needs Docker; ~5 min, more on a cold build)
	$(PY) -m containers.engine start
	CONTAINER_TESTS=1 $(PY) -m pytest tests/containers -s; status=$$?; \
	$(PY) -m containers.engine stop; exit $$status

k8s-render: $(STAMP) ## print the Kubernetes manifests of OVERLAY (cpu, gpu, gpu-operator, cpu-prometheus, kserve, kserve-gpu)
	@$(KUSTOMIZE) $(K8S_DIR)

deploy: ## kubectl apply -k the OVERLAY to the current kube context, namespace mnist-serving (needs a cluster)
	kubectl apply -k $(K8S_DIR)

k8s-images: $(ARTIFACTS)/manifest.json $(STAMP) ## build the OVERLAY's images as REGISTRY/...:<version>-<model hash> and set them in the overlay; PUSH=1 pushes (needs Docker)
	$(PY) -m containers.images build --overlay $(OVERLAY) --registry "$(REGISTRY)" $(if $(PUSH),--push)

k8s-config: $(STAMP) ## refresh k8s/config from serving/: each server's files rendered by its config owner (a test checks them)
	$(PY) -m serving.tfserving.config --kubernetes k8s/config
	$(PY) -m serving.torchserve.config --kubernetes k8s/config/config.properties

k8s-load: $(STAMP) ## an in-cluster Locust run (a Job per run); waits and fetches the report to reports/k8s/<run>/ (needs a cluster)
	$(PY) -m load_tests.runs.k8s run

clean: ## remove artifacts, run folders and reports (keeps .venv)
	rm -rf $(ARTIFACTS) run reports test-artifacts
