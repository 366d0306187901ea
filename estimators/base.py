r"""Shared machinery of the vectorised estimators; each measure in ``measures/`` is built on it.

A measure supplies its names and the redundancy I_∩(α) of chosen lattice nodes for a batch of
pmfs (:class:`Measure`); everything else is computed here, once, for numpy and torch alike:

* pmf preparation: conversion and validation                      :func:`prepare_pmf`
* joint marginals p(s_S, t) and p(s_S) at every cell               :func:`joint_marginals`
* entropy, H(T) = −Σ_t p(t) log2 p(t)                              :func:`entropy`, :func:`target_entropy`
* specific information W[a, t] = p(t) I(T=t; S_a)                  :func:`specific_information`
* minimum over the collections of a node                           :func:`collection_min`
* atoms by Möbius inversion, Π = M · I                             :func:`apply_mobius`
* goal weights, γ·Π + γ_res H_res = w·I + γ_res H(T)                :func:`goal_weights`
* memory estimate and limit, chunking of numpy batches             :func:`working_bytes`, :func:`memory_limit`

A pmf has shape ``(..., |S1|, ..., |Sn|, |T|)`` (target last, any leading batch dimensions).
Zero-probability cells are masked, never epsilon-patched: their logarithms are evaluated at 1
through ``where``, so they contribute exactly 0 and gradients stay finite.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
from dataclasses import dataclass, fields
from typing import Any, Callable

import numpy as np

from ._arrays import as_float_array, check_pmf, const_for, is_symbolic, is_torch, ops, resolve_n
from .lattice import RedundancyLattice, lattice

__all__ = ["Measure", "Decomposition", "prepare_pmf", "joint_marginals", "entropy", "target_entropy",
           "specific_information", "node_collections", "collection_min", "apply_mobius", "goal_weights",
           "working_bytes", "memory_limit", "check_memory", "chunked", "DEFAULT_MEMORY_LIMIT"]


# --------------------------------------------------------------------------- pmf preparation
def prepare_pmf(pmf, n_sources=None, *, validate=True, normalize=False, tol=None):
    """Convert, check and return ``(p, n)``: numpy float64 or a floating torch tensor.

    The tolerance on the sum defaults to the precision of the dtype the pmf was *given* in
    (a float32 numpy pmf is checked like a float32 tensor, though it is computed in float64).
    """
    if is_symbolic(pmf):
        raise ValueError("exact (sympy/Fraction) pmfs are handled by limen.estimators.symbolic; "
                         "use pid(..., backend='sympy') or symbolic.sx_pid_exact")
    given = getattr(pmf, "dtype", None)
    p = as_float_array(pmf)
    n = resolve_n(tuple(p.shape), n_sources)
    if validate or normalize:
        p = check_pmf(p, n, tol=tol, normalize=normalize, given_dtype=given)
    return p, n


def order_out(x, L: RedundancyLattice, order):
    """``x`` (last axis over ``L.nodes``) in the named node order."""
    return x if order in (None, "default") else L.reorder(x, "default", order)


# --------------------------------------------------------------------------- marginals
def _subset_marginals(x, n, nb, masks, o):
    """Stack of the joint marginals over source subsets ``masks`` of ``x`` (..., S1..Sn, *rest),
    each summed over the other sources and broadcast back: shape (..., len(masks), S1..Sn, *rest)."""
    shape = tuple(x.shape)
    out = []
    for m in masks:
        axes = tuple(nb + i for i in range(n) if not (int(m) >> i) & 1)
        q = o.sum(x, axes, keepdims=True) if axes else x
        out.append(o.broadcast_to(q, shape))
    return o.stack(out, nb)


# grids up to this many cells get their joint marginals from one matmul with a 0/1 matrix
_MATMUL_MARGINALS_MAX_CELLS = 256


@functools.lru_cache(maxsize=64)
def _agreement_matrix(shape: tuple, n: int, masks: tuple) -> np.ndarray:
    """0/1 matrix ``A`` (G, k*G): ``(x_flat @ A)[k*G + g]`` = marginal of subset ``masks[k]`` (and of
    every axis after the n sources, e.g. the target) of ``x`` at cell ``g``."""
    idx = np.indices(shape).reshape(len(shape), -1)
    g = idx.shape[1]
    out = np.empty((g, len(masks) * g))
    for j, m in enumerate(masks):
        keep = [i for i in range(n) if (m >> i) & 1] + list(range(n, len(shape)))
        agree = np.ones((g, g), dtype=bool)
        for i in keep:
            agree &= idx[i][:, None] == idx[i][None, :]
        out[:, j * g:(j + 1) * g] = agree
    out.setflags(write=False)
    return out


def joint_marginals(x, n: int, nb: int, masks):
    """Joint marginals of ``x`` (..., S1..Sn, *rest) over each source subset in ``masks`` (bitmasks,
    bit i = source i; the axes in ``rest``, e.g. the target, are kept), at every cell:
    shape (..., k, G) with G = cells of ``x`` after the ``nb`` batch dimensions."""
    o = ops(x)
    shape = tuple(x.shape[nb:])
    batch = tuple(x.shape[:nb])
    g = int(np.prod(shape))
    k = len(masks)
    if g <= _MATMUL_MARGINALS_MAX_CELLS:
        key = (shape, n, tuple(int(m) for m in masks))
        a = const_for(_agreement_matrix(*key), x, ("agree",) + key)
        return (x.reshape(*batch, g) @ a).reshape(*batch, k, g)
    return _subset_marginals(x, n, nb, masks, o).reshape(*batch, k, g)


# --------------------------------------------------------------------------- entropies
def entropy(q):
    """H = −Σ q log2 q in bits over the last axis of a (batch of) pmf(s), zero entries masked: ``(...)``."""
    o = ops(q)
    return -o.sum(q * o.log2(o.where(q > 0, q, 1.0)), -1)


def target_entropy(p, n: int):
    """H(T) in bits of a (batch of) pmf(s) ``(..., S1..Sn, T)``: shape ``(...)``."""
    return entropy(ops(p).sum(p, tuple(range(p.ndim - n - 1, p.ndim - 1))))


def specific_information(pmf, n_sources=None, *, subsets=None, validate=True, normalize=False, tol=None):
    """``W[..., k, t] = p(t) I(T=t; S_a) = Σ_{s_a} p(s_a, t) log2 [p(s_a, t) / (p(s_a) p(t))]`` for the
    source subsets ``a`` (default: all 2**n − 1, by bitmask order, as ``lattice(n).subsets``);
    shape ``(..., n_subsets, |T|)``. Σ_t W[a, t] = I(T; S_a)."""
    p, n = prepare_pmf(pmf, n_sources, validate=validate, normalize=normalize, tol=tol)
    masks = np.arange(1, 2 ** n) if subsets is None else np.array([sum(1 << i for i in a) for a in subsets])
    return chunked(p, n, lambda q: specific(q, n, masks), n_red=len(masks))


def specific(p, n: int, masks):
    """:func:`specific_information` of a prepared pmf for the subsets ``masks`` (bitmasks)."""
    o = ops(p)
    nb = p.ndim - n - 1
    batch = tuple(p.shape[:nb])
    gs = int(np.prod(p.shape[nb:nb + n]))
    n_t = p.shape[-1]
    k = len(masks)
    ps = o.sum(p, -1)
    pt = o.sum(p, tuple(range(nb, nb + n)))
    pf = p.reshape(*batch, 1, gs, n_t)
    mt = joint_marginals(p, n, nb, masks).reshape(*batch, k, gs, n_t)    # p(s_a, t)
    ms = joint_marginals(ps, n, nb, masks).reshape(*batch, k, gs, 1)     # p(s_a)
    # value floor: the marginal event contains the cell (guards round-off only)
    mt = o.floor_value(mt, pf)
    ms = o.floor_value(ms, ps.reshape(*batch, 1, gs, 1))
    m = pf > 0
    ptb = pt.reshape(*batch, 1, 1, n_t)
    local = o.log2(o.where(m, mt, 1.0)) - o.log2(o.where(m, ms, 1.0)) - o.log2(o.where(m, ptb, 1.0))
    return o.sum(local * pf, -2)                                          # (..., k, T)


def node_collections(n: int, nodes) -> tuple[np.ndarray, np.ndarray]:
    """``(masks, pos)``: bitmasks of the source subsets that are collections of the given nodes
    (lattice indices), sorted, and ``(len(nodes), width)`` positions into ``masks`` of each node's
    collections, padded by repeating the first."""
    return _node_collections(n, tuple(int(i) for i in nodes))


@functools.lru_cache(maxsize=256)
def _node_collections(n: int, nodes: tuple):
    L = lattice(n)
    width = max(len(L.nodes[i]) for i in nodes)
    e = np.zeros((len(nodes), width), dtype=np.int64)
    for r, i in enumerate(nodes):
        ms = [sum(1 << j for j in a) for a in L.nodes[i]]
        e[r] = ms + [ms[0]] * (width - len(ms))
    masks = np.unique(e)
    pos = np.searchsorted(masks, e)
    for a in (masks, pos):
        a.setflags(write=False)
    return masks, pos


def collection_min(x, pos, axis: int):
    """``min_{a∈α} x[..., a, ...]`` per node α: axis ``axis`` of ``x`` runs over the subsets
    ``masks`` and ``pos`` comes from :func:`node_collections`; that axis becomes the node axis.
    (torch: the gradient goes to the minimising collection.)"""
    axis = axis % x.ndim
    idx = pos.reshape(-1)
    g = x[(slice(None),) * axis + (np.array(idx) if is_torch(x) else idx,)]  # torch wants a writable index
    g = g.reshape(*x.shape[:axis], *pos.shape, *x.shape[axis + 1:])
    return ops(x).min(g, axis + 1)


# --------------------------------------------------------------------------- atoms and goals
def apply_mobius(red, L: RedundancyLattice):
    """``atoms = mobius @ red`` on the last axis (numpy or torch); sparse terms for n = 5."""
    if L.n <= 4:
        if is_torch(red):
            return red @ const_for(np.ascontiguousarray(L.mobius.T, dtype=np.float64), red, ("mobius_t", L.n))
        return red @ L.mobius.T.astype(red.dtype)
    r, c, v = L.mobius_terms
    if is_torch(red):
        import torch

        flat = red.reshape(-1, red.shape[-1])
        out = torch.zeros(flat.shape[0], L.n_nodes, dtype=red.dtype, device=red.device)
        rr, cc = (torch.as_tensor(np.array(x), device=red.device) for x in (r, c))
        terms = flat[:, cc] * torch.as_tensor(np.array(v), dtype=red.dtype, device=red.device)
        out = out.index_add(1, rr, terms)
        return out.reshape(red.shape)
    import scipy.sparse as sp

    mat = sp.csr_matrix((v.astype(np.float64), (r, c)), shape=(L.n_nodes, L.n_nodes))
    flat = red.reshape(-1, red.shape[-1])
    return np.asarray((mat @ flat.T).T).reshape(red.shape)


def goal_weights(gamma, n: int, *, order="default"):
    """Weights ``(w, w_h)`` with ``γ·atoms + γ_res·H_res = w·redundancies + w_h·H(T)``.

    ``gamma`` has ``n_atoms`` entries (no H_res term) or ``n_atoms + 1`` (H_res last), atoms in
    ``order`` (default: ``lattice(n).nodes``, the infomorphic γ order for n = 2, 3). Since
    atoms = M·red, γ·atoms = (Mᵀγ)·red; H_res = H(T) − red[top], so w = Mᵀγ − γ_res·e_top and
    w_h = γ_res. Returns numpy float64 arrays.
    """
    L = lattice(n)
    try:
        g = np.asarray(gamma.detach().cpu() if is_torch(gamma) else gamma, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"gamma must be a numeric vector, got {type(gamma).__name__}") from exc
    if g.shape[0] not in (L.n_nodes, L.n_nodes + 1):
        raise ValueError(f"gamma must have {L.n_nodes} or {L.n_nodes + 1} entries for n = {n}, got {g.shape[0]}")
    bad = np.flatnonzero(~np.isfinite(g))
    if len(bad):
        raise ValueError(f"gamma contains NaN or inf (entries {bad.tolist()}); every weight must be a finite number")
    g_res = float(g[L.n_nodes]) if g.shape[0] == L.n_nodes + 1 else 0.0
    ga = g[:L.n_nodes]
    if order not in (None, "default"):
        ga = L.reorder(ga, order, "default")
    if n <= 4:
        w = L.mobius.T.astype(np.float64) @ ga
    else:
        r, c, v = L.mobius_terms
        w = np.zeros(L.n_nodes)
        np.add.at(w, c, v * ga[r])
    w[L.index(L.top)] -= g_res
    return w, g_res


# --------------------------------------------------------------------------- memory
DEFAULT_MEMORY_LIMIT = 4e9
_MEMORY_LIMIT = contextvars.ContextVar("limen_estimators_memory_limit", default=DEFAULT_MEMORY_LIMIT)

# numpy work is chunked over the batch so the (batch, nodes, cells) intermediates stay below ~64 MB
_NUMPY_CHUNK_ELEMS = 1 << 23


def working_bytes(cells: int, n: int, n_red: int, itemsize: int = 8, pointwise: bool = False) -> int:
    """Estimated peak working memory (bytes) of one pass over one pmf of ``cells`` cells that
    computes ``n_red`` redundancies: three arrays per cell for each of the 2**n − 1 joint marginals
    and for each node (union or specific-information terms, their logarithms), eight more per
    node with pointwise values. An estimate for refusing hopeless sizes, not an exact figure."""
    per_cell = 3 * (2 ** n - 1) + 3 * n_red + (8 * n_red if pointwise else 0)
    return int(itemsize) * int(cells) * per_cell


@contextlib.contextmanager
def memory_limit(nbytes):
    """Within the block, refuse numpy decompositions (and dense pmfs) estimated to need more than
    ``nbytes`` bytes (default 4 GB; ``None``: no limit)."""
    if nbytes is not None and (isinstance(nbytes, bool) or not isinstance(nbytes, (int, float, np.integer, np.floating))
                               or not nbytes > 0):
        raise ValueError(f"the memory limit must be a positive number of bytes or None, got {nbytes!r}")
    token = _MEMORY_LIMIT.set(None if nbytes is None else float(nbytes))
    try:
        yield
    finally:
        _MEMORY_LIMIT.reset(token)


def _size(nbytes: float) -> str:
    for unit, k in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6)):
        if nbytes >= k:
            return f"{nbytes / k:.1f} {unit}"
    return f"{nbytes / 1e3:.1f} kB"


def check_memory(nbytes: float, what: str) -> None:
    """Raise ``ValueError`` (with the figure) if ``what`` needs more than the memory limit."""
    limit = _MEMORY_LIMIT.get()
    if limit is not None and nbytes > limit:
        raise ValueError(f"{what} needs about {_size(nbytes)} of memory, more than the limit of {_size(limit)}: "
                         "use fewer values per variable (e.g. fewer bins), or raise the limit "
                         "(limen pid --max-memory GB; in Python: with limen.estimators.memory_limit(nbytes))")


def chunked(p, n: int, fn: Callable, *, n_red: int, pointwise: bool = False):
    """``fn(p)``, for a numpy batch in chunks of about 8 M intermediate elements, outputs (an array
    or a dict of arrays) concatenated over the batch; a torch tensor in one call (its memory is the
    caller's to manage). A numpy pmf whose :func:`working_bytes` exceed the memory limit is refused."""
    nb = p.ndim - n - 1
    if is_torch(p):
        return fn(p)
    cells = int(np.prod(p.shape[nb:]))
    check_memory(working_bytes(cells, n, n_red, p.itemsize, pointwise),
                 f"a decomposition of a pmf of shape {tuple(p.shape[nb:])} ({cells:,} cells, {n_red} redundancies)")
    batch = p.shape[:nb]
    per = max(1, _NUMPY_CHUNK_ELEMS // max(1, cells * lattice(n).n_nodes))
    total = int(np.prod(batch))
    if nb == 0 or total <= per:
        return fn(p)
    flat = p.reshape(total, *p.shape[nb:])
    outs = [fn(flat[i:i + per]) for i in range(0, total, per)]
    if not isinstance(outs[0], dict):
        cat = np.concatenate(outs, axis=0)
        return cat.reshape(*batch, *cat.shape[1:])
    res = {}
    for key in outs[0]:
        cat = np.concatenate([o[key] for o in outs], axis=0)
        res[key] = cat.reshape(*batch, *cat.shape[1:])
    return res


# --------------------------------------------------------------------------- measures
@dataclass
class Decomposition:
    """One measure's decomposition of a (batch of) pmf(s); node axes in ``lattice(n).nodes`` order.

    ``atoms``, ``redundancies`` ``(..., n_nodes)``; ``mi`` = I(T; S1..Sn) (the redundancy of the
    top node, for every measure), ``h_target`` = H(T), ``h_res`` = H(T) − I(T; S) ``(...)``.
    """

    n: int
    atoms: Any
    redundancies: Any
    mi: Any
    h_target: Any
    h_res: Any

    def as_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def all_nodes(n: int) -> tuple[int, ...]:
    return tuple(range(lattice(n).n_nodes))


class Measure:
    """A redundancy measure I_∩ for the vectorised estimators.

    A subclass sets ``name`` (shown in results), ``aliases`` (the accepted lower-case spellings;
    the first is its key), ``dit`` (the suffix of dit's ``PID_`` class of the same measure, or
    None) and defines :meth:`redundancy`; ``limen.estimators.measures.register`` makes it known
    to ``pid``, ``atoms``, ``redundancies``, ``goal`` and ``limen pid --measure``. Atoms, goals,
    I(T; S) and H_res follow from the redundancies here.
    """

    name: str = ""
    aliases: tuple[str, ...] = ()
    dit: str | None = None
    #: whether ``pid(..., backend="sympy")`` can compute it exactly (:meth:`decompose_exact`)
    exact: bool = False

    @property
    def key(self) -> str:
        return self.aliases[0]

    def redundancy(self, p, n: int, nodes: tuple[int, ...]):
        """I_∩(α) for the nodes ``nodes`` (indices into ``lattice(n).nodes``) of a prepared pmf
        ``p`` ``(..., |S1|, ..., |Sn|, |T|)`` (numpy float64 or a torch tensor): ``(..., len(nodes))``."""
        raise NotImplementedError

    def decompose(self, p, n: int, *, pointwise: bool = False) -> Decomposition:
        """Every redundancy and atom of a prepared pmf, with I(T; S) and H_res."""
        if pointwise:
            raise ValueError(f"pointwise values exist for I^sx only (not {self.name})")
        L = lattice(n)
        red = chunked(p, n, lambda q: self.redundancy(q, n, all_nodes(n)), n_red=L.n_nodes)
        h_t = target_entropy(p, n)
        mi = red[..., L.index(L.top)]
        return Decomposition(n=n, atoms=apply_mobius(red, L), redundancies=red, mi=mi, h_target=h_t,
                             h_res=h_t - mi)

    def decompose_exact(self, d, *, pointwise: bool = False):
        raise ValueError(f"the exact (sympy) backend implements I^sx only; use backend='numpy' for {self.name}")

    def __repr__(self) -> str:
        return f"<measure {self.name} ({', '.join(self.aliases)})>"
