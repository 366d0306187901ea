r"""The full I^sx decomposition (parts and pointwise values) and the ``sx_*`` functions.

The measure itself, its definition and gradient conventions are in
:mod:`limen.estimators.measures.isx`. Input: a pmf of shape ``(..., |S1|, ..., |Sn|, |T|)`` with
any leading batch dimensions (pass ``n_sources=n`` when there are any; the default is "no batch
dimensions", n = ndim − 1); numpy input is computed in float64, torch input keeps its dtype and
device and is differentiable. Beyond the averages I(α), the decomposition holds the
informative/misinformative parts I⁺ = avg i⁺, I⁻ = avg i⁻, atoms Π = M·I and Π± = M·I±
(``lattice(n).mobius``), pointwise atoms π = M·i and π± = M·i± per realisation (π± ≥ 0), and
H_res = H(T) − I(T; S1..Sn).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ._arrays import is_torch
from .base import Decomposition, all_nodes, apply_mobius, chunked, prepare_pmf
from .lattice import lattice
from .measures import atoms, goal, redundancies
from .measures.isx import union_terms

__all__ = ["sx_pid", "sx_redundancies", "sx_decomposition", "sx_goal", "SxDecomposition"]


def sx_redundancies(pmf, n_sources=None, *, nodes=None, order="default", validate=True, normalize=False,
                    tol=None):
    """Averaged I^sx redundancies ``(..., n_nodes)`` (or ``(..., len(nodes))`` for the given nodes)."""
    return redundancies(pmf, "sx", n_sources, nodes=nodes, order=order, validate=validate, normalize=normalize,
                        tol=tol)


def sx_pid(pmf, n_sources=None, *, order="default", validate=True, normalize=False, tol=None):
    """Averaged I^sx atoms, shape ``(..., n_atoms)``, in ``lattice(n).nodes`` order (or ``order``).

    ``pmf``: numpy or torch array ``(..., |S1|, ..., |Sn|, |T|)``; ``n_sources`` is required when
    there are leading batch dimensions. torch input is differentiable (see
    :mod:`limen.estimators.measures.isx` for the gradient at zero cells). ``validate=False`` skips
    the input checks (no host sync).
    """
    return atoms(pmf, "sx", n_sources, order=order, validate=validate, normalize=normalize, tol=tol)


def sx_goal(pmf, gamma, n_sources=None, *, order="default", validate=True, normalize=False, tol=None):
    """Goal ``γ·atoms + γ_res·H_res`` per pmf, shape ``(...)``, via the fast path ``w = Mᵀγ``:
    only the redundancies with non-zero weight (and the marginals they need) are computed."""
    return goal(pmf, gamma, "sx", n_sources, order=order, validate=validate, normalize=normalize, tol=tol)


@dataclass
class SxDecomposition(Decomposition):
    """All I^sx quantities of a (batch of) pmf(s); arrays over nodes in ``lattice(n).nodes`` order.

    Averages: ``atoms``, ``redundancies`` ``(..., n_nodes)``; informative/misinformative parts
    ``atoms_plus``, ``atoms_minus``, ``red_plus``, ``red_minus`` (atoms = plus − minus);
    ``mi`` = I(T; S1..Sn), ``h_target`` = H(T), ``h_res`` = H(T) − I(T; S) ``(...)``.
    Pointwise (when requested), shape ``(..., |S1|, ..., |Sn|, |T|, n_nodes)``, zero at cells
    with p = 0 (``mask`` is p > 0): ``pw_red``, ``pw_atoms``, ``pw_red_plus``, ``pw_red_minus``,
    ``pw_atoms_plus``, ``pw_atoms_minus``.
    """

    atoms_plus: Any = None
    atoms_minus: Any = None
    red_plus: Any = None
    red_minus: Any = None
    mask: Any = None
    pw_red: Any = None
    pw_atoms: Any = None
    pw_red_plus: Any = None
    pw_red_minus: Any = None
    pw_atoms_plus: Any = None
    pw_atoms_minus: Any = None


def _move_node_axis_last(x, nb, src, n_t):
    """(..., nodes, gs, T) -> (..., S1..Sn, T, nodes)."""
    batch = tuple(x.shape[:nb])
    nodes = x.shape[nb]
    y = x.movedim(nb, -1) if is_torch(x) else np.moveaxis(x, nb, -1)
    return y.reshape(*batch, *src, n_t, nodes)


def sx_decomposition(pmf, n_sources=None, *, pointwise=False, validate=True, normalize=False, tol=None
                     ) -> SxDecomposition:
    """Full I^sx decomposition: averages, informative/misinformative parts, H_res, optional pointwise."""
    p, n = prepare_pmf(pmf, n_sources, validate=validate, normalize=normalize, tol=tol)
    L = lattice(n)
    nb = p.ndim - n - 1
    src = tuple(p.shape[nb:nb + n])
    n_t = p.shape[-1]

    def run(q):
        o = union_terms(q, n, all_nodes(n), parts=True, pointwise=pointwise)
        o.pop("mask", None)
        return o

    o = chunked(p, n, run, n_red=L.n_nodes, pointwise=pointwise)
    red, h_t = o["red"], o["h_t"]
    mi = red[..., L.index(L.top)]
    res = SxDecomposition(
        n=n, atoms=apply_mobius(red, L), redundancies=red, mi=mi, h_target=h_t, h_res=h_t - mi,
        atoms_plus=apply_mobius(o["red_plus"], L), atoms_minus=apply_mobius(o["red_minus"], L),
        red_plus=o["red_plus"], red_minus=o["red_minus"])
    if pointwise:
        plus = _move_node_axis_last(o["pw_red_plus"], nb, src, n_t)
        minus = _move_node_axis_last(o["pw_red_minus"], nb, src, n_t)
        res.mask = p > 0
        res.pw_red_plus, res.pw_red_minus = plus, minus
        res.pw_red = plus - minus
        res.pw_atoms_plus, res.pw_atoms_minus = apply_mobius(plus, L), apply_mobius(minus, L)
        res.pw_atoms = res.pw_atoms_plus - res.pw_atoms_minus
    return res
