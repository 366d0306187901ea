"""Running a check's experiments with resume: records keyed by config in ``records.jsonl``."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Callable, Sequence

from limen.verify.records import ResultStore, config_dict, config_key


class _Quiet:
    def advance(self, n: int = 1, message: str | None = None) -> None:
        pass


def _bar(enabled: bool, total: int, description: str):
    """A progress bar (``limen.verify.progress``) when enabled, else a context yielding a no-op ticker."""
    from limen.verify.progress import progress

    return progress(total, description) if enabled else contextlib.nullcontext(_Quiet())


def run_configs(configs: Sequence, path: str | Path, fn: Callable[[object], dict], *,
                progress: bool = False, description: str = "runs") -> list[dict]:
    """Records for ``configs`` in order: finished ones read from ``path``, the rest computed by ``fn``.

    ``fn(config) -> metrics dict``; each new record ``{"key", "config", "metrics", "run_info"}``
    is appended to the store as soon as it finishes, so an interrupted check resumes.
    """
    from limen.verify.runinfo import run_info

    store = ResultStore(path)
    have = {r["key"]: r for r in store.records() if "key" in r}
    todo = [c for c in configs if config_key(c) not in have]
    if todo:
        info = run_info()
        with _bar(progress, len(todo), description) as tick:
            for cfg in todo:
                rec = {"key": config_key(cfg), "config": config_dict(cfg), "metrics": fn(cfg), "run_info": info}
                store.append(rec)
                have[rec["key"]] = rec
                tick.advance()
    return [have[config_key(c)] for c in configs]


def _usable(rec: dict | None, field: str | None) -> bool:
    return rec is not None and "metrics" in rec and (field is None or field in rec)


def _sibling_records(out: Path) -> dict[str, dict]:
    """Finished engine runs in the other checks' folders under the same report root."""
    found: dict[str, dict] = {}
    for path in sorted(out.parent.glob("*/records.jsonl")):
        if path.parent == out:
            continue
        for rec in ResultStore(path).records():
            if "key" in rec and "metrics" in rec:
                found[rec["key"]] = {**found.get(rec["key"], {}), **rec}  # keep every measurement seen
    return found


def engine_runs(configs: Sequence, ctx, *, measure: bool | tuple[str, Callable] = False,
                description: str = "runs") -> list[dict]:
    """Records of subliminal-engine runs for ``configs`` (in order), trained only where needed.

    A run is taken, in this order, from this check's ``records.jsonl``, from another check's
    folder under the same report root (same config key; checks share runs), or trained with
    :func:`limen.verify.subliminal.run_sweep`. A measurement needs the trained networks:
    groups are trained with ``train_group(..., return_models=True)`` and each record gets an
    entry ``field`` from ``fn(models, x_test, y_test) -> dict``; ``measure=(field, fn)``, and
    ``measure=True`` means ``("check", measure.run_measures)``.
    """
    from limen.verify.subliminal import plan_groups, run_sweep, train_group
    from limen.verify.subliminal.engine import get_data

    from .measure import run_measures

    if measure is True:
        measure = ("check", run_measures)
    field, fn = measure or (None, None)
    configs = list(configs)
    store = ResultStore(ctx.records_path)
    have = {r["key"]: r for r in store.records() if "key" in r}
    missing = [c for c in configs if not _usable(have.get(config_key(c)), field)]
    if missing:
        siblings = _sibling_records(ctx.out)
        reuse = [siblings[k] for k in dict.fromkeys(config_key(c) for c in missing)
                 if _usable(siblings.get(k), field)]
        if reuse:
            store.extend(reuse)
            have.update((r["key"], r) for r in reuse)
    todo = list({config_key(c): c for c in configs if not _usable(have.get(config_key(c)), field)}.values())
    if todo and fn is None:
        for rec in run_sweep(todo, out=ctx.out, device=ctx.device, progress=ctx.progress,
                             data_root=ctx.data_dir, description=description):
            have[rec["key"]] = rec
    elif todo:
        from limen.verify.device import resolve_device

        device = resolve_device(ctx.device)
        with _bar(ctx.progress, len(todo), description) as tick:
            for group in plan_groups(todo):
                recs, models = train_group(group, device, data_root=ctx.data_dir, return_models=True)
                data = get_data(group[0], device, ctx.data_dir)
                for rec, mod in zip(recs, models):
                    rec[field] = fn(mod, data.x_test, data.y_test)
                store.extend(recs)
                have.update((r["key"], r) for r in recs)
                tick.advance(len(recs))
    return [have[config_key(c)] for c in configs]
