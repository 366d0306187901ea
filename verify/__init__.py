"""Torch experiments, theory-vs-measurement checks, benchmarks and the ``limen`` CLI.

``limen.verify.check(prediction, experiment, ...)`` tests a prediction against training
runs (see :mod:`limen.verify.checks.api`); it is imported on first use.
"""


def __getattr__(name: str):
    if name == "check":
        from .checks.api import check

        return check
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
