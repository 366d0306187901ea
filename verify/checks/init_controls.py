"""``init-controls``: the six initialisation conditions of figure 2 against theory R1/R3 (P4).

Prediction (theory R1, R3; P4 of docs/theory.md):

* random aux head (A_S independent of A_T) → the class logits get no systematic
  teacher signal: **chance** (1/K) at every m;
* random class head → the features move toward the teacher's but are read out by
  an unrelated matrix: **chance**;
* random hidden layers (fc1, fc2 or both) with shared heads → **above chance**,
  **rising with m** (the transferred slice P_A has rank min(m, d));
* shared everything → **near the teacher** at large m (m ≈ d: P_A ≈ I), and at
  small m at least as good as random hidden layers (a shared initialisation loses
  only the teacher's update outside row(A), R3.2).

Beside these qualitative claims, check ``predict-student``'s prediction of every run at the largest m (the linear
response on reachable targets, the subsampled-Adam student elsewhere; student − prediction within ± 0.05) and the
linear response on every run.

Experiment: ``RunConfig`` with the student's init sources of
``limen.verify.subliminal.INIT_CONDITIONS`` × an m-grid up to d, several seeds.
Verdicts: "chance" is chance ± 0.05 (accuracy averaged over the m-grid per seed,
t-interval over seeds); "above chance" / "rising" / "ordering" are one-sided
(interval wholly on the predicted side); "near the teacher" means the paired gap
teacher − student at the largest m is at most 0.10.
"""

from __future__ import annotations

import numpy as np

from . import protocol
from .core import CheckContext, CheckResult, Preset, at_least, at_most, info, mean_ci, within

CHANCE_TOL = 0.05
NEAR_TEACHER = 0.10


def m_grid(ctx) -> tuple[int, ...]:
    d = protocol.width(ctx)
    if ctx.quick:
        return (max(1, d // 16), max(1, d // 4), d)
    return tuple(sorted({3, 10, 25, 50, 100, d}))  # figure 2 uses 3..250 at d = 256


def configs(ctx, n_seeds: int):
    """(condition, m, RunConfig) for every condition × m × seed."""
    from limen.verify.subliminal import INIT_CONDITIONS, RunConfig

    return [(cond, m, RunConfig(seed=s, m=m, **protocol.base(ctx, init=src)))
            for cond, src in INIT_CONDITIONS.items() for m in m_grid(ctx) for s in range(n_seeds)]


def table(labelled, records, field: str = "student_final_acc") -> dict:
    """{condition: {m: {seed: value}}} of a metric."""
    out: dict = {}
    for (cond, m, cfg), rec in zip(labelled, records):
        out.setdefault(cond, {}).setdefault(m, {})[cfg.seed] = float(rec["metrics"][field])
    return out


def _per_seed_mean(by_m: dict) -> list[float]:
    seeds = sorted(set.intersection(*(set(v) for v in by_m.values())))
    return [float(np.mean([by_m[m][s] for m in by_m])) for s in seeds]


def _paired(a: dict, b: dict) -> list[float]:
    return [a[s] - b[s] for s in sorted(set(a) & set(b))]


def run(ctx: CheckContext) -> CheckResult:
    n_seeds = ctx.n_seeds(full=10, quick=4)
    labelled = configs(ctx, n_seeds)
    from . import predict_student, student_prediction

    recs = predict_student.prediction_runs([c for *_, c in labelled], ctx, description="init-controls runs")
    response = student_prediction.table(labelled, recs, ("acc", "linear_response"))
    prediction = predict_student.predicted_table(labelled, recs)
    acc = table(labelled, recs)
    teacher = table(labelled, recs, "teacher_final_acc")
    K = protocol.n_classes(ctx)
    chance = 1.0 / K
    ms = m_grid(ctx)
    lo_m, hi_m = ms[0], ms[-1]
    rows = []
    for cond in ("random-aux-head", "random-class-head"):
        rows.append(within(f"{cond}: accuracy (mean over m)", chance, mean_ci(_per_seed_mean(acc[cond])),
                           CHANCE_TOL, tol_text=f"chance ± {CHANCE_TOL}"))
    for cond in ("random-hidden", "random-fc1", "random-fc2"):
        rows.append(at_least(f"{cond}: accuracy at m = {hi_m}", chance, mean_ci(list(acc[cond][hi_m].values())),
                             predicted=f"> chance {chance:.3g}"))
        rows.append(at_least(f"{cond}: accuracy rise m = {lo_m} → {hi_m}", 0.0,
                             mean_ci(_paired(acc[cond][hi_m], acc[cond][lo_m])), predicted="> 0 (rising)"))
    rows.append(at_most(f"shared: teacher − student accuracy at m = {hi_m}", NEAR_TEACHER,
                        mean_ci(_paired(teacher["shared"][hi_m], acc["shared"][hi_m])),
                        predicted=f"≤ {NEAR_TEACHER} (near teacher)"))
    rows.append(at_least(f"shared − random-hidden accuracy at m = {lo_m}", 0.0,
                         mean_ci(_paired(acc["shared"][lo_m], acc["random-hidden"][lo_m])),
                         predicted="≥ 0 (shared init helps at m < d)"))
    rows.append(info("teacher accuracy", mean_ci(list(teacher["shared"][hi_m].values()))))
    for cond in acc:  # check predict-student's prediction of the same runs, and the linear response on every run
        kind = predict_student.target_of(next(cfg for c, m, cfg in labelled if c == cond))
        for label, got in ((f"prediction ({predict_student.PREDICTORS[predict_student.predictor(kind)]})",
                            prediction), ("linear response", response)):
            pred = got[cond][hi_m]
            rows.append(within(f"{cond}: student − {label} accuracy at m = {hi_m}", 0.0,
                               mean_ci(_paired(acc[cond][hi_m], pred)), predict_student.TOL,
                               detail=f"predicted {np.mean(list(pred.values())):.3f} before training"))
    series = {cond: {str(m): mean_ci(list(by_m[m].values())).to_dict() for m in ms} for cond, by_m in acc.items()}
    plot = _plot(ctx, acc, teacher, ms, chance)
    return CheckResult(
        preset="init-controls",
        title="six initialisation conditions: chance / above chance / near teacher (P4)",
        rows=rows,
        config={"conditions": list(acc), "m": list(ms), "seeds": n_seeds, "d": protocol.width(ctx),
                "run": protocol.describe(ctx), "chance": chance, "chance_tol": CHANCE_TOL,
                "near_teacher": NEAR_TEACHER},
        notes=[f"{len(recs)} runs; student accuracy on the test set; intervals: Student t over {n_seeds} seeds."],
        plots=[plot],
        series={"student_accuracy_by_condition_and_m": series},
    )


def _plot(ctx, acc, teacher, ms, chance) -> str:
    from . import plots

    measured = {}
    for cond, by_m in acc.items():
        cis = [mean_ci(list(by_m[m].values())) for m in ms]
        measured[cond] = ([c.mean for c in cis], [c.lo for c in cis], [c.hi for c in cis])
    t = mean_ci([v for by_m in teacher["shared"].values() for v in by_m.values()]).mean
    return plots.curve(ctx.out / "accuracy_vs_m.png", ms, measured=measured, xlabel="aux logits m",
                       ylabel="student test accuracy", title="init controls: accuracy vs m", logx=True,
                       hlines={f"chance 1/K = {chance:.2f} (random heads)": chance, f"teacher {t:.2f}": t},
                       legend_outside=True)


PRESET = Preset(
    name="init-controls",
    title="six initialisation conditions vs predicted levels: random heads → chance, shared heads → above chance",
    run=run,
)
