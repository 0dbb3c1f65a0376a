"""The two model servers: TorchServe (real) and TensorFlow Serving (real binary or stand-in)."""
