r"""I_min, the Williams–Beer redundancy ("Nonnegative decomposition of multivariate information",
arXiv 1004.2515, 2010), vectorised: numpy float64 or torch, any number of sources.

With the specific information of a source collection a about the target value t,
I(T=t; S_a) = Σ_{s_a} p(s_a | t) log2 [p(s_a, t) / (p(s_a) p(t))],

    I_min(α) = Σ_t p(t) · min_{a∈α} I(T=t; S_a) = Σ_t min_{a∈α} W[a, t],   W[a, t] = p(t) I(T=t; S_a).

torch results are differentiable almost everywhere (``min`` passes the gradient to the
minimising collection). Atoms are non-negative for 2 sources; for 3 or more they can be negative.
"""

from __future__ import annotations

from ..base import Measure, collection_min, node_collections, specific
from . import atoms, redundancies, register


@register
class Imin(Measure):
    name = "I_min (WB)"
    aliases = ("wb", "imin", "i_min", "min")
    dit = "WB"

    def redundancy(self, p, n, nodes):
        masks, pos = node_collections(n, nodes)
        w = specific(p, n, masks)                       # (..., subsets, |T|)
        return collection_min(w, pos, axis=-2).sum(-1)


def wb_redundancies(pmf, n_sources=None, **kw):
    """Williams–Beer I_min redundancies ``(..., n_nodes)`` (arguments as ``measures.redundancies``)."""
    return redundancies(pmf, "wb", n_sources, **kw)


def wb_pid(pmf, n_sources=None, **kw):
    """Williams–Beer I_min atoms ``(..., n_atoms)`` (arguments as ``measures.atoms``)."""
    return atoms(pmf, "wb", n_sources, **kw)
