"""Integration by parts over the noise law (theory ``noise-integration-by-parts``).

For one noise coordinate x with density p, centre c and weight w,

    uniform U[lo, hi]:  c = (lo + hi)/2,  w(x) = (x − lo)(hi − x)/2;     normal N(c, s²):  w = s²,

``d(w p)/dx = −(x − c) p`` and ``w p`` vanishes at the ends of the support, so for f piecewise C¹ with jumps
``[f]_a = f(a⁺) − f(a⁻)`` at points a:

    E[f(x)(x − c)] = E[w(x) f'(x)] + Σ_a p(a) w(a) [f]_a.

The subsampled-Adam student (``limen.verify.subliminal.surrogate``) uses it for the first layer's gradient
``E[e xᵀ]``: sampled as ``e xᵀ`` each sample's contribution carries a random-sign coordinate, and the drift is a
few parts in 10⁴ of its variance; moved onto the derivative of ``e`` it is not.
"""

from __future__ import annotations

import numpy as np

from .results import Result, register, report


def uniform_ibp_weight(x, lo, hi):
    """``w(x) = (x − lo)(hi − x)/2`` of U[lo, hi] (its centre is ``(lo + hi)/2``, ``E w = (hi − lo)²/12``, the
    variance). Only arithmetic: floats, numpy arrays and torch tensors alike."""
    return (x - lo) * (hi - x) / 2


def _build():
    import sympy as sp

    x, lo, hi, c, a = sp.symbols("x lo hi c a", real=True)
    s = sp.Symbol("s", positive=True)
    f0, f1, f2, g0, g1 = sp.symbols("f_0 f_1 f_2 g_0 g_1", real=True)
    p_u, w_u = 1 / (hi - lo), uniform_ibp_weight(x, lo, hi)
    p_n = sp.exp(-(x - c) ** 2 / (2 * s ** 2)) / (s * sp.sqrt(2 * sp.pi))
    left, right = f0 + f1 * x + f2 * x ** 2, g0 + g1 * x   # f on [lo, a) and on [a, hi]: one jump at a
    lhs = sp.integrate(left * (x - (lo + hi) / 2) * p_u, (x, lo, a)) + sp.integrate(right * (x - (lo + hi) / 2) * p_u,
                                                                                  (x, a, hi))
    rhs = (sp.integrate(w_u * sp.diff(left, x) * p_u, (x, lo, a)) + sp.integrate(w_u * sp.diff(right, x) * p_u, (x, a, hi))
           + p_u * w_u.subs(x, a) * (right - left).subs(x, a))
    res = sp.Eq(sp.Symbol(r"\mathbb{E}[f(x)(x-c)]"),
                sp.Symbol(r"\mathbb{E}[w(x)f'(x)]") + sp.Symbol(r"\sum_{a} p(a)\,w(a)\,[f]_{a}"), evaluate=False)
    steps = [("Weights: uniform U[lo, hi] and normal N(c, s²)", sp.Tuple(sp.Eq(sp.Symbol("w_U"), w_u, evaluate=False),
                                                                    sp.Eq(sp.Symbol("w_N"), s ** 2, evaluate=False))),
             ("d(w p)/dx = −(x − c) p (sympy simplifies both to 0)",
              sp.Tuple(sp.simplify(sp.diff(w_u * p_u, x) + (x - (lo + hi) / 2) * p_u),
                       sp.simplify(sp.diff(s ** 2 * p_n, x) + (x - c) * p_n))),
             ("w p vanishes at lo and hi (uniform); s² p → 0 at ±∞ (normal)",
              sp.Tuple(w_u.subs(x, lo), w_u.subs(x, hi), sp.limit(s ** 2 * p_n, x, sp.oo))),
             ("Piecewise f with a jump at a, uniform law: both sides, their difference simplified", sp.simplify(lhs - rhs)),
             ("", res)]
    return res, steps


def _sides(pieces, cuts, law, params):
    """Both sides of the identity for a piecewise polynomial (``pieces[i]``: numpy coefficients, low to high, on
    ``[cuts[i], cuts[i+1])``), by adaptive quadrature."""
    from scipy import integrate, stats

    if law == "uniform":
        lo, hi = params
        dens, centre = (lambda x: 1.0 / (hi - lo)), (lo + hi) / 2
        weight = lambda x: uniform_ibp_weight(x, lo, hi)  # noqa: E731
    else:
        centre, s = params
        dens, weight = stats.norm(centre, s).pdf, (lambda x: s * s)
    ev = np.polynomial.polynomial.polyval
    lhs = sum(integrate.quad(lambda x: ev(x, P) * (x - centre) * dens(x), a, b, epsabs=1e-14, epsrel=1e-13)[0]
              for P, a, b in zip(pieces, cuts[:-1], cuts[1:]))
    rhs = sum(integrate.quad(lambda x: weight(x) * ev(x, np.polynomial.polynomial.polyder(P)) * dens(x), a, b,
                             epsabs=1e-14, epsrel=1e-13)[0] for P, a, b in zip(pieces, cuts[:-1], cuts[1:]))
    rhs += sum(dens(a) * weight(a) * (ev(a, Q) - ev(a, P)) for P, Q, a in zip(pieces[:-1], pieces[1:], cuts[1:-1]))
    return lhs, rhs


def _check(rng):
    """Random piecewise polynomials with two jumps, under random uniform and normal laws, both sides by quadrature."""
    errs = {}
    for i in range(3):
        pieces = [rng.standard_normal(int(rng.integers(1, 4))) for _ in range(3)]
        lo = -1.0 - rng.random()
        hi = lo + 1.0 + 2.0 * rng.random()
        a = np.sort(rng.uniform(lo, hi, 2))
        errs[f"uniform {i}"] = abs(np.subtract(*_sides(pieces, [lo, *a, hi], "uniform", (lo, hi))))
        c, s = rng.standard_normal(), 0.5 + rng.random()
        cuts = [-np.inf, *np.sort(c + s * rng.standard_normal(2)), np.inf]
        errs[f"normal {i}"] = abs(np.subtract(*_sides(pieces, cuts, "normal", (c, s))))
    return report("noise-integration-by-parts", errs, 1e-10)


def _eval(x, lo=-1.0, hi=1.0):
    return uniform_ibp_weight(np.asarray(x, dtype=float), float(lo), float(hi))


register(Result("noise-integration-by-parts",
                "Integration by parts over the noise law: E[f(x)(x − c)] = E[w(x) f'(x)] + Σ_a p(a) w(a) [f]_a, "
                "w = (x − lo)(hi − x)/2 for U[lo, hi], w = s² for N(c, s²)",
                ("x is one coordinate of the noise, independent of the others (uniform or normal law)",
                 "f is piecewise C¹ in x, with finitely many jumps [f]_a"),
                "Moves the first layer's gradient E[e xᵀ] from a random-sign weight onto the derivative of e: the "
                "subsampled-Adam student's low-noise first-layer drift (check predict-student).",
                True, _build, _eval, _check, section="response",
                approximation="exact; the student model keeps the smooth part and the first layer's own gate jumps and "
                "drops the deeper layers' gate jumps"))
