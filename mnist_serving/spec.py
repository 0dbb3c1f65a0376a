"""The model contract: one place for names and shapes every component relies on."""

from typing import Final

IMAGE_SIDE: Final = 28
INPUT_DIM: Final = IMAGE_SIDE * IMAGE_SIDE  # 784 pixels, row-major, scaled to [0, 1]
NUM_CLASSES: Final = 10

# Model names as the servers expose them.
TF_MODEL_NAME: Final = "mnist"
TORCH_MODEL_NAME: Final = "mnist"  # TorchScript
ONNX_MODEL_NAME: Final = "mnist_onnx"

# Tensor names in the SavedModel signature and the ONNX graph.
SIGNATURE_NAME: Final = "serving_default"
INPUT_NAME: Final = "pixels"
OUTPUT_NAME: Final = "probabilities"

# gRPC: the servers' own methods, and the TorchServe handler's input name for raw float32 rows
# (serving/torchserve/mnist_handler.py reads it; the gateway and the load tests send it).
TF_PREDICT_METHOD: Final = "/tensorflow.serving.PredictionService/Predict"
TORCHSERVE_PREDICTIONS_METHOD: Final = "/org.pytorch.serve.grpc.inference.InferenceAPIsService/Predictions"
TORCHSERVE_TENSOR_INPUT: Final = "tensor"

# The gateway's routing names (``?backend=``; ``auto`` picks among them).
BACKENDS: Final = ("tfserving", "torchserve", "torchserve-onnx")

# The TF Serving version label that points at the version the gateway uses.
STABLE_LABEL: Final = "stable"

# Rows one request may carry, the same on every path: the gateway, TorchServe's handler, and TF
# Serving's batching.config (`max_batch_size`, which with large-batch splitting is the largest task).
# Larger requests get a clear 400 (413 at the gateway). serving/tfserving/batching.config repeats
# these two numbers in text-proto form; a test keeps them equal.
MAX_ROWS_PER_REQUEST: Final = 256
# Rows one forward pass / session run takes: larger requests are split and reassembled in order.
MAX_EXECUTION_BATCH: Final = 32
# What each server's own queue holds: the gateway never lets its adaptive limit (rows in flight per
# backend) exceed it. TF Serving: batching.config's max_enqueued_batches x max_execution_batch_size;
# TorchServe: config.properties' job_queue_size (jobs, each at least one row). Tests keep both equal
# to the config owners (serving/tfserving/config.py, serving/torchserve/config.py).
TFSERVING_QUEUE_ROWS: Final = 100 * MAX_EXECUTION_BATCH
TORCHSERVE_QUEUE_JOBS: Final = 1000

# Input limits of the gateway (GATEWAY_MAX_* override them): a JSON body, an uploaded image file and
# its decoded pixels. The Kubernetes Ingress admits the largest body these allow (a test checks).
MAX_JSON_BODY_BYTES: Final = 4 * 1024 * 1024
MAX_IMAGE_BYTES: Final = 8 * 1024 * 1024
MAX_IMAGE_PIXELS: Final = 16_000_000

# Set to 1 in every GPU deployment: a model server that would compute on the CPU refuses to start
# (the TorchServe handler fails to load, the TF Serving stand-in exits) instead of serving slowly.
REQUIRE_GPU_ENV: Final = "REQUIRE_GPU"

# The Kubernetes namespace every manifest under k8s/ deploys into.
K8S_NAMESPACE: Final = "mnist-serving"

# An answer is uncertain (the gateway's `"uncertain": true`) when its top probability is strictly
# below this. Chosen by a stated rule on development sets of digits and non-digits (letters, noise,
# shapes, a cat...), then measured on the reported ones for both models: false alarms on real
# digits and detections of non-digits, `python -m training.uncertainty` (docs/training.md#uncertain-answers).
UNCERTAIN_BELOW: Final = 0.75

# How often the gateway re-reads each backend's versions, labels and default version (its status
# loop): after a rollout switches a server's default, new requests go to the new version within
# about this (plus one status call). serving/rollout waits longer than that, plus a request's
# budget, before it unloads the old version.
GATEWAY_VERSION_REFRESH_S: Final = 0.5
