r"""Williams–Beer I_min and minimum mutual information I_mmi, vectorised (numpy / torch), any n.

Both are built from the *specific information* of each source collection ``a`` about each target
value ``t`` (masked over p(s, t) > 0 exactly as in :mod:`limen.estimators.sx`):

    W[a, t] = p(t) · I(T=t; S_a) = Σ_s p(s, t) log2 [ p(s_a, t) / (p(s_a) p(t)) ],

    I_min(α) = Σ_t p(t) min_{a∈α} I(T=t; S_a) = Σ_t min_{a∈α} W[a, t]      (Williams & Beer 2010)
    I_mmi(α) = min_{a∈α} I(T; S_a)            = min_{a∈α} Σ_t W[a, t]      (Barrett 2015)

Atoms by the same Möbius inversion as I^sx. torch results are differentiable almost everywhere
(``min`` passes the gradient to the minimising collection). Both measures give non-negative
atoms for 2 sources; for 3 or more sources I_min atoms can be negative.

Generic entry points: :func:`redundancies`, :func:`atoms` and :func:`goal` take ``measure`` =
``"sx"``, ``"wb"`` (alias ``"imin"``) or ``"mmi"``; :func:`goal` computes only the redundancies
whose weight in ``w = Mᵀγ`` is non-zero.
"""

from __future__ import annotations

import numpy as np

from .lattice import lattice
from .sx import (_chunked, _marginals_flat, _ops, _order_out, apply_mobius, goal_weights, prepare_pmf,
                 sx_redundancies, target_entropy)

__all__ = ["MEASURES", "canonical_measure", "wb_pid", "mmi_pid", "wb_redundancies", "mmi_redundancies",
           "specific_information", "redundancies", "atoms", "goal"]

MEASURES = {"sx": "sx", "isx": "sx", "i_sx": "sx", "wb": "wb", "imin": "wb", "i_min": "wb", "min": "wb",
            "mmi": "mmi", "immi": "mmi", "i_mmi": "mmi"}


def canonical_measure(measure: str) -> str:
    key = str(measure).lower().replace("-", "_")
    if key not in MEASURES:
        raise ValueError(f"unknown vectorised measure {measure!r}; choose 'sx', 'wb' (I_min) or 'mmi' "
                         "(other measures: backend='dit')")
    return MEASURES[key]


def specific_information(pmf, n_sources=None, *, subsets=None, validate=True, normalize=False, tol=None):
    """``W[..., k, t] = p(t) I(T=t; S_a)`` for the source subsets ``a`` (default: all 2**n - 1, by
    bitmask order, as ``lattice(n).subsets``); shape ``(..., n_subsets, |T|)``."""
    p, n = prepare_pmf(pmf, n_sources, validate=validate, normalize=normalize, tol=tol)
    masks = np.arange(1, 2 ** n) if subsets is None else np.array([sum(1 << i for i in a) for a in subsets])
    return _chunked(p, n, lambda q: {"w": _specific(q, n, masks)})["w"]


def _specific(p, n, masks):
    ops = _ops(p)
    nb = p.ndim - n - 1
    batch = tuple(p.shape[:nb])
    gs = int(np.prod(p.shape[nb:nb + n]))
    n_t = p.shape[-1]
    k = len(masks)
    ps = ops.sum(p, -1)
    pt = ops.sum(p, tuple(range(nb, nb + n)))
    pf = p.reshape(*batch, 1, gs, n_t)
    mt = _marginals_flat(p, n, nb, masks, ops).reshape(*batch, k, gs, n_t)    # p(s_a, t)
    ms = _marginals_flat(ps, n, nb, masks, ops).reshape(*batch, k, gs, 1)     # p(s_a)
    # value floor as in sx: the marginal event contains the cell (guards round-off only)
    mt = ops.floor_value(mt, pf)
    ms = ops.floor_value(ms, ps.reshape(*batch, 1, gs, 1))
    m = pf > 0
    ptb = pt.reshape(*batch, 1, 1, n_t)
    local = ops.log2(ops.where(m, mt, 1.0)) - ops.log2(ops.where(m, ms, 1.0)) - ops.log2(ops.where(m, ptb, 1.0))
    return ops.sum(local * pf, -2)                                          # (..., k, T)


def _elements(L, idx):
    """(len(idx), width) subset indices (mask - 1) of each node's collections, padded by repetition."""
    nodes = [L.nodes[i] for i in idx]
    width = max(len(nd) for nd in nodes)
    e = np.zeros((len(nodes), width), dtype=np.int64)
    for r, nd in enumerate(nodes):
        ms = [sum(1 << i for i in a) - 1 for a in nd]
        e[r] = ms + [ms[0]] * (width - len(ms))
    return e


def _min_red(p, n, idx, kind):
    L = lattice(n)
    idx = np.arange(L.n_nodes) if idx is None else np.asarray(idx)
    e = _elements(L, idx)
    used = np.unique(e)
    pos = np.full(2 ** n - 1, -1)
    pos[used] = np.arange(len(used))
    w = _specific(p, n, used + 1)                                     # (..., k, T)
    ee = pos[e]
    if kind == "mmi":
        mi = w.sum(-1)                                                # (..., k)
        g = mi[..., ee.reshape(-1)].reshape(*mi.shape[:-1], *ee.shape)
        return g.min(dim=-1).values if _ops(p).torch else g.min(axis=-1)
    g = w[..., ee.reshape(-1), :].reshape(*w.shape[:-2], *ee.shape, w.shape[-1])   # (..., nodes, width, T)
    if _ops(p).torch:
        return g.min(dim=-2).values.sum(-1)
    return g.min(axis=-2).sum(-1)


def _red_fn(kind):
    def fn(pmf, n_sources=None, *, nodes=None, order="default", validate=True, normalize=False, tol=None):
        p, n = prepare_pmf(pmf, n_sources, validate=validate, normalize=normalize, tol=tol)
        L = lattice(n)
        idx = None if nodes is None else [L.index(nd) for nd in nodes]
        red = _chunked(p, n, lambda q: {"r": _min_red(q, n, idx, kind)})["r"]
        return red if nodes is not None else _order_out(red, L, order)
    return fn


wb_redundancies = _red_fn("wb")
wb_redundancies.__name__ = "wb_redundancies"
wb_redundancies.__doc__ = "Williams–Beer I_min redundancies ``(..., n_nodes)`` (same arguments as sx_redundancies)."
mmi_redundancies = _red_fn("mmi")
mmi_redundancies.__name__ = "mmi_redundancies"
mmi_redundancies.__doc__ = "Minimum-mutual-information redundancies ``(..., n_nodes)``."

_RED = {"sx": sx_redundancies, "wb": wb_redundancies, "mmi": mmi_redundancies}


def redundancies(pmf, measure="sx", n_sources=None, **kw):
    """Redundancies of ``measure`` (``"sx"``, ``"wb"``, ``"mmi"``), shape ``(..., n_nodes)``."""
    return _RED[canonical_measure(measure)](pmf, n_sources, **kw)


def atoms(pmf, measure="sx", n_sources=None, *, order="default", validate=True, normalize=False, tol=None):
    """Atoms ``(..., n_atoms)`` of ``measure`` by Möbius inversion of its redundancies."""
    p, n = prepare_pmf(pmf, n_sources, validate=validate, normalize=normalize, tol=tol)
    L = lattice(n)
    red = _RED[canonical_measure(measure)](p, n, validate=False)
    return _order_out(apply_mobius(red, L), L, order)


def wb_pid(pmf, n_sources=None, **kw):
    """Williams–Beer (I_min) atoms ``(..., n_atoms)``."""
    return atoms(pmf, "wb", n_sources, **kw)


def mmi_pid(pmf, n_sources=None, **kw):
    """Minimum-mutual-information atoms ``(..., n_atoms)``."""
    return atoms(pmf, "mmi", n_sources, **kw)


def goal(pmf, gamma, measure="sx", n_sources=None, *, order="default", validate=True, normalize=False, tol=None):
    """``γ·atoms + γ_res·H_res`` per pmf via ``w = Mᵀγ`` (only non-zero-weight redundancies)."""
    kind = canonical_measure(measure)
    if kind == "sx":
        from .sx import sx_goal

        return sx_goal(pmf, gamma, n_sources, order=order, validate=validate, normalize=normalize, tol=tol)
    p, n = prepare_pmf(pmf, n_sources, validate=validate, normalize=normalize, tol=tol)
    L = lattice(n)
    w, w_h = goal_weights(gamma, n, order=order)
    idx = np.flatnonzero(w != 0)
    ops = _ops(p)
    h_t = target_entropy(p, n)
    if len(idx) == 0:
        return w_h * h_t
    red = _RED[kind](p, n, nodes=[L.nodes[i] for i in idx], validate=False)
    return red @ ops.const(w[idx], red) + w_h * h_t
