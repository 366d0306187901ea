"""``transfer-fraction``: the share of the teacher's class-logit change carried into the student vs min(m, d)/d (R2, P2).

Prediction (theory R1/R2): with compatible heads the student's features move only
inside row(A) (P_A of rank min(m, d)), and for a rotation-invariant random aux
head E[P_A] = min(m, d)/d · I (``theory.transfer_fraction_expected``), so the
student's class logits move by a fraction ≈ min(m, d)/d of the change that copying
the teacher's features would give. The head overlap τ = tr(C P_A Cᵀ)/tr(C Cᵀ) of
each run (the engine's ``metrics.tau``) is the same prediction for the actual heads.

Experiment: shared initialisation (all layers A), m-sweep at fixed width d, several
seeds, trained by the engine; on each run's test set
``f = ⟨y_S − y_S0, C_S(h_T − h_S0)⟩ / ‖C_S(h_T − h_S0)‖²`` (:mod:`.measure`).
Comparison: per m, f (t-interval over seeds) within min(m, d)/d ± 0.05; the
correlation of f with the prediction over runs (bootstrap) and the residual
(f − prediction) are reported, with the student's accuracy.
"""

from __future__ import annotations

import numpy as np

from . import protocol
from .core import CheckContext, CheckResult, Preset, at_most, bootstrap_ci, info, mean_ci, within
from .runs import engine_runs

TOL = 0.05


def m_grid(ctx) -> tuple[int, ...]:
    d = protocol.width(ctx)
    if ctx.quick:
        return (max(1, d // 32), max(1, d // 8), d // 2, d, 2 * d)
    return tuple(sorted({1, 3, 10, 25, 50, 100, d // 2, d, 2 * d}))


def run(ctx: CheckContext) -> CheckResult:
    from limen import theory
    from limen.verify.subliminal import RunConfig

    from . import plots

    n_seeds = ctx.n_seeds(full=10, quick=4)
    d = protocol.width(ctx)
    ms = m_grid(ctx)
    labelled = [(m, RunConfig(seed=s, m=m, **protocol.base(ctx))) for m in ms for s in range(n_seeds)]
    from .student_prediction import FIELD, response_measure

    recs = engine_runs([c for _, c in labelled], ctx, measure=["check", response_measure()],
                       description="transfer-fraction runs")
    by_m: dict[int, list[dict]] = {}
    for (m, _), rec in zip(labelled, recs):
        by_m.setdefault(m, []).append(rec)
    rows, pairs, resid = [], [], []
    curves = {k: ([], [], []) for k in ("f", "tau", "oracle", "acc", "oracle_acc", "teacher", "response", "response_acc")}
    resp_err = []
    for m in ms:
        pred = float(theory.transfer_fraction_expected(m, d))
        f = [r["check"]["transfer_fraction"] for r in by_m[m]]
        pairs += [(pred, v) for v in f]
        resid += [v - pred for v in f]
        rows.append(within(f"m = {m}: transferred fraction f", pred, mean_ci(f), TOL,
                           detail=f"predicted min(m, d)/d with d = {d}"))
        fr = [r[FIELD]["transfer_fraction"]["linear_response"] for r in by_m[m]]
        resp_err += [abs(a - b) for a, b in zip(f, fr)]
        rows.append(within(f"m = {m}: f, measured − linear response", 0.0, mean_ci([a - b for a, b in zip(f, fr)]), TOL,
                           detail=f"predicted per run before training (theory preconditioned-response), mean {np.mean(fr):.3f}"))
        for key, vals in (("f", f), ("tau", [r["metrics"]["tau"] for r in by_m[m]]),
                          ("oracle", [r["check"]["transfer_fraction_oracle"] for r in by_m[m]]),
                          ("acc", [r["metrics"]["student_final_acc"] for r in by_m[m]]),
                          ("oracle_acc", [r["metrics"]["oracle_acc"] for r in by_m[m]]),
                          ("teacher", [r["metrics"]["teacher_final_acc"] for r in by_m[m]]),
                          ("response", fr),
                          ("response_acc", [r[FIELD]["acc"]["linear_response"] for r in by_m[m]])):
            ci = mean_ci(vals)
            for lst, v in zip(curves[key], (ci.mean, ci.lo, ci.hi)):
                lst.append(v)
    rows.append(at_most("all runs: mean |f − linear response|", TOL, mean_ci(resp_err), predicted="0",
                        tol_text=f"≤ {TOL}"))
    rows.append(info("correlation of f with min(m, d)/d over runs",
                     bootstrap_ci(pairs, lambda p: float(np.corrcoef(np.asarray(p).T)[0, 1])), predicted=1.0))
    rows.append(info("residual f − min(m, d)/d, mean over runs", mean_ci(resid), predicted=0.0,
                     detail=f"RMS {float(np.sqrt(np.mean(np.square(resid)))):.3g}"))
    tau_pairs = [(r["metrics"]["tau"], r["check"]["transfer_fraction"]) for r in recs]
    rows.append(info("correlation of f with the run's head overlap τ",
                     bootstrap_ci(tau_pairs, lambda p: float(np.corrcoef(np.asarray(p).T)[0, 1])), predicted=1.0))
    for i, m in enumerate(ms):
        rows.append(info(f"m = {m}: student accuracy (oracle {curves['oracle_acc'][0][i]:.3f})",
                         mean_ci([r["metrics"]["student_final_acc"] for r in by_m[m]])))
    mm = np.geomspace(min(ms), max(ms), 200)
    theory_curve = (mm, np.asarray([theory.transfer_fraction_expected(v, d) for v in mm]))
    f1 = plots.curve(ctx.out / "fraction_vs_m.png", ms, measured={"measured f": curves["f"],
                                                                   "oracle fixed point (R1.1)": curves["oracle"],
                                                                   "head overlap τ": curves["tau"],
                                                                   "linear response (predicted)": curves["response"]},
                     predicted={"theory min(m, d)/d": theory_curve}, xlabel="aux logits m",
                     ylabel="fraction of the class-logit change transferred", logx=True,
                     title=f"transfer fraction vs m (d = {d}, shared init)", vlines={"m = d": d})
    chance = 1.0 / protocol.n_classes(ctx)
    f2 = plots.curve(ctx.out / "accuracy_vs_m.png", ms, measured={"student": curves["acc"],
                                                                   "oracle projected student": curves["oracle_acc"],
                                                                   "linear response (predicted)": curves["response_acc"]},
                     xlabel="aux logits m", ylabel="test accuracy", logx=True,
                     title=f"accuracy vs m (d = {d}, shared init)",
                     hlines={"chance": chance, "teacher": float(np.mean(curves["teacher"][0]))})
    return CheckResult(
        preset="transfer-fraction",
        title="fraction of the teacher's class-logit change carried into the student vs min(m, d)/d (R2)",
        rows=rows,
        config={"m": list(ms), "d": d, "seeds": n_seeds, "tolerance": TOL, "run": protocol.describe(ctx)},
        notes=["f = ⟨y_S − y_S0, C_S(h_T − h_S0)⟩ / ‖C_S(h_T − h_S0)‖² on the test set, per run."],
        plots=[f1, f2],
        series={k: {"m": list(ms), "mean": v[0], "lo": v[1], "hi": v[2]} for k, v in curves.items()},
    )


PRESET = Preset(
    name="transfer-fraction",
    title="m-sweep: transferred fraction of the class-logit change vs min(m, d)/d and τ, with accuracy",
    run=run,
)
