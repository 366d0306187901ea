"""Sample-based I^sx estimator for learning: soft targets, occupied cells only.

Stable API: ``sx_sample_atoms``, ``sx_sample_goal``, ``sx_sample_redundancies``,
``dense_histogram``, ``dense_histogram_goal`` (signatures below).

Infomorphic neurons estimate their PID on a minibatch: each sample ``b`` falls into
one discrete cell ``s_b = (s_b1, …, s_bn)`` of the binned sources and contributes its
*soft* target distribution ``p_target[b, t]`` (for a binary stochastic neuron
``[1 − θ_b, θ_b]``). The pmf is

    p(s, t) = (1/B) Σ_b 1[s_b = s] · p_target[b, t],

so every average over cells is an average over samples:

    I(α) = (1/B) Σ_b Σ_t p_target[b, t] · log2[ P(t ∩ 𝔞_α(s_b)) / (P(𝔞_α(s_b)) · P(t)) ].

The union probabilities at a sample's own cell are fixed integer combinations of the
joint marginals p(s_S) at that cell (``lattice(n).union_coefficients``), and the joint
marginal p(s_S, t) at sample ``b`` is (1/B) times the sum of ``p_target[·, t]`` over the
samples of the same neuron that share ``b``'s bins on ``S`` (summed over ``t`` for
p(s_S)). The groups of equal bins are found per neuron with a scatter over the
``n_bins**|S|`` keys when that is at most the batch size, and otherwise with a
per-neuron sort of the keys (segments of equal keys), so memory is
O(neurons · B · |T|) and never the dense ``n_bins**n × |T|`` grid.

Conventions
-----------
* ``bins``: integer tensor ``(neurons, B, n_sources)`` with values in ``[0, n_bins)``.
* ``p_target``: float tensor ``(neurons, B, |T|)``, rows summing to 1.
* Atoms come in the lattice's default node order (the infomorphic γ order for
  n = 2, 3), followed by ``H_res = H(T) − I(T; S)``.
* The value is a function of ``p_target`` alone (also the source marginals are sums of
  ``p_target``, not sample counts), so it equals the dense estimator on the histogram for
  any non-negative input, and so does its gradient. Gradients flow through ``p_target``
  only (bins are discrete).
* Empty cells are masked, never epsilon-patched: a term whose own cell has zero mass for
  target value ``t`` (all samples there have ``p_target[·, t] = 0``) is the constant 0 (the
  dense estimator's convention: the one-sided derivative there, which can be −inf, is
  omitted; the effect through the unions of occupied cells is kept). The only guard is
  the exact bound ``P(t ∩ 𝔞_α(s_b)) ≥ p(s_b, t)`` (the union contains the own cell),
  applied to the value against round-off in low precision.
* Input validation (``validate=True``) needs a few host synchronisations; training
  loops that already guarantee valid inputs pass ``validate=False``.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Sequence

import numpy as np
import torch

from .base import entropy, goal_weights

__all__ = [
    "sx_sample_redundancies",
    "sx_sample_atoms",
    "sx_sample_goal",
    "dense_histogram",
    "dense_histogram_goal",
    "dense_histogram_atoms",
]

_ROW_ATOL = 1e-5
_BLOCK = 16384  # columns per block of the forward-only goal pass (union masses stay in cache)


# --------------------------------------------------------------------------- lattice data
@lru_cache(maxsize=None)
def _lattice_arrays(n: int):
    """(union coefficients (nodes, 2**n − 1), Möbius matrix, index of the top node)."""
    from .lattice import lattice

    L = lattice(n)
    coef = np.asarray(L.union_coefficients, dtype=np.int64)
    mobius = np.asarray(L.mobius, dtype=np.float64)
    top = L.nodes.index((tuple(range(n)),))
    return coef, mobius, top


@lru_cache(maxsize=64)
def _device_consts(n: int, nodes: tuple[int, ...], device: str, dtype: torch.dtype):
    """Subsets to count and the coefficient sub-matrix ``(m, n_selected)`` for the selected nodes.

    The full source set (the sample's own cell) is always among the subsets, in the last
    column: its mass masks empty cells and floors the unions.
    """
    coef, _, _ = _lattice_arrays(n)
    sub = coef[list(nodes)]
    full = 2 ** n - 2  # column of the full subset (bitmask 2**n - 1)
    used = [int(j) for j in np.flatnonzero(np.any(sub != 0, axis=0)) if j != full] + [full]
    masks = tuple(j + 1 for j in used)  # column j <-> subset bitmask j + 1
    c = torch.tensor(sub[:, used].T, dtype=dtype, device=device)
    return masks, c


def _goal_weights(gamma, n: int) -> tuple[np.ndarray, float]:
    """``(w, γ_res)`` with ``γ·atoms + γ_res·H_res = w·I + γ_res·H(T)`` (``w = Mᵀγ − γ_res·e_top``)."""
    n_nodes = _lattice_arrays(n)[1].shape[0]
    g = np.asarray(gamma.detach().cpu() if isinstance(gamma, torch.Tensor) else gamma, dtype=np.float64)
    if g.shape != (n_nodes + 1,):
        raise ValueError(f"gamma must have {n_nodes + 1} entries for {n} sources "
                         f"({n_nodes} atoms, then H_res), got shape {g.shape}")
    return goal_weights(g, n)


# --------------------------------------------------------------------------- validation
def _validate(bins: torch.Tensor, p_target: torch.Tensor, n_bins: int) -> None:
    if not isinstance(bins, torch.Tensor) or not isinstance(p_target, torch.Tensor):
        raise ValueError("bins and p_target must be torch tensors")
    if bins.dim() != 3:
        raise ValueError(f"bins must have shape (neurons, B, n_sources), got {tuple(bins.shape)}")
    if p_target.dim() != 3:
        raise ValueError(f"p_target must have shape (neurons, B, |T|), got {tuple(p_target.shape)}")
    if bins.shape[:2] != p_target.shape[:2]:
        raise ValueError(f"bins {tuple(bins.shape)} and p_target {tuple(p_target.shape)} disagree on "
                         "(neurons, B)")
    if bins.dtype.is_floating_point or bins.dtype.is_complex or bins.dtype == torch.bool:
        raise ValueError(f"bins must be an integer tensor, got {bins.dtype}")
    if not p_target.dtype.is_floating_point:
        raise ValueError(f"p_target must be a floating-point tensor, got {p_target.dtype}")
    if bins.device != p_target.device:
        raise ValueError(f"bins on {bins.device} but p_target on {p_target.device}")
    if not (isinstance(n_bins, (int, np.integer)) and n_bins >= 1):
        raise ValueError(f"n_bins must be a positive integer, got {n_bins!r}")
    n = bins.shape[2]
    if n not in (2, 3, 4):
        raise ValueError(f"the sample-based estimator supports 2, 3 or 4 sources, got {n}")
    if float(n_bins) ** n >= 2.0 ** 62:
        raise ValueError(f"n_bins**n_sources = {n_bins}**{n} is too large for int64 cell keys")
    if bins.shape[1] == 0:
        raise ValueError("the batch is empty (B = 0)")
    if p_target.shape[2] < 1:
        raise ValueError("p_target needs at least one target value (|T| >= 1)")
    if bins.numel():
        lo, hi = int(bins.min()), int(bins.max())
        if lo < 0 or hi >= n_bins:
            raise ValueError(f"bins must lie in [0, {n_bins}), found values in [{lo}, {hi}]")
    p = p_target.detach()
    if not bool(torch.isfinite(p).all()):
        raise ValueError("p_target contains NaN or inf")
    if bool((p < 0).any()):
        raise ValueError(f"p_target has negative entries (min {float(p.min()):.3g})")
    dev = (p.sum(-1) - 1).abs()
    if dev.numel() and float(dev.max()) > _ROW_ATOL:
        raise ValueError(f"p_target rows must sum to 1 (max deviation {float(dev.max()):.3g} > {_ROW_ATOL})")


# --------------------------------------------------------------------------- core
def _group_index(bins: torch.Tensor, n_bins: int, mask: int) -> tuple[torch.Tensor, int]:
    """Per-sample group id of subset ``mask`` (flat, neuron-offset) and the number of groups.

    Samples of the same neuron get the same id iff their bins agree on every source of
    the subset. Small key spaces (``n_bins**|S| <= B``) use the key itself; larger ones
    rank the keys with a per-neuron sort, so ids stay below ``neurons · B``.
    """
    K, B, n = bins.shape
    srcs = [i for i in range(n) if mask >> i & 1]
    key = bins[..., srcs[0]].long()
    for i in srcs[1:]:
        key = key * n_bins + bins[..., i]
    size = n_bins ** len(srcs)
    if size < 2 ** 31:
        key = key.to(torch.int32)  # sorts and compares faster than int64
    if size <= B:
        offs = torch.arange(K, device=bins.device, dtype=torch.int64).unsqueeze(1) * size
        return (key + offs).reshape(-1), K * size
    sorted_key, perm = torch.sort(key, dim=1)
    new = torch.ones_like(sorted_key, dtype=torch.bool)
    new[:, 1:] = sorted_key[:, 1:] != sorted_key[:, :-1]
    seg = torch.cumsum(new, dim=1) - 1  # segment rank within the neuron, in [0, B)
    seg = seg + torch.arange(K, device=bins.device, dtype=seg.dtype).unsqueeze(1) * B
    idx = torch.empty_like(seg).scatter_(1, perm, seg)
    return idx.reshape(-1), K * B


def _marginal_stats(bins: torch.Tensor, p_target: torch.Tensor, n_bins: int, masks: Sequence[int]):
    """Joint target masses ``q[t, S, b] = Σ_{b' ~_S b} p_target[b', t]`` at each sample's own cell.

    ``b' ~_S b``: same neuron, same bins on every source of ``S``. Returns ``(T, m, K·B)``
    for the ``m`` subsets, in units of samples (divide by B for probabilities);
    differentiable in ``p_target``. Per target value, one group table accumulates the
    group sums of all subsets (``index_add``) and one gather (``index_select``) reads
    them back at every sample.
    """
    K, B, T = p_target.shape
    idxs, offset = [], 0
    with torch.no_grad():
        for mask in masks:
            idx, g = _group_index(bins, n_bins, mask)
            idxs.append(idx + offset if offset else idx)
            offset += g
        if offset < 2 ** 31:  # int32 indices: half the index traffic of the scatter and gather
            idxs = [i.to(torch.int32) for i in idxs]
        idx_all = torch.cat(idxs)
    pt = p_target.permute(2, 0, 1).reshape(T, K * B)
    out = []
    for t in range(T):
        groups = p_target.new_zeros(offset)
        for idx in idxs:
            groups.index_add_(0, idx, pt[t])
        out.append(groups.index_select(0, idx_all))
    return torch.stack(out).reshape(T, len(masks), K * B)


class _LogUnion(torch.autograd.Function):
    """``log2(max(coefᵀ @ stats, f) / B)``, shape ``(…, nodes, R)``; rows with ``f = 0`` are 0.

    ``coefᵀ @ stats`` are the union masses (in samples) of every node at every row;
    ``f`` (detached) is the mass of the row's own cell, an exact lower bound of every
    union containing it (applied to the value only: the backward pass differentiates
    ``log2(v/B)``, i.e. ``1 / (v ln 2)``); ``f = 0`` marks an empty cell, whose terms are
    the constant 0 (the caller multiplies them by a weight that is 0 there).
    """

    @staticmethod
    def forward(ctx, stats, f, coef, batch):  # stats (…, m, R), f (…, R), coef (m, n)
        f = f.unsqueeze(-2)
        logv = coef.T @ stats
        torch.maximum(logv, f, out=logv)
        logv.log2_().sub_(math.log2(batch)).masked_fill_(f <= 0, 0.0)
        ctx.save_for_backward(logv, coef)
        ctx.batch = batch
        return logv

    @staticmethod
    def backward(ctx, g):
        logv, coef = ctx.saved_tensors
        gv = torch.exp2(-logv).mul_(g).mul_(1.0 / (ctx.batch * math.log(2.0)))
        return coef @ gv, None, None, None


class _WeightedLogTerm(torch.autograd.Function):
    """``x[r] · Σ_α w_α · log2(max(v[α, r], f[r]) / B)`` with ``v = coefᵀ @ stats``: shape ``(…, R)``.

    The goal's fast path, fused: the union masses are formed, floored and logged in place
    and contracted with the goal weights ``w``; rows with ``f = 0`` (empty cells, where
    ``x = 0``) give 0. Backward: ``∂/∂x = Σ_α w_α log2(v_α/B)`` (0 on empty cells) and
    ``∂/∂stats = ((coef·w) @ (1/v)) · g·x / ln 2`` (the column scale ``g·x`` is applied
    after the product, so only ``1/v`` is a full ``nodes × R`` pass; ``v`` is saved,
    ``log2 v`` is not). Forward-only calls work in cache-sized column blocks and save nothing.
    """

    @staticmethod
    def forward(ctx, x, stats, f, coef, w, w_sum, batch):  # x, f (…, R), stats (…, m, R), coef (m, n), w (n,)
        pos = f > 0
        floor = torch.where(pos, f, 1.0).unsqueeze(-2)  # empty cells: any finite value
        if not any(ctx.needs_input_grad[:2]):  # no backward: cache-sized column blocks, save nothing
            s = torch.empty_like(f)
            for i in range(0, f.shape[-1], _BLOCK):
                v = coef.T @ stats[..., i:i + _BLOCK]
                torch.maximum(v, floor[..., i:i + _BLOCK], out=v)
                s[..., i:i + _BLOCK] = w @ v.log2_()
            return x * torch.where(pos, s - math.log2(batch) * w_sum, 0.0)
        v = coef.T @ stats
        torch.maximum(v, floor, out=v)
        lw = torch.where(pos, w @ torch.log2(v) - math.log2(batch) * w_sum, 0.0)
        ctx.save_for_backward(x, v, lw, coef * w)
        return x * lw

    @staticmethod
    def backward(ctx, g):
        x, v, lw, coef_w = ctx.saved_tensors
        grad_x = g * lw if ctx.needs_input_grad[0] else None
        grad_stats = None
        if ctx.needs_input_grad[1]:
            grad_stats = (coef_w @ torch.reciprocal(v)).mul_((g * x * (1.0 / math.log(2.0))).unsqueeze(-2))
        return grad_x, grad_stats, None, None, None, None, None


def _prepare(bins, p_target, n_bins, nodes):
    """Subset masses with and without the target, and the own-cell masses, for ``nodes``.

    Returns ``(coef (m, n), stats (T, m, K·B), cell (T, K·B), stats_s (m, K·B), cell_s (K·B,))``.
    """
    masks, coef = _device_consts(bins.shape[2], nodes, str(p_target.device), p_target.dtype)
    stats = _marginal_stats(bins, p_target, n_bins, masks)
    cell = stats[:, -1].detach()
    stats_s = stats.sum(0)  # P(s_S) = Σ_t P(s_S, t)
    return coef, stats, cell, stats_s, stats_s[-1].detach()


def _goal_terms(bins, p_target, n_bins, nodes: tuple[int, ...], wt: torch.Tensor, w_sum: float) -> torch.Tensor:
    """``Σ_α w_α (A_α − C_α)`` per neuron, ``(K,)`` (see :func:`_node_terms`), fused with the weights.

    ``w_sum`` = Σ_α w_α as a Python float (reading it from ``wt`` would synchronise).
    """
    K, B, T = p_target.shape
    coef, stats, cell, stats_s, cell_s = _prepare(bins, p_target, n_bins, nodes)
    pt = p_target.permute(2, 0, 1).reshape(T, K * B)
    a = _WeightedLogTerm.apply(pt, stats, cell, coef, wt, w_sum, B)
    c = _WeightedLogTerm.apply(p_target.sum(-1).reshape(-1), stats_s, cell_s, coef, wt, w_sum, B)
    return (a.reshape(T, K, B).sum((0, 2)) - c.reshape(K, B).sum(1)) / B


def _node_terms(bins, p_target, n_bins, nodes: tuple[int, ...]):
    """``A[k, α] − C[k, α]`` for the selected nodes, ``(K, n_selected)``.

    I(α) = A_α − C_α + H(T) with, for the union event 𝔞_α(s_b) at sample b's own cell,
    A_α = (1/B) Σ_{b,t} p_bt log2 P(t ∩ 𝔞_α(s_b)),
    C_α = (1/B) Σ_b (Σ_t p_bt) log2 P(𝔞_α(s_b)),
    terms of empty cells masked.
    """
    K, B, T = p_target.shape
    coef, stats, cell, stats_s, cell_s = _prepare(bins, p_target, n_bins, nodes)
    pt = p_target.permute(2, 0, 1).reshape(T, 1, K * B)
    a = (_LogUnion.apply(stats, cell, coef, B) * pt).reshape(T, -1, K, B).sum((0, 3))
    c = (_LogUnion.apply(stats_s, cell_s, coef, B) * p_target.sum(-1).reshape(-1)).reshape(-1, K, B).sum(-1)
    return ((a - c) / B).T


def sx_sample_redundancies(bins: torch.Tensor, p_target: torch.Tensor, n_bins: int, *,
                           validate: bool = True) -> torch.Tensor:
    """Average I^sx redundancy of every lattice node, ``(neurons, n_nodes)``.

    Node order is ``lattice(n).nodes`` (the infomorphic γ order for n = 2, 3).
    """
    if validate:
        _validate(bins, p_target, n_bins)
    n_nodes = _lattice_arrays(bins.shape[2])[0].shape[0]
    diff = _node_terms(bins, p_target, n_bins, tuple(range(n_nodes)))
    return diff + _entropy(p_target).unsqueeze(-1)


def sx_sample_atoms(bins: torch.Tensor, p_target: torch.Tensor, n_bins: int, *,
                    validate: bool = True) -> torch.Tensor:
    """All I^sx atoms and H_res per neuron: ``(neurons, n_atoms + 1)``.

    Atoms in the lattice's node order (infomorphic γ order for n = 2, 3), then
    ``H_res = H(T) − I(T; S_1..S_n)``. Differentiable with respect to ``p_target``.
    """
    if validate:
        _validate(bins, p_target, n_bins)
    n = bins.shape[2]
    _, mobius, top = _lattice_arrays(n)
    red = sx_sample_redundancies(bins, p_target, n_bins, validate=False)
    m = torch.as_tensor(mobius, dtype=red.dtype, device=red.device)
    atoms = red @ m.T
    hres = _entropy(p_target) - red[:, top]
    return torch.cat([atoms, hres.unsqueeze(-1)], dim=-1)


def _entropy(p_target: torch.Tensor) -> torch.Tensor:
    """H(T) per neuron, ``(neurons,)``: the target marginal is the mean soft target."""
    return entropy(p_target.mean(1))


def sx_sample_goal(bins: torch.Tensor, p_target: torch.Tensor, gamma, n_bins: int, *,
                   validate: bool = True) -> torch.Tensor:
    """Goal ``γ·atoms + γ_res·H_res`` per neuron, ``(neurons,)``, by the fast path.

    Uses ``γ·atoms = (Mᵀγ)·I`` and computes only the redundancies with nonzero weight,
    and only the source subsets those need. ``gamma`` has ``n_atoms + 1`` entries
    (numpy, list or tensor; read on the host, so keep it on the CPU: the weights derived
    from it are cached per device, so repeated calls make no host-device transfer).
    """
    if validate:
        _validate(bins, p_target, n_bins)
    n = bins.shape[2]
    g = gamma.detach().cpu() if isinstance(gamma, torch.Tensor) else gamma
    nodes, wt, w_sum, h_weight = _goal_consts(n, tuple(float(v) for v in np.asarray(g, dtype=np.float64).ravel()),
                                              str(p_target.device), p_target.dtype)
    h = _entropy(p_target)
    if not nodes:
        return h * h_weight
    return _goal_terms(bins, p_target, n_bins, nodes, wt, w_sum) + h_weight * h


@lru_cache(maxsize=64)
def _goal_consts(n: int, gamma: tuple[float, ...], device: str, dtype: torch.dtype):
    """(nodes with nonzero weight, their weights on ``device``, their sum, weight of H(T)) for a goal."""
    w, g_res = _goal_weights(np.asarray(gamma), n)
    nodes = tuple(int(i) for i in np.flatnonzero(w != 0))
    wt = torch.tensor(w[list(nodes)], dtype=dtype, device=device)
    return nodes, wt, float(w.sum()), float(w.sum()) + g_res


# --------------------------------------------------------------------------- dense baseline
def dense_histogram(bins: torch.Tensor, p_target: torch.Tensor, n_bins: int) -> torch.Tensor:
    """The dense θ-histogram pmf ``(neurons, n_bins, …, n_bins, |T|)`` (what the public code builds)."""
    K, B, n = bins.shape
    T = p_target.shape[2]
    key = bins[..., 0].long()
    for i in range(1, n):
        key = key * n_bins + bins[..., i]
    hist = p_target.new_zeros(K, n_bins ** n, T)
    hist = hist.scatter_add(1, key.unsqueeze(-1).expand(K, B, T), p_target) / B
    return hist.reshape(K, *([n_bins] * n), T)


def dense_histogram_atoms(bins: torch.Tensor, p_target: torch.Tensor, n_bins: int, *,
                          validate: bool = True) -> torch.Tensor:
    """Atoms and H_res ``(neurons, n_atoms + 1)`` from the dense histogram and the dense estimator."""
    from .sx import sx_decomposition

    if validate:
        _validate(bins, p_target, n_bins)
    n = bins.shape[2]
    d = sx_decomposition(dense_histogram(bins, p_target, n_bins), n_sources=n, validate=False)
    return torch.cat([d.atoms, d.h_res.unsqueeze(-1)], dim=-1)


def dense_histogram_goal(bins: torch.Tensor, p_target: torch.Tensor, gamma, n_bins: int, *,
                         validate: bool = True) -> torch.Tensor:
    """The baseline: dense ``(neurons, n_bins**n, |T|)`` histogram, then the dense estimator's goal.

    The dense estimator (``limen.estimators.sx.sx_goal``) uses the same fast path ``w = Mᵀγ``,
    so the comparison with :func:`sx_sample_goal` isolates dense cells vs occupied cells.
    """
    from .sx import sx_goal

    if validate:
        _validate(bins, p_target, n_bins)
    n = bins.shape[2]
    _goal_weights(gamma, n)  # same validation of gamma as the sparse path
    return sx_goal(dense_histogram(bins, p_target, n_bins), gamma, n_sources=n, validate=False)
