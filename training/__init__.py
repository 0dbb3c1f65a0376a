"""Train the MNIST classifier in Keras and PyTorch and export what the servers load."""
