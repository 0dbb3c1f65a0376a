"""examples/client.py, run as a user would, against the session's servers: the same real digit (a 9)
through the gateway (image and rows) and over gRPC to each server."""

from __future__ import annotations

import os
import subprocess
import sys

from mnist_serving.ports import local_address, local_url
from serving.native.stack import ServingStack
from tests.conftest import REPO


def test_the_python_client_example(serving_stack: ServingStack) -> None:
    p = serving_stack.ports
    env = {
        **os.environ,
        "GATEWAY_URL": local_url(p.gateway),
        "TFSERVING_GRPC_ADDRESS": local_address(p.tfserving_grpc),
        "TORCHSERVE_GRPC_ADDRESS": local_address(p.torchserve_grpc_inference),
    }
    run = subprocess.run([sys.executable, "examples/client.py"], cwd=REPO, env=env, capture_output=True, text=True,
                         timeout=120)  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    lines = run.stdout.strip().splitlines()
    assert len(lines) == 4 and all(line.endswith(": 9") for line in lines), lines


def test_the_open_inference_protocol_example(serving_stack: ServingStack) -> None:
    """examples/oip_client.py: Triton's client over HTTP and gRPC, as in docs/gateway.md."""
    p = serving_stack.ports
    env = {**os.environ, "GATEWAY_HTTP": local_address(p.gateway), "GATEWAY_GRPC": local_address(p.gateway_grpc)}
    run = subprocess.run([sys.executable, "examples/oip_client.py"], cwd=REPO, env=env, capture_output=True,
                         text=True, timeout=120)  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    lines = run.stdout.strip().splitlines()
    assert lines[0] == "server ready: True; mnist-torchserve ready: True", lines
    truth = lines[1].split("(true ")[1].split(")")[0]
    assert all(line.split(" (true")[0].endswith(truth) and "version 1" in line for line in lines[1:]), lines


def test_the_client_example_says_how_to_use_it() -> None:
    run = subprocess.run([sys.executable, "examples/client.py", "--help"], cwd=REPO, capture_output=True, text=True)
    assert run.returncode == 0 and "usage:" in run.stdout
    run = subprocess.run([sys.executable, "examples/client.py", "no-such.png"], cwd=REPO, capture_output=True,
                         text=True)  # fmt: skip
    assert run.returncode == 2 and "no such file: no-such.png" in run.stderr
