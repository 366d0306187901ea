"""``predict-student``: the prediction of the trained student against the trained student.

Prediction: before the student trains, from its initial network, the trained teacher, the noise law and Adam's
settings. Where the teacher's change is reachable in the student's own parameters (shared body and aux head), the
linear response (theory ``preconditioned-response``, ``kronecker-response``; :mod:`limen.verify.subliminal.predict`):
the student's parameters after T Adam steps are ``θ_S0 + D^{1/2}[I − u_T(M)]D^{-1/2}Δ*``, evaluated through the real
network. On every other run (a random body layer or aux head) the subsampled-Adam student
(:mod:`limen.verify.subliminal.surrogate`, theory ``subsampled-adam-moment``): the real network trained by Adam on a
twentieth of the noise (one step per two training steps) with the training batch's second moment, its first layer's
gradient and second moment from the drift by integration by parts over the noise law (theory
``noise-integration-by-parts``). Both are reported on every run. Beside them:
the exact linearised student (the same linear model trained by Adam itself,
:mod:`limen.verify.subliminal.linear_student`; student vs it is the error of linearising, it vs the response the
error of the optimiser model; at full size also the response's own frozen optimiser model with the
exact, coupled Gauss–Newton G, which splits that error into Adam's adaptivity and the curvature model), and two
older predictions of the same runs: the free-feature oracle
``C_S[h_S0 + A_S⁺(z_T − z_S0)] + c_S`` (engine metric ``oracle_acc``) and the linearised (eNTK) student, the same
response with the function target on every run.

Experiment: the six initialisation conditions × an m-grid (quick: 1, d/16, d/4, d; full: 1, 3, 10, 25, 50,
100, d) × seeds; the runs of ``init-controls`` are shared when both checks write into one ``--out``.
Verdicts: per condition and m, the paired difference student − predicted accuracy within ± 0.05 (t-interval
over seeds); for the shared-body conditions whose class head is the teacher's initial one (``shared``), the
per-example correlation of the predicted and measured class-logit changes at least 0.9 and the transfer
fraction within ± 0.05 of the measured one; pooled over all runs, the mean |student − predicted| accuracy at
most 0.05. The oracle's and the eNTK student's pooled errors are reported the same way (their honest FAILs
are findings).
"""

from __future__ import annotations

import numpy as np

from . import init_controls, protocol
from .core import CheckContext, CheckResult, Preset, at_least, at_most, exact, info, mean_ci, within, worst
from .runs import engine_runs_by
from .student_prediction import (CERT_ALPHA, CERT_K, FIELD, FROZEN_FIELD, LIN_FIELD, MARGIN_K, PARTIAL_FIELD,
                                 SUB_FIELD, frozen_measure, linearised_measure, partial_measure, response_measure,
                                 subsampled_measure, table)

TOL = 0.05
MIN_CORR = 0.9
TIGHT = 0.5   # on shared runs with accuracy ≥ 0.5 the guaranteed accuracy should be at least half of it
LIN_QUICK_SEEDS = 2   # seeds with the exact linearised student under --quick (it costs one training each)
FROZEN_QUICK_SEEDS = 0   # seeds with the frozen exact-G and last-layer-exact models under --quick: none (time budget);
#                          every seed at full size
PREDICTORS = {"prediction": "prediction", "linear_response": "linear response",
              "subsampled": "subsampled-Adam student", "linearised": "exact linearised student",
              "frozen": "frozen-Adam model with the exact G", "partial": "last-layer-exact student",
              "entk": "linearised (eNTK) student",
              "oracle": "free-feature oracle"}


def target_of(cfg) -> str:
    """A run's target kind (``reachable`` / ``mismatched-head`` / ``function``) from its config alone, before anything
    is built: ``predict.target_kind`` on the network shapes ``training.specs`` gives."""
    from types import SimpleNamespace

    from limen.verify.subliminal import predict, training

    teacher, student = training.specs(cfg)
    return predict.target_kind(SimpleNamespace(config=cfg, teacher_spec=teacher, student_spec=student))


def predictor(target: str) -> str:
    """The model that predicts a run with this target kind: the linear response where the teacher's change is reachable
    in the student's own parameters (shared body and aux head), the subsampled-Adam student on every other run (a
    random body layer or aux head, a perturbed aux head)."""
    return "linear_response" if target == "reachable" else "subsampled"


def predicted(rec: dict, quantity: str = "acc") -> float:
    """The prediction of a run's ``quantity`` (``acc``, ``transfer_fraction``, ``remaining_gap``, ``corr``) from its
    stored measurements, by :func:`predictor`."""
    if predictor(rec[FIELD]["target"]) == "linear_response":
        return float(rec[FIELD][quantity]["linear_response"])
    return float(rec[SUB_FIELD][quantity])


def predicted_table(labelled, records, quantity: str = "acc") -> dict:
    """{condition: {m: {seed: prediction}}} of :func:`predicted` over ``(condition, m, config)``-labelled records."""
    out: dict = {}
    for (cond, m, cfg), rec in zip(labelled, records):
        out.setdefault(cond, {}).setdefault(m, {})[cfg.seed] = predicted(rec, quantity)
    return out


def prediction_runs(configs, ctx, measure=(), description: str = "runs") -> list[dict]:
    """``engine_runs`` of ``configs`` with ``measure``, the linear response on every run and the subsampled-Adam
    student on the runs it predicts (:func:`predictor` of :func:`target_of`), so that :func:`predicted` reads every
    record."""
    base = (*measure, response_measure())

    def plan(cfg):
        return description, base + ((subsampled_measure(),) if predictor(target_of(cfg)) == "subsampled" else ())

    return engine_runs_by(configs, ctx, plan)


def m_grid(ctx) -> tuple[int, ...]:
    d = protocol.width(ctx)
    if ctx.quick:
        return tuple(sorted({1, max(1, d // 16), max(1, d // 4), d}))
    return tuple(sorted({1, 3, 10, 25, 50, 100, d}))


def configs(ctx, n_seeds: int):
    """(condition, m, RunConfig) for every condition × m × seed (same configs as init-controls where they overlap)."""
    from limen.verify.subliminal import INIT_CONDITIONS, RunConfig

    return [(cond, m, RunConfig(seed=s, m=m, **protocol.base(ctx, init=src)))
            for cond, src in INIT_CONDITIONS.items() for m in m_grid(ctx) for s in range(n_seeds)]


def run(ctx: CheckContext) -> CheckResult:
    from . import plots

    n_seeds = ctx.n_seeds(full=10, quick=4)
    labelled = configs(ctx, n_seeds)
    # the exact linearised student and the frozen exact-G model train: with --quick on the first LIN_QUICK_SEEDS /
    # FROZEN_QUICK_SEEDS seeds only (time budget). Each run is asked for once, with its seed's measurements.
    n_lin = min(n_seeds, LIN_QUICK_SEEDS) if ctx.quick else n_seeds
    n_frozen = min(n_seeds, FROZEN_QUICK_SEEDS) if ctx.quick else n_seeds
    base = ["check", response_measure(), subsampled_measure()]
    tiers = [(n_frozen, base + [linearised_measure(), frozen_measure(), partial_measure()],
              "predict-student runs with the frozen-Adam model, the exact G and the last-layer-exact student"),
             (n_lin, base + [linearised_measure()], "predict-student runs with the exact linearised student"),
             (n_seeds, base, "predict-student runs")]
    # a run goes with the first tier its seed is below
    recs = engine_runs_by([cfg for *_, cfg in labelled], ctx,
                          lambda cfg: next((d, m) for bound, m, d in tiers if cfg.seed < bound))
    lin_labelled = [lab for lab in labelled if lab[2].seed < n_lin]
    lin_recs = [rec for lab, rec in zip(labelled, recs) if lab[2].seed < n_lin]
    fro_labelled = [lab for lab in labelled if lab[2].seed < n_frozen]
    fro_recs = [rec for lab, rec in zip(labelled, recs) if lab[2].seed < n_frozen]
    student = init_controls.table(labelled, recs)
    oracle = init_controls.table(labelled, recs, "oracle_acc")
    pred = {"linear_response": table(labelled, recs, ("acc", "linear_response")),
            "linearised": table(lin_labelled, lin_recs, ("acc",), LIN_FIELD),
            "frozen": table(fro_labelled, fro_recs, ("acc",), FROZEN_FIELD),
            "partial": table(fro_labelled, fro_recs, ("acc",), PARTIAL_FIELD),
            "subsampled": table(labelled, recs, ("acc",), SUB_FIELD),
            "entk": table(labelled, recs, ("acc", "entk")), "oracle": oracle}
    targets = {(c, m): rec[FIELD]["target"] for (c, m, _), rec in zip(labelled, recs)}
    chosen = {key: predictor(kind) for key, kind in targets.items()}
    pred["prediction"] = predicted_table(labelled, recs)
    corr = table(labelled, recs, ("corr", "linear_response"))
    corr_sub = table(labelled, recs, ("corr",), SUB_FIELD)
    corr_lin = table(lin_labelled, lin_recs, ("corr",), LIN_FIELD)
    tf = {"student": init_controls.table(labelled, [{"metrics": r["check"]} for r in recs], "transfer_fraction"),
          "linear_response": table(labelled, recs, ("transfer_fraction", "linear_response"))}
    rows, errors, scatter, optimiser = [], {k: [] for k in pred}, [], []
    adaptivity, curvature = [], []
    for cond, by_m in student.items():
        for m, by_seed in by_m.items():
            seeds = sorted(by_seed)
            diff = [by_seed[s] - pred["prediction"][cond][m][s] for s in seeds]
            lin, fro = pred["linearised"][cond][m], pred["frozen"].get(cond, {}).get(m, {})
            for k in pred:
                got = pred[k].get(cond, {}).get(m, {})
                errors[k] += [abs(by_seed[s] - got[s]) for s in seeds if s in got]
            optimiser += [abs(lin[s] - pred["linear_response"][cond][m][s]) for s in seeds if s in lin]
            adaptivity += [abs(lin[s] - fro[s]) for s in seeds if s in lin and s in fro]
            curvature += [abs(fro[s] - pred["linear_response"][cond][m][s]) for s in seeds if s in fro]
            scatter += [(cond, pred["prediction"][cond][m][s], by_seed[s]) for s in seeds]
            other = "subsampled" if chosen[(cond, m)] == "linear_response" else "linear_response"
            side = ", ".join(f"{PREDICTORS[k]} {np.mean(list(pred[k][cond][m].values())):.3f}"
                             for k in (other, "linearised", "frozen", "partial", "oracle", "entk")
                             if pred[k].get(cond, {}).get(m))
            rows.append(within(f"{cond}, m = {m}: student − predicted accuracy "
                               f"(predicted {np.mean([pred['prediction'][cond][m][s] for s in seeds]):.3f})",
                               0.0, mean_ci(diff), TOL,
                               detail=f"target {targets[(cond, m)]}: {PREDICTORS[chosen[(cond, m)]]}; {side}"))
            cs = [(corr if chosen[(cond, m)] == "linear_response" else corr_sub)[cond][m][s] for s in seeds]
            lin_corr = (f"{PREDICTORS[chosen[(cond, m)]]}; exact linearised student "
                        f"{np.mean(list(corr_lin[cond][m].values())):.2f}" if corr_lin[cond][m] else
                        PREDICTORS[chosen[(cond, m)]])
            if cond == "shared":
                rows.append(at_least(f"{cond}, m = {m}: class-logit change correlation, predicted vs measured",
                                     MIN_CORR, mean_ci(cs), tol_text=f"≥ {MIN_CORR}", detail=lin_corr))
                rows.append(within(f"{cond}, m = {m}: transfer fraction f, measured − predicted", 0.0,
                                   mean_ci([tf["student"][cond][m][s] - tf["linear_response"][cond][m][s]
                                            for s in seeds]), TOL,
                                   detail=f"predicted {np.mean([tf['linear_response'][cond][m][s] for s in seeds]):.3f}"))
            else:
                rows.append(info(f"{cond}, m = {m}: class-logit change correlation, predicted vs measured", mean_ci(cs),
                                 detail=lin_corr))
    for k, label in PREDICTORS.items():
        if not errors[k]:
            continue
        why = {"prediction": "the linear response on reachable targets (shared body and aux head), the subsampled-Adam "
                             "student elsewhere",
               "linear_response": "every run (the previous prediction; its FAIL is a finding)",
               "subsampled": "every run (its cost against training: limen bench predict)",
               "linearised": f"the linear model itself, trained by Adam (as costly as the student; seeds < {n_lin}): "
                             "the error of linearising",
               "frozen": "the response's frozen optimiser model on the linear model with the exact, coupled G (as "
                         f"costly as the student; seeds < {n_frozen})",
               "partial": "the student with its first body layers at first order and its last hidden layer and head "
                          f"exact, trained by Adam (as costly as the student; seeds < {n_frozen}): where it leaves first "
                          "order"}.get(k, "an earlier model, shown for comparison")
        quantity = f"all runs: mean |student − {label}| accuracy"
        if k in ("prediction", "linear_response"):
            rows.append(at_most(quantity, TOL, mean_ci(errors[k]), predicted="0", tol_text=f"≤ {TOL}",
                                detail=f"{why}; pooled over conditions, m and seeds (not independent across m)"))
        else:
            rows.append(info(quantity, mean_ci(errors[k]), predicted="0", detail=why))
    rows.append(info("all runs: mean |exact linearised student − linear response| accuracy", mean_ci(optimiser),
                     predicted="0", detail="the error of modelling Adam as a frozen Kronecker-factored preconditioner"))
    if curvature:
        rows.append(info("all runs: mean |exact linearised student − frozen-Adam model with the exact G| accuracy",
                         mean_ci(adaptivity), predicted="0",
                         detail="of that: freezing Adam's second moment, with one step schedule"))
        rows.append(info("all runs: mean |frozen-Adam model with the exact G − linear response| accuracy",
                         mean_ci(curvature), predicted="0",
                         detail="of that: the Kronecker-factored, block-diagonal curvature model"))
    shared_corr = [v for by_m in corr["shared"].values() for v in by_m.values()]
    rows.append(at_least("shared: class-logit change correlation, all runs (worst run)", MIN_CORR,
                         worst(shared_corr, "min"), tol_text=f"≥ {MIN_CORR} on every run"))
    slack = [rec["metrics"]["student_final_acc"] - rec[FIELD]["bound"]["guaranteed_acc"] for rec in recs]
    rows.append(at_least("failure bound holds: measured − guaranteed accuracy (worst run)", 0.0, worst(slack, "min"),
                         tol_text="≥ 0 on every run",
                         detail=f"theory segment-margin-certificate, α_min = {CERT_ALPHA}, k = {CERT_K} (calibrated "
                                "on the digits)"))
    usable = [rec for (c, _, _), rec in zip(labelled, recs)
              if c == "shared" and rec["metrics"]["student_final_acc"] >= 0.5]
    if usable:
        tight = [rec[FIELD]["bound"]["guaranteed_acc"] / rec["metrics"]["student_final_acc"] for rec in usable]
        rows.append(at_least("failure bound is usable: guaranteed / measured accuracy, shared runs with accuracy ≥ 0.5 "
                             "(worst run)", TIGHT, worst(tight, "min"), tol_text=f"≥ {TIGHT} on every such run",
                             detail=f"mean {np.mean(tight):.2f}; {sum(t >= TIGHT for t in tight)} of {len(tight)} runs"))
        old = [rec[FIELD]["bound_margin"]["guaranteed_acc"] / rec["metrics"]["student_final_acc"] for rec in usable
               if "bound_margin" in rec[FIELD]]
        if old:
            rows.append(info("previous bound (response-margin-certificate): guaranteed / measured accuracy, same runs",
                             mean_ci(old), detail=f"worst run {min(old):.2f}; k = {MARGIN_K}, radius k(‖y_P − y_S0‖_∞ + "
                                                  "‖y_P − y_eNTK‖_∞)"))
    outside = [(rec["metrics"]["student_final_acc"], rec[FIELD]["bound"]["certified_acc"]) for rec in recs
               if "applies" in rec[FIELD]["bound"] and not rec[FIELD]["bound"]["applies"]]
    if outside:
        rows.append(info("failure bound outside its scope (random class head): runs where the certified accuracy "
                         "exceeds the measured one", exact(sum(g > a for a, g in outside)),
                         detail=f"of {len(outside)} runs; worst measured − certified "
                                f"{min(a - g for a, g in outside):+.3f}; no guarantee is claimed there"))
    rows.append(info("failure bound: certified examples the student gets wrong (share, mean over runs)",
                     mean_ci([rec[FIELD]["bound"]["violations"] for rec in recs if "violations" in rec[FIELD]["bound"]])))
    first = [rec[FIELD]["teacher_first_order"]["share"] for rec in recs if "teacher_first_order" in rec[FIELD]]
    if first:
        rows.append(info("teacher's own class-logit change: first-order share (validity of linearising it)",
                         mean_ci(first), detail="theory.first_order_share on the test set; 1 = lazy teacher"))
    cost = [rec[FIELD]["seconds"]["linear_response"] for rec in recs]
    rows.append(info("linear response: time per run (s)", mean_ci(cost), detail="see limen bench predict for the ratio "
                                                                                "to training"))
    rows.append(info("subsampled-Adam student: time per run (s)", mean_ci([rec[SUB_FIELD]["seconds"] for rec in recs]),
                     detail=f"batch {recs[0][SUB_FIELD]['batch']} per step against training's "
                            f"{labelled[0][2].noise_batch}; see limen bench predict"))
    fig = plots.scatter(ctx.out / "student_vs_prediction.png", [p[1] for p in scatter], [p[2] for p in scatter],
                        xlabel="predicted accuracy (response / subsampled Adam)", ylabel="trained student accuracy",
                        title="per run: trained student vs its prediction", groups=[p[0] for p in scatter])
    ms = m_grid(ctx)
    curves = _curves(student, pred, ms)
    fig2 = plots.curve(ctx.out / "accuracy_vs_m.png", ms, measured=curves["measured"], predicted=curves["predicted"],
                       xlabel="aux logits m", ylabel="test accuracy", logx=True, paired=True, legend_outside=True,
                       title="student accuracy (points) and its prediction (dashed, same colour)")
    return CheckResult(
        preset="predict-student",
        title="prediction of the trained student (linear response on reachable targets, subsampled Adam elsewhere) "
              "vs the trained student, per run",
        rows=rows,
        config={"conditions": list(student), "m": list(ms), "seeds": n_seeds, "tolerance": TOL,
                "min_corr": MIN_CORR, "run": protocol.describe(ctx)},
        notes=["Predictions use only the run's pre-run view (initial student, trained teacher, noise law, optimiser "
               "settings); the trained student is read only to measure.",
               "prediction: the linear response where the target is reachable, the subsampled-Adam student (the real "
               "network, Adam's steps on a twentieth of the noise, one per two training steps, with the training "
               "batch's second moment, theory subsampled-adam-moment, the first layer's from its drift by integration "
               "by parts over the noise law, theory noise-integration-by-parts) on every other run.",
               "target: reachable (shared body and heads), mismatched-head (shared body, another aux head), function (a "
               "random body layer: the linearised student).",
               "exact linearised student: the response's own linear model trained by Adam itself (it costs about one "
               "student's training); student vs it is the error of linearising, it vs the response the error of the "
               "optimiser model.",
               "frozen-Adam model with the exact G (full size): the response's optimiser model on that linear model "
               "with the exact, coupled curvature; it splits the optimiser model's error into Adam's adaptivity and "
               "the curvature model.",
               "last-layer-exact student (full size): body layers below the last at first order, the last hidden "
               "layer's ReLU and the head exact, trained by Adam to the teacher's aux logits; it costs a training run."],
        plots=[fig, fig2],
        series={"runs": [{"condition": c, "m": m, "seed": cfg.seed, "student": rec["metrics"]["student_final_acc"],
                          **rec[FIELD]["acc"],
                          "oracle": rec["metrics"]["oracle_acc"], "target": rec[FIELD]["target"],
                          "corr": rec[FIELD]["corr"]["linear_response"],
                          "linearised": pred["linearised"][c][m].get(cfg.seed),
                          "frozen_exact_g": pred["frozen"].get(c, {}).get(m, {}).get(cfg.seed),
                          "last_layer_exact": pred["partial"].get(c, {}).get(m, {}).get(cfg.seed),
                          "subsampled": rec[SUB_FIELD]["acc"], "corr_subsampled": rec[SUB_FIELD]["corr"],
                          "prediction": pred["prediction"][c][m][cfg.seed],
                          "corr_linearised": corr_lin[c][m].get(cfg.seed),
                          "guaranteed_acc": rec[FIELD]["bound"]["guaranteed_acc"]}
                         for (c, m, cfg), rec in zip(labelled, recs)]},
    )


def _curves(student, pred, ms):
    measured, predicted = {}, {}
    for cond, by_m in student.items():
        cis = [mean_ci(list(by_m[m].values())) for m in ms]
        measured[cond] = ([c.mean for c in cis], [c.lo for c in cis], [c.hi for c in cis])
        predicted[f"{cond} (predicted)"] = (list(ms), [float(np.mean(list(pred["prediction"][cond][m].values())))
                                                       for m in ms])
    return {"measured": measured, "predicted": predicted}


PRESET = Preset(
    name="predict-student",
    title="prediction of the trained student (accuracy, logits, transfer) vs measurement",
    run=run,
)
