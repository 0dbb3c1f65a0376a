"""The gateway through the Open Inference Protocol (KServe v2) with Triton's own client, as any
v2 client would talk to it (pip install "tritonclient[http,grpc]"; the project's venv has it).

    make serve                                   # in another terminal
    .venv/bin/python examples/oip_client.py      # three MNIST test digits, over HTTP and gRPC

Models: mnist-tfserving, mnist-torchserve, mnist-torchserve-onnx, and mnist (the gateway's routing).
GATEWAY_HTTP (host:port, default 127.0.0.1:8000) and GATEWAY_GRPC (default 127.0.0.1:8001) override.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient

HTTP = os.environ.get("GATEWAY_HTTP", "127.0.0.1:8000")
GRPC = os.environ.get("GATEWAY_GRPC", "127.0.0.1:8001")
SAMPLE = Path(__file__).resolve().parents[1] / "load_tests" / "data" / "mnist_test_sample.npz"


def infer(client: httpclient.InferenceServerClient | grpcclient.InferenceServerClient, module, model: str,
          rows: np.ndarray) -> tuple[list[int], list[bool], str]:  # fmt: skip
    """Rows of 784 floats in [0, 1] (FP32) in; labels, uncertain flags and the answering version out."""
    pixels = module.InferInput("pixels", list(rows.shape), "FP32")
    pixels.set_data_from_numpy(rows)
    outputs = [module.InferRequestedOutput(name) for name in ("label", "uncertain")]
    result = client.infer(model, [pixels], outputs=outputs)
    version = result.get_response()["model_version"] if module is httpclient else result.get_response().model_version
    return result.as_numpy("label").tolist(), result.as_numpy("uncertain").tolist(), version


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="mnist-torchserve", help="default: %(default)s")
    args = p.parse_args(argv[1:])
    sample = np.load(SAMPLE)
    rows, truth = (sample["x"][:3] / 255).astype(np.float32), sample["y"][:3].tolist()
    http = httpclient.InferenceServerClient(HTTP)
    grpc = grpcclient.InferenceServerClient(GRPC)
    print(f"server ready: {http.is_server_ready()}; {args.model} ready: {http.is_model_ready(args.model)}")
    for name, client, module in (("HTTP", http, httpclient), ("gRPC", grpc, grpcclient)):
        labels, uncertain, version = infer(client, module, args.model, rows)
        print(f"{name}: labels {labels} (true {truth}), uncertain {uncertain}, version {version}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
