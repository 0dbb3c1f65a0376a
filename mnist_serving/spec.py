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

# The TF Serving version label that points at the version the gateway uses.
STABLE_LABEL: Final = "stable"
