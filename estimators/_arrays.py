"""numpy/torch helpers shared by the estimators: input checks and one set of array operations.

No torch import unless a tensor is given. :func:`ops` returns the operations for an array
(numpy or torch) so that every estimator is written once for both.
"""

from __future__ import annotations

import math

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
    """Tolerance on ``|sum(pmf) - 1|`` for a pmf *given* in ``dtype`` (numpy or torch alike).

    1e-9 for float64 and for non-float input (integers, lists, objects: read in float64); for a
    lower-precision float, whose normalisation is only exact to its rounding, ``max(1e-4, 8 eps)``
    (1e-4 for float32, 7.8e-3 for float16).
    """
    if is_torch(dtype):
        import torch

        eps = torch.finfo(dtype).eps if dtype.is_floating_point else 0.0
    else:
        dt = np.dtype(dtype)
        eps = float(np.finfo(dt).eps) if np.issubdtype(dt, np.floating) else 0.0
    return 1e-9 if eps <= np.finfo(np.float64).eps else max(1e-4, 8 * eps)


def check_tol(tol) -> None:
    """``tol`` must be None or a finite number >= 0 (a NaN would silently disable the check)."""
    if tol is None:
        return
    if isinstance(tol, bool) or not isinstance(tol, (int, float, np.integer, np.floating)) \
            or not math.isfinite(float(tol)) or tol < 0:
        raise ValueError(f"tol must be a finite number >= 0 (the allowed |sum(pmf) - 1|), got {tol!r}")


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


def check_pmf(p, n: int, *, tol: float | None = None, normalize: bool = False, given_dtype=None):
    """Validate a float pmf of shape ``(..., |S1|, ..., |Sn|, |T|)``; return it (normalized if asked).

    Raises ``ValueError`` for NaN/inf or negative entries and for pmfs that do not sum to 1
    within ``tol`` (default :func:`default_tol` of ``given_dtype``, the dtype the caller was
    given, else of ``p``), unless ``normalize=True``, which divides each pmf by its sum (an
    all-zero pmf still raises).
    """
    check_tol(tol)
    axes = tuple(range(p.ndim - n - 1, p.ndim))
    o = ops(p)
    q = o.detach(p)
    if not bool(o.isfinite(q).all()):
        raise ValueError("the pmf contains NaN or infinite entries")
    if bool((q < 0).any()):
        raise ValueError(f"the pmf has negative entries (min {float(q.min()):.3g})")
    total = o.sum(p, axes, keepdims=True)
    if normalize:
        if bool((o.detach(total) <= 0).any()):
            raise ValueError("cannot normalize a pmf whose entries are all zero")
        return p / total
    tol = default_tol(p.dtype if given_dtype is None else given_dtype) if tol is None else float(tol)
    err = float(abs(o.detach(total) - 1).max())
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


# --------------------------------------------------------------------------- array operations
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
    def min(x, axis):
        return x.min(axis=axis)

    @staticmethod
    def const(a, like):
        return np.asarray(a, dtype=like.dtype)

    @staticmethod
    def floor_value(x, lo):  # max(x, lo) in value
        return np.maximum(x, lo)

    @staticmethod
    def broadcast_to(x, shape):
        return np.broadcast_to(x, shape)

    @staticmethod
    def detach(x):
        return x

    @staticmethod
    def isfinite(x):
        return np.isfinite(x)


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

    def min(self, x, axis):  # the gradient goes to the minimising entry
        return x.min(dim=axis).values

    def const(self, a, like):  # cached per value, dtype and device: no host copy per call (CUDA-graph safe)
        a = np.ascontiguousarray(a, dtype=np.float64)
        return const_for(a, like, ("const", a.shape, a.tobytes()))

    def floor_value(self, x, lo):
        # value max(x, lo), gradient of x (the inclusion-exclusion sum is the true function)
        return x + (self.t.maximum(x, lo) - x).detach()

    def broadcast_to(self, x, shape):
        return x.expand(shape)

    @staticmethod
    def detach(x):
        return x.detach()

    def isfinite(self, x):
        return self.t.isfinite(x)


def ops(p):
    """The array operations for ``p`` (numpy or torch)."""
    return _TorchOps() if is_torch(p) else _NP


_TORCH_CONSTS: dict = {}


def const_for(a: np.ndarray, like, key):
    """``a`` as an array/tensor of ``like``'s dtype and device (torch constants cached under ``key``)."""
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
