"""Benchmarks of the gateway's own code paths (the whole-stack benchmarks are in benchmarks/)."""
