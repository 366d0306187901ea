"""Exact I^sx with sympy: rational pmfs give atoms as exact expressions (logs of algebraic numbers).

Every averaged quantity is ``log2 K`` for an algebraic number ``K``: the redundancy of node α is
``log2 Π_{s,t} r(s,t)^{p(s,t)}`` with the rational ratio ``r = P(t∩𝔞_α) / (P(𝔞_α) P(t))``, and the
Möbius inversion multiplies these numbers with exponents ±1. Keeping ``K`` and taking one
logarithm at the end lets sympy simplify, e.g. XOR: shared = log2(2/3) = 1 − log(3)/log(2),
AND: shared = log2(32/27)/2. Pointwise values are ``log2`` of rationals.

Use :func:`sx_decomposition_exact` (returns an :class:`~limen.estimators.sx.SxDecomposition`
holding object arrays of sympy expressions) or ``pid(d, backend="sympy")``. It loops in Python over
support cells and nodes: meant for small pmfs (tests, worked examples).
"""

from __future__ import annotations

import itertools

import numpy as np

from .distribution import Distribution
from .lattice import lattice
from .sx import SxDecomposition

__all__ = ["sx_decomposition_exact", "sx_pid_exact", "log2"]


def log2(k):
    import sympy

    return sympy.log(k, 2)


def _as_exact(pmf, n_sources) -> Distribution:
    if isinstance(pmf, Distribution):
        return pmf if pmf.exact else pmf.to_exact()
    return Distribution(pmf, n_sources, exact=True)


def sx_decomposition_exact(pmf, n_sources=None, *, pointwise=False) -> SxDecomposition:
    """Exact I^sx decomposition of one pmf (Distribution or array of rationals)."""
    import sympy

    d = _as_exact(pmf, n_sources)
    p, n = d.pmf, d.n_sources
    L = lattice(n)
    one, zero = sympy.Integer(1), sympy.Integer(0)
    ps = p.sum(axis=-1)
    pt = p.sum(axis=tuple(range(n)))
    masks = range(1, 2 ** n)

    def marg(arr, m):
        axes = tuple(i for i in range(n) if not m >> i & 1)
        return arr.sum(axis=axes, keepdims=True) if axes else arr

    mt = {m: marg(p, m) for m in masks}
    ms = {m: marg(ps, m) for m in masks}
    coef = L.union_coefficients
    nz = [[(int(j) + 1, int(coef[a, j])) for j in np.flatnonzero(coef[a])] for a in range(L.n_nodes)]
    k_plus = [one] * L.n_nodes
    k_minus = [one] * L.n_nodes
    cells = [idx for idx in itertools.product(*[range(k) for k in p.shape]) if p[idx] != 0]
    pw_plus = {}
    pw_minus = {}
    for idx in cells:
        s, t = idx[:n], idx[n]
        w = p[idx]
        for a in range(L.n_nodes):
            ut = zero
            us = zero
            for m, c in nz[a]:
                sel = tuple(s[i] if m >> i & 1 else 0 for i in range(n))
                ut += c * mt[m][sel + (t,)]
                us += c * ms[m][sel]
            r_plus = one / us                # i+ = log2(1/P(a))
            r_minus = pt[t] / ut             # i- = log2(P(t)/P(t & a))
            k_plus[a] *= r_plus ** w
            k_minus[a] *= r_minus ** w
            if pointwise:
                pw_plus[idx + (a,)] = r_plus
                pw_minus[idx + (a,)] = r_minus

    def mob(ks):
        out = []
        for a in range(L.n_nodes):
            k = one
            for b in np.flatnonzero(L.mobius[a]):
                k *= ks[b] ** int(L.mobius[a, b])
            out.append(k)
        return out

    def arr(vals):
        a = np.empty(len(vals), dtype=object)
        a[:] = [log2(v) for v in vals]
        return a

    k_red = [kp / km for kp, km in zip(k_plus, k_minus)]
    top = L.index(L.top)
    k_h = one
    for v in pt:
        if v != 0:
            k_h *= (one / v) ** v
    h_t = log2(k_h)
    mi = log2(k_red[top])
    res = SxDecomposition(
        n=n, atoms=arr(mob(k_red)), redundancies=arr(k_red), atoms_plus=arr(mob(k_plus)),
        atoms_minus=arr(mob(k_minus)), red_plus=arr(k_plus), red_minus=arr(k_minus), mi=mi, h_target=h_t,
        h_res=log2(k_h / k_red[top]))
    if pointwise:
        shape = tuple(p.shape) + (L.n_nodes,)
        plus = np.full(shape, zero, dtype=object)
        minus = np.full(shape, zero, dtype=object)
        atoms_p = np.full(shape, zero, dtype=object)
        atoms_m = np.full(shape, zero, dtype=object)
        for idx in cells:
            rp = [pw_plus[idx + (a,)] for a in range(L.n_nodes)]
            rm = [pw_minus[idx + (a,)] for a in range(L.n_nodes)]
            plus[idx] = [log2(v) for v in rp]
            minus[idx] = [log2(v) for v in rm]
            atoms_p[idx] = [log2(v) for v in mob(rp)]
            atoms_m[idx] = [log2(v) for v in mob(rm)]
        res.mask = np.array(p != 0, dtype=bool)
        res.pw_red_plus, res.pw_red_minus = plus, minus
        res.pw_red = plus - minus
        res.pw_atoms_plus, res.pw_atoms_minus = atoms_p, atoms_m
        res.pw_atoms = atoms_p - atoms_m
    return res


def sx_pid_exact(pmf, n_sources=None):
    """Exact averaged I^sx atoms (object array of sympy expressions, ``lattice(n).nodes`` order)."""
    return sx_decomposition_exact(pmf, n_sources).atoms
