"""A Python client: one real digit from a PNG, through the gateway over HTTP (httpx), then straight
to each model server over gRPC (their own APIs, no gateway in between).

    make serve                                   # in another terminal
    .venv/bin/python examples/client.py          # examples/digit-9.png, an MNIST test digit
    .venv/bin/python examples/client.py my.png   # a photo or scan of a dark digit on light paper

Addresses default to `make serve`'s; GATEWAY_URL, TFSERVING_GRPC_ADDRESS and
TORCHSERVE_GRPC_ADDRESS override them. Prints one line per path and exits 1 if they disagree.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import grpc
import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository's contract package

from mnist_serving import ports, protos
from mnist_serving.spec import (
    INPUT_NAME,
    NUM_CLASSES,
    OUTPUT_NAME,
    SIGNATURE_NAME,
    TF_MODEL_NAME,
    TORCH_MODEL_NAME,
    TORCHSERVE_TENSOR_INPUT,
)

GATEWAY = os.environ.get("GATEWAY_URL", ports.local_url(ports.GATEWAY))
TF_GRPC = os.environ.get("TFSERVING_GRPC_ADDRESS", ports.local_address(ports.TFSERVING_GRPC))
TS_GRPC = os.environ.get("TORCHSERVE_GRPC_ADDRESS", ports.local_address(ports.TORCHSERVE_GRPC_INFERENCE))


def gateway_image(client: httpx.Client, png: bytes) -> tuple[int, np.ndarray]:
    """POST /v1/predict/image: the gateway preprocesses the upload; include_input returns the
    28x28 image the model received, which the other paths send as rows."""
    r = client.post(
        "/v1/predict/image",
        params={"backend": "tfserving", "include_input": "true"},
        files={"file": ("digit.png", png, "image/png")},
    )
    r.raise_for_status()  # errors are JSON: r.json()["error"] has status, type and message
    body = r.json()
    return body["labels"][0], np.asarray(body["input"], dtype=np.float32).reshape(1, -1)


def gateway_rows(client: httpx.Client, rows: np.ndarray) -> int:
    """POST /v1/predict: rows of 784 floats in [0, 1]; one row still goes in a list."""
    r = client.post("/v1/predict", params={"backend": "torchserve"}, json={"instances": rows.tolist()})
    r.raise_for_status()
    return int(r.json()["labels"][0])


def tfserving_grpc(rows: np.ndarray) -> int:
    """TF Serving's PredictionService/Predict with a float32 tensor."""
    request = protos.PredictRequest()
    request.model_spec.name = TF_MODEL_NAME
    request.model_spec.signature_name = SIGNATURE_NAME
    tensor = request.inputs[INPUT_NAME]
    tensor.dtype = protos.DT_FLOAT
    for d in rows.shape:
        tensor.tensor_shape.dim.add(size=d)
    tensor.tensor_content = rows.astype(np.float32).tobytes()
    with grpc.insecure_channel(TF_GRPC) as channel:
        predict = channel.unary_unary(
            protos.TF_PREDICT,
            request_serializer=protos.PredictRequest.SerializeToString,
            response_deserializer=protos.PredictResponse.FromString,
        )
        out = predict(request, timeout=10).outputs[OUTPUT_NAME]
    probs = np.frombuffer(out.tensor_content, np.float32) if out.tensor_content else np.asarray(out.float_val)
    return int(probs.reshape(-1, NUM_CLASSES)[0].argmax())


def torchserve_grpc(rows: np.ndarray) -> int:
    """TorchServe's InferenceAPIsService/Predictions: the project's handler takes the rows as
    little-endian float32 bytes in the input named "tensor" and answers the same way."""
    request = protos.PredictionsRequest(model_name=TORCH_MODEL_NAME)
    request.input[TORCHSERVE_TENSOR_INPUT] = rows.astype("<f4").tobytes()
    with grpc.insecure_channel(TS_GRPC) as channel:
        predict = channel.unary_unary(
            protos.TORCHSERVE_PREDICTIONS,
            request_serializer=protos.PredictionsRequest.SerializeToString,
            response_deserializer=protos.PredictionResponse.FromString,
        )
        answer = predict(request, timeout=10)
    return int(np.frombuffer(answer.prediction, dtype="<f4").reshape(-1, NUM_CLASSES)[0].argmax())


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("image", nargs="?", type=Path, default=Path(__file__).parent / "digit-9.png",
                   help="an image of one digit (default: examples/digit-9.png)")  # fmt: skip
    path = p.parse_args(argv[1:]).image
    if not path.is_file():
        p.error(f"no such file: {path}")
    with httpx.Client(base_url=GATEWAY, timeout=10) as client:
        label, rows = gateway_image(client, path.read_bytes())
        labels = {
            "gateway, image upload (TF Serving)": label,
            "gateway, JSON rows (TorchServe)": gateway_rows(client, rows),
        }
    labels["TF Serving, gRPC"] = tfserving_grpc(rows)
    labels["TorchServe, gRPC"] = torchserve_grpc(rows)
    for where, digit in labels.items():
        print(f"{where}: {digit}")
    return 0 if len(set(labels.values())) == 1 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
