"""Benchmarks: each reports a speed ratio against a baseline measured in the same run."""
