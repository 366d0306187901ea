r"""I^±, the pointwise partial information of Finn & Lizier ("Pointwise partial information
decomposition using the specificity and ambiguity lattices", Entropy 20:297, 2018; arXiv
1801.09010; dit's ``PID_PM``), vectorised: numpy float64 or torch, any number of sources.

For a realisation (s, t) with p(s, t) > 0, the redundant specificity and ambiguity of α are the
least of its collections',

    r⁺(α) = min_{a∈α} −log2 p(s_a),     r⁻(α) = min_{a∈α} −log2 p(s_a | t),

    I_±(α) = Σ_{s,t} p(s, t) [r⁺(α) − r⁻(α)].

torch results are differentiable almost everywhere (``min`` passes the gradient to the
minimising collection); zero cells are masked like everywhere else.
"""

from __future__ import annotations

import numpy as np

from .._arrays import ops
from ..base import Measure, collection_min, joint_marginals, node_collections
from . import register


@register
class Ipm(Measure):
    name = "I_pm"
    aliases = ("pm", "ipm", "i_pm")
    dit = "PM"

    def redundancy(self, p, n, nodes):
        o = ops(p)
        nb = p.ndim - n - 1
        batch, n_t = tuple(p.shape[:nb]), p.shape[-1]
        gs = int(np.prod(p.shape[nb:nb + n]))
        masks, pos = node_collections(n, nodes)
        ps = o.sum(p, -1)
        pt = o.sum(p, tuple(range(nb, nb + n))).reshape(*batch, 1, 1, n_t)
        pf = p.reshape(*batch, 1, gs, n_t)
        on = pf > 0
        # p(s_a, t) and p(s_a) at every cell, floored at the cell's own mass (round-off guard)
        mt = o.floor_value(joint_marginals(p, n, nb, masks).reshape(*batch, -1, gs, n_t), pf)
        ms = o.floor_value(joint_marginals(ps, n, nb, masks).reshape(*batch, -1, gs, 1), ps.reshape(*batch, 1, gs, 1))
        spec = -o.log2(o.where(on, ms, 1.0))                                     # −log2 p(s_a)
        amb = o.log2(o.where(on, pt, 1.0)) - o.log2(o.where(on, mt, 1.0))        # −log2 p(s_a | t)
        r = collection_min(spec, pos, axis=nb) - collection_min(amb, pos, axis=nb)   # (..., nodes, S, T)
        return o.sum(r * pf, (-2, -1))
