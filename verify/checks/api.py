"""``limen.verify.check``: test your own prediction against training runs.

Example (see docs/checks.md)::

    from limen import theory, verify
    from limen.verify.subliminal import RunConfig

    runs = [RunConfig(m=m, hidden=(64, 64), student_epochs=2, noise_steps=30) for m in (4, 16, 64)]
    res = verify.check(theory.get("random-projector-mean"), runs,
                       measure="check.transfer_fraction", tolerance=0.05, seeds=3)
    print(res.verdict); [print(r.quantity, r.verdict) for r in res.rows]
"""

from __future__ import annotations

import inspect
import tempfile
from pathlib import Path
from typing import Any, Callable, Sequence

from .core import (CheckContext, CheckResult, Row, at_least, at_most, mean_ci, within, within_factor)

RULES = ("within", "factor", "at_most", "at_least")


def _numbers_from_config(cfg) -> dict:
    from limen.verify.subliminal.config import KNOWN_DATA

    hidden = cfg.student_hidden or cfg.hidden
    return {"m": cfg.m, "d": hidden[-1], "D": hidden[-1], "K": cfg.n_classes or KNOWN_DATA[cfg.data]}


def _predict(prediction, cfg, numbers, select) -> float:
    if callable(getattr(prediction, "evaluate", None)):  # a limen.theory Result
        nums = _numbers_from_config(cfg) if cfg is not None else {}
        nums.update(numbers(cfg) if callable(numbers) else (numbers or {}))
        fn = getattr(prediction, "evaluator", prediction.evaluate)
        try:
            params = inspect.signature(fn).parameters
            if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
                nums = {k: v for k, v in nums.items() if k in params}
        except (TypeError, ValueError):
            pass
        value = prediction.evaluate(**nums)
    elif callable(prediction):
        value = prediction(cfg) if cfg is not None else prediction()
    else:
        value = prediction
    if select is not None:
        value = select(value) if callable(select) else value[select]
    return float(value)


def _measure(record: dict, measure) -> float:
    if callable(measure):
        return float(measure(record))
    where, _, name = measure.rpartition(".")
    return float(record[where or "metrics"][name])


def _label(cfg, varying: Sequence[str]) -> str:
    from limen.verify.records import config_dict

    d = config_dict(cfg)
    return ", ".join(f"{k} = {d[k]}" for k in varying) or "config"


def _row(rule: str, quantity: str, predicted: float, values: list[float], tolerance: float) -> Row:
    m = mean_ci(values)
    if rule == "within":
        return within(quantity, predicted, m, tolerance)
    if rule == "factor":
        return within_factor(quantity, predicted, m, tolerance)
    if rule == "at_most":
        return at_most(quantity, predicted, m)
    return at_least(quantity, predicted, m)


def check(prediction: Any, experiment: Any, *, measure: str | Callable[[dict], float] = "student_final_acc",
          numbers: dict | Callable | None = None, select: str | Callable | None = None, rule: str = "within",
          tolerance: float = 0.05, seeds: int = 5, device: str = "auto", out: str | Path | None = None,
          name: str = "custom", quantity: str | None = None, data_dir: str | None = None,
          progress: bool = False) -> CheckResult:
    """Compare ``prediction`` with ``measure`` over ``seeds`` runs of ``experiment``; one row per config.

    ``prediction``: a :mod:`limen.theory` ``Result`` (evaluated with ``numbers``, by default the
    config's ``m``, ``d``/``D`` (last hidden width) and ``K`` that its evaluator accepts), a callable
    ``f(config) -> float`` (``f()`` for a callable experiment) or a number; ``select`` picks a
    field (key or callable) when the evaluation is a dict.
    ``experiment``: a ``RunConfig``, a list of them (each is run with seeds ``0..seeds-1``), or a
    callable ``experiment(seed) -> record dict | float``.
    ``measure``: a metric of the engine record (``"student_final_acc"``, ``"metrics.oracle_acc"``), a
    theory-facing measurement of :mod:`limen.verify.checks.measure` (``"check.transfer_fraction"``;
    these runs keep their trained networks to compute it), or ``f(record) -> float``.
    ``rule``: ``within`` (± ``tolerance``), ``factor`` (×/÷ ``tolerance``), ``at_most`` / ``at_least``
    (the prediction is a bound). Verdicts follow :mod:`limen.verify.checks.core`.
    ``out``: report folder root (its results store ``out/results.db`` keeps the runs, resumable and
    shared with the checks writing there; ``out/<name>/`` gets records.jsonl and summary.json);
    ``None`` keeps nothing.
    """
    if rule not in RULES:
        raise ValueError(f"rule must be one of {RULES}, got {rule!r}")
    if seeds < 1:
        raise ValueError("seeds must be at least 1")
    tmp = tempfile.TemporaryDirectory() if out is None else None
    root = Path(tmp.name if tmp else out)
    try:
        ctx = CheckContext(out=root / name, device=device, seeds=seeds, progress=progress, data_dir=data_dir)
        rows = []
        if callable(experiment):
            values = []
            for s in range(seeds):
                r = experiment(s)
                values.append(_measure(r, measure) if isinstance(r, dict) else float(r))
            rows.append(_row(rule, quantity or getattr(experiment, "__name__", "measured"),
                             _predict(prediction, None, numbers, select), values, tolerance))
            config = {"experiment": getattr(experiment, "__name__", repr(experiment)), "seeds": seeds}
        else:
            rows, config = _engine_rows(prediction, experiment, ctx, measure=measure, numbers=numbers,
                                        select=select, rule=rule, tolerance=tolerance, seeds=seeds,
                                        quantity=quantity)
        config.update({"rule": rule, "tolerance": tolerance,
                       "measure": measure if isinstance(measure, str) else getattr(measure, "__name__", "callable"),
                       "prediction": getattr(prediction, "name", getattr(prediction, "__name__", repr(prediction)))})
        result = CheckResult(name, f"user check: {config['prediction']} vs {config['measure']}", rows, config=config)
        if not tmp:
            from limen.verify.runinfo import run_info

            from .report import write_summary

            result.run_info = run_info()
            write_summary(result, ctx.out)
        return result
    finally:
        if tmp:
            tmp.cleanup()


def _engine_rows(prediction, experiment, ctx, *, measure, numbers, select, rule, tolerance, seeds, quantity):
    from limen.verify.subliminal import RunConfig
    from limen.verify.subliminal.run import varying_fields

    from .runs import engine_runs

    base = [experiment] if isinstance(experiment, RunConfig) else list(experiment)
    if not base or not all(isinstance(c, RunConfig) for c in base):
        raise TypeError("experiment must be a RunConfig, a list of RunConfigs, or a callable experiment(seed)")
    configs = [c.replace(seed=s) for c in base for s in range(seeds)]
    needs_models = isinstance(measure, str) and measure.startswith("check.")  # a measurement of the networks
    recs = engine_runs(configs, ctx, measure=needs_models, description="check runs")
    varying = [k for k in varying_fields(recs) if k != "seed"]
    rows = []
    for i, cfg in enumerate(base):
        vals = [_measure(r, measure) for r in recs[i * seeds:(i + 1) * seeds]]
        label = quantity or (measure if isinstance(measure, str) else getattr(measure, "__name__", "measured"))
        rows.append(_row(rule, f"{label} @ {_label(cfg, varying)}", _predict(prediction, cfg, numbers, select),
                         vals, tolerance))
    return rows, {"configs": len(base), "seeds": seeds, "varying": varying}
