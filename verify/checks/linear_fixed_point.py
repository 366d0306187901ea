"""``linear-fixed-point``: the linear split-head student against its closed form (theory R3, P8).

Prediction (:mod:`limen.theory`): full-batch gradient descent on the protocol's loss
``mse_loss(A W X, A W_T X)`` with a fixed shared aux head ``A`` moves the student's
weights along the closed-form trajectory ``theory.gd_trajectory`` and converges to

    W∞ = W0 + P_A (W_T − W0) P_X          (``theory.fixed_point``)

so the class logits on any input are ``C W∞ x``. Experiment
(:mod:`limen.verify.linear`): float64 torch, plain GD with a learning rate of
``LR_FRACTION`` × ``theory.gd_stability_limit(A, X)``, in four regimes (m < d and
N < n with random or shared initialisation; m ≥ d so P_A = I; N ≥ n so P_X = I),
several seeds each. Comparison: the worst case over seeds of the largest entry-wise
deviation must be ≤ 1e-6 (exact identity; float64 round-off is ~1e-13).
An Adam-trained student is reported without a verdict: theory R3 makes no exact
claim for Adam (it is not rotation-invariant), only that it satisfies the same
constraint ``A(W − W_T)X = 0`` once converged.
"""

from __future__ import annotations

import numpy as np

from .core import CheckContext, CheckResult, Preset, exact, info, mean_ci, within, worst
from .runs import run_configs

TOL = 1e-6
SOURCES = ("limen.verify.checks.linear_fixed_point", "limen.verify.linear", "limen.theory")  # code of the numbers
LR_FRACTION = 0.9
STEPS = 1000
ADAM_LR = 1e-2

REGIMES: dict[str, dict] = {
    "m<d, N<n, random init": dict(n_in=24, d=16, m=3, N=8, init="random"),
    "m<d, N<n, shared init": dict(n_in=24, d=16, m=3, N=8, init="shared"),
    "m≥d (P_A = I)": dict(n_in=24, d=4, m=16, N=8, init="random"),
    "N≥n (P_X = I)": dict(n_in=10, d=16, m=3, N=30, init="random"),
}


def _np(t):
    return t.detach().cpu().numpy()


def _configs(n_seeds: int):
    from limen import theory
    from limen.verify.linear import LinearConfig, make_problem

    out = []
    for regime, shape in REGIMES.items():
        for seed in range(n_seeds):
            base = LinearConfig(seed=seed, steps=STEPS, **shape)
            p = make_problem(base)
            lr = LR_FRACTION * float(theory.gd_stability_limit(_np(p.A), _np(p.X)))
            out.append((regime, base.replace(lr=lr)))
        out.append((regime, LinearConfig(seed=0, steps=STEPS, optimizer="adam", lr=ADAM_LR, **shape)))
    return out


def _measure(cfg, device) -> dict:
    """Train one linear student and compare every iterate with the closed form."""
    from limen import theory
    from limen.verify.linear import make_problem, train

    p = make_problem(cfg, device)
    traj = _np(train(cfg, p))
    W0, WT, A, C, X, Xt = (_np(t) for t in (p.W0, p.WT, p.A, p.C, p.X, p.X_test))
    W_inf = np.asarray(theory.fixed_point(W0, WT, A, X))
    W_end = traj[-1]
    lost_A, lost_X = (np.asarray(v) for v in theory.logit_error_split(C, W0, WT, A, X, Xt))
    dist = np.abs(traj - W_inf).max(axis=(1, 2))
    ks = np.unique(np.geomspace(1, cfg.steps + 1, 60).astype(int) - 1)
    m = {
        "fixed_point_max_abs_err": float(np.abs(W_end - W_inf).max()),
        "logit_max_abs_err": float(np.abs(C @ (W_end - WT) @ Xt - (lost_A + lost_X)).max()),
        "logit_error_scale": float(np.abs(lost_A + lost_X).max()),
        "logit_error_share_outside_row_A": float(np.linalg.norm(lost_A) / (np.linalg.norm(lost_A) + np.linalg.norm(lost_X))),
        "constraint_residual": float(np.abs(A @ (W_end - WT) @ X).max()),
        "fixed_point_scale": float(np.abs(W_inf - W0).max()),
        "dist_to_fixed_point_steps": ks.tolist(),
        "dist_to_fixed_point": dist[ks].tolist(),
        "rel_dist_to_fixed_point": float(np.linalg.norm(W_end - W_inf) / np.linalg.norm(W_inf - W0)),
    }
    if cfg.optimizer == "gd":
        pred = np.asarray(theory.gd_trajectory(W0, WT, A, X, cfg.lr, cfg.steps))
        err = np.abs(traj - pred).max(axis=(1, 2))
        m["trajectory_max_abs_err"] = float(err.max())
        m["trajectory_err"] = err[ks].tolist()
        m["closed_form_final_dist"] = float(np.abs(pred[-1] - W_inf).max())
    return m


def run(ctx: CheckContext) -> CheckResult:
    n_seeds = ctx.n_seeds(full=10, quick=3)
    device = ctx.torch_device()
    labelled = _configs(n_seeds)
    recs = run_configs([c for _, c in labelled], ctx, lambda c: _measure(c, device), sources=SOURCES,
                       description="linear students")
    rows = []
    by_regime: dict[str, list] = {}
    for (regime, cfg), rec in zip(labelled, recs):
        by_regime.setdefault(regime, []).append((cfg, rec["metrics"]))
    for regime, items in by_regime.items():
        gd = [m for c, m in items if c.optimizer == "gd"]
        adam = [m for c, m in items if c.optimizer == "adam"]
        rows.append(within(f"{regime} · GD trajectory: max_k |W_k − closed form|", 0.0,
                           worst([m["trajectory_max_abs_err"] for m in gd]), TOL))
        rows.append(within(f"{regime} · GD end point: max |W − W∞|", 0.0,
                           worst([m["fixed_point_max_abs_err"] for m in gd]), TOL))
        rows.append(within(f"{regime} · held-out logit error C(W − W_T)x vs R3.2 split: max |diff|", 0.0,
                           worst([m["logit_max_abs_err"] for m in gd]), TOL,
                           detail="theory.logit_error_split: part lost outside row(A) + part outside span(X)"))
        rows.append(info(f"{regime} · share of the logit error lost outside row(A)",
                         mean_ci([m["logit_error_share_outside_row_A"] for m in gd]),
                         detail="‖C(I−P_A)Δ0x‖ / (that + ‖C P_A Δ0 (I−P_X) x‖)"))
        for m in adam:
            rows.append(info(f"{regime} · Adam: ‖W − W∞‖ / ‖W∞ − W0‖", exact(m["rel_dist_to_fixed_point"]),
                             predicted="no exact claim",
                             detail="Adam is not rotation-invariant; R3 predicts only the constraint set"))
            rows.append(info(f"{regime} · Adam: max |A(W − W_T)X|", exact(m["constraint_residual"]),
                             predicted="→ 0"))
    plot_curves = {}
    for regime, items in by_regime.items():
        cfg, m = next((c, m) for c, m in items if c.optimizer == "gd")
        plot_curves[regime] = m
    fig_traj = _plot(ctx, plot_curves, by_regime)
    notes = [f"learning rate = {LR_FRACTION} × theory.gd_stability_limit(A, X); {STEPS} full-batch steps; "
             f"{n_seeds} seeds per regime; measured = worst case over seeds (float64).",
             "inputs are U[−1, 1] noise and held-out noise: this check uses no data set (--data is ignored)."]
    return CheckResult(
        preset="linear-fixed-point",
        title="linear student by GD on noise vs closed-form trajectory and fixed point (R3.1)",
        rows=rows,
        config={"regimes": REGIMES, "seeds": n_seeds, "lr_fraction": LR_FRACTION, "steps": STEPS,
                "adam_lr": ADAM_LR, "tolerance": TOL, "device": str(device)},
        notes=notes,
        plots=fig_traj,
    )


def _plot(ctx, gd_first: dict, by_regime: dict) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), dpi=110)
    for regime, m in gd_first.items():
        ks = np.asarray(m["dist_to_fixed_point_steps"])
        axes[0].plot(ks + 1, np.maximum(m["dist_to_fixed_point"], 1e-17), label=f"{regime} (GD)")
        axes[1].plot(ks + 1, np.maximum(m["trajectory_err"], 1e-17), label=regime)
    for regime, items in by_regime.items():
        for c, m in items:
            if c.optimizer == "adam":
                ks = np.asarray(m["dist_to_fixed_point_steps"])
                axes[0].plot(ks + 1, m["dist_to_fixed_point"], ":", label=f"{regime} (Adam)")
    axes[0].set(xscale="log", yscale="log", xlabel="step k + 1", ylabel="max |W_k − W∞|",
                title="distance to the predicted fixed point (seed 0)")
    axes[1].axhline(TOL, color="grey", ls=":", label="tolerance 1e-6")
    axes[1].set(xscale="log", yscale="log", xlabel="step k + 1", ylabel="max |W_k − W_k(closed form)|",
                title="GD iterate vs closed-form trajectory (seed 0)")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    name = "trajectory.png"
    fig.savefig(ctx.out / name)
    plt.close(fig)
    return [name]


PRESET = Preset(
    name="linear-fixed-point",
    title="linear student, plain GD on noise vs closed-form trajectory and fixed point W∞ (exact, 1e-6)",
    run=run,
)
