r"""I_mmi, the minimum-mutual-information redundancy (Barrett, "Exploration of synergistic and
redundant information sharing in static and dynamical Gaussian systems", arXiv 1411.2832, 2015),
vectorised: numpy float64 or torch, any number of sources.

    I_mmi(α) = min_{a∈α} I(T; S_a) = min_{a∈α} Σ_t W[a, t],   W[a, t] = p(t) I(T=t; S_a)

(W is the specific information shared with I_min). torch results are differentiable almost
everywhere (``min`` passes the gradient to the minimising collection).
"""

from __future__ import annotations

from ..base import Measure, collection_min, node_collections, specific
from . import atoms, redundancies, register


@register
class Immi(Measure):
    name = "I_mmi"
    aliases = ("mmi", "immi", "i_mmi")
    dit = "MMI"

    def redundancy(self, p, n, nodes):
        masks, pos = node_collections(n, nodes)
        mi = specific(p, n, masks).sum(-1)             # I(T; S_a), (..., subsets)
        return collection_min(mi, pos, axis=-1)


def mmi_redundancies(pmf, n_sources=None, **kw):
    """Minimum-mutual-information redundancies ``(..., n_nodes)``."""
    return redundancies(pmf, "mmi", n_sources, **kw)


def mmi_pid(pmf, n_sources=None, **kw):
    """Minimum-mutual-information atoms ``(..., n_atoms)``."""
    return atoms(pmf, "mmi", n_sources, **kw)
