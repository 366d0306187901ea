"""Linear split-head distillation: gradient, gradient flow, GD iterate, fixed point, logit error.

Model (theory R3 of docs/theory.md; every assumption is listed on the registered results):

* student features ``h = W x`` with ``W`` of shape ``(d, n_in)``; teacher ``W_T``;
* frozen aux head ``A`` ``(m, d)``, shared by teacher and student unless ``A_T`` is given;
  class head ``C`` ``(K, d)`` (never trained during distillation);
* noise inputs ``X`` of shape ``(n_in, N)``, samples as **columns**; or, for the
  expected iterate under fresh noise, the noise second moment ``Sigma = E[x xᵀ]``;
* loss ``L(W) = c · ||A (W − W_T) X||_F²`` with ``c = 1/(m N)`` for ``reduction="mean"``
  (torch's ``F.mse_loss`` default, mean over batch × m -- the protocol's loss),
  ``c = 1`` for ``"sum"``, or ``c`` given as a float. With ``Sigma`` the loss is
  ``c · tr(A Δ Σ Δᵀ Aᵀ)`` with ``c = 1/m`` for ``"mean"`` (the expectation of the
  per-batch loss), ``batch`` for ``"sum"``.

Everything here is exact linear algebra in float64; the mode decomposition uses the
SVD of ``A`` and of ``X`` (or the eigen-decomposition of ``Sigma``), never an
eigen-decomposition of ``AᵀA`` (that would square the condition number).
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Union

import numpy as np

from .results import Result, eq, register, report, z_score

Reduction = Union[str, float]
F64 = np.float64


# --------------------------------------------------------------------------- helpers
def _arr(a, name: str, ndim: int | None = None) -> np.ndarray:
    out = np.asarray(a, dtype=F64)
    if ndim is not None and out.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D, got shape {out.shape}")
    return out


def _rank_tol(s: np.ndarray, shape: tuple[int, ...], tol: float | None) -> float:
    if tol is not None:
        return tol
    return (s[0] if s.size else 0.0) * max(shape) * np.finfo(F64).eps


def projector(A, tol: float | None = None) -> np.ndarray:
    """``P_A = A⁺A``: the orthogonal projector onto row(A), shape ``(d, d)`` for ``A`` ``(m, d)``.

    Built from the right singular vectors of ``A`` whose singular value exceeds ``tol``
    (default ``max(m, d)·eps·σ_max``, numpy's ``matrix_rank`` rule), so it is symmetric
    and idempotent to rounding.
    """
    A = _arr(A, "A", 2)
    _, s, vt = np.linalg.svd(A, full_matrices=False)
    r = int(np.sum(s > _rank_tol(s, A.shape, tol)))
    v = vt[:r]
    return v.T @ v


def span_projector(X, tol: float | None = None) -> np.ndarray:
    """``P_X = X X⁺``: the orthogonal projector onto the span of the columns of ``X`` ``(n_in, N)``."""
    return projector(_arr(X, "X", 2).T, tol)


def pinv(A, tol: float | None = None) -> np.ndarray:
    """Moore–Penrose pseudo-inverse with the same rank rule as :func:`projector`."""
    A = _arr(A, "A", 2)
    u, s, vt = np.linalg.svd(A, full_matrices=False)
    r = int(np.sum(s > _rank_tol(s, A.shape, tol)))
    return (vt[:r].T / s[:r]) @ u[:, :r].T


def noise_second_moment(kind: str, n_in: int) -> np.ndarray:
    """``E[x xᵀ]`` of the protocol's noise: ``"uniform"`` U[−1,1] → I/3, ``"normal"`` N(0,1) → I."""
    scale = {"uniform": 1.0 / 3.0, "normal": 1.0}.get(kind)
    if scale is None:
        raise ValueError(f"noise kind must be 'uniform' or 'normal', got {kind!r}")
    return scale * np.eye(n_in)


def loss_scale(reduction: Reduction, m: int, N: int | None = None, *, population: bool = False,
               batch: int | None = None) -> float:
    """The constant ``c`` of ``L = c·||A Δ X||_F²`` (or ``c·tr(AΔΣΔᵀAᵀ)`` when ``population``).

    ``"mean"``: ``1/(m N)`` -- torch ``F.mse_loss`` default (mean over N samples × m logits);
    with ``population`` it is ``1/m`` (the expected per-batch mean loss).
    ``"sum"``: ``1`` (``reduction="sum"``); with ``population`` it is ``batch``.
    A float is used as ``c`` unchanged.
    """
    if isinstance(reduction, str):
        if reduction == "mean":
            return 1.0 / m if population else 1.0 / (m * _require(N, "N"))
        if reduction == "sum":
            return float(_require(batch, "batch")) if population else 1.0
        raise ValueError(f"reduction must be 'mean', 'sum' or a float, got {reduction!r}")
    return float(reduction)


def _require(v, name):
    if v is None:
        raise ValueError(f"{name} is needed for this reduction")
    return v


def _second_moment(A, X, Sigma, reduction, batch):
    """(c, eigenvalues μ of M, eigenvectors V of M, P_X) for M = X Xᵀ or Σ."""
    A = _arr(A, "A", 2)
    m = A.shape[0]
    if X is not None:
        X = _arr(X, "X", 2)
        u, s, _ = np.linalg.svd(X, full_matrices=True)
        mu = np.zeros(X.shape[0])
        mu[: s.size] = s**2
        c = loss_scale(reduction, m, X.shape[1])
        return c, mu, u
    if Sigma is not None:
        S = _arr(Sigma, "Sigma", 2)
        mu, v = np.linalg.eigh((S + S.T) / 2)
        mu = np.clip(mu, 0.0, None)
        c = loss_scale(reduction, m, population=True, batch=batch)
        return c, mu, v
    raise ValueError("give the noise samples X or the noise second moment Sigma")


def _head_modes(A):
    """(g = squared singular values padded to d, right singular vectors U (d, d)) of A."""
    A = _arr(A, "A", 2)
    _, s, vt = np.linalg.svd(A, full_matrices=True)
    g = np.zeros(A.shape[1])
    g[: s.size] = s**2
    return g, vt.T


def _mode_tol(x: np.ndarray) -> float:
    return (x.max() if x.size else 0.0) * x.size * np.finfo(F64).eps


def mode_rates(A, X=None, *, Sigma=None, reduction: Reduction = "mean", batch: int | None = None):
    """Decay rates ``λ_ij = 2 c g_i μ_j`` of the modes (i of AᵀA, j of X Xᵀ or Σ), shape (d, n_in).

    Modes with ``g_i μ_j = 0`` (outside row(A) or span(X)) have rate exactly 0.
    """
    c, mu, _ = _second_moment(A, X, Sigma, reduction, batch)
    g, _ = _head_modes(A)
    g = np.where(g > _mode_tol(g), g, 0.0)
    mu = np.where(mu > _mode_tol(mu), mu, 0.0)
    return 2.0 * c * np.outer(g, mu)


# --------------------------------------------------------------------------- evaluators
def _vec(a, n: int, name: str = "bias") -> np.ndarray:
    """A bias vector of length n, zeros when omitted."""
    return np.zeros(n) if a is None else _arr(a, name, 1)


def _aux_residual(W, WT, A, X, A_T, a_S, a_T):
    """(A, X, residual A_S W X + a_S 1ᵀ − A_T W_T X − a_T 1ᵀ of shape (m, N))."""
    W, WT, A, X = (_arr(v, k, 2) for v, k in ((W, "W"), (WT, "WT"), (A, "A"), (X, "X")))
    AT = A if A_T is None else _arr(A_T, "A_T", 2)
    r = A @ W @ X - AT @ WT @ X
    if a_S is not None or a_T is not None:
        r = r + (_vec(a_S, A.shape[0], "a_S") - _vec(a_T, A.shape[0], "a_T"))[:, None]
    return A, X, r


def aux_loss(W, WT, A, X, *, reduction: Reduction = "mean", A_T=None, a_S=None, a_T=None) -> float:
    """The distillation loss ``c · ||A_S W X + a_S − A_T W_T X − a_T||_F²`` (biases optional)."""
    A, X, r = _aux_residual(W, WT, A, X, A_T, a_S, a_T)
    return loss_scale(reduction, A.shape[0], X.shape[1]) * float(np.sum(r * r))


def aux_gradient(W, WT, A, X, *, reduction: Reduction = "mean", A_T=None, a_S=None, a_T=None) -> np.ndarray:
    """``∇_W L = 2c A_Sᵀ (A_S W X + a_S 1ᵀ − A_T W_T X − a_T 1ᵀ) Xᵀ``, shape (d, n_in)."""
    A, X, r = _aux_residual(W, WT, A, X, A_T, a_S, a_T)
    return 2.0 * loss_scale(reduction, A.shape[0], X.shape[1]) * (A.T @ r @ X.T)


def fixed_point(W0, WT, A, X=None, *, A_T=None, a_S=None, a_T=None, Sigma=None) -> np.ndarray:
    """Limit of gradient descent/flow on the aux loss from ``W0`` (theory R3.1, generalised).

    Shared aux head (``A_T`` omitted, no biases): ``W∞ = W0 + P_A (W_T − W0) P_X``.
    General heads: ``W∞ = W0 + A_S⁺ (A_T W_T − A_S W0) P_X + A_S⁺ (a_T − a_S) 1ᵀ X⁺``.
    ``X`` omitted: ``P_X`` is the projector onto range(Sigma) (``I`` when Sigma is omitted
    too -- the population limit for full-rank noise); biases are then ignored, which is
    exact for zero-mean noise (a constant aux offset cannot be matched by ``W x``).
    Independent of the step size and of the loss scale (for any stable step).
    """
    W0, WT, A = _arr(W0, "W0", 2), _arr(WT, "WT", 2), _arr(A, "A", 2)
    AT = A if A_T is None else _arr(A_T, "A_T", 2)
    Ap = pinv(A)
    if X is not None:
        X = _arr(X, "X", 2)
        PX = span_projector(X)
    elif Sigma is not None:
        PX = projector(_arr(Sigma, "Sigma", 2))
    else:
        PX = np.eye(W0.shape[1])
    if A_T is None:
        W = W0 + (Ap @ A) @ (WT - W0) @ PX
    else:
        W = W0 + Ap @ (AT @ WT - A @ W0) @ PX
    if X is not None and (a_S is not None or a_T is not None):
        da = _vec(a_T, A.shape[0], "a_T") - _vec(a_S, A.shape[0], "a_S")
        W = W + np.outer(Ap @ da, np.ones(X.shape[1]) @ pinv(X))
    return W


def _evolve(W0, Winf, A, X, Sigma, reduction, batch, factor):
    """W(τ) = W∞ + U [factor(λ) ∘ Uᵀ (W0 − W∞) V] Vᵀ for the modes (U of AᵀA, V of M)."""
    c, mu, V = _second_moment(A, X, Sigma, reduction, batch)
    g, U = _head_modes(A)
    g = np.where(g > _mode_tol(g), g, 0.0)
    mu = np.where(mu > _mode_tol(mu), mu, 0.0)
    lam = 2.0 * c * np.outer(g, mu)
    D0 = U.T @ (_arr(W0, "W0", 2) - Winf) @ V
    F = factor(lam)  # (T, d, n) or (d, n)
    return Winf + np.einsum("ij,...jk,lk->...il", U, F * D0, V, optimize=True)


def gd_trajectory(W0, WT, A, X, lr: float, steps: int, *, reduction: Reduction = "mean",
                  A_T=None, a_S=None, a_T=None, Sigma=None, batch: int | None = None) -> np.ndarray:
    """Closed-form gradient-descent iterates ``W_0 … W_steps``, shape ``(steps+1, d, n_in)``.

    ``W_k = W∞ + U [(1 − lr·λ)^k ∘ Uᵀ (W0 − W∞) V] Vᵀ`` with ``λ = 2c g_i μ_j`` the mode rates
    (U, g from the SVD of A; V, μ from the SVD of X, or the eigen-decomposition of Sigma).
    Not a simulation: each iterate is computed directly. With ``X=None, Sigma=E[xxᵀ]`` it is
    the **expected** iterate of SGD with fresh i.i.d. noise batches (exact: the gradient is
    affine in W and a fresh batch is independent of W_k), loss normalised per ``reduction``
    (``"mean"``: the per-batch mean loss, c = 1/m).
    Memory: ``(steps+1)·d·n_in`` float64 values; for one late iterate use :func:`gd_iterate`.
    """
    if steps < 0:
        raise ValueError("steps must be >= 0")
    Winf = fixed_point(W0, WT, A, X, A_T=A_T, a_S=a_S, a_T=a_T, Sigma=Sigma)
    k = np.arange(steps + 1, dtype=F64)[:, None, None]
    return _evolve(W0, Winf, A, X, Sigma, reduction, batch, lambda lam: (1.0 - lr * lam)[None] ** k)


def gd_iterate(W0, WT, A, X, lr: float, k: int, *, reduction: Reduction = "mean", A_T=None, a_S=None,
               a_T=None, Sigma=None, batch: int | None = None) -> np.ndarray:
    """The single closed-form iterate ``W_k`` (see :func:`gd_trajectory`), shape (d, n_in)."""
    Winf = fixed_point(W0, WT, A, X, A_T=A_T, a_S=a_S, a_T=a_T, Sigma=Sigma)
    return _evolve(W0, Winf, A, X, Sigma, reduction, batch, lambda lam: (1.0 - lr * lam) ** float(k))


def gradient_flow(W0, WT, A, X, t, *, reduction: Reduction = "mean", A_T=None, a_S=None, a_T=None,
                  Sigma=None, batch: int | None = None) -> np.ndarray:
    """Gradient-flow solution ``W(t) = W∞ + U [exp(−λ t) ∘ Uᵀ (W0 − W∞) V] Vᵀ``.

    ``t`` is a scalar (result ``(d, n_in)``) or a 1-D array of times (result ``(T, d, n_in)``);
    time is measured in units of learning rate × steps (``t = lr·k``).
    """
    Winf = fixed_point(W0, WT, A, X, A_T=A_T, a_S=a_S, a_T=a_T, Sigma=Sigma)
    t_arr = np.asarray(t, dtype=F64)
    tt = t_arr.reshape(-1, 1, 1)
    out = _evolve(W0, Winf, A, X, Sigma, reduction, batch, lambda lam: np.exp(-lam[None] * tt))
    return out[0] if t_arr.ndim == 0 else out


def gd_stability_limit(A, X=None, *, Sigma=None, reduction: Reduction = "mean", batch: int | None = None) -> float:
    """Largest stable plain-GD learning rate, ``lr < 1 / (c · σ_max(A)² · λ_max(M))``.

    ``M = X Xᵀ`` (finite noise set) or ``Σ``; with the protocol's ``reduction="mean"``
    (``c = 1/(m N)``) this is ``m N / (σ_max(A)² σ_max(X)²)``; for the fresh-noise
    expected iterate (``Sigma``, ``c = 1/m``) it is ``m / (σ_max(A)² λ_max(Σ))``
    (``3m/σ_max(A)²`` for U[−1,1] noise). At the limit itself the fastest mode oscillates.
    """
    lam = mode_rates(A, X, Sigma=Sigma, reduction=reduction, batch=batch)
    top = lam.max()
    return math.inf if top == 0 else float(2.0 / top)


def gd_contraction(A, X, lr: float, *, Sigma=None, reduction: Reduction = "mean", batch: int | None = None) -> float:
    """Per-step contraction ``ρ = max |1 − lr λ|`` over the transferable modes (λ > 0)."""
    lam = mode_rates(A, X, Sigma=Sigma, reduction=reduction, batch=batch)
    pos = lam[lam > 0]
    return 0.0 if pos.size == 0 else float(np.max(np.abs(1.0 - lr * pos)))


def transfer_time(A, X=None, fraction: float = 0.99, *, lr: float | None = None, Sigma=None,
                  reduction: Reduction = "mean", batch: int | None = None) -> float:
    """Time until **every** transferable mode has closed ``fraction`` of its gap to W∞.

    Gradient flow (``lr=None``): ``t_f = ln(1/(1−f)) / λ_min`` with λ_min the slowest
    positive rate (``t`` in units of lr × steps). Plain GD with ``lr``: the number of steps
    ``k_f = ⌈ln(1−f) / ln ρ⌉`` with ``ρ = max|1 − lr λ|`` (``inf`` if ``lr`` is not stable).
    """
    if not 0.0 <= fraction < 1.0:
        raise ValueError("fraction must be in [0, 1)")
    lam = mode_rates(A, X, Sigma=Sigma, reduction=reduction, batch=batch)
    pos = lam[lam > 0]
    if pos.size == 0 or fraction == 0.0:
        return 0.0
    if lr is None:
        return float(math.log(1.0 / (1.0 - fraction)) / pos.min())
    rho = float(np.max(np.abs(1.0 - lr * pos)))
    if rho >= 1.0:
        return math.inf
    if rho == 0.0:
        return 1.0
    return float(math.ceil(math.log(1.0 - fraction) / math.log(rho) - 1e-12))


def logit_error_split(C, W0, WT, A, X, x) -> tuple[np.ndarray, np.ndarray]:
    """The class-logit error at the fixed point, ``C (W∞ − W_T) x``, split in two (R3.2).

    Returns ``(outside_row_A, outside_span_X)`` with ``Δ0 = W0 − W_T``:
    ``outside_row_A = C (I − P_A) Δ0 x`` (lost because A does not see it) and
    ``outside_span_X = C P_A Δ0 (I − P_X) x`` (lost because the noise does not span x).
    ``x``: ``(n_in,)`` or ``(n_in, B)`` (inputs as columns). ``X=None`` means ``P_X = I``.
    """
    C, W0, WT, A = (_arr(v, k, 2) for v, k in ((C, "C"), (W0, "W0"), (WT, "WT"), (A, "A")))
    x = _arr(x, "x")
    D0 = W0 - WT
    PA = projector(A)
    PX = np.eye(W0.shape[1]) if X is None else span_projector(X)
    first = C @ (D0 - PA @ D0) @ x
    second = C @ PA @ D0 @ (x - PX @ x)
    return first, second


def exact_transfer_condition(C, A, X=None, *, W0=None, WT=None, tol: float = 1e-9) -> dict:
    """Whether the fixed point reproduces the teacher's class logits exactly.

    For **every** initialisation: iff ``C = 0`` or (row(C) ⊆ row(A) **and** span(X) = R^{n_in}).
    Sufficient for row(C) ⊆ row(A): ``m ≥ d`` with ``A`` of full column rank (P_A = I).
    For the given ``W0, WT``: iff ``C (Δ0 − P_A Δ0 P_X) = 0``. Residuals are relative.
    """
    C, A = _arr(C, "C", 2), _arr(A, "A", 2)
    PA = projector(A)
    cn = np.linalg.norm(C)
    row = 0.0 if cn == 0 else float(np.linalg.norm(C - C @ PA) / cn)
    n_in = None if X is None else _arr(X, "X", 2).shape[0]
    span_def = 0 if X is None else n_in - int(np.linalg.matrix_rank(_arr(X, "X", 2)))
    out = {
        "row_C_in_row_A_residual": row,
        "row_C_in_row_A": row <= tol,
        "noise_rank_deficit": span_def,
        "noise_spans_inputs": span_def == 0,
        "full_column_rank_A": int(np.linalg.matrix_rank(A)) == A.shape[1],
    }
    out["exact_for_all_inits"] = bool(cn == 0 or (out["row_C_in_row_A"] and out["noise_spans_inputs"]))
    if W0 is not None and WT is not None:
        D0 = _arr(W0, "W0", 2) - _arr(WT, "WT", 2)
        PX = np.eye(D0.shape[1]) if X is None else span_projector(X)
        ref = np.linalg.norm(C @ D0)
        res = np.linalg.norm(C @ (D0 - PA @ D0 @ PX))
        out["this_init_residual"] = 0.0 if ref == 0 else float(res / ref)
        out["exact_for_this_init"] = out["this_init_residual"] <= tol
    return out


def oracle_student_features(hS0, hT, A) -> np.ndarray:
    """R1.2: the distilled student's features ``(I − P_A) h_S⁰ + P_A h_T`` (shared aux head).

    Features along the **last** axis: ``(d,)`` or ``(B, d)`` (rows = samples, the torch layout).
    """
    hS0, hT = _arr(hS0, "hS0"), _arr(hT, "hT")
    PA = projector(A)
    return hS0 + (hT - hS0) @ PA  # P_A symmetric


# --------------------------------------------------------------------------- symbolic side
@lru_cache(maxsize=None)
def _S():
    """Shared sympy symbols for the linear model (built once)."""
    import sympy as sp

    m, d, n, N, K = sp.symbols("m d n_in N K", positive=True, integer=True)
    c, eta, t, g, mu, f = sp.symbols("c eta t g_i mu_j f", positive=True)
    k = sp.Symbol("k", integer=True, nonnegative=True)
    M = sp.MatrixSymbol
    return dict(
        sp=sp, m=m, d=d, n=n, N=N, K=K, c=c, eta=eta, t=t, g=g, mu=mu, f=f, k=k,
        W=M("W", d, n), W0=M("W_0", d, n), WT=M("W_T", d, n), Winf=M(r"W_{\infty}", d, n),
        A=M("A", m, d), Ap=M("A^{+}", d, m), X=M("X", n, N), Xp=M("X^{+}", N, n),
        C=M("C", K, d), x=M("x", n, 1), PA=M("P_A", d, d), PX=M("P_X", n, n),
        I_d=sp.Identity(d), I_n=sp.Identity(n),
    )


def _gradient_build():
    S = _S()
    sp = S["sp"]
    R = S["A"] * (S["W"] - S["WT"]) * S["X"]
    loss = S["c"] * sp.Trace(R * R.T)
    grad = loss.diff(S["W"])
    lhs = r"\nabla_W \mathcal{L}"
    steps = [
        ("Loss, c = 1/(mN) for torch's mean-reduced mse_loss", sp.Eq(sp.Symbol(r"\mathcal{L}"), loss)),
        ("Matrix derivative (sympy: d tr(R Rᵀ)/dW with R = A(W−W_T)X)", eq(lhs, grad)),
        ("Write Δ = W − W_T, G = AᵀA (d×d), M = X Xᵀ (n×n): ∇L = 2c G Δ M, linear in Δ", None),
    ]
    return eq(lhs, grad), steps


def _gradient_check(rng):
    errs = {}
    for m, d, n, N in [(2, 5, 4, 3), (5, 5, 3, 6), (7, 4, 6, 9)]:
        A, W, WT, X = (rng.standard_normal(s) for s in [(m, d), (d, n), (d, n), (n, N)])
        G = aux_gradient(W, WT, A, X)
        # central differences are exact for a quadratic loss up to rounding
        E = rng.standard_normal((d, n))
        h = 1e-3
        fd = (aux_loss(W + h * E, WT, A, X) - aux_loss(W - h * E, WT, A, X)) / (2 * h)
        errs[f"m={m},d={d}"] = abs(fd - np.sum(G * E)) / max(1.0, abs(fd))
        # the loss equals torch's mean-reduced mse: mean over N samples × m logits
        diff = A @ W @ X - A @ WT @ X
        errs[f"mean-reduction m={m},d={d}"] = abs(aux_loss(W, WT, A, X) - np.mean(diff**2))
    return report("aux-gradient", errs, 1e-9)


def _gradient_eval(W, W_T, A, X, reduction="mean"):
    return aux_gradient(W, W_T, A, X, reduction=reduction)


def _flow_build():
    S = _S()
    sp = S["sp"]
    t, c, g, mu = S["t"], S["c"], S["g"], S["mu"]
    delta = sp.Function("delta_ij")
    d0 = sp.Symbol(r"\delta_{ij}(0)")
    ode = sp.Eq(delta(t).diff(t), -2 * c * g * mu * delta(t))
    sol = sp.dsolve(ode, delta(t), ics={delta(0): d0})
    steps = [
        ("Gradient flow dW/dt = −∇L = −2c G (W − W_T) M", eq(r"\dot W", -2 * c * S["A"].T * S["A"] * (S["W"] - S["WT"]) * S["X"] * S["X"].T)),
        ("Diagonalise G = U diag(g) Uᵀ (g_i = σ_i(A)², zero-padded to d) and M = V diag(μ) Vᵀ "
         "(μ_j = σ_j(X)², or eigenvalues of Σ); in these bases δ = Uᵀ(W − W∞)V decouples", None),
        ("Per-mode ODE", ode),
        ("Solution (sympy dsolve)", sol),
        ("Modes with g_i μ_j = 0 (outside row(A) or span(X)) never move; the others decay at rate λ_ij = 2c g_i μ_j",
         sp.Eq(sp.MatrixSymbol("W(t)", S["d"], S["n"]), S["Winf"] + sp.MatrixSymbol(
             r"U\,[e^{-\lambda t}\circ U^{T}(W_0-W_\infty)V]\,V^{T}", S["d"], S["n"]))),
    ]
    return sol, steps


def _flow_check(rng):
    from scipy.linalg import expm

    errs = {}
    for m, d, n, N in [(2, 4, 3, 2), (4, 4, 3, 5), (6, 3, 4, 2)]:
        A, W0, WT, X = (rng.standard_normal(s) for s in [(m, d), (d, n), (d, n), (n, N)])
        c = loss_scale("mean", m, N)
        for t in (0.0, 0.7, 5.0):
            # vec(Δ)' = −2c (M ⊗ G) vec(Δ) in column-major vec; exact matrix exponential
            L = 2 * c * np.kron(X @ X.T, A.T @ A)
            vec = expm(-t * L) @ (W0 - WT).reshape(-1, order="F")
            ref = WT + vec.reshape(d, n, order="F")
            got = gradient_flow(W0, WT, A, X, t)
            errs[f"m={m},d={d},t={t}"] = float(np.max(np.abs(got - ref)))
    return report("gradient-flow", errs, 1e-9)


def _flow_eval(W0, W_T, A, t, X=None, Sigma=None, reduction="mean"):
    return gradient_flow(W0, W_T, A, X, t, Sigma=Sigma, reduction=reduction)


def _gd_build():
    S = _S()
    sp = S["sp"]
    k, eta, c, g, mu = S["k"], S["eta"], S["c"], S["g"], S["mu"]
    delta = sp.Function("delta_ij")
    d0 = sp.Symbol(r"\delta_{ij}(0)")
    rec = sp.Eq(delta(k + 1), (1 - 2 * eta * c * g * mu) * delta(k))
    sol = sp.rsolve(delta(k + 1) - (1 - 2 * eta * c * g * mu) * delta(k), delta(k), {delta(0): d0})
    stab = sp.solve_univariate_inequality(sp.Abs(1 - 2 * eta * c * g * mu) < 1, eta, relational=True)
    gmax, mumax = sp.symbols(r"\sigma_{\max}(A)^2 \lambda_{\max}(M)", positive=True)
    limit = sp.Lt(eta, 1 / (c * gmax * mumax))
    m, N = S["m"], S["N"]
    steps = [
        ("GD step W ← W − η∇L; per mode (same bases as the flow)", rec),
        ("Solution (sympy rsolve)", sp.Eq(delta(k), sol)),
        ("A mode contracts iff |1 − 2ηc g μ| < 1 (sympy)", stab),
        ("All modes: the fastest one decides", limit),
        ("Protocol normalisation c = 1/(mN): η < mN/(σ_max(A)² σ_max(X)²); "
         "fresh-noise expected iterate (Σ, c = 1/m): η < m/(σ_max(A)² λ_max(Σ)) = 3m/σ_max(A)² for U[−1,1]",
         sp.Lt(eta, m * N / (gmax * mumax))),
    ]
    return sp.And(sp.Eq(delta(k), sol), limit), steps


def _simulate_gd(W0, WT, A, X, lr, steps, **kw):
    W = np.array(W0, dtype=F64)
    out = [W.copy()]
    for _ in range(steps):
        W = W - lr * aux_gradient(W, WT, A, X, **kw)
        out.append(W.copy())
    return np.stack(out)


def _gd_check(rng):
    errs, details = {}, {}
    for m, d, n, N in [(2, 5, 4, 3), (5, 5, 4, 6), (7, 4, 5, 8)]:
        A, W0, WT, X = (rng.standard_normal(s) for s in [(m, d), (d, n), (d, n), (n, N)])
        lim = gd_stability_limit(A, X)
        lr = 0.9 * lim
        sim = _simulate_gd(W0, WT, A, X, lr, 200)
        pred = gd_trajectory(W0, WT, A, X, lr, 200)
        scale = max(1.0, np.abs(sim).max())
        errs[f"trajectory m={m},d={d}"] = float(np.max(np.abs(sim - pred)) / scale)
        # just above the limit the iterate must blow up; just below it must not
        above = _simulate_gd(W0, WT, A, X, 1.05 * lim, 400)[-1]
        details[f"diverges above limit m={m}"] = bool(np.linalg.norm(above - WT) > 1e3 * np.linalg.norm(W0 - WT))
        errs[f"divergence above limit m={m}"] = 0.0 if details[f"diverges above limit m={m}"] else np.inf
    return report("gd-iterate", errs, 1e-9, **details)


def _gd_eval(W0, W_T, A, X, lr, steps, reduction="mean"):
    return gd_trajectory(W0, W_T, A, X, lr, int(steps), reduction=reduction)


@lru_cache(maxsize=None)
def _small_symbolic_fixed_point():
    """Verify the fixed point symbolically for d = n_in = 2, m = N = 1 (generic entries)."""
    import sympy as sp

    a = sp.Matrix(1, 2, sp.symbols("a1:3"))
    x = sp.Matrix(2, 1, sp.symbols("x1:3"))
    W0 = sp.Matrix(2, 2, sp.symbols("w1:5"))
    WT = sp.Matrix(2, 2, sp.symbols("v1:5"))
    PA = a.T * a / (a * a.T)[0]
    PX = x * x.T / (x.T * x)[0]
    Winf = W0 + PA * (WT - W0) * PX
    grad = (a.T * a * (Winf - WT) * x * x.T).applyfunc(sp.simplify)
    # W∞ − W0 = Aᵀ s Xᵀ for the scalar s = A(W_T − W0)X / (‖A‖²‖X‖²): inside the GD-reachable set
    s = (a * (WT - W0) * x)[0] / ((a * a.T)[0] * (x.T * x)[0])
    reach = (Winf - W0 - a.T * s * x.T).applyfunc(sp.simplify)
    return grad, reach


def _fp_build():
    S = _S()
    sp = S["sp"]
    W0, WT, A, Ap, X, Xp = S["W0"], S["WT"], S["A"], S["Ap"], S["X"], S["Xp"]
    rhs = W0 + Ap * A * (WT - W0) * X * Xp
    grad, reach = _small_symbolic_fixed_point()
    steps = [
        ("Every GD/flow update −η·2c Aᵀ(A(W−W_T)X)Xᵀ lies in the set {Aᵀ Y Xᵀ}; so W − W0 stays in it",
         sp.Eq(S["W"] - W0, A.T * sp.MatrixSymbol("Y", S["m"], S["N"]) * X.T)),
        ("Stationarity: Aᵀ A (W − W_T) X Xᵀ = 0  ⇔  P_A (W − W_T) P_X = 0 (multiply by A⁺ᵀ… and X⁺…)", None),
        ("The unique point of W0 + {Aᵀ Y Xᵀ} that is stationary (A⁺ = Aᵀ(AAᵀ)⁺, X X⁺ = P_X)", sp.Eq(S["Winf"], rhs)),
        ("Symbolic verification for d = n = 2, m = N = 1 (generic entries): gradient at W∞ simplifies to", grad),
        ("…and W∞ − W0 − Aᵀ s Xᵀ simplifies to (W∞ is reachable)", reach),
        ("Independent of η (for a stable step), of c, and of the spectrum: only the projectors matter", None),
        ("General heads and biases: W∞ = W0 + A_S⁺(A_T W_T − A_S W0)P_X + A_S⁺(a_T − a_S)1ᵀX⁺", None),
    ]
    return sp.Eq(S["Winf"], rhs), steps


def _fp_check(rng):
    errs = {}
    for m, d, n, N in [(2, 5, 4, 3), (5, 5, 4, 6), (8, 4, 5, 9), (3, 6, 7, 4)]:
        A, W0, WT, X = (rng.standard_normal(s) for s in [(m, d), (d, n), (d, n), (n, N)])
        Wf = fixed_point(W0, WT, A, X)
        sc = max(1.0, np.abs(W0).max() + np.abs(WT).max())
        errs[f"gradient at W∞ m={m},d={d}"] = float(np.abs(aux_gradient(Wf, WT, A, X)).max() / sc)
        # reachable: W∞ − W0 = Aᵀ Y Xᵀ for some Y (least squares residual)
        Y = pinv(A.T) @ (Wf - W0) @ pinv(X.T)
        errs[f"reachable m={m},d={d}"] = float(np.abs(A.T @ Y @ X.T - (Wf - W0)).max() / sc)
        # GD limit: closed form at very large k equals W∞
        lr = 0.5 * gd_stability_limit(A, X)
        k = int(transfer_time(A, X, 1 - 1e-15, lr=lr)) + 1
        errs[f"GD limit m={m},d={d}"] = float(np.abs(gd_iterate(W0, WT, A, X, lr, k) - Wf).max() / sc)
        # general heads with biases: stationarity of the general formula
        AT, aS, aT = rng.standard_normal((m, d)), rng.standard_normal(m), rng.standard_normal(m)
        Wg = fixed_point(W0, WT, A, X, A_T=AT, a_S=aS, a_T=aT)
        gg = aux_gradient(Wg, WT, A, X, A_T=AT, a_S=aS, a_T=aT)
        errs[f"general heads m={m},d={d}"] = float(np.abs(gg).max() / sc)
    grad, reach = _small_symbolic_fixed_point()
    errs["symbolic d=n=2,m=N=1"] = 0.0 if (grad.is_zero_matrix and reach.is_zero_matrix) else np.inf
    return report("fixed-point", errs, 1e-9)


def _fp_eval(W0, W_T, A, X=None, A_T=None, a_S=None, a_T=None, Sigma=None):
    return fixed_point(W0, W_T, A, X, A_T=A_T, a_S=a_S, a_T=a_T, Sigma=Sigma)


def _set_build():
    S = _S()
    sp = S["sp"]
    PA, PX, W, WT, W0 = S["PA"], S["PX"], S["W"], S["WT"], S["W0"]
    zero = sp.ZeroMatrix(S["d"], S["n"])
    steps = [
        ("Zero aux loss ⇔ A(W − W_T)X = 0 ⇔ P_A (W − W_T) P_X = 0 (A M X = 0 ⇔ A⁺A M X X⁺ = 0)", sp.Eq(PA * (W - WT) * PX, zero)),
        ("So every optimiser that drives the aux loss to zero transfers the same block P_A W_T P_X", None),
        ("The remaining components (I−P_A)W, P_A W (I−P_X) are free; GD keeps them at W0's values, "
         "which makes W∞ the point of the set nearest W0 in Frobenius norm; Adam moves them (it is not "
         "rotation-equivariant), so its end point differs from W∞ by a matrix with P_A(·)P_X = 0", None),
    ]
    return sp.Eq(PA * (W - WT) * PX, zero), steps


def _set_check(rng):
    errs = {}
    for m, d, n, N in [(2, 5, 4, 3), (5, 5, 4, 6), (8, 4, 5, 9)]:
        A, W0, WT, X = (rng.standard_normal(s) for s in [(m, d), (d, n), (d, n), (n, N)])
        PA, PX = projector(A), span_projector(X)
        Wf = fixed_point(W0, WT, A, X)
        best = np.linalg.norm(Wf - W0)
        for j in range(5):
            Z = rng.standard_normal((d, n))
            W = WT + (Z - PA @ Z @ PX)  # a random member of the solution set
            errs[f"member has zero loss m={m} #{j}"] = aux_loss(W, WT, A, X) / max(1.0, np.sum(W**2))
            errs[f"member has the same block m={m} #{j}"] = float(np.abs(PA @ (W - Wf) @ PX).max())
            # W∞ is the member nearest W0: any other member is at least as far
            errs[f"W∞ nearest W0 m={m} #{j}"] = max(0.0, best - np.linalg.norm(W - W0))
    return report("solution-set", errs, 1e-9)


def _set_eval(W, W_T, A, X=None):
    W, WT = _arr(W, "W", 2), _arr(W_T, "W_T", 2)
    PX = np.eye(W.shape[1]) if X is None else span_projector(X)
    return projector(A) @ (W - WT) @ PX


def _logit_build():
    S = _S()
    sp = S["sp"]
    C, PA, PX, W0, WT, x, Winf = S["C"], S["PA"], S["PX"], S["W0"], S["WT"], S["x"], S["Winf"]
    D0 = W0 - WT
    outside_A = C * (S["I_d"] - PA) * D0 * x
    outside_X = C * PA * D0 * (S["I_n"] - PX) * x
    e = "e(x)"
    steps = [
        ("Class-logit error of the fixed point", eq(e, C * (Winf - WT) * x)),
        ("Insert W∞ − W_T = Δ0 − P_A Δ0 P_X with Δ0 = W0 − W_T, and write Δ0 = (I − P_A)Δ0 + P_A Δ0", None),
        ("Split: lost outside row(A) + lost outside span(X)", eq(e, outside_A + outside_X)),
        ("Shared init (W0 = W_T − ΔW): only the teacher's update ΔW is lost; random init: the whole "
         "difference W0 − W_T is lost outside row(A)", None),
    ]
    return eq(e, outside_A + outside_X), steps


def _logit_check(rng):
    errs = {}
    for m, d, n, N, K in [(2, 5, 6, 3, 3), (5, 5, 4, 6, 4), (8, 4, 7, 5, 3), (3, 6, 7, 10, 2)]:
        A, W0, WT, X, C = (rng.standard_normal(s) for s in [(m, d), (d, n), (d, n), (n, N), (K, d)])
        x = rng.standard_normal((n, 7))
        e1, e2 = logit_error_split(C, W0, WT, A, X, x)
        total = C @ (fixed_point(W0, WT, A, X) - WT) @ x
        errs[f"sum m={m},d={d}"] = float(np.abs(e1 + e2 - total).max() / max(1.0, np.abs(total).max()))
        # the first term vanishes when row(C) ⊆ row(A); the second when x ∈ span(X)
        Cin = rng.standard_normal((K, m)) @ A
        errs[f"row(C)⊆row(A) kills term 1 m={m}"] = float(np.abs(logit_error_split(Cin, W0, WT, A, X, x)[0]).max())
        xin = X @ rng.standard_normal((N, 3))
        errs[f"x∈span(X) kills term 2 m={m}"] = float(np.abs(logit_error_split(C, W0, WT, A, X, xin)[1]).max())
    return report("logit-error", errs, 1e-9)


def _logit_eval(C, W0, W_T, A, x, X=None):
    return logit_error_split(C, W0, W_T, A, X, x)


def _exact_build():
    S = _S()
    sp = S["sp"]
    C, PA, PX, W0, WT = S["C"], S["PA"], S["PX"], S["W0"], S["WT"]
    D0 = W0 - WT
    cond = sp.Eq(C * (D0 - PA * D0 * PX), sp.ZeroMatrix(S["K"], S["n"]))
    steps = [
        ("Exact transfer of the class map for this initialisation", cond),
        ("For every Δ0: take Δ0 = u vᵀ ⇒ (Cu)vᵀ = (C P_A u)(P_X v)ᵀ for all u, v ⇒ C = 0 or "
         "(C P_A = C and P_X = I)", sp.And(sp.Eq(C * (S["I_d"] - PA), sp.ZeroMatrix(S["K"], S["d"])), sp.Eq(PX, S["I_n"]))),
        ("row(C) ⊆ row(A) holds in particular when m ≥ d and A has full column rank (P_A = I); "
         "P_X = I when N ≥ n_in and the noise is generic. Shared initialisation is not needed.", None),
    ]
    return sp.And(sp.Eq(C * (S["I_d"] - PA), sp.ZeroMatrix(S["K"], S["d"])), sp.Eq(PX, S["I_n"])), steps


def _exact_check(rng):
    errs = {}
    for m, d, n, N, K in [(3, 6, 5, 8, 2), (6, 6, 5, 7, 4), (9, 4, 5, 9, 3)]:
        A, W0, WT, X = (rng.standard_normal(s) for s in [(m, d), (d, n), (d, n), (n, N)])
        C = rng.standard_normal((K, min(m, d))) @ A[: min(m, d)]  # row(C) ⊆ row(A)
        x = rng.standard_normal((n, 5))
        cond = exact_transfer_condition(C, A, X, W0=W0, WT=WT)
        err = C @ (fixed_point(W0, WT, A, X) - WT) @ x
        errs[f"exact: logit error m={m},d={d}"] = float(np.abs(err).max())
        errs[f"exact: condition reported m={m}"] = 0.0 if cond["exact_for_all_inits"] and cond["exact_for_this_init"] else np.inf
        # break it: a class head outside row(A) (possible only when m < d) or too few noise samples
        if m < d:
            Cbad = rng.standard_normal((K, d))
            bad = exact_transfer_condition(Cbad, A, X, W0=W0, WT=WT)
            errs[f"detects row(C)⊄row(A) m={m}"] = 0.0 if not bad["exact_for_all_inits"] and not bad["exact_for_this_init"] else np.inf
        Xfew = X[:, : n - 1]
        few = exact_transfer_condition(C, A, Xfew, W0=W0, WT=WT)
        errs[f"detects N<n_in m={m}"] = 0.0 if not few["exact_for_all_inits"] and not few["exact_for_this_init"] else np.inf
    return report("exact-transfer", errs, 1e-9)


def _exact_eval(C, A, X=None, W0=None, W_T=None, tol=1e-9):
    return exact_transfer_condition(C, A, X, W0=W0, WT=W_T, tol=tol)


def _time_build():
    S = _S()
    sp = S["sp"]
    t, c, g, mu, f, eta = S["t"], S["c"], S["g"], S["mu"], S["f"], S["eta"]
    sols = sp.solve(sp.Eq(1 - sp.exp(-2 * c * g * mu * t), f), t)
    tf = next(s for s in sols if s.subs(f, sp.Rational(1, 2)).is_real)
    tf = sp.simplify(tf)
    rho = sp.Symbol("rho", positive=True)
    kf = sp.ceiling(sp.log(1 - f) / sp.log(rho))
    lam_min = sp.Symbol(r"\lambda_{\min}", positive=True)
    T = sp.Symbol("t_f")
    steps = [
        ("Fraction of a mode's gap closed by time t (gradient flow)", sp.Eq(sp.Symbol("f"), 1 - sp.exp(-2 * c * g * mu * t))),
        ("Solved for t (sympy)", sp.Eq(T, tf)),
        ("Every transferable mode reaches f once the slowest does: λ_min = 2c·min g_i μ_j over g_i μ_j > 0",
         sp.Eq(T, sp.log(1 / (1 - f)) / lam_min)),
        ("Plain GD with step η: ρ = max|1 − η λ| over λ > 0; steps needed", sp.Eq(sp.Symbol("k_f"), kf)),
        ("Fresh U[−1,1] noise (Σ = I/3, c = 1/m): λ_min = 2σ_min(A)²/(3m), so t_f = 3m ln(1/(1−f))/(2σ_min(A)²); "
         "with PyTorch's head init σ_min(A)² ≈ (1−√(m/d))²/3", sp.Eq(T, 9 * S["m"] * sp.log(1 / (1 - f)) / (2 * (1 - sp.sqrt(S["m"] / S["d"]))**2))),
    ]
    return sp.Eq(T, sp.log(1 / (1 - f)) / lam_min), steps


def _time_check(rng):
    errs = {}
    for m, d, n, N in [(2, 5, 4, 3), (5, 5, 4, 6), (8, 4, 5, 9)]:
        A, W0, WT, X = (rng.standard_normal(s) for s in [(m, d), (d, n), (d, n), (n, N)])
        f = 0.9
        tf = transfer_time(A, X, f)
        Winf = fixed_point(W0, WT, A, X)
        c, mu, V = _second_moment(A, X, None, "mean", None)
        g, U = _head_modes(A)
        rel = np.abs(U.T @ (gradient_flow(W0, WT, A, X, tf) - Winf) @ V) / np.maximum(np.abs(U.T @ (W0 - Winf) @ V), 1e-300)
        lam = mode_rates(A, X)
        live = lam > 0
        errs[f"slowest mode at 1−f m={m}"] = abs(rel[live][np.argmin(lam[live])] - (1 - f))
        errs[f"all modes within 1−f m={m}"] = max(0.0, float(rel[live].max() - (1 - f)))
        lr = 0.7 * gd_stability_limit(A, X)
        k = int(transfer_time(A, X, f, lr=lr))
        traj = gd_trajectory(W0, WT, A, X, lr, k)
        relk = np.abs(U.T @ (traj[-1] - Winf) @ V)[live] / np.abs(U.T @ (W0 - Winf) @ V)[live]
        relk1 = np.abs(U.T @ (traj[-2] - Winf) @ V)[live] / np.abs(U.T @ (W0 - Winf) @ V)[live]
        errs[f"GD steps sufficient m={m}"] = max(0.0, float(relk.max() - (1 - f)))
        # ⌈·⌉ is tight for the mode that sets ρ: one step fewer is not enough for it
        errs[f"GD steps tight m={m}"] = 0.0 if relk1.max() > (1 - f) - 1e-12 else np.inf
    return report("transfer-time", errs, 1e-9)


def _time_eval(A, fraction=0.99, X=None, Sigma=None, lr=None, reduction="mean"):
    return transfer_time(A, X, fraction, lr=lr, Sigma=Sigma, reduction=reduction)


def _fresh_build():
    S = _S()
    sp = S["sp"]
    Ek = r"\mathbb{E}[W_{k+1}]"
    Sig = sp.MatrixSymbol(r"\Sigma", S["n"], S["n"])
    W = sp.MatrixSymbol(r"\mathbb{E}[W_k]", S["d"], S["n"])
    rhs = W - S["eta"] * 2 / S["m"] * S["A"].T * S["A"] * (W - S["WT"]) * Sig
    steps = [
        ("Fresh batch X_k (B i.i.d. samples, independent of W_k); mean-reduced loss gradient "
         "2/(mB) Aᵀ A (W_k − W_T) X_k X_kᵀ", None),
        ("Take expectations: E[X_k X_kᵀ]/B = Σ and W_k ⟂ X_k, the gradient is affine in W", eq(Ek, rhs)),
        ("So E[W_k] follows plain GD on the population loss: gd_trajectory(..., X=None, Sigma=Σ); "
         "the spread around it is not modelled here", None),
    ]
    return eq(Ek, rhs), steps


def _fresh_check(rng):
    m, d, n, B, steps, reps = 2, 3, 4, 5, 15, 20000
    A, W0, WT = rng.standard_normal((m, d)), rng.standard_normal((d, n)), rng.standard_normal((d, n))
    Sigma = noise_second_moment("uniform", n)
    lr = 0.5 * gd_stability_limit(A, Sigma=Sigma)
    pred = gd_trajectory(W0, WT, A, None, lr, steps, Sigma=Sigma)[-1]
    W = np.broadcast_to(W0, (reps, d, n)).copy()
    for _ in range(steps):
        X = rng.uniform(-1, 1, (reps, n, B))
        R = np.einsum("md,rdn,rnb->rmb", A, W - WT, X)
        W -= lr * 2.0 / (m * B) * np.einsum("md,rmb,rnb->rdn", A, R, X)
    z = z_score(W, pred)
    # 12 entries, each |z| < 4.5 unless the mean recursion were wrong (Bonferroni-safe)
    return report("fresh-noise-mean", {"max |z| over entries − 4.5": max(0.0, float(z.max() - 4.5))}, 0.0,
                  max_z=float(z.max()), repeats=reps)


def _fresh_eval(W0, W_T, A, lr, steps, Sigma=None, noise="uniform"):
    W0 = _arr(W0, "W0", 2)
    Sigma = noise_second_moment(noise, W0.shape[1]) if Sigma is None else Sigma
    return gd_trajectory(W0, W_T, A, None, lr, int(steps), Sigma=Sigma)


_LINEAR = (
    "Student features h = W x, W (d×n_in) trained; teacher W_T fixed (no biases unless stated)",
    "Aux head A (m×d) frozen and shared by teacher and student (A_S = A_T = A); class head C (K×d) untouched",
    "Loss L = c‖A(W − W_T)X‖_F², c = 1/(mN) (torch mse_loss, mean over N samples × m logits); other c via `reduction`",
    "Noise samples X (n_in×N) fixed during training (full-batch) unless stated",
)

register(Result("aux-gradient", "gradient of the aux-MSE loss: ∇L = 2c AᵀA(W − W_T)XXᵀ", _LINEAR,
                "The update direction is confined to row(A) on the left and span(X) on the right, for any model "
                "whose features are linear in W.", True, _gradient_build, _gradient_eval, _gradient_check,
                section="linear"))
register(Result("gradient-flow", "gradient-flow ODE and its solution W(t), per singular mode of A and of X (or Σ)",
                _LINEAR + ("Gradient flow (learning rate → 0, t = lr·steps)",),
                "Transfer proceeds mode by mode at rates 2c σ_i(A)² σ_j(X)²: directions weakly seen by A or by the "
                "noise are learned last.", True, _flow_build, _flow_eval, _flow_check, section="linear"))
register(Result("gd-iterate", "plain gradient-descent iterate W_k in closed form and its step-size stability limit",
                _LINEAR + ("Plain full-batch gradient descent W ← W − η∇L with constant η",),
                "A float64 GD run follows W_k at every step; it diverges above lr = mN/(σ_max(A)²σ_max(X)²).",
                True, _gd_build, _gd_eval, _gd_check, section="linear"))
register(Result("fixed-point", "fixed point W∞ = W0 + P_A (W_T − W0) P_X (theory R3.1)",
                _LINEAR + ("Gradient descent with a stable step (or gradient flow), run to convergence",),
                "The student copies the teacher exactly on row(A) ⊗ span(X) and keeps its own initial weights "
                "elsewhere; predictions need only the two projectors, not the step size.", True,
                _fp_build, _fp_eval, _fp_check, section="linear"))
register(Result("solution-set", "any optimiser reaching zero aux loss satisfies P_A(W − W_T)P_X = 0",
                _LINEAR[:3] + ("Any optimiser (GD, Adam, …) driven to zero aux loss",),
                "Adam transfers the same block P_A W_T P_X as GD but moves the free components, so its class "
                "logits differ from the GD prediction by C(W_Adam − W∞)x with P_A(W_Adam − W∞)P_X = 0.",
                True, _set_build, _set_eval, _set_check, section="linear"))
register(Result("logit-error", "class-logit error at the fixed point, split into the parts lost outside row(A) and outside span(X)",
                _LINEAR + ("Class head C identical in teacher and student (class-compatible)",),
                "The student-teacher class-logit gap on test inputs is C(I−P_A)Δ0x + C P_A Δ0(I−P_X)x: the first term "
                "shrinks with m (row(A) grows), the second with N (span(X) grows).", True,
                _logit_build, _logit_eval, _logit_check, section="linear"))
register(Result("exact-transfer", "exact-transfer condition: row(C) ⊆ row(A) and span(X) = R^n_in (for every initialisation)",
                _LINEAR + ("Class head shared (C_S = C_T = C)",),
                "Teacher-level class logits from noise alone whenever m ≥ d (A generic) and N ≥ n_in, with or without "
                "a shared initialisation.", True, _exact_build, _exact_eval, _exact_check, section="linear"))
register(Result("transfer-time", "time (flow) or number of GD steps until every transferable mode has closed a fraction f of its gap",
                _LINEAR + ("Gradient flow, or plain GD with a stable step",),
                "Transfer time grows like 1/σ_min(A)²: ∝ m/(1−√(m/d))² for fresh U[−1,1] noise and PyTorch heads, "
                "diverging as m → d.", True, _time_build, _time_eval, _time_check, section="linear"))
register(Result("fresh-noise-mean", "expected SGD iterate with fresh noise every step follows GD on the population loss (Σ = E[xxᵀ])",
                _LINEAR[:3] + ("Fresh i.i.d. noise batches every step (the protocol), plain SGD", "Only the mean iterate is predicted"),
                "Averaged over noise draws, a plain-SGD linear student follows gd_trajectory(X=None, Sigma=I/3) exactly.",
                True, _fresh_build, _fresh_eval, _fresh_check, section="linear"))
