"""Torch experiments, theory-vs-measurement checks, benchmarks and the ``limen`` CLI.

``limen.verify.check(prediction, experiment, ...)`` tests a prediction against training
runs (see :mod:`limen.verify.checks.api`); ``limen.verify.load_records(path)`` reads the
runs of a results folder (its ``results.db``), a ``records.jsonl`` or a Parquet export into
a pandas DataFrame (see :mod:`limen.verify.store`). Both are imported on first use.
"""


def __getattr__(name: str):
    if name == "check":
        from .checks.api import check

        return check
    if name == "load_records":
        from .store import load_records

        return load_records
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
