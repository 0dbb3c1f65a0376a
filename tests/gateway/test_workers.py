"""GATEWAY_WORKERS=2: two uvicorn workers on one port, and /metrics from either sums both."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil

from mnist_serving.ports import local_url
from serving.native.process import free_ports
from tests.conftest import REPO

ROW = [0.0] * 784
REQUESTS = 40


def _total(metrics: str) -> float:
    pattern = r'^gateway_requests_total\{backend="tfserving",route="/v1/predict",status="200"\} (\S+)$'
    return sum(float(v) for v in re.findall(pattern, metrics, re.M))


def test_two_workers_share_one_port_and_one_metrics_view(serving_stack, tmp_path: Path) -> None:
    (port,) = free_ports(1)
    env = {
        **os.environ,
        "GATEWAY_PORT": str(port),
        "GATEWAY_GRPC_PORT": "0",
        "GATEWAY_WORKERS": "2",
        "GATEWAY_TFSERVING_URL": local_url(serving_stack.ports.tfserving_rest),
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path),
    }
    proc = subprocess.Popen([sys.executable, "-m", "gateway.app"], cwd=REPO, env=env, start_new_session=True)
    url = local_url(port)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline and proc.poll() is None, "gateway workers did not start"
            time.sleep(0.3)
        for _ in range(REQUESTS):  # a new connection each time: the kernel spreads them over the workers
            r = httpx.post(f"{url}/v1/predict?backend=tfserving", json={"instances": [ROW]}, timeout=10)
            assert r.status_code == 200, r.text
        # Whichever worker answers the scrape, it reports every worker's requests.
        totals = {_total(httpx.get(f"{url}/metrics", timeout=5).text) for _ in range(6)}
        assert totals == {float(REQUESTS)}
        workers = [c for c in psutil.Process(proc.pid).children() if "spawn" in " ".join(c.cmdline())]
        assert len(workers) == 2
        pids = {m.group(1) for f in os.listdir(tmp_path) if (m := re.match(r"counter_(\d+)\.db", f))}
        assert pids and pids <= {str(w.pid) for w in workers}  # samples come from the workers' own files
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
