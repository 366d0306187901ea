"""``aux-perturbation`` and ``class-perturbation``: accuracy vs Gaussian head noise σ (figure 5; theory R4, P5).

Aux head (R4): perturbing the student's aux head, A_S = A_T + E with E i.i.d. N(0, σ²),
breaks aux compatibility once ‖E‖₂ reaches σ_min(A), i.e. at
``σ* = theory.aux_perturbation_sigma_critical(m, d)`` (ε(σ) = σ/σ* = 1; 0.024 at
m = 10, d = 256), a scale, compared within a factor 2.

Class head (``class-perturbation-sigma-critical``, exact): the class head gets no
gradient, so the perturbed student has the unperturbed student's features ``h`` and
logits ``y``, plus ``E h + e``; its expected accuracy is
``acc(σ) = theory.class_perturbation_accuracy(y, h, labels, σ, bias=True)`` and σ* solves
``acc(σ*) = (acc(0) + 1/K)/2``. Both are computed per seed from the σ = 0 run's test
logits and features; the measured curve (one draw of E per seed) must follow the
predicted one, and the measured σ_mid must lie within 20 % of the same half-way
crossing taken on the seed-mean predicted curve (per-seed σ* are reported).

Beside σ*, check ``predict-student``'s prediction of every run, made before it trains: a perturbed aux head is
not the teacher's, so at σ > 0 the subsampled-Adam student (theory ``subsampled-adam-moment``) and at σ = 0 the
linear response; its accuracy curve against the measured one (within 0.03 averaged over the grid) and its
half-way crossing against σ_mid (within 20 %). The linear response of every run is reported the same way.

Experiment: shared initialisation, m = 10, Gaussian noise on the student's head's
weights and biases before distillation (the reference's figure-5 scripts; the aux
head stays trainable, so the student can partly undo E), a σ grid, several seeds.
Measured: σ_mid, where the seed-mean accuracy has fallen half-way from its σ = 0
value to chance (interpolated in log σ; bootstrap interval over seeds), and
accuracy(0) − accuracy(σ_max) > 0.
"""

from __future__ import annotations

import math

import numpy as np

from . import protocol
from .core import (CheckContext, CheckResult, Measurement, Preset, Row, Verdict, at_least, info, mean_ci, within,
                   within_factor)
from .curves import crossing, crossing_ci
from .runs import engine_runs

FACTOR = 2.0        # aux head: σ* is a scale
CLASS_FACTOR = 1.2  # class head: σ* is exact in expectation; the slack is for one draw of E per σ and seed
CURVE_TOL = 0.03    # class head: |measured − predicted| accuracy, averaged over the σ grid
M = 10


def sigma_grid(ctx) -> tuple[float, ...]:
    if ctx.quick:
        return (0.0, 0.005, 0.01, 0.02, 0.04, 0.08, 0.16)
    from limen.verify.subliminal.sweeps import SIGMAS

    return SIGMAS  # the reference's figure-5 grid, linspace(0, 0.2, 40)


def _run(ctx: CheckContext, head: str) -> CheckResult:
    from limen import theory
    from limen.verify.subliminal import RunConfig

    from . import plots

    n_seeds = ctx.n_seeds(full=10, quick=4)
    d, K = protocol.width(ctx), protocol.n_classes(ctx)
    chance = 1.0 / K
    half = lambda curve: 0.5 * (curve[0] + chance)  # noqa: E731 - half-way from σ = 0 to chance
    sigmas = sigma_grid(ctx)
    labelled = [(sig, RunConfig(seed=s, **protocol.base(
        ctx, m=M, perturb=(f"student:{head},std={sig!r},timing=before_student_training",))))
        for sig in sigmas for s in range(n_seeds)]
    if head == "class_head":  # first: these runs keep their networks, and the sweep below reuses them
        pred = _class_predictions([c for sig, c in labelled if sig == 0.0], ctx, sigmas)
    from . import predict_student, student_prediction

    description = f"{head} perturbation runs"
    recs = (predict_student.prediction_runs([c for _, c in labelled], ctx, description=description)
            if head == "aux_head" else engine_runs([c for _, c in labelled], ctx, description=description))
    acc = np.zeros((n_seeds, len(sigmas)))
    resp, prediction = np.zeros_like(acc), np.zeros_like(acc)
    for (sig, cfg), rec in zip(labelled, recs):
        acc[cfg.seed, sigmas.index(sig)] = rec["metrics"]["student_final_acc"]
        if head == "aux_head":
            resp[cfg.seed, sigmas.index(sig)] = rec[student_prediction.FIELD]["acc"]["linear_response"]
            prediction[cfg.seed, sigmas.index(sig)] = predict_student.predicted(rec)
    rows: list[Row] = []
    predicted = {}
    if head == "aux_head":
        sigma_star = float(theory.aux_perturbation_sigma_critical(M, d))
        star_text = f"σ* = theory.aux_perturbation_sigma_critical(m={M}, d={d})"
        factor = FACTOR
        # check predict-student's prediction of every run before training (σ > 0: a mismatched head, the
        # subsampled-Adam student; σ = 0: the linear response), and the linear response on every run
        rows.append(within("accuracy: measured − prediction, mean over the σ grid (paired per seed)", 0.0,
                           mean_ci((acc - prediction).mean(axis=1)), CURVE_TOL,
                           detail="the subsampled-Adam student (theory subsampled-adam-moment) at σ > 0, the linear "
                                  "response at σ = 0"))
        rows.append(within("accuracy: measured − linear response, mean over the σ grid (paired per seed)", 0.0,
                           mean_ci((acc - resp).mean(axis=1)), CURVE_TOL,
                           detail="theory preconditioned-response and cross-head-target (the perturbed aux head, target mismatched-head)"))
        mean_resp, mean_prediction = resp.mean(0), prediction.mean(0)
        mids = {"prediction": float(crossing(sigmas, mean_prediction, half(mean_prediction), direction="down")),
                "linear response": float(crossing(sigmas, mean_resp, half(mean_resp), direction="down"))}
        predicted = {"prediction acc(σ) (seed mean)": (sigmas, mean_prediction),
                     "linear response acc(σ) (seed mean)": (sigmas, mean_resp)}
    else:
        stars = np.array([p["sigma_star"] for p in pred])
        pred_acc = np.array([p["predicted_accuracy"] for p in pred])
        # the prediction for σ_mid: the same half-way crossing, of the seed-mean *predicted* curve
        mean_pred = pred_acc.mean(0)
        sigma_star = float(crossing(sigmas, mean_pred, half(mean_pred), direction="down"))
        star_text = (f"predicted σ_mid: half-way crossing of the seed-mean of acc(σ) = "
                     f"theory.class_perturbation_accuracy(y, h, labels, σ, bias=True), each seed's from its "
                     f"unperturbed student (test logits y, features h), interpolated on the σ grid as the "
                     f"measurement is; per-seed exact σ* (class_perturbation_sigma_critical) "
                     f"{', '.join(f'{v:.4g}' for v in stars)}")
        factor = CLASS_FACTOR
        rows.append(within("accuracy: measured − predicted, mean over the σ grid (paired per seed)", 0.0,
                           mean_ci((acc - pred_acc).mean(axis=1)), CURVE_TOL,
                           detail="predicted: theory.class_perturbation_accuracy on each seed's σ = 0 run"))
        predicted = {"predicted acc(σ) (class-perturbation-sigma-critical, seed mean)": (sigmas, mean_pred)}
    top = mean_ci(acc[:, 0])
    if top.lo - chance < 0.05 or not math.isfinite(sigma_star):
        rows.insert(0, Row("accuracy midpoint σ_mid", sigma_star, None, f"×/÷ {factor:g}", Verdict.INCONCLUSIVE,
                           "no transfer at σ = 0 (accuracy not clearly above chance): midpoint undefined"))
    else:
        mid = crossing_ci(sigmas, acc, half, direction="down")
        rows.insert(0, within_factor("accuracy midpoint σ_mid (half-way from σ = 0 to chance)", sigma_star, mid,
                                     factor, detail=star_text))
        if head == "aux_head" and math.isfinite(mid.mean):
            rows.append(info("ε(σ_mid) = σ_mid / σ*", Measurement(mid.mean / sigma_star, mid.lo / sigma_star,
                                                                  mid.hi / sigma_star, mid.n, mid.method),
                             predicted=1.0))
            for label, value in mids.items():
                if math.isfinite(value):
                    rows.append(within_factor(f"σ_mid: measured vs the {label}'s half-way crossing", value, mid,
                                              CLASS_FACTOR, detail="the same crossing on the seed mean of the "
                                                                   "predicted accuracy curve"))
    rows.append(at_least(f"accuracy(σ = 0) − accuracy(σ = {sigmas[-1]:g})", 0.0, mean_ci(acc[:, 0] - acc[:, -1]),
                         predicted="> 0 (falls with σ)"))
    rows.append(info("accuracy at σ = 0", top))
    rows.append(info(f"accuracy at σ = {sigmas[-1]:g}", mean_ci(acc[:, -1]), predicted=f"→ chance {chance:.3g}"))
    cis = [mean_ci(acc[:, j]) for j in range(len(sigmas))]
    curve = ([c.mean for c in cis], [c.lo for c in cis], [c.hi for c in cis])
    vlines = {f"predicted {'σ*' if head == 'aux_head' else 'σ_mid'} = {sigma_star:.3g}": sigma_star}
    measured_mid = rows[0].measured
    vspans = ({f"measured σ_mid = {measured_mid.mean:.3g} (95% CI shaded)":
               (measured_mid.mean, measured_mid.lo, measured_mid.hi)}
              if measured_mid is not None and math.isfinite(measured_mid.mean) else {})
    fig = plots.curve(ctx.out / "accuracy_vs_sigma.png", sigmas, measured={"student": curve}, predicted=predicted,
                      xlabel=f"σ of the Gaussian noise on the student's {head}", ylabel="student test accuracy",
                      title=f"{head} perturbation (m = {M}, d = {d})", vlines=vlines, vspans=vspans,
                      hlines={f"chance {chance:.2g}": chance, "half-way level": half(np.asarray(curve[0]))})
    name = "aux-perturbation" if head == "aux_head" else "class-perturbation"
    return CheckResult(
        preset=name,
        title=(f"accuracy vs σ of noise on the student's {head}: measured midpoint vs predicted σ* "
               + ("(R4)" if head == "aux_head" else "and acc(σ) (class-perturbation-sigma-critical, exact)")),
        rows=rows,
        config={"head": head, "m": M, "d": d, "sigmas": list(sigmas), "seeds": n_seeds, "sigma_star": sigma_star,
                **({} if head == "aux_head" else {"sigma_star_per_seed": [float(v) for v in stars]}),
                "factor": factor, "run": protocol.describe(ctx)},
        notes=[star_text, "σ_mid: bootstrap (percentile) interval over seeds; inf = not reached on the σ grid."],
        plots=[fig],
        series={"sigma": list(sigmas), "mean": curve[0], "lo": curve[1], "hi": curve[2],
                **({"epsilon": [float(v) for v in theory.aux_perturbation_epsilon(np.asarray(sigmas), M, d)],
                    "linear_response": [float(v) for v in mean_resp],
                    "prediction": [float(v) for v in mean_prediction]}
                   if head == "aux_head" else {"predicted": [float(v) for v in mean_pred]})},
    )


def _class_predictions(configs, ctx, sigmas) -> list[dict]:
    """Per seed, the class-head prediction from the unperturbed (σ = 0) run's trained networks."""
    from functools import partial

    from .measure import class_head_prediction

    field = "class_head_prediction"
    recs = engine_runs(configs, ctx, measure=(field, partial(class_head_prediction, sigmas=sigmas)),
                       description="class-head predictions (σ = 0 runs)")
    return [r[field] for r in recs]


PRESETS = {
    "aux-perturbation": Preset("aux-perturbation", "accuracy vs σ on the student's aux head: midpoint vs σ* (R4)",
                               lambda ctx: _run(ctx, "aux_head")),
    "class-perturbation": Preset("class-perturbation",
                                 "accuracy vs σ on the student's class head: measured vs exact acc(σ) and σ*",
                                 lambda ctx: _run(ctx, "class_head")),
}
