"""Adam at the training batch, simulated on a fraction of its noise (theory ``subsampled-adam-moment``).

A batch of ``b`` i.i.d. per-sample gradients ``g_i`` (mean μ, per-coordinate variance σ²) has

    E[ḡ_b²] = μ² + σ²/b,   E[(1/b) Σ_i g_i²] = μ² + σ²,

so Adam trained at batch ``B``, whose second moment is ``μ² + σ²/B``, can be given that moment from the small
batch alone (``b ≥ 2``):

    v̂_B = ḡ_b² − κ ((1/b) Σ_i g_i² − ḡ_b²),   κ = b/(b − 1) · (1/b − 1/B),   E[v̂_B] = μ² + σ²/B.

The subsampled-Adam student (``limen.verify.subliminal.surrogate``) runs the real network's Adam steps on batches
of ``b ≪ B`` with this second moment. Its first moment keeps the small batch's extra noise; that is the model's
approximation (the student's displacement is its drift, which the corrected moment keeps, plus diffusion).
"""

from __future__ import annotations

import itertools

import numpy as np

from .response import batch_second_moment
from .results import Result, eq, register, report


def subsampled_coefficients(batch: int, train_batch: int) -> tuple[float, float]:
    """``(1 + κ, κ)``, κ = b/(b−1)(1/b − 1/B): the estimate is ``v̂_B = (1 + κ) ḡ_b² − κ mean_i g_i²``."""
    if int(batch) != batch or batch < 2:
        raise ValueError(f"batch must be an integer ≥ 2 (the variance needs two samples), got {batch!r}")
    if int(train_batch) != train_batch or train_batch < batch:
        raise ValueError(f"train_batch must be an integer ≥ batch ({batch}), got {train_batch!r}")
    kappa = batch / (batch - 1.0) * (1.0 / batch - 1.0 / train_batch)
    return 1.0 + kappa, kappa


def subsampled_second_moment(batch_mean, per_sample_sq, batch: int, train_batch: int):
    """``v̂_B = ḡ_b² − κ (mean_i g_i² − ḡ_b²)``, κ = b/(b−1)(1/b − 1/B): unbiased for Adam's ``E[g_B²]`` from one
    batch of ``batch`` = b samples (``batch_mean`` ḡ_b, ``per_sample_sq`` the mean of the squared per-sample
    gradients), for the training batch ``train_batch`` = B ≥ b. Only arithmetic: floats, numpy arrays and torch
    tensors alike."""
    a, c = subsampled_coefficients(batch, train_batch)
    return a * (batch_mean * batch_mean) - c * per_sample_sq


def _build():
    import sympy as sp

    mu2, s2, b, B = sp.symbols(r"\mu^{2} \sigma^{2} b B", positive=True)
    kappa = b / (b - 1) * (1 / b - 1 / B)
    e1, e2 = mu2 + s2 / b, mu2 + s2
    res = sp.Eq(sp.Symbol(r"\mathbb{E}[\hat v_{B}]"), mu2 + s2 / B, evaluate=False)
    steps = [("Expected squared batch mean and mean squared sample", sp.Tuple(eq(r"\mathbb{E}[\bar g_{b}^{2}]", e1),
                                                                           eq(r"\mathbb{E}[\overline{g^{2}}]", e2))),
             ("Estimator", eq(r"\hat v_{B}", sp.Symbol(r"\bar g_{b}^{2}") - kappa * (sp.Symbol(r"\overline{g^{2}}")
                                                                                     - sp.Symbol(r"\bar g_{b}^{2}")))),
             ("Its expectation (sympy simplifies it) is Adam's second moment at batch B",
              eq(r"\mathbb{E}[\hat v_{B}]", sp.simplify(e1 - kappa * (e2 - e1)))),
             ("", res)]
    return res, steps


def _check(rng):
    """Exact expectation over every ordered b-tuple drawn with replacement from a small pool."""
    errs = {}
    for n_pool, b in ((4, 2), (3, 3), (5, 2)):
        pool = rng.standard_normal((n_pool, 5)) + rng.standard_normal(5)
        tuples = np.array(list(itertools.product(range(n_pool), repeat=b)))
        for B in (b, 7, 1000):
            est = np.mean([subsampled_second_moment(pool[t].mean(0), (pool[t] ** 2).mean(0), b, B) for t in tuples],
                          axis=0)
            errs[f"pool {n_pool}, b = {b}, B = {B}"] = float(np.abs(est - batch_second_moment(pool, B)).max())
    return report("subsampled-adam-moment", errs, 1e-12)


def _eval(batch_mean, per_sample_sq, batch, train_batch):
    return subsampled_second_moment(batch_mean, per_sample_sq, int(batch), int(train_batch))


register(Result("subsampled-adam-moment",
                "Adam's training-batch second moment from a smaller batch: v̂_B = ḡ_b² − κ(mean g_i² − ḡ_b²), "
                "κ = b/(b−1)(1/b − 1/B), E[v̂_B] = μ² + σ²/B",
                ("Per-sample gradients within a batch are i.i.d. (fresh noise every step)", "b ≥ 2"),
                "Lets a model of the student run Adam's steps on a twentieth of the training's noise while dividing "
                "them by the second moment training sees (the subsampled-Adam student, check predict-student).",
                True, _build, _eval, _check, section="response",
                approximation="exact as an expectation at fixed parameters; a run uses one draw per step inside Adam's "
                "β2-average, and its first moment keeps the small batch's noise"))
