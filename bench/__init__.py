"""Throughput benchmarks: the engine against raw-driver and DBOS baselines, in one run."""
