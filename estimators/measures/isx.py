r"""I^sx, the shared-exclusion redundancy (Makkeh, Gutknecht, Wibral, PRE 103:032149, 2021;
arXiv 2002.03356), vectorised: numpy float64 or torch (dtype, device, autograd).

For a node α and a realisation (s, t) with p(s, t) > 0, with the union event
𝔞_α(s) = ∪_{a∈α} {S_a = s_a}:

    i(t : α) = log2 [ P({T=t} ∩ 𝔞_α) / (P(𝔞_α) P(t)) ] = i⁺ − i⁻,
    i⁺ = −log2 P(𝔞_α) ≥ 0,    i⁻ = −log2 P(𝔞_α | t) ≥ 0,

    I^sx(α) = Σ_{s,t} p(s,t) i(t : α) = Σ p(s,t) log2 P(t∩𝔞_α) − Σ p(s) log2 P(𝔞_α) + H(T).

P(𝔞_α) is a fixed integer combination of the joint marginals p(s_S) (inclusion–exclusion,
``lattice(n).union_coefficients``): all joint marginals are broadcast to the full grid, and one
(nodes × subsets) product gives every union at every cell, with and without the target.

Zero cells contribute exactly 0 (masked). Gradients (torch) are those of the sum over the
support: for a zero cell the own term p·log(...) is the constant 0 (its one-sided derivative,
the pointwise redundancy, can be −inf, and is omitted), while its effect through the marginals of
occupied cells is kept (the infomorphic code's convention). Union probabilities are bounded below
by the cell's own probability (the event contains the cell) in value only, against round-off.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._arrays import const_for, ops
from ..base import Measure, joint_marginals, target_entropy
from ..lattice import lattice
from . import register


def union_terms(p, n: int, nodes: tuple[int, ...], *, parts=False, pointwise=False) -> dict[str, Any]:
    """I^sx redundancies ``red`` ``(..., len(nodes))`` and ``h_t`` = H(T); with ``parts`` the averages
    ``red_plus`` (of i⁺) and ``red_minus`` (of i⁻); with ``pointwise`` the per-cell ``pw_red_plus``,
    ``pw_red_minus`` ``(..., len(nodes), cells of S, |T|)`` (0 off the support) and ``mask`` (p > 0)."""
    o = ops(p)
    L = lattice(n)
    nb = p.ndim - n - 1
    batch = tuple(p.shape[:nb])
    gs = int(np.prod(p.shape[nb:nb + n]))
    n_t = p.shape[-1]
    coef = L.union_coefficients[np.asarray(nodes)]
    used = np.flatnonzero(np.any(coef != 0, axis=0))
    masks = used + 1

    ps = o.sum(p, -1)                                            # (..., S)
    mt = joint_marginals(p, n, nb, masks)                        # p(s_S, t), (..., k, G)
    ms = joint_marginals(ps, n, nb, masks)                       # p(s_S),    (..., k, Gs)
    c = const_for(coef[:, used].astype(np.float64), p, ("coef", n, nodes))
    pf = p.reshape(*batch, 1, gs * n_t)
    psf = ps.reshape(*batch, 1, gs)
    ut = o.floor_value(c @ mt, pf)                               # P(t ∩ 𝔞_α) at every cell
    us = o.floor_value(c @ ms, psf)                              # P(𝔞_α)
    lt = o.log2(o.where(pf > 0, ut, 1.0))
    ls = o.log2(o.where(psf > 0, us, 1.0))
    a = _wsum(lt, pf)                                            # Σ p(s,t) log2 P(t∩𝔞)
    b = _wsum(ls, psf)                                           # Σ p(s) log2 P(𝔞)
    h_t = target_entropy(p, n)
    out: dict[str, Any] = {"red": a - b + h_t[..., None], "h_t": h_t}
    if parts:
        out["red_plus"] = -b
        out["red_minus"] = -h_t[..., None] - a
    if pointwise:
        pt = o.sum(p, tuple(range(nb, nb + n)))
        mask = p > 0
        m4 = mask.reshape(*batch, 1, gs, n_t)
        lpt = o.log2(o.where(pt > 0, pt, 1.0)).reshape(*batch, 1, 1, n_t)
        out["pw_red_plus"] = o.where(m4, -ls.reshape(*batch, -1, gs, 1), 0.0)     # broadcasts over T
        out["pw_red_minus"] = o.where(m4, lpt - lt.reshape(*batch, -1, gs, n_t), 0.0)
        out["mask"] = mask
    return out


def _wsum(v, w):
    """``(v * w).sum(-1)`` for v (..., u, G) and w (..., 1, G), as a batched matmul."""
    wt = w.transpose(-1, -2) if ops(w).torch else np.swapaxes(w, -1, -2)
    return (v @ wt)[..., 0]


@register
class Isx(Measure):
    name = "I_sx"
    aliases = ("sx", "isx", "i_sx")
    dit = "SX"
    exact = True

    def redundancy(self, p, n, nodes):
        return union_terms(p, n, nodes)["red"]

    def decompose(self, p, n, *, pointwise=False):
        from ..sx import sx_decomposition

        return sx_decomposition(p, n, pointwise=pointwise, validate=False)

    def decompose_exact(self, d, *, pointwise=False):
        from ..symbolic import sx_decomposition_exact

        return sx_decomposition_exact(d, pointwise=pointwise)
