"""Where a measured curve crosses a level (transition points), with a bootstrap interval over seeds."""

from __future__ import annotations

import math
from typing import Callable, Sequence

import numpy as np

from .core import MIN_BOOTSTRAP, Measurement


def crossing(x: Sequence[float], y: Sequence[float], level: float, *, direction: str = "down") -> float:
    """First x at which ``y`` passes ``level`` (``down``: falls below, ``up``: rises above).

    Linear interpolation between the two grid points around the crossing, in log x when
    both are positive. ``inf`` when the curve never crosses on the grid; ``nan`` when it
    starts on the far side already (the crossing lies below the grid).
    """
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    past = (y < level) if direction == "down" else (y > level)
    if not past.any():
        return math.inf
    i = int(np.argmax(past))
    if i == 0:
        return math.nan
    x0, x1, y0, y1 = x[i - 1], x[i], y[i - 1], y[i]
    t = 0.0 if y1 == y0 else (level - y0) / (y1 - y0)
    if x0 > 0 and x1 > 0:
        return float(math.exp(math.log(x0) + t * (math.log(x1) - math.log(x0))))
    return float(x0 + t * (x1 - x0))


def crossing_ci(x: Sequence[float], per_seed: np.ndarray, level: Callable[[np.ndarray], float], *,
                direction: str = "down", n_boot: int = 2000, seed: int = 0) -> Measurement:
    """Crossing of the seed-mean curve, with a percentile bootstrap over seeds (rows of ``per_seed``).

    Fewer than ``MIN_BOOTSTRAP`` seeds give an unbounded interval (too few distinct resamples).

    ``level(mean_curve) -> float`` sets the level from the (resampled) mean curve, e.g.
    half-way between its start and chance. An interval bound that is never reached on
    the grid is ``inf`` (a lower bound never reached is the grid's end: the crossing lies
    beyond it); resamples whose crossing lies below the grid are dropped.
    """
    Y = np.asarray(per_seed, dtype=float)
    mean = Y.mean(axis=0)
    point = crossing(x, mean, level(mean), direction=direction)
    n = Y.shape[0]
    if n < MIN_BOOTSTRAP:
        return Measurement(point, -math.inf, math.inf, n, "bootstrap95")
    rng = np.random.default_rng(seed)
    vals = []
    for _ in range(n_boot):
        c = Y[rng.integers(0, n, n)].mean(axis=0)
        vals.append(crossing(x, c, level(c), direction=direction))
    vals = np.asarray(vals)
    vals = vals[~np.isnan(vals)]
    if vals.size < n_boot // 2:
        return Measurement(point, -math.inf, math.inf, n, "bootstrap95")
    lo, hi = (float(v) for v in np.quantile(vals, [0.025, 0.975], method="inverted_cdf"))
    if math.isinf(lo):  # not reached on the grid even at the lower bound: all we know is "beyond the grid"
        lo = float(np.max(x))
    return Measurement(point, lo, hi, n, "bootstrap95")
