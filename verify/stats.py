"""Interval estimates shared by sweep summaries, checks and comparisons."""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np


def t_interval(values: Sequence[float], level: float = 0.95) -> tuple[float, float, int]:
    """Mean, Student-t half-width and count: x̄ ± t_{(1+level)/2, n−1} · s/√n.

    The half-width is NaN for fewer than two values (no spread to estimate).
    """
    arr = np.asarray(values, dtype=float)
    n = int(arr.size)
    if n == 0:
        return math.nan, math.nan, 0
    mean = float(arr.mean())
    if n < 2:
        return mean, math.nan, n
    from scipy import stats

    return mean, float(stats.t.ppf(0.5 + level / 2, n - 1) * arr.std(ddof=1) / math.sqrt(n)), n


def welch_interval(a: Sequence[float], b: Sequence[float], level: float = 0.95) -> tuple[float, float, float]:
    """Difference of means, its Welch half-width and degrees of freedom: ā − b̄ ± t_{(1+level)/2, ν} · se.

    se² = s_a²/n_a + s_b²/n_b, ν = se⁴ / [(s_a²/n_a)²/(n_a − 1) + (s_b²/n_b)²/(n_b − 1)]
    (Welch–Satterthwaite). Half-width and ν are NaN when either sample has fewer than two
    values; with no spread at all the half-width is 0 (and ν NaN).
    """
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if x.size == 0 or y.size == 0:
        raise ValueError("welch_interval needs at least one value in each sample")
    diff = float(x.mean() - y.mean())
    if x.size < 2 or y.size < 2:
        return diff, math.nan, math.nan
    va, vb = x.var(ddof=1) / x.size, y.var(ddof=1) / y.size
    se2 = va + vb
    if se2 == 0:
        return diff, 0.0, math.nan
    df = se2 ** 2 / (va ** 2 / (x.size - 1) + vb ** 2 / (y.size - 1))
    from scipy import stats

    return diff, float(stats.t.ppf(0.5 + level / 2, df) * math.sqrt(se2)), float(df)
