"""Random aux heads: the transfer fraction E[P_A] = min(m,d)/d · I, its variance, the head overlap τ.

``P_A = A⁺A`` projects the student's feature space (R^d) onto row(A). For a random aux head
the expected projector, the spread of ``‖P_A v‖²`` for a fixed direction ``v``, and the
head-overlap index ``τ = tr(C P_A Cᵀ)/tr(C Cᵀ)`` of a class head ``C`` follow from symmetry:

* **rotation-invariant** heads (``A Q`` has the law of ``A`` for every orthogonal ``Q``, e.g.
  i.i.d. Gaussian entries): row(A) is uniform on the Grassmannian; mean *and* variance
  formulas are exact;
* **sign-permutation-invariant** heads (i.i.d. entries from any symmetric law, e.g.
  PyTorch's U(±1/√d)): the mean ``E[P_A] = r/d · I`` is still exact; variances are then
  approximations (the law of row(A) is not uniform).

Both need rank(A) = r = min(m, d) almost surely (true for continuous entry laws).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from .linear import _arr, projector
from .results import Result, eq, register, report, z_score


# --------------------------------------------------------------------------- evaluators
def transfer_fraction_expected(m, d):
    """``E[‖P_A v‖²]/‖v‖² = min(m, d)/d`` (entrywise: ``E[P_A] = min(m,d)/d · I``); arrays broadcast."""
    m, d = np.asarray(m, dtype=np.float64), np.asarray(d, dtype=np.float64)
    out = np.minimum(m, d) / d
    return float(out) if out.ndim == 0 else out


def transfer_fraction_variance(m, d):
    """``Var[‖P_A v‖²]`` for a fixed unit ``v``: ``2 r (d − r) / (d² (d + 2))``, r = min(m, d).

    Exact for rotation-invariant heads (``‖P_A v‖² ~ Beta(r/2, (d − r)/2)``); approximate otherwise.
    """
    m, d = np.asarray(m, dtype=np.float64), np.asarray(d, dtype=np.float64)
    r = np.minimum(m, d)
    out = 2.0 * r * (d - r) / (d**2 * (d + 2.0))
    return float(out) if out.ndim == 0 else out


def projector_entry_moments(m: int, d: int) -> dict:
    """Moments of the entries of a uniformly random rank-r projector (rotation-invariant head).

    ``mean_diag = r/d``, ``var_diag = 2r(d−r)/(d²(d+2))``, ``mean_offdiag = 0``,
    ``mean_offdiag_sq = r(d−r)/(d(d+2)(d−1))`` (from ``Σ_j P_ij² = P_ii``).
    """
    r = min(m, d)
    return {
        "rank": r,
        "mean_diag": r / d,
        "var_diag": 2.0 * r * (d - r) / (d**2 * (d + 2.0)),
        "mean_offdiag": 0.0,
        "mean_offdiag_sq": (r * (d - r) / (d * (d + 2.0) * (d - 1.0))) if d > 1 else 0.0,
    }


def head_overlap(C, A) -> float:
    """``τ = tr(C P_A Cᵀ)/tr(C Cᵀ) ∈ [0, 1]``: the share of the class head's energy inside row(A)."""
    C = _arr(C, "C", 2)
    den = float(np.sum(C * C))
    if den == 0:
        raise ValueError("C is zero; the overlap is undefined")
    P = projector(A)
    return float(np.sum((C @ P) * C) / den)


def head_overlap_expected(m, d):
    """``E[τ] = min(m, d)/d`` for any fixed C and a sign-permutation-invariant random A."""
    return transfer_fraction_expected(m, d)


def head_overlap_variance(C, m: int) -> float:
    """``Var[τ]`` for a fixed class head ``C`` (K×d) and a rotation-invariant random A (m×d).

    ``2 r (d − r) / (d (d − 1) (d + 2)) · (tr(M²) − tr(M)²/d) / tr(M)²`` with ``M = CᵀC``,
    r = min(m, d). Zero when C's rows are orthonormal and span R^d (τ ≡ r/d) or r ∈ {0, d}.
    """
    C = _arr(C, "C", 2)
    d = C.shape[1]
    r = min(m, d)
    if d < 2:
        return 0.0
    M = C.T @ C
    tr, tr2 = np.trace(M), np.sum(M * M)
    return float(2.0 * r * (d - r) / (d * (d - 1.0) * (d + 2.0)) * (tr2 - tr**2 / d) / tr**2)


def principal_angles(C, A) -> np.ndarray:
    """Principal angles (radians, ascending) between row(C) and row(A), ``min(rank C, rank A)`` of them.

    For C with orthonormal rows, ``head_overlap(C, A) = mean(cos² θ)`` over its K rows
    (angles beyond rank(A) count as π/2).
    """
    from scipy.linalg import subspace_angles

    return np.sort(subspace_angles(_arr(C, "C", 2).T, _arr(A, "A", 2).T))


def expected_transferred_map(m, d, N, n_in):
    """``E[W∞ − W0] = (min(m,d)/d)·(min(N,n_in)/n_in)·(W_T − W0)``: the scalar factor.

    Exact for independent sign-permutation-invariant A (m×d) and noise X (n_in×N), e.g.
    i.i.d. U[−1,1] noise and PyTorch's head initialisation, because the fixed point is
    bilinear in (P_A, P_X) and E[P_A], E[P_X] are multiples of the identity.
    """
    return transfer_fraction_expected(m, d) * transfer_fraction_expected(N, n_in)


# --------------------------------------------------------------------------- Monte Carlo helpers
def _batched_projectors(A: np.ndarray) -> np.ndarray:
    """P_A for a stack of generic heads (R, m, d) -> (R, d, d); asserts full rank."""
    _, s, vt = np.linalg.svd(A, full_matrices=False)
    r = min(A.shape[1:])
    if np.any(s[:, r - 1] <= 1e-10 * s[:, 0]):
        raise RuntimeError("a sampled head was numerically rank-deficient")
    v = vt[:, :r]
    return np.einsum("rki,rkj->rij", v, v)


def _draw_heads(rng, R, m, d, law):
    if law == "gaussian":
        return rng.standard_normal((R, m, d))
    if law == "uniform":  # PyTorch Linear default, U(±1/√fan_in)
        b = 1.0 / np.sqrt(d)
        return rng.uniform(-b, b, (R, m, d))
    raise ValueError(law)


def monte_carlo_transfer_fraction(rng, m: int, d: int, R: int = 4000, law: str = "gaussian", v=None) -> dict:
    """Sample mean ± standard error of ``vᵀ P_A v`` (unit v) over R random heads, with the prediction.

    Returns ``mean``, ``sem``, ``ci95`` (normal-approximation interval), ``predicted`` = min(m,d)/d
    and ``z`` = |mean − predicted|/sem, plus the sample variance against the rotation-invariant formula.
    """
    v = np.ones(d) / np.sqrt(d) if v is None else _arr(v, "v", 1) / np.linalg.norm(v)
    P = _batched_projectors(_draw_heads(rng, R, m, d, law))
    s = np.einsum("i,rij,j->r", v, P, v)
    mean, sd = float(s.mean()), float(s.std(ddof=1))
    sem = sd / np.sqrt(R)
    pred = transfer_fraction_expected(m, d)
    var_pred = transfer_fraction_variance(m, d)
    # standard error of the sample variance from the sample fourth central moment
    mu4 = float(np.mean((s - mean) ** 4))
    var_sem = np.sqrt(max(mu4 - sd**4, 0.0) / R)
    return {"mean": mean, "sem": sem, "ci95": (mean - 1.96 * sem, mean + 1.96 * sem), "predicted": pred,
            "z": float(z_score(s, pred)), "var": sd**2, "var_sem": var_sem, "var_predicted": var_pred,
            "var_z": abs(sd**2 - var_pred) / max(var_sem, 1e-12)}


# --------------------------------------------------------------------------- symbolic side
@lru_cache(maxsize=None)
def _S():
    import sympy as sp

    m, d, K = sp.symbols("m d K", positive=True, integer=True)
    r = sp.Symbol("r", positive=True, integer=True)
    return dict(sp=sp, m=m, d=d, K=K, r=r, I=sp.Identity(d), P=sp.MatrixSymbol("P_A", d, d),
                Q=sp.MatrixSymbol("Q", d, d), C=sp.MatrixSymbol("C", K, d))


def _mean_build():
    S = _S()
    sp = S["sp"]
    m, d, P, Q, I = S["m"], S["d"], S["P"], S["Q"], S["I"]
    EP = sp.MatrixSymbol(r"\mathbb{E}[P_A]", d, d)
    res = sp.Eq(EP, sp.Min(m, d) / d * I)
    cI = sp.Symbol("c")
    steps = [
        ("For orthogonal Q, row(A Qᵀ) = Q row(A), so P_{AQᵀ} = Q P_A Qᵀ", eq("P_{AQ^T}", Q * P * Q.T)),
        ("If A Qᵀ has the law of A, then Q E[P_A] Qᵀ = E[P_A] for those Q. Rotation invariance (all Q) or "
         "sign-permutation invariance (Q signed permutations: i.i.d. symmetric entries) both force E[P_A] = c I "
         "(diagonal sign flips kill off-diagonal entries, permutations equalise the diagonal)", sp.Eq(EP, cI * I)),
        ("Trace: tr P_A = rank A = min(m, d) almost surely, so c d = min(m, d)", sp.Eq(cI, sp.Min(m, d) / d)),
        ("Hence E‖P_A v‖² = min(m,d)/d ‖v‖² and E[C P_A Cᵀ] = min(m,d)/d · C Cᵀ for any fixed v, C", res),
    ]
    return res, steps


def _structure_errors(rng, errs):
    for m, d in [(3, 7), (6, 6), (9, 5)]:
        A = rng.standard_normal((m, d))
        P = projector(A)
        errs[f"tr P_A = min(m,d) m={m},d={d}"] = abs(np.trace(P) - min(m, d))
        errs[f"P_A² = P_A m={m},d={d}"] = float(np.abs(P @ P - P).max())
        errs[f"A P_A = A m={m},d={d}"] = float(np.abs(A @ P - A).max())


def _mean_check(rng):
    errs, details = {}, {}
    _structure_errors(rng, errs)
    zmax = 4.5  # 12 z-tests at |z| < 4.5: false-alarm probability < 1e-4
    for law in ("gaussian", "uniform"):
        for m, d in [(3, 8), (8, 8), (13, 8)]:
            for vname, v in (("e1", np.eye(d)[0]), ("ones", np.ones(d))):
                mc = monte_carlo_transfer_fraction(rng, m, d, R=3000, law=law, v=v)
                key = f"{law} m={m},d={d},v={vname}"
                details[key] = f"{mc['mean']:.4f} ± {mc['sem']:.4f} (pred {mc['predicted']:.4f})"
                errs[f"z − {zmax} {key}"] = max(0.0, mc["z"] - zmax)
    return report("random-projector-mean", errs, 1e-9, **details)


def _mean_eval(m, d):
    return transfer_fraction_expected(m, d)


def _var_build():
    S = _S()
    sp = S["sp"]
    from sympy.stats import Beta, E, variance

    d, r = S["d"], S["r"]
    B = Beta("B", r / 2, (d - r) / 2)
    var_stats = sp.simplify(variance(B))
    var = 2 * r * (d - r) / (d**2 * (d + 2))  # the readable form; equal to sympy.stats' result:
    assert sp.simplify(var_stats - var) == 0
    mean = sp.simplify(E(B))
    second = sp.simplify(E(B**2))
    offd = r * (d - r) / (d * (d + 2) * (d - 1))
    assert sp.simplify((mean - second) / (d - 1) - offd) == 0
    V = sp.Symbol(r"\mathrm{Var}\,\|P_A v\|^2")
    steps = [
        ("For rotation-invariant A, P_A = U diag(1_r, 0) Uᵀ with U Haar; for a unit v, Uᵀv is uniform on the "
         "sphere, so vᵀ P_A v = χ²_r/(χ²_r + χ²_{d−r})", sp.Eq(sp.Symbol(r"v^T P_A v"), sp.Symbol(r"\mathrm{Beta}(r/2,(d-r)/2)"))),
        ("Mean (sympy.stats)", sp.Eq(sp.Symbol(r"\mathbb{E}\,v^T P_A v"), mean)),
        ("Variance (sympy.stats)", sp.Eq(V, var)),
        ("Off-diagonal entries: Σ_j P_ij² = P_ii (P² = P) and exchangeability give E[P_ij²], i ≠ j",
         sp.Eq(sp.Symbol(r"\mathbb{E}\,P_{ij}^2"), offd)),
        ("r = min(m, d); vanishes for m ≥ d (P_A = I) — the transfer is then deterministic", None),
    ]
    return sp.Eq(V, var), steps


def _var_check(rng):
    errs, details = {}, {}
    zmax = 4.5
    for m, d in [(2, 10), (5, 10), (9, 10)]:
        mc = monte_carlo_transfer_fraction(rng, m, d, R=6000, law="gaussian", v=rng.standard_normal(d))
        details[f"var m={m},d={d}"] = f"{mc['var']:.5f} ± {mc['var_sem']:.5f} (pred {mc['var_predicted']:.5f})"
        errs[f"var z − {zmax} m={m},d={d}"] = max(0.0, mc["var_z"] - zmax)
        # off-diagonal second moment
        P = _batched_projectors(_draw_heads(rng, 6000, m, d, "gaussian"))
        s = P[:, 0, 1] ** 2
        pred = projector_entry_moments(m, d)["mean_offdiag_sq"]
        z = float(z_score(s, pred))
        details[f"E P_01² m={m},d={d}"] = f"{s.mean():.5f} (pred {pred:.5f})"
        errs[f"offdiag z − {zmax} m={m},d={d}"] = max(0.0, z - zmax)
    # m ≥ d: exactly zero variance
    P = _batched_projectors(_draw_heads(rng, 50, 12, 10, "gaussian"))
    errs["m≥d: P_A = I"] = float(np.abs(P - np.eye(10)).max())
    errs["m≥d: formula gives 0"] = transfer_fraction_variance(12, 10)
    return report("random-projector-variance", errs, 1e-9, **details)


def _var_eval(m, d):
    return transfer_fraction_variance(m, d)


def _tau_build():
    S = _S()
    sp = S["sp"]
    d, r = S["d"], S["r"]
    C, P = S["C"], S["P"]
    tau = sp.Symbol("tau")
    trM, trM2 = sp.Symbol(r"(\mathrm{tr}\,M)", positive=True), sp.Symbol(r"\mathrm{tr}(M^{2})", positive=True)
    a, b = sp.symbols("alpha beta")
    # Var tr(P M) is an O(d)-invariant quadratic form in symmetric M: α tr M² + β (tr M)²
    sol = sp.solve([sp.Eq(a * d + b * d**2, 0),                                     # M = I: tr(P) = r is constant
                    sp.Eq(a + b, 2 * r * (d - r) / (d**2 * (d + 2)))], [a, b], dict=True)[0]  # M = vvᵀ: Beta variance
    alpha = 2 * r * (d - r) / (d * (d - 1) * (d + 2))
    assert sp.simplify(sol[a] - alpha) == 0 and sp.simplify(sol[b] + alpha / d) == 0
    var_tr = alpha * (trM2 - trM**2 / d)
    var_tau = var_tr / trM**2
    steps = [
        ("Definition (M = CᵀC)", sp.Eq(tau, sp.Trace(C * P * C.T) / sp.Trace(C * C.T))),
        ("Expectation: E[P_A] = r/d · I (random-projector-mean)", sp.Eq(sp.Symbol(r"\mathbb{E}\,\tau"), r / d)),
        ("Var tr(P_A M) is a quadratic form in M invariant under M → QMQᵀ, hence α tr M² + β (tr M)²; "
         "M = I gives α d + β d² = 0, M = vvᵀ gives α + β = 2r(d−r)/(d²(d+2)); solved (sympy)",
         sp.Eq(sp.Symbol(r"(\alpha,\beta)"), sp.Tuple(alpha, -alpha / d))),
        ("Variance of τ (rotation-invariant A, r = min(m,d))", sp.Eq(sp.Symbol(r"\mathrm{Var}\,\tau"), var_tau)),
        ("Principal angles: for C with orthonormal rows, τ = (1/K) Σ cos² θ_i", None),
    ]
    return sp.And(sp.Eq(sp.Symbol(r"\mathbb{E}\,\tau"), r / d), sp.Eq(sp.Symbol(r"\mathrm{Var}\,\tau"), var_tau)), steps


def _tau_check(rng):
    errs, details = {}, {}
    zmax = 4.5
    for m, d, K in [(2, 9, 3), (6, 9, 4), (11, 9, 2)]:
        C = rng.standard_normal((K, d)) * rng.uniform(0.2, 2.0, d)  # anisotropic class head
        # exact identity: τ = mean cos² of principal angles for orthonormal rows
        Qc = np.linalg.qr(C.T)[0].T
        A = rng.standard_normal((m, d))
        th = principal_angles(Qc, A)
        errs[f"τ = mean cos²θ m={m}"] = abs(head_overlap(Qc, A) - np.sum(np.cos(th) ** 2) / K)
        # Monte Carlo of τ over rotation-invariant heads
        P = _batched_projectors(_draw_heads(rng, 4000, m, d, "gaussian"))
        t = np.einsum("ki,rij,kj->r", C, P, C) / np.sum(C * C)
        pm, pv = transfer_fraction_expected(m, d), head_overlap_variance(C, m)
        details[f"τ m={m},d={d}"] = f"mean {t.mean():.4f} (pred {pm:.4f}), var {t.var(ddof=1):.2e} (pred {pv:.2e})"
        sd = t.std(ddof=1)
        errs[f"mean z − {zmax} m={m}"] = max(0.0, float(z_score(t, pm)) - zmax)
        mu4 = np.mean((t - t.mean()) ** 4)
        vsem = np.sqrt(max(mu4 - sd**4, 0.0) / t.size)
        errs[f"var z − {zmax} m={m}"] = max(0.0, abs(sd**2 - pv) / max(vsem, 1e-12) - zmax)
    return report("head-overlap", errs, 1e-9, **details)


def _tau_eval(C=None, A=None, m=None, d=None):
    if C is not None and A is not None:
        return head_overlap(C, A)
    if C is not None and m is not None:
        return {"expected": head_overlap_expected(m, _arr(C, "C", 2).shape[1]), "variance": head_overlap_variance(C, m)}
    if m is not None and d is not None:
        return head_overlap_expected(m, d)
    raise ValueError("give C and A (τ), C and m (mean, variance over random A), or m and d (mean)")


def _map_build():
    S = _S()
    sp = S["sp"]
    m, d = S["m"], S["d"]
    N, n = sp.symbols("N n_in", positive=True, integer=True)
    W0, WT = sp.MatrixSymbol("W_0", d, n), sp.MatrixSymbol("W_T", d, n)
    lhs = r"\mathbb{E}[W_\infty - W_0]"
    res = eq(lhs, sp.Min(m, d) / d * sp.Min(N, n) / n * (WT - W0))
    steps = [
        ("W∞ − W0 = P_A (W_T − W0) P_X is linear in P_A and in P_X separately", None),
        ("A ⟂ X independent: E[P_A M P_X] = E[P_A] M E[P_X] for fixed M", None),
        ("Both expectations are multiples of I (random-projector-mean, applied to A and to Xᵀ)", res),
    ]
    return res, steps


def _map_check(rng):
    errs, details = {}, {}
    d, n, R = 6, 7, 3000
    W0, WT = rng.standard_normal((d, n)), rng.standard_normal((d, n))
    D = WT - W0
    for m, N in [(2, 3), (6, 9), (8, 4)]:
        PA = _batched_projectors(_draw_heads(rng, R, m, d, "uniform"))
        PX = _batched_projectors(rng.uniform(-1, 1, (R, N, n)))  # projector onto span of N noise columns
        S = np.einsum("rij,jk,rkl->ril", PA, D, PX)
        pred = expected_transferred_map(m, d, N, n) * D
        z = z_score(S, pred)  # deterministic (z ≈ 0) when m ≥ d and N ≥ n_in
        details[f"m={m},N={N}"] = f"factor {expected_transferred_map(m, d, N, n):.4f}, max |z| {z.max():.2f}"
        errs[f"max z − 5 m={m},N={N}"] = max(0.0, float(z.max()) - 5.0)  # 42 entries per case
    return report("random-transfer-map", errs, 1e-9, **details)


def _map_eval(m, d, N, n_in):
    return expected_transferred_map(m, d, N, n_in)


_RAND = ("Aux head A (m×d) random with a law invariant under A → AQ for every orthogonal Q "
         "(mean: signed permutations Q suffice, e.g. i.i.d. U(±1/√d) entries)",
         "rank A = min(m, d) almost surely (continuous entries)")

register(Result("random-projector-mean", "E[P_A] = min(m,d)/d · I for random aux heads (theory R2)", _RAND,
                "With independent random heads the aux channel carries a fraction m/d of any fixed feature difference "
                "(m ≥ d: all of it): 0.039 for m = 10, d = 256.", True, _mean_build, _mean_eval, _mean_check,
                section="heads"))
register(Result("random-projector-variance", "variance of the transfer fraction ‖P_A v‖²: 2r(d−r)/(d²(d+2)), r = min(m,d)",
                _RAND + ("Exact for rotation-invariant A (Gaussian); approximate for i.i.d. uniform entries",),
                "Seed-to-seed spread of the transferred fraction: relative sd ≈ √(2(d−r)/(r(d+2))), large for small m "
                "(≈ 0.44 at m = 10, d = 256), zero for m ≥ d.", True, _var_build, _var_eval, _var_check,
                section="heads"))
register(Result("head-overlap", "head-overlap index τ = tr(C P_A Cᵀ)/tr(CCᵀ): E[τ] = min(m,d)/d and its variance",
                _RAND + ("Class head C fixed (or independent of A)", "Variance exact for rotation-invariant A only"),
                "τ measured on the initial heads should be ≈ m/d (Fig 2 m-sweep, Fig 6 D-sweep); transfer rises with τ.",
                True, _tau_build, _tau_eval, _tau_check, section="heads"))
register(Result("random-transfer-map", "E[W∞ − W0] = (min(m,d)/d)(min(N,n_in)/n_in)(W_T − W0) for independent random A and noise",
                _RAND + ("Linear model of `fixed-point`", "Noise X (n_in×N) i.i.d. with a symmetric law (U[−1,1]), independent of A"),
                "On average a linear student moves a fraction (m/d)(N/n_in) of the way to the teacher (factor 1 for N ≥ n_in, "
                "m ≥ d).", True, _map_build, _map_eval, _map_check, section="heads"))
