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
