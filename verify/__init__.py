"""Torch experiments, theory-vs-measurement checks, benchmarks and the ``limen`` CLI."""
