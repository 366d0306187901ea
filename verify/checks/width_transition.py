"""``width-transition``: width D of the layer the heads read, both heads frozen (figure 6; theory R1, P3).

Prediction (``theory.width_bound(D, m)``): with compatible, frozen heads the student's
features move only inside row(A) (rank min(m, D)). For D ≤ m, P_A = I and transfer is
exact -- the student reproduces the teacher (argmax agreement → 1); for D > m a share
1 − m/D of the feature gap is left (``lost_fraction``). So the remaining class-logit
gap ``‖y_S − y_T‖² / ‖y_S0 − y_T‖²`` is 0 up to D = m and rises as 1 − m/D after it:
the transition sits at D ≈ m, and the gap crosses one half at the D where
``lost_fraction`` = 1/2 (D = 2m).

Experiment: MLP with hidden widths (h1, D), shared initialisation, class and aux
heads frozen in teacher and student (the teacher's class head stays at its initial
value, so the heads are exactly shared), m fixed, a D grid around m, several seeds.
Comparison: per D, the remaining gap within the prediction ± 0.1; the measured
half-way D within a factor 2 of the predicted one; agreement at D ≤ m ≥ 0.95.
"""

from __future__ import annotations

import math

import numpy as np

from . import protocol
from .core import CheckContext, CheckResult, Preset, Row, Verdict, at_least, info, mean_ci, within, \
    within_factor
from .curves import crossing, crossing_ci
from .runs import engine_runs

TOL = 0.10
FACTOR = 2.0
AGREE = 0.95
FROZEN = "class_head:false,aux_head:false"


def grid(ctx) -> tuple[int, tuple[int, ...]]:
    if ctx.quick:
        return 4, (1, 2, 4, 8, 16, 32, 64)
    return 10, (2, 4, 6, 8, 10, 12, 16, 23, 32, 64, 128, 256)


def run(ctx: CheckContext) -> CheckResult:
    from limen import theory
    from limen.verify.subliminal import RunConfig

    from . import plots

    n_seeds = ctx.n_seeds(full=10, quick=4)
    m, Ds = grid(ctx)
    h1 = protocol.width(ctx)
    labelled = [(D, RunConfig(seed=s, **protocol.base(ctx, m=m, hidden=(h1, D), trainable=FROZEN,
                                                     teacher_trainable=FROZEN)))
                for D in Ds for s in range(n_seeds)]
    from .student_prediction import FIELD, response_measure

    recs = engine_runs([c for _, c in labelled], ctx, measure=["check", response_measure()], description="width runs")
    gap = np.zeros((n_seeds, len(Ds)))
    agree = np.zeros_like(gap)
    oracle_gap = np.zeros_like(gap)
    resp_gap = np.zeros_like(gap)
    for (D, cfg), rec in zip(labelled, recs):
        j = Ds.index(D)
        gap[cfg.seed, j] = rec["check"]["remaining_gap"]
        oracle_gap[cfg.seed, j] = rec["check"]["remaining_gap_oracle"]
        resp_gap[cfg.seed, j] = rec[FIELD]["remaining_gap"]["linear_response"]
        agree[cfg.seed, j] = rec["metrics"]["agreement"]
    lost = [float(theory.width_bound(D, m)["lost_fraction"]) for D in Ds]
    rows: list[Row] = []
    for j, D in enumerate(Ds):
        rows.append(within(f"D = {D}: remaining logit gap ‖y_S − y_T‖² / ‖y_S0 − y_T‖²", lost[j], mean_ci(gap[:, j]),
                           TOL, detail="predicted: theory.width_bound(D, m)['lost_fraction']"))
    fine = np.geomspace(min(Ds), max(Ds), 400)
    d_half = crossing(fine, [theory.width_bound(float(v), m)["lost_fraction"] for v in fine], 0.5, direction="up")
    mid = crossing_ci(Ds, gap, lambda c: 0.5, direction="up")
    if math.isnan(mid.mean):
        rows.append(Row("D where the remaining gap crosses 1/2", d_half, mid, f"×/÷ {FACTOR:g}", Verdict.FAIL,
                        "the gap already exceeds 1/2 at the smallest D (no exact regime seen)"))
    else:
        rows.append(within_factor("D where the remaining gap crosses 1/2", d_half, mid, FACTOR,
                                  detail=f"theory: lost_fraction = 1/2 (onset of loss at D = m = {m})"))
    small = [j for j, D in enumerate(Ds) if D <= m]
    rows.append(at_least(f"agreement with the teacher for D ≤ m = {m}", AGREE, mean_ci(agree[:, small].mean(axis=1)),
                         predicted="1 (exact transfer)", tol_text=f"≥ {AGREE}"))
    rows.append(info(f"agreement at D = {Ds[-1]}", mean_ci(agree[:, -1])))
    for j, D in enumerate(Ds):  # the linear-response prediction of the same runs (check predict-student)
        rows.append(within(f"D = {D}: remaining gap, measured − linear response", 0.0,
                           mean_ci(gap[:, j] - resp_gap[:, j]), TOL,
                           detail=f"predicted gap {resp_gap[:, j].mean():.3f} (theory preconditioned-response)"))
    rows.append(info(f"oracle fixed point: remaining gap at D = {Ds[-1]}", mean_ci(oracle_gap[:, -1]),
                     predicted=lost[-1]))
    cis = [mean_ci(gap[:, j]) for j in range(len(Ds))]
    ocis = [mean_ci(oracle_gap[:, j]) for j in range(len(Ds))]
    rcis = [mean_ci(resp_gap[:, j]) for j in range(len(Ds))]
    fig = plots.curve(ctx.out / "gap_vs_width.png", Ds,
                      measured={"trained student": ([c.mean for c in cis], [c.lo for c in cis], [c.hi for c in cis]),
                                "oracle fixed point": ([c.mean for c in ocis], [c.lo for c in ocis],
                                                       [c.hi for c in ocis]),
                                "linear response (predicted per run)": ([c.mean for c in rcis], [c.lo for c in rcis],
                                                                        [c.hi for c in rcis])},
                      predicted={"theory 1 − min(m, D)/D": (fine, [theory.width_bound(float(v), m)["lost_fraction"]
                                                                   for v in fine])},
                      xlabel="width D of the layer the heads read", ylabel="remaining class-logit gap",
                      title=f"width transition, heads frozen (m = {m})", logx=True,
                      vlines={f"D = m = {m}": m, f"predicted half-way D = {d_half:.3g}": d_half})
    return CheckResult(
        preset="width-transition",
        title="width D with both heads frozen: exact transfer for D ≤ m, loss 1 − m/D beyond (transition at D ≈ m)",
        rows=rows,
        config={"m": m, "D": list(Ds), "h1": h1, "seeds": n_seeds, "tolerance": TOL, "factor": FACTOR,
                "frozen": FROZEN, "run": protocol.describe(ctx)},
        notes=["remaining gap per run on the test set; half-way D: bootstrap interval over seeds (log-D interpolation)."],
        plots=[fig],
        series={"D": list(Ds), "gap_mean": [c.mean for c in cis], "gap_lo": [c.lo for c in cis],
                "gap_hi": [c.hi for c in cis], "predicted": lost, "linear_response": [c.mean for c in rcis],
                "agreement_mean": agree.mean(axis=0).tolist()},
    )


PRESET = Preset(
    name="width-transition",
    title="second-layer width D sweep with both heads frozen: transition at D ≈ m",
    run=run,
)
