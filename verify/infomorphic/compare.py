"""Model comparison at one hidden size over seeds, and the study's ordering.

:func:`compare_models` trains every model of ``models`` for ``seeds`` seeds (resuming
from ``out/records.jsonl``), and summarises the test accuracies: per model the mean
with its Student-t 95 % interval over seeds, and whether the study's ordering at
N = 100 holds,

    backprop ≳ optimised > heuristic > readout > random-projection.

Rules (stated in the summary):

* ``A > B`` holds when the Welch 95 % confidence interval of ``mean_A − mean_B`` lies
  entirely above 0 (A is significantly better); it *fails* when the interval lies
  entirely below 0, and is *inconclusive* otherwise.
* ``A ≳ B`` ("about as good or better") holds when that interval lies entirely above
  ``−margin`` (default 1 percentage point), fails when it lies entirely below
  ``−margin``, and is inconclusive otherwise.

These are the verdicts of the ``limen check`` framework (``at_least`` with bound 0 or
``−margin`` on the difference).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import numpy as np

from ..records import ResultStore, config_key
from .train import preset, train_configs

__all__ = ["compare_models", "STUDY_ORDER", "STUDY_MNIST_N100", "summarise", "pairwise"]

#: the study's ordering at N = 100: (better, relation, worse)
STUDY_ORDER = (("backprop", "≳", "optimised"), ("optimised", ">", "heuristic"), ("heuristic", ">", "readout"),
               ("readout", ">", "random-projection"))
#: the study's MNIST test accuracies at N = 100 (%, medians digitised from the repo's figure; digest §2.9)
STUDY_MNIST_N100 = {"backprop": 95.4, "optimised": 95.2, "optimised-sparse": None, "heuristic": 93.4,
                    "readout": 91.9, "random-projection": 80.6, "bivariate-fc": 92.5, "bivariate-fc-optimised": 92.7,
                    "bivariate-fl": 83.8, "bivariate-fl-optimised": 89.0}
DEFAULT_MODELS = ("backprop", "optimised", "heuristic", "readout", "random-projection")
DEFAULT_EPOCHS = {"digits": 500, "fashion-mnist": 100, "mnist": 100}


def summarise(values: Sequence[float]) -> dict:
    """Mean, sample std, n and Student-t 95 % interval of per-seed values."""
    from ..checks.core import mean_ci

    m = mean_ci(values)
    sd = float(np.std(m.values, ddof=1)) if m.n >= 2 else math.nan
    return {"mean": m.mean, "sd": sd, "n": m.n, "ci_lo": m.lo, "ci_hi": m.hi, "values": [float(v) for v in m.values]}


def pairwise(a: Sequence[float], b: Sequence[float]) -> dict:
    """Welch 95 % interval of ``mean(a) − mean(b)``."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    diff = float(a.mean() - b.mean())
    if a.size < 2 or b.size < 2:
        return {"diff": diff, "lo": -math.inf, "hi": math.inf, "df": None}
    va, vb = a.var(ddof=1) / a.size, b.var(ddof=1) / b.size
    se = math.sqrt(va + vb)
    if se == 0:
        return {"diff": diff, "lo": diff, "hi": diff, "df": None}
    df = (va + vb) ** 2 / ((va ** 2 / (a.size - 1)) + (vb ** 2 / (b.size - 1)))
    from scipy import stats

    half = float(stats.t.ppf(0.975, df)) * se
    return {"diff": diff, "lo": diff - half, "hi": diff + half, "df": float(df)}


def _relation(rel: str, d: dict, margin: float) -> str:
    bound = 0.0 if rel == ">" else -margin
    if d["lo"] > bound or (rel == "≳" and d["lo"] >= bound):
        return "holds"
    return "fails" if d["hi"] < bound else "inconclusive"


def compare_models(data: str = "digits", n_hidden: int = 100, seeds: int = 5, epochs: int | None = None,
                   device: str = "auto", models: Sequence[str] = DEFAULT_MODELS, out: str | Path | None = None, *,
                   margin: float = 0.01, data_root=None, progress: bool = False, atoms_every: int = 10,
                   **overrides) -> dict:
    """Train ``models`` × ``seeds`` at ``n_hidden`` on ``data``; per-model accuracy CIs and the ordering.

    ``epochs`` defaults to :data:`DEFAULT_EPOCHS` (digits: 500, since an epoch there is 2 steps of 1024).
    ``out``: folder for ``records.jsonl`` (resume: finished runs are read back, not retrained)
    and the per-neuron atom files. ``overrides`` go to every run's config (e.g. ``batch_size``).
    ``margin`` (accuracy units, default 0.01 = 1 pp) is the tolerance of "≳".
    ``atoms_every``: hidden atoms are measured every k epochs (and at the last one).

    Returns ``{"records": [...], "summary": {...}}``; ``summary["models"][m]`` has the test
    accuracy mean, sd, n and 95 % interval (fractions), ``summary["ordering"]`` one entry per
    relation of :data:`STUDY_ORDER` among the compared models, ``summary["ordering_holds"]``
    True/False/None (None: some relation inconclusive), and ``summary["rules"]`` the rules.
    """
    if seeds < 1:
        raise ValueError("seeds must be at least 1")
    if epochs is None:
        epochs = DEFAULT_EPOCHS.get(data, 100)
    configs = [preset(m, data=data, n_hidden=n_hidden, epochs=epochs, seed=s, **overrides)
               for m in models for s in range(seeds)]
    have = {r["key"] for r in ResultStore(Path(out) / "records.jsonl").records()} if out is not None else set()
    todo = len({config_key(c) for c in configs} - have)
    from ..progress import progress as bar

    with bar(max(todo, 1), f"infomorphic {data} N={n_hidden}", enabled=progress or None) as tick:
        records = train_configs(configs, out=out, device=device, data_root=data_root, atoms_every=atoms_every,
                                on_run=lambda cfg, rec: tick.advance(1, f"{cfg.model} seed {cfg.seed}"))
    return {"records": records, "summary": summary_of(records, models, margin=margin, data=data,
                                                      n_hidden=n_hidden, epochs=epochs)}


def summary_of(records: Sequence[dict], models: Sequence[str], *, margin: float = 0.01, data: str = "",
               n_hidden: int | None = None, epochs: int | None = None) -> dict:
    """Per-model accuracy summaries and the ordering verdicts from run records."""
    acc: dict[str, list[float]] = {m: [] for m in models}
    for r in records:
        m = r["config"].get("model")
        if m in acc:
            acc[m].append(float(r["metrics"]["test_acc"]))
    per_model = {m: summarise(v) for m, v in acc.items() if v}
    for m, s in per_model.items():
        s["study_mnist_n100_pct"] = STUDY_MNIST_N100.get(m)
    ordering = []
    for a, rel, b in STUDY_ORDER:
        if a in per_model and b in per_model:
            d = pairwise(acc[a], acc[b])
            ordering.append({"relation": f"{a} {rel} {b}", "better": a, "worse": b, "rel": rel, **d,
                             "verdict": _relation(rel, d, margin)})
    verdicts = [o["verdict"] for o in ordering]
    holds = None if not ordering else (False if "fails" in verdicts else (None if "inconclusive" in verdicts
                                                                          else True))
    return {
        "data": data, "n_hidden": n_hidden, "epochs": epochs, "models": per_model, "ordering": ordering,
        "ordering_holds": holds,
        "rules": {
            ">": "Welch 95% CI of the difference of mean test accuracies (over seeds) lies above 0; "
                 "fails if it lies below 0; inconclusive otherwise",
            "≳": f"that CI lies above -{margin:g} (at most {100 * margin:g} pp worse); fails if it lies below "
                 f"-{margin:g}; inconclusive otherwise",
        },
    }
