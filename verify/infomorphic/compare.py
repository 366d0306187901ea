"""Model comparison at one hidden size over seeds, and the study's ordering where the data can decide it.

:func:`compare_models` trains every model of ``models`` for ``seeds`` seeds (resuming
from the results store ``out/results.db``), and summarises the test accuracies (each run's accuracy is
the mean over its stochastic evaluation passes): per model the mean with its Student-t
95 % interval over seeds, and the study's ordering at N = 100 (Schneider et al.,
arXiv 2412.02482; MNIST),

    backprop ≳ optimised > heuristic > readout > random-projection.

Rules (stated in the summary; the verdicts are those of ``limen check``,
:func:`~limen.verify.checks.core.at_least` on the Welch 95 % interval of the difference
of means, :func:`limen.verify.stats.welch_interval`):

* ``A > B`` holds when the interval of ``mean_A − mean_B`` lies above 0, fails when it
  lies below 0, and is inconclusive otherwise; ``A ≳ B`` likewise with the bound
  ``−margin`` (default 1 percentage point).
* A relation is **judged only where the comparison is informative**, otherwise it is
  reported as "not judged" with the reason:

  - the runs have the study's length — 100 epochs of 47 Adam steps on MNIST, so at
    least :data:`STUDY_STEPS` = 4 700 steps (100 epochs on MNIST or Fashion-MNIST; the
    embedded digits take 2 steps per epoch) — or both models reached a measured plateau
    (:func:`plateau`: the validation accuracy of the last 20 % of the epochs differs
    from that of the 20 % before by less than :data:`PLATEAU_TOL`, Student-t interval
    over seeds wholly inside ±0.5 pp);
  - a relation ``X > readout`` needs room above the readout: backprop must beat the
    readout, the Welch interval of ``backprop − readout`` lying above 0. On a data set
    that a linear readout already separates (the embedded digits) no hidden layer can
    show that it adds anything, so "X > readout" says nothing about the study's claim;
  - ``smoke=True`` (``limen check … --quick``) judges nothing.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import numpy as np

from ..records import config_key
from .train import finished_keys, preset, train_configs

__all__ = ["compare_models", "STUDY_ORDER", "STUDY_MNIST_N100", "STUDY_EPOCHS", "STUDY_STEPS", "summarise", "pairwise", "plateau",
           "summary_of", "relation_rows", "collapsed_share",
           "evaluation_spread"]

#: the study's ordering at N = 100: (better, relation, worse)
STUDY_ORDER = (("backprop", "≳", "optimised"), ("optimised", ">", "heuristic"), ("heuristic", ">", "readout"),
               ("readout", ">", "random-projection"))
#: the study's MNIST test accuracies at N = 100 (%, medians over seeds digitised from
#: ``paper_trivariate/Figures/MNIST_Performances.pdf`` in the study's public repository)
STUDY_MNIST_N100 = {"backprop": 95.4, "optimised": 95.2, "optimised-sparse": None, "heuristic": 93.4,
                    "readout": 91.9, "random-projection": 80.6, "bivariate-fc": 92.5, "bivariate-fc-optimised": 92.7,
                    "bivariate-fl": 83.8, "bivariate-fl-optimised": 89.0}
DEFAULT_MODELS = ("backprop", "optimised", "heuristic", "readout", "random-projection")
DEFAULT_EPOCHS = {"digits": 500, "fashion-mnist": 100, "mnist": 100}
#: the study's training length: 100 epochs of 47 steps (48 000 MNIST training images, batch 1024)
STUDY_EPOCHS = 100
STUDY_STEPS = STUDY_EPOCHS * 47
#: plateau: the last ``PLATEAU_WINDOW`` of the epochs against the same share before it
PLATEAU_WINDOW = 0.2
#: plateau: largest change of the mean validation accuracy between the two windows (fraction)
PLATEAU_TOL = 0.005
_NAMES = {"PASS": "holds", "FAIL": "fails", "INCONCLUSIVE": "inconclusive", "INFO": "not judged"}


def summarise(values: Sequence[float]) -> dict:
    """Mean, sample std, n and Student-t 95 % interval of per-seed values."""
    from ..checks.core import mean_ci

    m = mean_ci(values)
    sd = float(np.std(m.values, ddof=1)) if m.n >= 2 else math.nan
    return {"mean": m.mean, "sd": sd, "n": m.n, "ci_lo": m.lo, "ci_hi": m.hi, "values": [float(v) for v in m.values]}


def pairwise(a: Sequence[float], b: Sequence[float]) -> dict:
    """Welch 95 % interval of ``mean(a) − mean(b)`` (unbounded with fewer than two values on a side)."""
    from ..stats import welch_interval

    diff, half, df = welch_interval(a, b)
    if math.isnan(half):
        return {"diff": diff, "lo": -math.inf, "hi": math.inf, "df": None, "n": min(len(a), len(b))}
    return {"diff": diff, "lo": diff - half, "hi": diff + half, "df": None if math.isnan(df) else df,
            "n": min(len(a), len(b))}


def plateau(records: Sequence[dict], window: float = PLATEAU_WINDOW, tol: float = PLATEAU_TOL) -> dict:
    """Whether the runs' validation accuracy has stopped changing.

    Per run, Δ = mean validation accuracy over the last ``w = max(1, round(window · E))``
    epochs minus that over the ``w`` epochs before (E epochs, one evaluation pass each).
    Plateau when the Student-t 95 % interval of Δ over the runs lies inside ``±tol``
    (:func:`~limen.verify.checks.core.within`); a run shorter than ``2w`` epochs cannot show one.
    """
    from ..checks.core import Verdict, mean_ci, within

    deltas = []
    for r in records:
        val = [h["val_acc"] for h in r["metrics"]["history"][1:]]
        w = max(1, round(window * len(val)))
        if len(val) < 2 * w or not all(math.isfinite(v) for v in val[-2 * w:]):
            return {"plateau": False, "reason": "too few epochs (or no validation set) to measure a plateau"}
        deltas.append(float(np.mean(val[-w:]) - np.mean(val[-2 * w:-w])))
    if not deltas:
        return {"plateau": False, "reason": "no runs"}
    m = mean_ci(deltas)
    row = within("change of the validation accuracy", 0.0, m, tol)
    return {"plateau": row.verdict == Verdict.PASS, "change": m.mean, "lo": m.lo, "hi": m.hi, "window": w,
            "tol": tol, "reason": None if row.verdict == Verdict.PASS else
            f"validation accuracy still changes: {100 * m.mean:+.2f} pp [{100 * m.lo:+.2f}, {100 * m.hi:+.2f}] "
            f"between the last two windows of {w} epochs (plateau: inside ±{100 * tol:g} pp)"}


def _why_not_judged(a: str, b: str, models: dict, headroom: dict | None, smoke: bool) -> str | None:
    """The reasons a relation A rel B is not informative here (None: judge it)."""
    if smoke:
        return "smoke run (--quick): too few seeds and epochs to test the study's claim"
    reasons = []
    short = [m for m in (a, b) if models[m]["steps"] < STUDY_STEPS and not models[m]["plateau"]["plateau"]]
    if short:
        m = models[short[0]]
        reasons.append(f"runs of {m['epochs']} epochs ({m['steps']} steps), shorter than the study's "
                       f"{STUDY_EPOCHS} epochs of 47 steps ({STUDY_STEPS} steps), and no measured plateau of "
                       f"{' and '.join(short)}")
    if b == "readout":
        if headroom is None:
            reasons.append("no backprop runs to measure the room above the readout")
        elif not headroom["room"]:
            reasons.append(f"no room above the readout on this data: backprop − readout = "
                           f"{100 * headroom['diff']:+.2f} pp [{100 * headroom['lo']:+.2f}, {100 * headroom['hi']:+.2f}] "
                           f"does not lie above 0")
    return "; ".join(reasons) or None


def relation_rows(ordering: Sequence[dict]) -> list:
    """The check rows (``limen.verify.checks.core.Row``) of the ordering entries of :func:`summary_of`."""
    from ..checks.core import Measurement, at_least, info

    rows = []
    for o in ordering:
        m = Measurement(o["diff"], o["lo"], o["hi"], o["n"], "welch95")
        quantity = f"test accuracy {o['better']} − {o['worse']}"
        predicted = "> 0" if o["rel"] == ">" else f"≳ 0 (≥ {o['bound']:g})"
        if o["reason"]:
            rows.append(info(quantity, m, predicted=predicted, detail=f"not judged: {o['reason']}"))
        else:
            rows.append(at_least(quantity, o["bound"], m, predicted=predicted,
                                 detail=f"study's ordering: {o['relation']}"))
    return rows


def compare_models(data: str = "digits", n_hidden: int = 100, seeds: int = 5, epochs: int | None = None,
                   device: str = "auto", models: Sequence[str] = DEFAULT_MODELS, out: str | Path | None = None, *,
                   margin: float = 0.01, data_root=None, progress: bool = False, atoms_every: int = 10,
                   smoke: bool = False, **overrides) -> dict:
    """Train ``models`` × ``seeds`` at ``n_hidden`` on ``data``; per-model accuracy CIs and the ordering.

    ``epochs`` defaults to :data:`DEFAULT_EPOCHS` (digits: 500, since an epoch there is 2 steps of 1024).
    ``out``: folder of the results store (resume: finished runs are read back, not retrained)
    and the per-neuron atom files. ``overrides`` go to every run's config (e.g. ``batch_size``).
    ``margin`` (accuracy units, default 0.01 = 1 pp) is the tolerance of "≳".
    ``atoms_every``: hidden atoms are measured every k epochs (and at the last one).
    ``smoke``: a smoke run, no relation is judged.

    Returns ``{"records": [...], "summary": {...}}`` (see :func:`summary_of`).
    """
    if seeds < 1:
        raise ValueError("seeds must be at least 1")
    if epochs is None:
        epochs = DEFAULT_EPOCHS.get(data, 100)
    configs = [preset(m, data=data, n_hidden=n_hidden, epochs=epochs, seed=s, **overrides)
               for m in models for s in range(seeds)]
    todo = len({config_key(c) for c in configs} - finished_keys(configs, out))
    from ..progress import progress as bar

    with bar(max(todo, 1), f"infomorphic {data} N={n_hidden}", enabled=progress) as tick:
        records = train_configs(configs, out=out, device=device, data_root=data_root, atoms_every=atoms_every,
                                on_run=lambda cfg, rec: tick.advance(1, f"{cfg.model} seed {cfg.seed}"))
    return {"records": records, "summary": summary_of(records, models, margin=margin, data=data,
                                                      n_hidden=n_hidden, epochs=epochs, smoke=smoke)}


def evaluation_spread(records: Sequence[dict]) -> tuple[int, float]:
    """Fewest evaluation passes of a run, and the sd over a run's passes averaged over runs (NaN with one pass)."""
    passes = [r["metrics"].get("test_acc_passes") or [r["metrics"]["test_acc"]] for r in records]
    n = min(len(p) for p in passes)
    return n, float(np.mean([np.std(p, ddof=1) for p in passes])) if n > 1 else math.nan


def collapsed_share(records: Sequence[dict]) -> float | None:
    """Share of the hidden neurons of ``records`` whose label context fell into one bin (None: no context source)."""
    flags = [f for r in records for f in (r["metrics"].get("context_collapsed_hidden") or [])]
    return float(np.mean(flags)) if flags else None


def summary_of(records: Sequence[dict], models: Sequence[str], *, margin: float = 0.01, data: str = "",
               n_hidden: int | None = None, epochs: int | None = None, smoke: bool = False) -> dict:
    """Per-model accuracy summaries, the room above the readout and the ordering verdicts from run records.

    ``summary["models"][m]``: test accuracy mean, sd, n, 95 % interval (fractions), the study's
    MNIST value, ``epochs``, ``steps``, ``eval_passes`` and ``eval_sd`` (sd over a run's evaluation passes,
    mean over seeds), ``plateau`` (:func:`plateau`) and ``context_collapsed_share`` (hidden
    neurons whose context fell into one bin, over seeds). ``summary["headroom"]``:
    backprop − readout with its Welch interval and ``room``. ``summary["ordering"]``: one
    entry per relation of :data:`STUDY_ORDER` among the compared models, with ``verdict``
    (holds / fails / inconclusive / not judged) and ``reason`` (why not judged, else None).
    ``summary["ordering_holds"]``: True (every relation judged and holds), False (one
    fails) or None.
    """
    from ..checks.core import Measurement, Verdict, at_least

    by_model: dict[str, list[dict]] = {m: [] for m in models}
    for r in records:
        m = r["config"].get("model")
        if m in by_model:
            by_model[m].append(r)
    acc = {m: [float(r["metrics"]["test_acc"]) for r in recs] for m, recs in by_model.items() if recs}
    per_model = {}
    for m, v in acc.items():
        recs = by_model[m]
        n_passes, sd = evaluation_spread(recs)
        per_model[m] = {**summarise(v), "study_mnist_n100_pct": STUDY_MNIST_N100.get(m),
                        "epochs": min(int(r["config"].get("epochs", 0)) for r in recs),
                        "steps": min(int(r["metrics"].get("steps", 0)) for r in recs),
                        "eval_passes": n_passes, "eval_sd": sd, "plateau": plateau(recs), "context_collapsed_share": collapsed_share(recs)}
    headroom = None
    if "backprop" in acc and "readout" in acc:
        d = pairwise(acc["backprop"], acc["readout"])
        room = at_least("backprop − readout", 0.0, Measurement(d["diff"], d["lo"], d["hi"], d["n"], "welch95"))
        headroom = {**d, "room": room.verdict == Verdict.PASS}
    ordering = []
    for a, rel, b in STUDY_ORDER:
        if a in acc and b in acc:
            ordering.append({"relation": f"{a} {rel} {b}", "better": a, "worse": b, "rel": rel,
                             "bound": 0.0 if rel == ">" else -margin, **pairwise(acc[a], acc[b]),
                             "reason": _why_not_judged(a, b, per_model, headroom, smoke)})
    for o, row in zip(ordering, relation_rows(ordering)):
        o["verdict"] = _NAMES[row.verdict]
    verdicts = [o["verdict"] for o in ordering]
    holds = None if not ordering else (False if "fails" in verdicts else
                                       (True if all(v == "holds" for v in verdicts) else None))
    return {
        "data": data, "n_hidden": n_hidden, "epochs": epochs, "smoke": smoke, "models": per_model,
        "headroom": headroom, "ordering": ordering, "ordering_holds": holds,
        "rules": {
            ">": "Welch 95% CI of the difference of mean test accuracies (over seeds) lies above 0; "
                 "fails if it lies below 0; inconclusive otherwise",
            "≳": f"that CI lies above -{margin:g} (at most {100 * margin:g} pp worse); fails if it lies below "
                 f"-{margin:g}; inconclusive otherwise",
            "judged": f"only runs of at least the study's length ({STUDY_EPOCHS} epochs of 47 steps: {STUDY_STEPS} "
                      f"optimisation steps) or with a measured plateau "
                      f"(validation accuracy of the last {100 * PLATEAU_WINDOW:g}% of the epochs within "
                      f"±{100 * PLATEAU_TOL:g} pp of the {100 * PLATEAU_WINDOW:g}% before, 95% CI); 'X > readout' "
                      "only when backprop beats the readout (Welch 95% CI of backprop - readout above 0); "
                      "nothing in a smoke run",
        },
    }
