"""Goal search: Optuna over the trivariate γ ∈ [−1, 1]^18 (γ_res = 0), as in the study.

The objective is the final validation accuracy of one trivariate run (test data are
never looked at). The study used TPE (100 start-up trials, multivariate, 500 trials at
N = 100, 100 epochs on MNIST); :func:`goal_search` runs the same sampler on a small
budget. Needs ``pip install 'limen[optuna]'``.

``executor="ray"`` (or a :class:`limen.verify.executor_ray.RayExecutor`) trains trials in
parallel, one per worker: the study is asked for a batch of trials, they train as
one-run groups on the workers, and the driver tells the results and writes the records
(TPE with ``constant_liar`` so that trials of one batch differ). See ``docs/distributed.md``.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

__all__ = ["goal_search"]


_DATASETS: dict = {}  # per process (a Ray worker loads the data set once for all its trials)


def _train_trials(group, *, device: str, data_root) -> list[dict]:
    """Train one-run groups of trial configs where the executor runs them (picklable)."""
    from ..data import load_dataset
    from ..device import resolve_device
    from .train import train_run

    dev = resolve_device(device)
    out = []
    for cfg in group:
        k = (cfg.data, str(dev), data_root)
        if k not in _DATASETS:
            _DATASETS[k] = load_dataset(cfg.data, root=data_root, device=dev)
        out.append(train_run(cfg, device=dev, data=_DATASETS[k], keep_atom_history=False))
    return out


def goal_search(n_trials: int, *, data: str = "digits", n_hidden: int = 100, epochs: int = 50,
                device: str = "auto", out: str | Path | None = None, seed: int = 0, data_root=None,
                startup_trials: int | None = None, executor="local", executor_options: dict | None = None,
                **overrides) -> dict:
    """Search γ with Optuna's multivariate TPE; returns the best γ, its validation accuracy and all trials.

    Each trial's record (config with its γ, metrics) is appended to ``out/search.jsonl``.
    ``executor``: ``"local"`` (trials one after another here) or ``"ray"`` / an executor
    object (a batch of trials at a time, one per worker; ``executor_options`` go to
    :func:`limen.verify.executors.get_executor`, e.g. ``{"address": "auto"}``).
    """
    try:
        import optuna
    except ImportError as exc:
        raise ValueError("the goal search needs Optuna: pip install 'limen[optuna]'") from exc
    from ..data import load_dataset
    from ..device import resolve_device
    from ..records import ResultStore
    from .goals import atom_names
    from .train import InfomorphicConfig, train_run

    from ..executors import get_executor

    if n_trials < 1:
        raise ValueError("n_trials must be at least 1")
    ex = get_executor(executor, **(executor_options or {}))
    names = atom_names("trivariate")
    store = ResultStore(Path(out) / "search.jsonl") if out is not None else None
    trials = []

    def trial_config(trial):
        gamma = [trial.suggest_float(f"g{i:02d}", -1.0, 1.0) for i in range(18)] + [0.0]
        return InfomorphicConfig(kind="trivariate", goal=tuple(gamma), data=data, n_hidden=n_hidden, epochs=epochs,
                                 seed=seed, model="search", **overrides)

    def finish(trial, rec) -> float:
        rec["trial"] = trial.number
        if store is not None:
            store.append(rec)
        val = float(rec["metrics"]["val_acc"])
        trials.append({"trial": trial.number, "gamma": [float(g) for g in rec["config"]["goal"]], "val_acc": val,
                       "test_acc": float(rec["metrics"]["test_acc"])})
        return val

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = optuna.samplers.TPESampler(seed=seed, multivariate=True, constant_liar=ex.name != "local",
                                         n_startup_trials=startup_trials or max(1, min(100, n_trials // 3)))
    study = optuna.create_study(direction="maximize", sampler=sampler)
    if ex.name == "local":
        dev = resolve_device(device)
        ds = load_dataset(data, root=data_root, device=dev)

        def objective(trial):
            return finish(trial, train_run(trial_config(trial), device=dev, data=ds, out=out, keep_atom_history=False))

        study.optimize(objective, n_trials=n_trials)
    else:
        _parallel_trials(study, ex, n_trials, trial_config, finish,
                         functools.partial(_train_trials, device=device, data_root=data_root))
    best = [study.best_params[f"g{i:02d}"] for i in range(18)] + [0.0]
    order = np.argsort(-np.abs(best))
    return {"best_gamma": best, "best_val_acc": float(study.best_value), "best_trial": study.best_trial.number,
            "largest_terms": {names[i]: round(best[i], 4) for i in order[:6]}, "n_trials": n_trials,
            "data": data, "n_hidden": n_hidden, "epochs": epochs, "trials": trials}


def _parallel_trials(study, ex, n_trials: int, trial_config, finish, fn) -> None:
    """Ask a batch of trials (one per worker), train them through ``ex``, tell the results."""
    from ..records import config_key

    keep = getattr(ex, "keep_workers", None)
    if keep is not None:
        ex.keep_workers = True  # workers keep the data set loaded from one batch to the next
    try:
        width = len(ex.start()) if hasattr(ex, "start") else 1
        done = 0
        while done < n_trials:
            asked = [study.ask() for _ in range(min(width, n_trials - done))]
            by_key: dict[str, list] = {}
            groups = []
            for trial in asked:
                cfg = trial_config(trial)
                by_key.setdefault(config_key(cfg), []).append(trial)
                groups.append([cfg])

            def on_done(group, recs):
                trial = by_key[recs[0]["key"]].pop()
                study.tell(trial, finish(trial, recs[0]))

            ex.map_groups(groups, fn, on_done)
            done += len(asked)
    finally:
        if keep is not None:
            ex.keep_workers = keep
            if not keep:
                ex.stop_workers()
