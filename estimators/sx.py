r"""Exact, vectorised I^sx (shared-exclusion) PID in numpy (float64 reference) and torch (autograd).

Input: a pmf of shape ``(..., |S1|, ..., |Sn|, |T|)`` -- any number of leading batch dimensions
(pass ``n_sources=n`` when there are any; the default is "no batch dimensions", n = ndim - 1).
numpy input is computed in float64; torch input keeps its dtype and device and is differentiable.

Definition (Makkeh, Gutknecht, Wibral 2021). For a node (antichain) alpha and a realisation
(s, t) with p(s, t) > 0, with the union event 𝔞_α(s) = ∪_{a∈α} {S_a = s_a}:

    i(t : α) = log2 [ P({T=t} ∩ 𝔞_α) / (P(𝔞_α) P(t)) ] = i⁺ − i⁻,
    i⁺ = −log2 P(𝔞_α) ≥ 0,    i⁻ = −log2 P(𝔞_α | t) ≥ 0,

averaged redundancy I(α) = Σ_{s,t} p(s,t) i(t : α), atoms Π = Möbius(I) (``lattice(n).mobius``),
pointwise atoms π = Möbius(i) per realisation, π± = Möbius(i±) (non-negative), and
H_res = H(T) − I(T; S1..Sn).

How it is computed. P(𝔞_α) is a fixed integer combination of the joint marginals p(s_S)
(``lattice(n).union_coefficients``, inclusion–exclusion); so all joint marginals are broadcast to
the full grid, and one (nodes × subsets) product gives every union at every cell, with and
without the target. Then I(α) = Σ p(s,t) log2 P(t∩𝔞) − Σ p(s) log2 P(𝔞) + H(T).

Zero-probability cells are masked, never epsilon-patched: a cell with p(s, t) = 0 contributes
exactly 0 (its logarithms are evaluated at 1 through ``where``, so values and gradients stay
finite), and pointwise outputs are 0 there (``mask`` tells which cells are realisations).
Gradients (torch): the derivative with respect to p(s, t) is that of the sum over the support;
for a zero cell the own term p·log(...) is treated as the constant 0 (its one-sided derivative,
the pointwise redundancy, is omitted; it can be −inf), while its effect through the marginals of
the occupied cells is kept. This is the convention of the infomorphic code. Union probabilities
are bounded below by the cell's own probability (the event contains the cell), applied to the
value only (the gradient is that of the inclusion–exclusion sum), which guards low-precision
round-off.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, fields
from typing import Any, Sequence

import numpy as np

from ._arrays import as_float_array, check_pmf, is_symbolic, is_torch, resolve_n
from .lattice import RedundancyLattice, lattice

__all__ = ["sx_pid", "sx_redundancies", "sx_decomposition", "sx_goal", "goal_weights", "SxDecomposition",
           "apply_mobius", "prepare_pmf", "target_entropy"]

# numpy work is chunked over the batch so the (batch, nodes, cells) intermediates stay below ~64 MB
_NUMPY_CHUNK_ELEMS = 1 << 23


# --------------------------------------------------------------------------- array helpers
class _NP:
    torch = False

    @staticmethod
    def log2(x):
        return np.log2(x)

    @staticmethod
    def where(c, a, b):
        return np.where(c, a, b)

    @staticmethod
    def stack(xs, axis):
        return np.stack(xs, axis=axis)

    @staticmethod
    def sum(x, axis, keepdims=False):
        return x.sum(axis=axis, keepdims=keepdims)

    @staticmethod
    def const(a, like):
        return np.asarray(a, dtype=like.dtype)

    @staticmethod
    def floor_value(x, lo):  # max(x, lo) in value
        return np.maximum(x, lo)

    @staticmethod
    def broadcast_to(x, shape):
        return np.broadcast_to(x, shape)


class _TorchOps:
    torch = True

    def __init__(self):
        import torch

        self.t = torch

    def log2(self, x):
        return self.t.log2(x)

    def where(self, c, a, b):  # a Python scalar b stays a scalar: no host-to-device copy (CUDA-graph safe)
        return self.t.where(c, a, b)

    def stack(self, xs, axis):
        return self.t.stack(xs, dim=axis)

    def sum(self, x, axis, keepdims=False):
        if axis == ():
            return x
        return x.sum(dim=axis, keepdim=keepdims)

    def const(self, a, like):  # cached per value, dtype and device: no host copy per call (CUDA-graph safe)
        a = np.ascontiguousarray(a, dtype=np.float64)
        return _const_for(a, like, ("const", a.shape, a.tobytes()))

    def floor_value(self, x, lo):
        # value max(x, lo), gradient of x (the inclusion-exclusion sum is the true function)
        return x + (self.t.maximum(x, lo) - x).detach()

    def broadcast_to(self, x, shape):
        return x.expand(shape)


def _ops(p):
    return _TorchOps() if is_torch(p) else _NP


def prepare_pmf(pmf, n_sources=None, *, validate=True, normalize=False, tol=None):
    """Convert, check and return ``(p, n)``: numpy float64 or a floating torch tensor."""
    if is_symbolic(pmf):
        raise ValueError("exact (sympy/Fraction) pmfs are handled by limen.estimators.symbolic; "
                         "use pid(..., backend='sympy') or symbolic.sx_pid_exact")
    p = as_float_array(pmf)
    n = resolve_n(tuple(p.shape), n_sources)
    if validate or normalize:
        p = check_pmf(p, n, tol=tol, normalize=normalize)
    return p, n


def _subset_marginals(x, n, nb, masks, ops):
    """Stack of the joint marginals over source subsets ``masks`` of ``x`` (..., S1..Sn, *rest),
    each summed over the other sources and broadcast back: shape (..., len(masks), S1..Sn, *rest)."""
    shape = tuple(x.shape)
    out = []
    for m in masks:
        axes = tuple(nb + i for i in range(n) if not (int(m) >> i) & 1)
        q = ops.sum(x, axes, keepdims=True) if axes else x
        out.append(ops.broadcast_to(q, shape))
    return ops.stack(out, nb)


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


_TORCH_CONSTS: dict = {}


def _const_for(a: np.ndarray, like, key):
    """``a`` as an array/tensor of ``like``'s dtype and device (torch constants cached)."""
    if not is_torch(like):
        return a if a.dtype == like.dtype else a.astype(like.dtype)
    import torch

    k = (key, like.dtype, str(like.device))
    t = _TORCH_CONSTS.get(k)
    if t is None:
        if len(_TORCH_CONSTS) > 256:
            _TORCH_CONSTS.clear()
        t = _TORCH_CONSTS[k] = torch.as_tensor(np.array(a), dtype=like.dtype, device=like.device)
    return t


def _marginals_flat(x, n, nb, masks, ops):
    """Joint marginals of ``x`` (..., S1..Sn, *rest) over each subset in ``masks`` (keeping ``rest``),
    at every cell: shape (..., k, G) with G = cells of ``x`` after the batch dimensions."""
    shape = tuple(x.shape[nb:])
    batch = tuple(x.shape[:nb])
    g = int(np.prod(shape))
    k = len(masks)
    if g <= _MATMUL_MARGINALS_MAX_CELLS:
        key = (shape, n, tuple(int(m) for m in masks))
        a = _const_for(_agreement_matrix(*key), x, ("agree",) + key)
        return (x.reshape(*batch, g) @ a).reshape(*batch, k, g)
    return _subset_marginals(x, n, nb, masks, ops).reshape(*batch, k, g)


def _wsum(v, w):
    """``(v * w).sum(-1)`` for v (..., u, G) and w (..., 1, G), as a batched matmul."""
    wt = w.transpose(-1, -2) if is_torch(w) else np.swapaxes(w, -1, -2)
    return (v @ wt)[..., 0]


def target_entropy(p, n: int):
    """H(T) in bits of a (batch of) pmf(s) ``(..., S1..Sn, T)``, zero cells masked: shape ``(...)``."""
    ops = _ops(p)
    pt = ops.sum(p, tuple(range(p.ndim - n - 1, p.ndim - 1)))
    return -ops.sum(pt * ops.log2(ops.where(pt > 0, pt, 1.0)), -1)


def apply_mobius(red, L: RedundancyLattice):
    """``atoms = mobius @ red`` on the last axis (numpy or torch); sparse terms for n = 5."""
    if L.n <= 4:
        if is_torch(red):
            return red @ _const_for(np.ascontiguousarray(L.mobius.T, dtype=np.float64), red, ("mobius_t", L.n))
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


# --------------------------------------------------------------------------- the core
def _core(p, n: int, node_idx=None, *, pointwise=False, parts=False):
    """Redundancies (and optionally i± averages and pointwise values) for nodes ``node_idx``."""
    ops = _ops(p)
    L = lattice(n)
    nb = p.ndim - n - 1
    batch = tuple(p.shape[:nb])
    src = tuple(p.shape[nb:nb + n])
    n_t = p.shape[-1]
    coef = L.union_coefficients if node_idx is None else L.union_coefficients[np.asarray(node_idx)]
    used = np.flatnonzero(np.any(coef != 0, axis=0))
    coef = coef[:, used]
    masks = used + 1
    k = len(masks)
    gs = int(np.prod(src))

    ps = ops.sum(p, -1)                                          # (..., S)
    pt = ops.sum(p, tuple(range(nb, nb + n)))                    # (..., T)
    mt = _marginals_flat(p, n, nb, masks, ops)                   # p(s_S, t), (..., k, G)
    ms = _marginals_flat(ps, n, nb, masks, ops)                  # p(s_S),    (..., k, Gs)
    c = _const_for(coef.astype(np.float64), p, ("coef", n, None if node_idx is None else tuple(int(i) for i in node_idx)))
    pf = p.reshape(*batch, 1, gs * n_t)
    psf = ps.reshape(*batch, 1, gs)
    ut = ops.floor_value(c @ mt, pf)                             # P(t ∩ 𝔞_α) at every cell
    us = ops.floor_value(c @ ms, psf)                            # P(𝔞_α)
    lt = ops.log2(ops.where(pf > 0, ut, 1.0))
    ls = ops.log2(ops.where(psf > 0, us, 1.0))
    a = _wsum(lt, pf)                                            # Σ p(s,t) log2 P(t∩𝔞)
    b = _wsum(ls, psf)                                           # Σ p(s) log2 P(𝔞)
    logpt = ops.log2(ops.where(pt > 0, pt, 1.0))
    h_t = -ops.sum(pt * logpt, -1)                               # H(T), as target_entropy
    out: dict[str, Any] = {"red": a - b + h_t[..., None], "h_t": h_t}
    if parts:
        out["red_plus"] = -b
        out["red_minus"] = -h_t[..., None] - a
    if pointwise:
        mask = (p > 0)
        lt4 = lt.reshape(*batch, -1, gs, n_t)
        ls4 = ls.reshape(*batch, -1, gs, 1)
        lpt = logpt.reshape(*batch, 1, 1, n_t)
        m4 = mask.reshape(*batch, 1, gs, n_t)
        i_plus = ops.where(m4, -ls4, 0.0)       # broadcasts over T
        i_minus = ops.where(m4, lpt - lt4, 0.0)
        out["pw_red_plus"] = i_plus
        out["pw_red_minus"] = i_minus
        out["mask"] = mask
    return out


def _move_node_axis_last(x, nb, src, n_t):
    """(..., nodes, gs, T) -> (..., S1..Sn, T, nodes)."""
    batch = tuple(x.shape[:nb])
    nodes = x.shape[nb]
    if is_torch(x):
        y = x.movedim(nb, -1)
    else:
        y = np.moveaxis(x, nb, -1)
    return y.reshape(*batch, *src, n_t, nodes)


def _chunked(p, n, fn):
    """Apply ``fn`` to chunks of the flattened batch of a numpy pmf; concatenate dict outputs."""
    nb = p.ndim - n - 1
    if is_torch(p) or nb == 0:
        return fn(p)
    batch = p.shape[:nb]
    cells = int(np.prod(p.shape[nb:]))
    per = max(1, _NUMPY_CHUNK_ELEMS // max(1, cells * lattice(n).n_nodes))
    total = int(np.prod(batch))
    if total <= per:
        return fn(p)
    flat = p.reshape(total, *p.shape[nb:])
    outs = [fn(flat[i:i + per]) for i in range(0, total, per)]
    res = {}
    for key in outs[0]:
        cat = np.concatenate([o[key] for o in outs], axis=0)
        res[key] = cat.reshape(*batch, *cat.shape[1:])
    return res


# --------------------------------------------------------------------------- public API
def _order_out(x, L, order):
    return x if order in (None, "default") else L.reorder(x, "default", order)


def sx_redundancies(pmf, n_sources=None, *, nodes=None, order="default", validate=True, normalize=False,
                    tol=None):
    """Averaged I^sx redundancies ``(..., n_nodes)`` (or ``(..., len(nodes))`` for the given nodes)."""
    p, n = prepare_pmf(pmf, n_sources, validate=validate, normalize=normalize, tol=tol)
    L = lattice(n)
    idx = None if nodes is None else [L.index(nd) for nd in nodes]
    red = _chunked(p, n, lambda q: {"red": _core(q, n, idx)["red"]})["red"]
    return red if nodes is not None else _order_out(red, L, order)


def sx_pid(pmf, n_sources=None, *, order="default", validate=True, normalize=False, tol=None):
    """Averaged I^sx atoms, shape ``(..., n_atoms)``, in ``lattice(n).nodes`` order (or ``order``).

    ``pmf``: numpy or torch array ``(..., |S1|, ..., |Sn|, |T|)``; ``n_sources`` is required when
    there are leading batch dimensions. torch input is differentiable (see the module docstring
    for the gradient at zero cells). ``validate=False`` skips the input checks (no host sync).
    """
    p, n = prepare_pmf(pmf, n_sources, validate=validate, normalize=normalize, tol=tol)
    L = lattice(n)
    red = _chunked(p, n, lambda q: {"red": _core(q, n)["red"]})["red"]
    return _order_out(apply_mobius(red, L), L, order)


@dataclass
class SxDecomposition:
    """All I^sx quantities of a (batch of) pmf(s); arrays over nodes in ``lattice(n).nodes`` order.

    Averages: ``atoms``, ``redundancies`` ``(..., n_nodes)``; informative/misinformative parts
    ``atoms_plus``, ``atoms_minus``, ``red_plus``, ``red_minus`` (atoms = plus − minus);
    ``mi`` = I(T; S1..Sn), ``h_target`` = H(T), ``h_res`` = H(T) − I(T; S) ``(...)``.
    Pointwise (when requested), shape ``(..., |S1|, ..., |Sn|, |T|, n_nodes)``, zero at cells
    with p = 0 (``mask`` is p > 0): ``pw_red``, ``pw_atoms``, ``pw_red_plus``, ``pw_red_minus``,
    ``pw_atoms_plus``, ``pw_atoms_minus``.
    """

    n: int
    atoms: Any
    redundancies: Any
    atoms_plus: Any
    atoms_minus: Any
    red_plus: Any
    red_minus: Any
    mi: Any
    h_target: Any
    h_res: Any
    mask: Any = None
    pw_red: Any = None
    pw_atoms: Any = None
    pw_red_plus: Any = None
    pw_red_minus: Any = None
    pw_atoms_plus: Any = None
    pw_atoms_minus: Any = None

    def as_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def sx_decomposition(pmf, n_sources=None, *, pointwise=False, validate=True, normalize=False, tol=None
                     ) -> SxDecomposition:
    """Full I^sx decomposition: averages, informative/misinformative parts, H_res, optional pointwise."""
    p, n = prepare_pmf(pmf, n_sources, validate=validate, normalize=normalize, tol=tol)
    L = lattice(n)
    nb = p.ndim - n - 1
    src = tuple(p.shape[nb:nb + n])
    n_t = p.shape[-1]

    def run(q):
        o = _core(q, n, parts=True, pointwise=pointwise)
        o.pop("mask", None)
        return o

    o = _chunked(p, n, run)
    red, h_t = o["red"], o["h_t"]
    top = L.index(L.top)
    mi = red[..., top]
    res = SxDecomposition(
        n=n, atoms=apply_mobius(red, L), redundancies=red,
        atoms_plus=apply_mobius(o["red_plus"], L), atoms_minus=apply_mobius(o["red_minus"], L),
        red_plus=o["red_plus"], red_minus=o["red_minus"], mi=mi, h_target=h_t, h_res=h_t - mi)
    if pointwise:
        plus = _move_node_axis_last(o["pw_red_plus"], nb, src, n_t)
        minus = _move_node_axis_last(o["pw_red_minus"], nb, src, n_t)
        res.mask = p > 0
        res.pw_red_plus, res.pw_red_minus = plus, minus
        res.pw_red = plus - minus
        res.pw_atoms_plus, res.pw_atoms_minus = apply_mobius(plus, L), apply_mobius(minus, L)
        res.pw_atoms = res.pw_atoms_plus - res.pw_atoms_minus
    return res


def goal_weights(gamma, n: int, *, order="default"):
    """Weights ``(w, w_h)`` with ``γ·atoms + γ_res·H_res = w·redundancies + w_h·H(T)``.

    ``gamma`` has ``n_atoms`` entries (no H_res term) or ``n_atoms + 1`` (H_res last), atoms in
    ``order`` (default: ``lattice(n).nodes``, the infomorphic γ order for n = 2, 3). Since
    atoms = M·red, γ·atoms = (Mᵀγ)·red; H_res = H(T) − red[top]. Returns numpy float64 arrays.
    """
    L = lattice(n)
    g = np.asarray(gamma.detach().cpu() if is_torch(gamma) else gamma, dtype=np.float64).reshape(-1)
    if g.shape[0] not in (L.n_nodes, L.n_nodes + 1):
        raise ValueError(f"gamma must have {L.n_nodes} or {L.n_nodes + 1} entries for n = {n}, got {g.shape[0]}")
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


def sx_goal(pmf, gamma, n_sources=None, *, order="default", validate=True, normalize=False, tol=None):
    """Goal ``γ·atoms + γ_res·H_res`` per pmf, shape ``(...)``, via the fast path ``w = Mᵀγ``:
    only the redundancies with non-zero weight (and the marginals they need) are computed."""
    p, n = prepare_pmf(pmf, n_sources, validate=validate, normalize=normalize, tol=tol)
    w, w_h = goal_weights(gamma, n, order=order)
    idx = np.flatnonzero(w != 0)
    if len(idx) == 0:
        return w_h * target_entropy(p, n)
    o = _chunked(p, n, lambda q: _core(q, n, idx))
    ops = _ops(p)
    return o["red"] @ ops.const(w[idx], o["red"]) + w_h * o["h_t"]
