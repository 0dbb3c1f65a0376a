"""Benchmarks that print figures (not tests): latency and throughput of the servers and gateway."""
