"""Facts shared by training, serving, the gateway and the load tests."""
