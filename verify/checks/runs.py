"""A check's runs through the road (:mod:`limen.verify.road`): stored, resumable, shared between checks.

Every check of one report root (``--out``) uses one results store, ``OUT/results.db``; each
check's folder ``OUT/<check>/records.jsonl`` lists the runs it used. So checks that need the
same runs share them (trained once, whichever check comes first), a rerun resumes, and
two processes on one root split the work.
"""

from __future__ import annotations

from typing import Callable, Sequence


def _road_options(ctx) -> dict:
    opts = {"address": ctx.address} if ctx.address else {}
    return dict(view=ctx.out.name, reuse_stale=ctx.reuse_stale, executor=ctx.executor, executor_options=opts,
                progress=bool(ctx.progress))


def run_configs(configs: Sequence, ctx, fn: Callable[[object], dict], *, sources: Sequence[str],
                description: str = "runs") -> list[dict]:
    """Records for ``configs`` in order: stored ones read back, the rest computed by ``fn`` in this process.

    ``fn(config) -> metrics dict``; each new record ``{"key", "config", "metrics", "run_info"}`` is
    stored as soon as it finishes. ``sources``: the limen modules whose code fixes the numbers (their
    hash is the records' code version), e.g. the check's own module and what it calls.
    """
    from limen.verify.records import config_dict, config_key
    from limen.verify.road import EachProducer, Road
    from limen.verify.runinfo import run_info

    def compute(cfg) -> dict:
        return {"key": config_key(cfg), "config": config_dict(cfg), "metrics": fn(cfg), "run_info": run_info()}

    producer = EachProducer(ctx.out.name, compute, tuple(sources))
    opts = {**_road_options(ctx), "executor": "local", "executor_options": {}}
    return Road(ctx.out.parent, producer, description=description, **opts).run(configs)


def engine_runs(configs: Sequence, ctx, *, measure: bool | str | Sequence | tuple = False,
                description: str = "runs") -> list[dict]:
    """Records of subliminal-engine runs for ``configs`` (in order), trained only where needed.

    Runs go through :func:`limen.verify.subliminal.run_sweep` on the report root's store (shared
    by the checks writing there). ``measure``: measurements of the trained networks, stored with
    each record under their names -- ``True`` (``"check"``: :func:`.measure.run_measures`), a
    registered name, a ``Measure``, ``(field, function)`` or a list of these; ``function(models,
    data, **params)`` gets the run's ``RunModels`` and data set. With ``ctx.keep_models`` the
    networks are kept, so that a later measurement needs no training.
    """
    from limen.verify.subliminal.run import run_sweep

    if measure is True:
        measures = ["check"]
    elif not measure:
        measures = []
    elif isinstance(measure, (str, tuple)) or not isinstance(measure, Sequence):
        measures = [measure]
    else:
        measures = list(measure)
    return run_sweep(configs, ctx.out.parent, device=ctx.device, data_root=ctx.data_dir, measures=measures,
                     keep_models=ctx.keep_models, description=description, **_road_options(ctx))


def engine_runs_by(configs: Sequence, ctx, plan: Callable[[object], tuple]) -> list[dict]:
    """:func:`engine_runs` where each config has its own measurements: ``plan(config) -> (description, measures)``.

    One sweep per distinct plan (in the order they first appear), the records back in the order of ``configs``.
    """
    configs = list(configs)
    groups: list[tuple[tuple, list[int]]] = []   # measurements need not be hashable: compared by equality
    for j, cfg in enumerate(configs):
        description, measures = plan(cfg)
        key = (description, list(measures))
        same = next((mine for k, mine in groups if k == key), None)
        if same is None:
            groups.append((key, [j]))
        else:
            same.append(j)
    recs: list = [None] * len(configs)
    for (description, measures), mine in groups:
        for j, rec in zip(mine, engine_runs([configs[j] for j in mine], ctx, measure=measures,
                                            description=description)):
            recs[j] = rec
    return recs

