"""Benchmarks: each script runs yuanrong's path and the raw-Ray path in one run (see docs/benchmarks.md)."""
