"""Class-head perturbation: accuracy of a classifier whose (never-trained) class head gets Gaussian noise.

The student's class head C never enters the distillation loss, so perturbing it,
``C_S = C + E`` (and ``c_S = c + e`` if the bias is perturbed) with i.i.d. ``N(0, σ²)``
entries, changes nothing but the read-out: the logits become ``y(x) + E h(x) (+ e)``
with ``y``, ``h`` the *unperturbed* student's logits and last-hidden features. For one
input the noise ``g = E h + e`` has i.i.d. ``N(0, s²)`` entries, ``s = σ r``,
``r = ‖h‖`` (``√(‖h‖² + 1)`` with the bias), so, with ``Δ_j = y_c − y_j``::

    Pr[argmax(y + g) = c] = E_{z~N(0,1)} Π_{j≠c} Φ(Δ_j / s + z)          (exact)

(condition on ``g_c = s z``: class j loses iff ``g_j < Δ_j + g_c``). The integrand is
smooth in z for every s, so Gauss–Hermite quadrature is accurate to ~1e-12.
Closed-form bounds on the flip probability of the clean argmax from its margin ``γ`` alone:
``Φ(−γ/(√2 s)) ≤ Pr[flip] ≤ 1 − E_z Φ(γ/s + z)^{K−1} ≤ (K − 1) Φ(−γ/(√2 s))``.
"""

from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from scipy.optimize import brentq
from scipy.special import log_ndtr, ndtr

from .linear import _arr
from .results import Result, register, report, z_score

_NODES, _WEIGHTS = np.polynomial.hermite_e.hermegauss(96)
_WEIGHTS = _WEIGHTS / math.sqrt(2.0 * math.pi)
_ROWS = 1024  # rows per block of the quadrature (a few MB of temporaries)


def _inputs(logits, features, bias: bool):
    y = _arr(logits, "logits")
    y = y[None] if y.ndim == 1 else y
    h = _arr(features, "features")
    h = h[None] if h.ndim == 1 else h
    if y.ndim != 2 or h.ndim != 2 or h.shape[0] != y.shape[0]:
        raise ValueError(f"logits (B, K) and features (B, d) must share B; got {y.shape} and {h.shape}")
    if y.shape[1] < 2:
        raise ValueError("need K ≥ 2 classes")
    r = np.sqrt(np.sum(h * h, axis=1) + (1.0 if bias else 0.0))
    return y, r


def _probability(y: np.ndarray, r: np.ndarray, sig: np.ndarray, c: np.ndarray) -> np.ndarray:
    """``E_z Π_{j≠c} Φ(Δ_j/(σ r) + z)`` for validated ``y`` (B, K), ``r`` (B,), ``sig`` (...), ``c`` (B,).

    Blocks of rows (and σ values) run on a thread pool: scipy's ``log_ndtr`` releases the GIL,
    and every row's arithmetic is the same as in one pass.
    """
    B, K = y.shape
    delta = y[np.arange(B), c][:, None] - y
    others = np.arange(K)[None, :] != c[:, None]
    clean = np.all((delta > 0) | ~others, axis=1).astype(np.float64)  # no noise: ties count as lost

    def block(task):
        s_val, rows = task
        s = s_val * r[rows]
        pos = s > 0
        a = np.where(pos[:, None], delta[rows], 0.0) / np.where(pos, s, 1.0)[:, None]
        logp = np.where(others[rows, :, None], log_ndtr(a[:, :, None] + _NODES), 0.0).sum(axis=1)
        return np.where(pos, np.exp(logp) @ _WEIGHTS, clean[rows])

    out = np.empty(sig.shape + (B,))
    blocks = [slice(i, min(i + _ROWS, B)) for i in range(0, B, _ROWS)]
    keys = [(idx, rows) for idx in np.ndindex(sig.shape) for rows in blocks]
    tasks = [(float(sig[idx]), rows) for idx, rows in keys]
    workers = min(len(tasks), os.cpu_count() or 1)
    if workers > 1:
        with ThreadPoolExecutor(workers) as pool:
            values = list(pool.map(block, tasks))
    else:
        values = [block(t) for t in tasks]
    for (idx, rows), v in zip(keys, values):
        out[idx + (rows,)] = v
    return out


def class_perturbation_probability(logits, features, sigma, target=None, *, bias: bool = False) -> np.ndarray:
    """``Pr_E[argmax(y + E h (+ e)) = target]`` per input, exact (Gauss–Hermite in z).

    ``= E_z Π_{j≠c} Φ((y_c − y_j)/(σ r) + z)`` with ``r = ‖h‖`` (``√(‖h‖²+1)`` if ``bias``).
    ``logits`` (B, K), ``features`` (B, d), ``target`` (B,) class indices (default: the clean
    argmax, giving ``1 − Pr[flip]``). ``sigma``: scalar → (B,); array (S,) → (S, B).
    """
    y, r = _inputs(logits, features, bias)
    return _probability(y, r, _sigma(sigma), _target(y, target))


def _sigma(sigma) -> np.ndarray:
    sig = np.asarray(sigma, dtype=np.float64)
    if np.any(sig < 0) or not np.all(np.isfinite(sig)):
        raise ValueError("sigma must be finite and ≥ 0")
    return sig


def _target(y: np.ndarray, target) -> np.ndarray:
    B, K = y.shape
    c = np.argmax(y, axis=1) if target is None else np.asarray(target, dtype=np.int64).reshape(B)
    if np.any((c < 0) | (c >= K)):
        raise ValueError(f"target/labels must be B = {B} class indices in [0, {K})")
    return c


def class_perturbation_flip_bounds(margin, scale, K: int) -> dict:
    """Closed forms for ``Pr[flip]`` of the clean argmax from its margin γ and noise scale ``s = σ r``.

    ``lower = Φ(−γ/(√2 s))`` (runner-up alone), ``equal_margins = 1 − E_z Φ(γ/s + z)^{K−1}``
    (all K − 1 rivals at the runner-up: the largest flip probability for this γ, an upper
    bound), ``union = min(1, (K − 1) Φ(−γ/(√2 s)))`` (union bound, looser).
    """
    g, s = np.broadcast_arrays(np.asarray(margin, dtype=np.float64), np.asarray(scale, dtype=np.float64))
    if K < 2 or np.any(g < 0) or np.any(s <= 0):
        raise ValueError("need K ≥ 2, margin ≥ 0 and scale > 0")
    pair = ndtr(-g / (math.sqrt(2.0) * s))
    eq = 1.0 - np.exp((K - 1) * log_ndtr((g / s)[..., None] + _NODES)) @ _WEIGHTS
    return {"lower": pair, "equal_margins": eq, "union": np.minimum(1.0, (K - 1) * pair)}


def class_perturbation_accuracy(logits, features, labels, sigma, *, bias: bool = False):
    """Predicted accuracy ``acc(σ) = mean_x Pr[argmax(y + E h) = label(x)]`` (float, or (S,) for array σ)."""
    y, r = _inputs(logits, features, bias)
    acc = _probability(y, r, _sigma(sigma), _target(y, labels)).mean(axis=-1)
    return float(acc) if acc.ndim == 0 else acc


def class_perturbation_sigma_critical(logits, features, labels, *, bias: bool = False) -> dict:
    """σ* where the predicted accuracy is half-way between the clean accuracy and chance 1/K.

    Solves ``acc(σ*) = (acc(0) + 1/K)/2`` (Brent in log σ) from the *unperturbed* student's
    logits and features (the ones the perturbed student also has: its class head never trains).
    Returns ``sigma_star``, ``clean_accuracy``, ``target`` and ``chance``; ``sigma_star`` is nan
    when the clean accuracy does not exceed chance.
    """
    y, r = _inputs(logits, features, bias)
    K, c = y.shape[1], _target(y, labels)
    acc0 = float(np.mean(np.argmax(y, axis=1) == c))
    target = 0.5 * (acc0 + 1.0 / K)
    out = {"clean_accuracy": acc0, "chance": 1.0 / K, "target": target, "sigma_star": math.nan}
    if acc0 <= 1.0 / K or not np.all(r > 0):
        return out
    gap = np.sort(y, axis=1)
    spread = float(np.max(gap[:, -1] - gap[:, 0]) / np.min(r))

    def f(t: float) -> float:
        return float(_probability(y, r, np.asarray(math.exp(t)), c).mean()) - target

    lo, hi = math.log(1e-6 * spread + 1e-300), math.log(1e3 * spread + 1e-300)
    while f(lo) < 0:
        lo -= 5.0
    while f(hi) > 0:
        hi += 5.0
    out["sigma_star"] = math.exp(brentq(f, lo, hi, xtol=1e-12, rtol=1e-12))
    return out


# --------------------------------------------------------------------------- registry
def _build():
    import sympy as sp

    z, sigma, r, gamma = sp.Symbol("z", real=True), *sp.symbols("sigma r gamma", positive=True)
    K = sp.Symbol("K", positive=True, integer=True)
    j = sp.Symbol("j", integer=True)
    Delta = sp.IndexedBase(r"\Delta")
    Phi = sp.Function(r"\Phi")
    phi = sp.exp(-z**2 / 2) / sp.sqrt(2 * sp.pi)
    P = sp.Symbol(r"\Pr[\arg\max(y + E h) = c]")
    res = sp.Eq(P, sp.Integral(phi * sp.Product(Phi(Delta[j] / (sigma * r) + z), (j, 1, K - 1)), (z, -sp.oo, sp.oo)))
    x = sp.Symbol("x", real=True)
    Phi_def = (1 + sp.erf(x / sp.sqrt(2))) / 2
    # K = 2: E_z Φ(a + z) = Φ(a/√2) (checked numerically in the tests)
    a = sp.Rational(7, 10)
    k2 = sp.Integral(phi * Phi_def.subs(x, a + z), (z, -sp.oo, sp.oo))
    steps = [
        ("Class head never trains: the perturbed student's features h equal the unperturbed student's; logits y + E h (+ e)", None),
        ("g = E h has i.i.d. N(0, σ²r²) entries, r = ‖h‖ (r² = ‖h‖² + 1 if the bias is perturbed too)", None),
        ("Condition on g_c = σ r z: rival j loses iff g_j < Δ_j + g_c, Δ_j = y_c − y_j; independence gives the product "
         "(j over the K − 1 rivals)", res),
        # unevaluated: sympy would try to integrate (minutes); the identity is checked numerically in the tests
        ("K = 2: E_z Φ(a + z) = Φ(a/√2) since z − z' ~ N(0, 2); e.g. a = 7/10",
         sp.Eq(k2, Phi_def.subs(x, a / sp.sqrt(2)), evaluate=False)),
        ("Bounds from the margin γ = min_j Δ_j of c = clean argmax: Φ(−γ/(√2σr)) ≤ Pr[flip] ≤ 1 − E_z Φ(γ/(σr) + z)^{K−1}"
         " ≤ (K − 1)Φ(−γ/(√2σr))", sp.Le(sp.Symbol(r"\Pr[\mathrm{flip}]"),
                                          1 - sp.Integral(phi * Phi(gamma / (sigma * r) + z) ** (K - 1), (z, -sp.oo, sp.oo)))),
        ("acc(σ) = mean over test inputs of Pr[argmax = label]; → 1/K as σ → ∞. σ*: acc(σ*) = (acc(0) + 1/K)/2, "
         "solved numerically from the unperturbed student's logits and ‖h‖", None),
    ]
    return res, steps


def _check(rng):
    from scipy.integrate import quad

    errs, details = {}, {}
    # (1) quadrature vs adaptive integration of the same integral
    for K in (2, 5, 10):
        y, h = rng.standard_normal((3, K)) * 2, rng.standard_normal((3, 6))
        p = class_perturbation_probability(y, h, 0.4)
        for b in range(3):
            c, s = int(np.argmax(y[b])), 0.4 * np.linalg.norm(h[b])
            d = np.delete(y[b, c] - y[b], c)
            ref = quad(lambda t: math.exp(-t * t / 2) / math.sqrt(2 * math.pi) * np.prod(ndtr(d / s + t)), -np.inf, np.inf,
                       epsabs=1e-13, epsrel=1e-13)[0]
            errs[f"quadrature K={K} b={b}"] = abs(p[b] - ref)
    # (2) Monte Carlo on random perturbation matrices E (K×d), bias included; CI-based tolerance
    R = 4000
    for K, d, sig in [(2, 5, 0.3), (5, 8, 0.15), (10, 16, 0.05)]:
        B = 12
        y, h = rng.standard_normal((B, K)), rng.standard_normal((B, d))
        labels = rng.integers(0, K, B)
        E, e = sig * rng.standard_normal((R, K, d)), sig * rng.standard_normal((R, K))
        hit = (np.argmax(y[None] + np.einsum("rkd,bd->rbk", E, h) + e[:, None], axis=2) == labels).astype(np.float64)
        p = class_perturbation_probability(y, h, sig, labels, bias=True)
        # binomial standard error from the prediction, floored at one count (p ≈ 0 or 1 leaves no MC spread)
        z = float(np.max(np.abs(hit.mean(axis=0) - p) / np.sqrt(np.maximum(p * (1 - p), 1.0 / R) / R)))
        errs[f"max z − 4.5 per input K={K}"] = max(0.0, z - 4.5)
        acc = class_perturbation_accuracy(y, h, labels, sig, bias=True)
        za = float(z_score(hit.mean(axis=1), acc))
        details[f"acc MC K={K}"] = f"{hit.mean():.4f} (pred {acc:.4f}, z {za:.2f})"
        errs[f"accuracy z − 4.5 K={K}"] = max(0.0, za - 4.5)
    # (3) bounds bracket the exact flip probability; σ* solves its equation; limits
    K = 7
    y, h = rng.standard_normal((40, K)), rng.standard_normal((40, 4))
    s = 0.3 * np.linalg.norm(h, axis=1)
    flip = 1.0 - class_perturbation_probability(y, h, 0.3)
    srt = np.sort(y, axis=1)
    bd = class_perturbation_flip_bounds(srt[:, -1] - srt[:, -2], s, K)
    errs["lower ≤ flip"] = float(max(0.0, np.max(bd["lower"] - flip)))
    errs["flip ≤ equal margins ≤ union"] = float(max(0.0, np.max(flip - bd["equal_margins"]), np.max(bd["equal_margins"] - bd["union"])))
    labels = np.where(rng.random(40) < 0.8, np.argmax(y, axis=1), rng.integers(0, K, 40))
    st = class_perturbation_sigma_critical(y, h, labels)
    errs["acc(σ*) = midpoint"] = abs(class_perturbation_accuracy(y, h, labels, st["sigma_star"]) - st["target"])
    errs["acc(0) = clean"] = abs(class_perturbation_accuracy(y, h, labels, 0.0) - st["clean_accuracy"])
    errs["acc(∞) → 1/K"] = abs(class_perturbation_accuracy(y, h, labels, 1e12) - 1.0 / K)
    details["σ*"] = st["sigma_star"]
    return report("class-perturbation-sigma-critical", errs, 1e-9, **details)


def _eval(logits, features, labels=None, sigma=None, bias=False):
    if sigma is None:
        if labels is None:
            raise ValueError("give labels (for σ*) or sigma (for the accuracy curve)")
        return class_perturbation_sigma_critical(logits, features, labels, bias=bias)
    if labels is None:
        return class_perturbation_probability(logits, features, sigma, bias=bias)
    return class_perturbation_accuracy(logits, features, labels, sigma, bias=bias)


register(Result("class-perturbation-sigma-critical",
                "class-head perturbation: exact flip probability E_z Π_j Φ(Δ_j/(σ‖h‖) + z), accuracy curve and data-dependent σ*",
                ("Class head frozen during distillation (never in the loss), so the perturbed student's features and clean logits "
                 "equal the unperturbed student's (same seed, same data)",
                 "E (and e, if the bias is perturbed) i.i.d. N(0, σ²), independent of the data"),
                "Accuracy vs σ for a perturbed class head, and its midpoint σ* between clean accuracy and chance, from the "
                "unperturbed student's logit margins and feature norms (replaces borrowing the aux-head ε = 1 scale).",
                True, _build, _eval, _check, section="bounds",
                approximation="exact given the unperturbed student's logits and features; the γ-only forms are bounds"))
