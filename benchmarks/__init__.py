"""Throughput benchmarks of the engine: ``python benchmarks/bench.py --help``."""
