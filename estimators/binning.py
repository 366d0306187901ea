r"""Samples for a plug-in PID: refuse what is not discrete, bin what is numeric.

A plug-in estimate (:meth:`Distribution.from_samples`) treats every distinct value as a symbol.
Continuous data break it silently: with all values distinct, every source cell holds one
sample, p(t | s) is 0 or 1, and I(T; S) = H(T) whatever the data. So each column is checked:

* **finite**: NaN and ±inf are refused (a NaN is unequal to itself, so every NaN would become a
  symbol of its own);
* **discrete enough**: a column is refused when more than half of the samples carry a value
  seen only once. By the Good–Turing estimate the values never observed then hold more than
  half of the probability, so the sample does not describe the distribution: continuous data,
  or far too few samples for the alphabet.

**Binning rule** (``bins=N``; ``limen pid --bins N``): every numeric column with more than N
distinct values is cut into N equal-width bins over its observed range [min, max],

    bin(x) = min(⌊N · (x − min) / (max − min)⌋, N − 1),   labels 0, …, N − 1;

columns with at most N distinct values are kept as they are. Choose N well below the number
of samples per cell you can afford (the joint alphabet grows as N^(n+1)).
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Sequence

import numpy as np

__all__ = ["check_bins", "check_finite", "bin_column", "check_discrete"]


def check_bins(bins) -> int:
    """``bins`` must be an integer >= 2."""
    if isinstance(bins, bool) or not isinstance(bins, (int, np.integer)) or bins < 2:
        raise ValueError(f"bins must be an integer >= 2 (the number of equal-width bins per column), got {bins!r}")
    return int(bins)


def _non_finite(v) -> bool:
    if isinstance(v, (float, np.floating, complex, np.complexfloating)):
        return not np.isfinite(v)
    if isinstance(v, str):
        try:
            return not math.isfinite(float(v))
        except ValueError:
            return False
    return False


def check_finite(values: np.ndarray, name: str) -> None:
    """Raise ``ValueError`` naming ``name`` and the first sample that is NaN or ±inf."""
    a = np.asarray(values)
    if a.dtype.kind in "fc":
        bad = np.flatnonzero(~np.isfinite(a))
    elif a.dtype.kind in "OUS":
        bad = [i for i, v in enumerate(a.tolist()) if _non_finite(v)]
    else:
        return
    if len(bad):
        raise ValueError(f"{name} has {len(bad)} NaN or infinite sample(s) (the first is sample {int(bad[0])}: "
                         f"{str(a[bad[0]])!r}); remove or impute missing values first")


def bin_column(values: np.ndarray, n_bins: int, name: str) -> np.ndarray:
    """``values`` cut into ``n_bins`` equal-width bins (module docstring), or unchanged when they
    have at most ``n_bins`` distinct values."""
    a = np.asarray(values)
    if len(Counter(a.tolist())) <= n_bins:
        return a
    try:
        x = a.astype(np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name} is not numeric and has more than {n_bins} distinct values, so bins={n_bins} "
                         "cannot discretise it; map its values to fewer categories first") from None
    lo, hi = float(x.min()), float(x.max())
    if hi == lo:  # distinct spellings of one number ("1", "1.0")
        return np.zeros(len(x), dtype=np.int64)
    return np.minimum(np.floor(n_bins * (x - lo) / (hi - lo)), n_bins - 1).astype(np.int64)


def check_discrete(columns: Sequence[np.ndarray], names: Sequence[str]) -> None:
    """Raise ``ValueError`` for the first column in which more than half of the samples carry a
    value seen only once (module docstring), saying how to discretise."""
    for values, name in zip(columns, names):
        counts = Counter(np.asarray(values).tolist())
        n = sum(counts.values())
        once = sum(1 for c in counts.values() if c == 1)
        if 2 * once > n:
            raise ValueError(
                f"{name} does not look discrete: {len(counts)} distinct values in {n} samples, {once} of them "
                "seen only once, so a plug-in PID would make nearly every value its own symbol (and report "
                "I(T;S) = H(T) whatever the data). Discretise it: bins=N (limen pid: --bins N) cuts every numeric "
                "column with more than N distinct values into N equal-width bins over its range, or bin the data "
                "yourself; choose N well below the number of samples")
