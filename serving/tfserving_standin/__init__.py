"""A stand-in for ``tensorflow_model_server`` where the real binary is not installed.

It takes the same flags and config files, loads SavedModels the way the real server does
(a TF1 session through the SavedModel loader), and speaks the same REST and gRPC APIs.
Every REST response carries ``X-TFServing-Implementation: standin`` so clients can say which ran.
"""

import os

# TensorFlow is chatty at import; the real server logs far less.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

IMPLEMENTATION_HEADER = "X-TFServing-Implementation"
IMPLEMENTATION = "standin"
BANNER = "tfserving-standin: this is the Python STAND-IN for TensorFlow Serving, not tensorflow_model_server"
