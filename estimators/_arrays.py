"""Small numpy/torch helpers shared by the estimators (no torch import unless a tensor is given)."""

from __future__ import annotations

import numpy as np

from .lattice import MAX_SOURCES, MIN_SOURCES


def is_torch(x) -> bool:
    return type(x).__module__.split(".")[0] == "torch"


def is_symbolic(x) -> bool:
    """True for object arrays / sequences holding sympy numbers or ``fractions.Fraction``."""
    from fractions import Fraction

    if is_torch(x):
        return False
    a = np.asarray(x, dtype=object) if not isinstance(x, np.ndarray) else x
    if a.dtype != object or a.size == 0:
        return False
    v = a.flat[0]
    if isinstance(v, Fraction):
        return True
    return type(v).__module__.split(".")[0] == "sympy"


def default_tol(dtype) -> float:
    """Tolerance on ``|sum(pmf) - 1|``: 1e-9 in float64, 1e-4 in lower precision."""
    name = str(dtype)
    return 1e-9 if "float64" in name or "double" in name else 1e-4


def resolve_n(shape: tuple, n_sources) -> int:
    """Number of sources: ``n_sources`` if given, else ``ndim - 1`` (no batch dimensions)."""
    ndim = len(shape)
    if n_sources is None:
        n = ndim - 1
    else:
        if isinstance(n_sources, bool) or not isinstance(n_sources, (int, np.integer)):
            raise ValueError(f"n_sources must be an integer, got {n_sources!r}")
        n = int(n_sources)
    if not MIN_SOURCES <= n <= MAX_SOURCES:
        raise ValueError(
            f"number of sources must be in [{MIN_SOURCES}, {MAX_SOURCES}], got {n} "
            f"(pmf of shape {tuple(shape)}; pass n_sources= when there are batch dimensions)")
    if ndim < n + 1:
        raise ValueError(f"a pmf with {n} sources needs at least {n + 1} dimensions "
                         f"(|S1|, ..., |S{n}|, |T|), got shape {tuple(shape)}")
    if any(int(s) == 0 for s in shape):
        raise ValueError(f"every axis of the pmf must be non-empty, got shape {tuple(shape)}")
    return n


def check_pmf(p, n: int, *, tol: float | None = None, normalize: bool = False):
    """Validate a float pmf of shape ``(..., |S1|, ..., |Sn|, |T|)``; return it (normalized if asked).

    Raises ``ValueError`` for NaN/inf or negative entries and for pmfs that do not sum to 1
    within ``tol`` (unless ``normalize=True``, which divides each pmf by its sum; an all-zero pmf
    still raises).
    """
    axes = tuple(range(p.ndim - n - 1, p.ndim))
    if is_torch(p):
        import torch

        p_ = p.detach()
        if not bool(torch.isfinite(p_).all()):
            raise ValueError("the pmf contains NaN or infinite entries")
        if bool((p_ < 0).any()):
            raise ValueError(f"the pmf has negative entries (min {float(p_.min()):.3g})")
        total = p.sum(dim=axes, keepdim=True)
        if normalize:
            if bool((total.detach() <= 0).any()):
                raise ValueError("cannot normalize a pmf whose entries are all zero")
            return p / total
        tol = default_tol(p.dtype) if tol is None else tol
        err = float((total.detach() - 1).abs().max())
    else:
        if not np.all(np.isfinite(p)):
            raise ValueError("the pmf contains NaN or infinite entries")
        if np.any(p < 0):
            raise ValueError(f"the pmf has negative entries (min {float(p.min()):.3g})")
        total = p.sum(axis=axes, keepdims=True)
        if normalize:
            if np.any(total <= 0):
                raise ValueError("cannot normalize a pmf whose entries are all zero")
            return p / total
        tol = default_tol(p.dtype) if tol is None else tol
        err = float(np.max(np.abs(total - 1)))
    if err > tol:
        raise ValueError(f"the pmf does not sum to 1 (largest deviation {err:.3g} > tolerance {tol:g}); "
                         "pass normalize=True (limen pid: --normalize) to rescale it")
    return p


def as_float_array(pmf):
    """numpy float64 for array-likes; torch tensors keep their floating dtype (ints -> default dtype)."""
    if is_torch(pmf):
        import torch

        if not torch.is_floating_point(pmf):
            pmf = pmf.to(torch.get_default_dtype())
        return pmf
    try:
        a = np.asarray(pmf, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"the pmf must be a numeric array, got {type(pmf).__name__}") from exc
    return a
