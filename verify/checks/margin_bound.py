"""``margin-bound``: the per-example logit-error bound B(x) and the accuracy bound (theory R6) vs trained runs.

Prediction (``theory.logit_error_bound``, ``theory.margin_bound``): for the
free-feature fixed point, ``‖y_S(x) − y_T(x)‖_∞ ≤ B(x)`` for every test example,
with B built from the heads (C_S, A_S, C_T, A_T, biases), ``h_S0(x)`` and ``h_T(x)``;
the student's argmax equals the teacher's wherever ``γ_T(x) > 2B(x)``, so
accuracy ≥ the share of test examples the teacher gets right with that margin.

Experiment: engine runs with shared heads -- shared initialisation at a small m and
at m = d, and random hidden layers at m = d -- several seeds; per test example, B(x)
against the trained student's measured error (:mod:`.measure`). Two claims, both
worst case over runs ("the bound must hold on every run"):

1. *exact*: the oracle fixed point itself satisfies the bound on every example (a
   consistency check of the theory's algebra; must PASS);
2. *the prediction*: the trained student satisfies it (share of violating examples
   ≤ 0 on every run), and its accuracy is at least the bound.

Tightness (median measured/B, accuracy bound vs measured) is reported.
"""

from __future__ import annotations

from . import protocol
from .core import CheckContext, CheckResult, Preset, at_most, info, mean_ci, worst
from .runs import engine_runs


def conditions(ctx) -> dict[str, dict]:
    d = protocol.width(ctx)
    small = max(1, d // 16) if ctx.quick else 10
    return {f"shared, m = {small}": {"m": small},
            f"shared, m = {d}": {"m": d},
            f"random hidden, m = {d}": {"m": d, "init": {"fc1": "random", "fc2": "random"}}}


def run(ctx: CheckContext) -> CheckResult:
    from limen.verify.subliminal import RunConfig

    from . import plots

    n_seeds = ctx.n_seeds(full=5, quick=3)
    conds = conditions(ctx)
    labelled = [(name, RunConfig(seed=s, **protocol.base(ctx, **kw))) for name, kw in conds.items()
                for s in range(n_seeds)]
    recs = engine_runs([c for _, c in labelled], ctx, measure=True, description="margin-bound runs")
    by: dict[str, list[dict]] = {}
    for (name, _), rec in zip(labelled, recs):
        by.setdefault(name, []).append({**rec["check"], "student_acc": rec["metrics"]["student_final_acc"],
                                        "teacher_acc": rec["metrics"]["teacher_final_acc"]})
    rows = []
    for name, ms in by.items():
        rows.append(at_most(f"{name} · oracle fixed point: share of examples over B(x)", 0.0,
                            worst([m["bound_violation_frac_oracle"] for m in ms]), predicted="0 (exact)",
                            tol_text="every run"))
        rows.append(at_most(f"{name} · trained student: share of examples with ‖y_S − y_T‖∞ > B(x)", 0.0,
                            worst([m["bound_violation_frac"] for m in ms]), predicted="0", tol_text="every run"))
        rows.append(at_most(f"{name} · accuracy bound − student accuracy", 0.0,
                            worst([m["accuracy_lower_bound"] - m["student_acc"] for m in ms]),
                            predicted="≤ 0", tol_text="every run"))
        tight = [m["bound_tightness_median"] for m in ms if m["bound_tightness_median"] is not None]
        rows.append(info(f"{name} · tightness: median ‖y_S − y_T‖∞ / B(x)", mean_ci(tight) if tight else None,
                         detail="" if tight else "B(x) = 0 on every example (exact transfer predicted)"))
        rows.append(info(f"{name} · accuracy lower bound (γ_T > 2B)", mean_ci([m["accuracy_lower_bound"] for m in ms]),
                         detail="vs the measured accuracy in the next row"))
        rows.append(info(f"{name} · student accuracy (teacher {sum(m['teacher_acc'] for m in ms) / len(ms):.3f})",
                         mean_ci([m["student_acc"] for m in ms])))
    bx, err, grp = [], [], []
    for name, ms in by.items():
        for m in ms:
            bx += m["sample_bound"]
            err += m["sample_err"]
            grp += [name] * len(m["sample_bound"])
    fig = plots.scatter(ctx.out / "bound_vs_error.png", bx, err, xlabel="bound B(x)",
                        ylabel="measured ‖y_S(x) − y_T(x)‖∞", title="per test example: bound vs measured logit error",
                        groups=grp, logx=True, logy=True)
    return CheckResult(
        preset="margin-bound",
        title="per-example logit-error bound B(x) and accuracy bound vs the trained student (R6)",
        rows=rows,
        config={"conditions": conds, "seeds": n_seeds, "run": protocol.describe(ctx)},
        notes=["B(x) = theory.logit_error_bound with the student's initial heads (its class head never trains; "
               "its aux head does, the bound uses the initial one, as the fixed point of R1.1 does).",
               "the bound is a statement about the converged free-feature student; a FAIL on the trained student "
               "means the trained network is not at that fixed point."],
        plots=[fig],
        series={name: {k: [m[k] for m in ms] for k in ("bound_violation_frac", "bound_tightness_median",
                                                         "accuracy_lower_bound", "student_acc")}
                for name, ms in by.items()},
    )


PRESET = Preset(
    name="margin-bound",
    title="bound on |y_S − y_T| per test example and on the accuracy loss, vs trained runs (must hold on every run)",
    run=run,
)
