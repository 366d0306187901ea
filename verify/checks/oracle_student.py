"""``oracle-student``: accuracy of the oracle projected student vs the trained student (theory R1.1/R1.3, P1).

Prediction: a distilled student's class logits are those of the free-feature fixed
point, ``C_S[h_S0 + A_S⁺(z_T − z_S0)] + c_S`` (= ``C_S[(I − P_A)h_S0 + P_A h_T] + c_S``
for compatible aux heads), so the *oracle* accuracy computed from the initial student,
the trained teacher and the student's initial aux head should equal the trained
student's accuracy. Experiment: the runs of ``init-controls`` (six conditions × m ×
seeds; reused when that check ran into the same ``--out``); the engine records the
oracle accuracy of every run (``metrics.oracle_acc``). Comparison: per condition and
m, the paired difference student − oracle (t-interval over seeds) must lie within
± 0.05; pooled over all runs, the mean absolute difference must be at most 0.05 (a
signed mean would let over- and under-predictions of different conditions cancel);
the signed mean, the share of runs within ± 0.05 and the correlation are reported. Beside it, pooled the same
way: check ``predict-student``'s prediction of the same runs and the linear response on every run.
"""

from __future__ import annotations

import numpy as np

from . import init_controls
from .core import CheckContext, CheckResult, Preset, at_most, bootstrap_ci, info, mean_ci, within

TOL = 0.05


def run(ctx: CheckContext) -> CheckResult:
    from . import plots

    n_seeds = ctx.n_seeds(full=10, quick=4)
    labelled = init_controls.configs(ctx, n_seeds)
    from . import predict_student, student_prediction

    recs = predict_student.prediction_runs([c for *_, c in labelled], ctx, description="oracle-student runs")
    response = student_prediction.table(labelled, recs, ("acc", "linear_response"))
    prediction = predict_student.predicted_table(labelled, recs)
    student = init_controls.table(labelled, recs)
    oracle = init_controls.table(labelled, recs, "oracle_acc")
    rows, diffs, pairs, groups, resp, pred = [], [], [], [], [], []
    for cond, by_m in student.items():
        for m, by_seed in by_m.items():
            d = [by_seed[s] - oracle[cond][m][s] for s in sorted(by_seed)]
            diffs += d
            pairs += [(oracle[cond][m][s], by_seed[s]) for s in sorted(by_seed)]
            groups += [cond] * len(d)
            resp += [abs(by_seed[s] - response[cond][m][s]) for s in sorted(by_seed)]
            pred += [abs(by_seed[s] - prediction[cond][m][s]) for s in sorted(by_seed)]
            o = float(np.mean(list(oracle[cond][m].values())))
            rows.append(within(f"{cond}, m = {m}: student − oracle accuracy (oracle {o:.3f})", 0.0,
                               mean_ci(d), TOL))
    within_tol = [abs(d) <= TOL for d in diffs]
    rows.append(at_most("all runs: mean |student − oracle| accuracy", TOL, mean_ci(np.abs(diffs)),
                        predicted="0", tol_text=f"≤ {TOL}",
                        detail="absolute: errors of opposite sign in different conditions must not cancel; "
                               "pooled over conditions and m (not independent across m)"))
    rows.append(info("all runs: mean student − oracle accuracy (signed)", mean_ci(diffs)))
    rows.append(at_most("all runs: mean |student − prediction| accuracy", TOL, mean_ci(pred), predicted="0",
                        tol_text=f"≤ {TOL}", detail="check predict-student's prediction of the same runs: the linear "
                                                    "response on reachable targets, the subsampled-Adam student elsewhere"))
    rows.append(at_most("all runs: mean |student − linear response| accuracy", TOL, mean_ci(resp), predicted="0",
                        tol_text=f"≤ {TOL}", detail="the linear response on every run "
                                                    "(theory preconditioned-response)"))
    rows.append(info(f"share of runs with |student − oracle| ≤ {TOL}", mean_ci([float(w) for w in within_tol])))
    rows.append(info("correlation of oracle and student accuracy over runs",
                     bootstrap_ci(pairs, lambda p: float(np.corrcoef(np.asarray(p).T)[0, 1]))))
    fig = plots.scatter(ctx.out / "student_vs_oracle.png", [p[0] for p in pairs], [p[1] for p in pairs],
                        xlabel="oracle projected-student accuracy (R1.3)", ylabel="trained student accuracy",
                        title="per run: trained student vs oracle", groups=groups)
    return CheckResult(
        preset="oracle-student",
        title="oracle projected student (R1.3) vs trained student accuracy, per run and aggregated (P1)",
        rows=rows,
        config={"conditions": list(student), "m": list(init_controls.m_grid(ctx)), "seeds": n_seeds,
                "tolerance": TOL},
        notes=["oracle: C_S[h_S0 + A_S⁺(z_T − z_S0)] + c_S with the student's initial heads (engine metric oracle_acc)."],
        plots=[fig],
        series={"runs": [{"condition": g, "oracle_acc": p[0], "student_acc": p[1]} for g, p in zip(groups, pairs)]},
    )


PRESET = Preset(
    name="oracle-student",
    title="oracle projected student (theory R1.3) vs trained student accuracy",
    run=run,
)
