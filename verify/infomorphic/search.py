"""Goal search: Optuna over the trivariate γ ∈ [−1, 1]^18 (γ_res = 0), as in the study.

The objective is the final validation accuracy of one trivariate run (test data are
never looked at). The study used TPE (100 start-up trials, multivariate, 500 trials at
N = 100, 100 epochs on MNIST); :func:`goal_search` runs the same sampler on a small
budget. Needs ``pip install 'limen[optuna]'``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["goal_search"]


def goal_search(n_trials: int, *, data: str = "digits", n_hidden: int = 100, epochs: int = 50,
                device: str = "auto", out: str | Path | None = None, seed: int = 0, data_root=None,
                startup_trials: int | None = None, **overrides) -> dict:
    """Search γ with Optuna's multivariate TPE; returns the best γ, its validation accuracy and all trials.

    Each trial's record (config with its γ, metrics) is appended to ``out/search.jsonl``.
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

    if n_trials < 1:
        raise ValueError("n_trials must be at least 1")
    dev = resolve_device(device)
    ds = load_dataset(data, root=data_root, device=dev)
    names = atom_names("trivariate")
    store = ResultStore(Path(out) / "search.jsonl") if out is not None else None
    trials = []

    def objective(trial):
        gamma = [trial.suggest_float(f"g{i:02d}", -1.0, 1.0) for i in range(18)] + [0.0]
        cfg = InfomorphicConfig(kind="trivariate", goal=tuple(gamma), data=data, n_hidden=n_hidden, epochs=epochs,
                                seed=seed, model="search", **overrides)
        rec = train_run(cfg, device=dev, data=ds, out=out, keep_atom_history=False)
        rec["trial"] = trial.number
        if store is not None:
            store.append(rec)
        val = float(rec["metrics"]["val_acc"])
        trials.append({"trial": trial.number, "gamma": gamma, "val_acc": val,
                       "test_acc": float(rec["metrics"]["test_acc"])})
        return val

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = optuna.samplers.TPESampler(seed=seed, multivariate=True,
                                         n_startup_trials=startup_trials or max(1, min(100, n_trials // 3)))
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(objective, n_trials=n_trials)
    best = [study.best_params[f"g{i:02d}"] for i in range(18)] + [0.0]
    order = np.argsort(-np.abs(best))
    return {"best_gamma": best, "best_val_acc": float(study.best_value), "best_trial": study.best_trial.number,
            "largest_terms": {names[i]: round(best[i], 4) for i in order[:6]}, "n_trials": n_trials,
            "data": data, "n_hidden": n_hidden, "epochs": epochs, "trials": trials}
