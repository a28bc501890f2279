"""Benchmarks: each module prints JSON; run them with ``python -m benchmarks <name>``."""
