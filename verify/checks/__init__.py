"""Theory-vs-measurement checks: ``limen check PRESET`` and :func:`limen.verify.check`.

A *check* is a prediction (from :mod:`limen.theory`, or a user callable), an
experiment (training runs of :mod:`limen.verify.subliminal`, or the linear
student of :mod:`limen.verify.linear`) and a comparison rule (tolerance,
confidence interval, verdict). A *preset* is a named, documented check that the
CLI runs; each lives in its own module of this package (see docs/checks.md).

Stable API (other packages may build presets on it)
---------------------------------------------------
``Measurement(mean, lo, hi, n, method, values)``
    a measured number with its 95 % interval; build it with :func:`mean_ci`
    (Student-t interval over seeds), :func:`bootstrap_ci`, :func:`exact` (a
    deterministic number) or :func:`worst` (the maximum/minimum over runs).
``Row(quantity, predicted, measured, tolerance, verdict, detail="", unit="")``
    one line of a check's table. Build rows with the comparison rules
    :func:`within` (the interval must lie inside predicted ± tol),
    :func:`within_factor` (inside predicted ×/÷ factor, for scales),
    :func:`at_most` / :func:`at_least` (one-sided, e.g. a bound),
    or :func:`info` (a reported number without a verdict).
``Verdict``: ``PASS``, ``FAIL``, ``INCONCLUSIVE`` (the interval straddles the
    tolerance edge, so the data cannot decide) and ``INFO`` (no prediction).
``CheckResult(preset, title, rows, config, notes, plots, run_info, elapsed_s, series)``
    what a preset returns; ``.to_dict()`` is the ``summary.json`` payload
    (``series``: the measured curves behind the plots, JSON-ready).
``CheckContext``
    what a preset receives: ``data``, ``data_dir``, ``device`` (a spec string;
    ``ctx.torch_device()`` resolves it), ``seeds`` (``None`` = the preset's
    default, use ``ctx.n_seeds(full, quick)``), ``quick``, ``out`` (this
    preset's report folder, created), ``records_path`` (``out/records.jsonl``, the
    export of this check's runs; the runs are in the report root's store
    ``out.parent/results.db``), ``progress``, ``reuse_stale``, ``keep_models``,
    ``executor``, ``address``. Engine runs: :func:`~limen.verify.checks.runs.engine_runs`
    ``(configs, ctx, measure=...)``; other experiments:
    :func:`~limen.verify.checks.runs.run_configs` ``(configs, ctx, fn, sources=...)``.
``Preset(name, title, run, in_all=True, quick_note="")`` and :func:`register`
    ``run(ctx) -> CheckResult``. Built-in presets are listed in
    :data:`PRESET_MODULES` (name -> module that defines ``PRESET``) so the
    registry knows every name without importing torch; a third-party preset
    may also call ``register(Preset(...))`` at import time.
:func:`get` (name -> Preset), :func:`names`, :func:`run_preset` (runs one
    preset into ``out/<name>/`` and writes ``summary.json``).

Plots: :mod:`limen.verify.checks.plots` (matplotlib, Agg backend).
Report writing and the terminal table: :mod:`limen.verify.checks.report`.

This module imports neither torch nor matplotlib, so ``limen --help`` stays fast.
"""

from __future__ import annotations

from .core import (
    CheckContext,
    CheckResult,
    Measurement,
    Preset,
    Row,
    Verdict,
    at_least,
    at_most,
    bootstrap_ci,
    exact,
    info,
    mean_ci,
    within,
    within_factor,
    worst,
)
from .registry import PRESET_MODULES, get, names, register, run_preset

__all__ = [
    "CheckContext", "CheckResult", "Measurement", "Preset", "Row", "Verdict",
    "at_least", "at_most", "bootstrap_ci", "exact", "info", "mean_ci", "within", "within_factor", "worst",
    "PRESET_MODULES", "get", "names", "register", "run_preset", "check",
]


def __getattr__(name: str):
    if name == "check":  # the Python API pulls in torch; import it only when asked for
        from .api import check

        return check
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
