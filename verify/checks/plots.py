"""Predicted-vs-measured plots for the check reports (matplotlib, Agg backend)."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402
import numpy as np  # noqa: E402


#: colours of the marker lines (after the series colours), and the (colour, style) of each level line
MARK_COLORS = ("tab:red", "tab:purple", "tab:brown", "tab:pink", "tab:olive", "tab:cyan")
LEVEL_STYLES = (("0.45", ":"), ("0.1", "-."), ("tab:olive", (0, (6, 2, 1, 2))), ("tab:cyan", ":"))


def curve(path: str | Path, x: Sequence[float], *, measured: dict[str, tuple] | None = None,
          predicted: dict[str, tuple] | None = None, xlabel: str, ylabel: str, title: str,
          logx: bool = False, logy: bool = False, vlines: dict[str, float] | None = None,
          vspans: dict[str, tuple[float, float, float]] | None = None, hlines: dict[str, float] | None = None,
          points: dict[str, tuple] | None = None, legend_outside: bool = False, paired: bool = False) -> str:
    """Measured series with 95 % error bars against theory curves; returns the file name.

    ``measured``: label -> (mean, lo, hi) arrays over ``x``; ``predicted``: label -> (x, y)
    curves (dashed); ``points``: label -> (x, y) scatter (e.g. per-seed values); ``vlines``:
    label -> position, dashed (e.g. a predicted σ*); ``vspans``: label -> (position, lo, hi),
    a solid line with its interval shaded (a measured position); ``hlines``: label -> level
    (chance, half-way), each in its own style. ``legend_outside`` puts the legend right of
    the axes, off the data. ``paired``: the i-th predicted curve takes the colour of the i-th
    measured series (a prediction per measured condition).
    """
    path = Path(path)
    fig, ax = plt.subplots(figsize=(8.6 if legend_outside else 6.4, 4.2), dpi=110)
    x = np.asarray(x, dtype=float)
    for label, (px, py) in (points or {}).items():
        ax.scatter(px, py, s=9, alpha=0.35, label=label)
    series_colors = []
    for label, (mean, lo, hi) in (measured or {}).items():
        mean, lo, hi = (np.asarray(v, dtype=float) for v in (mean, lo, hi))
        lo = np.where(np.isfinite(lo), lo, mean)
        hi = np.where(np.isfinite(hi), hi, mean)
        bars = ax.errorbar(x, mean, yerr=[mean - lo, hi - mean], marker="o", ms=4, capsize=3, lw=1.4,
                           label=f"{label} (mean ± 95% CI)")
        series_colors.append(bars.lines[0].get_color())
    for i, (label, (px, py)) in enumerate((predicted or {}).items()):
        color = series_colors[i] if paired and i < len(series_colors) else None
        ax.plot(px, py, "--", lw=1.6, label=label, color=color)
    colors = itertools.cycle(MARK_COLORS)
    for label, v in (vlines or {}).items():
        ax.axvline(v, ls="--", lw=1.4, color=next(colors), label=label)
    for label, (v, lo, hi) in (vspans or {}).items():
        color = next(colors)
        ax.axvline(v, ls="-", lw=1.6, color=color, label=label)
        if np.isfinite(lo) and np.isfinite(hi):
            ax.axvspan(lo, hi, color=color, alpha=0.12, lw=0)
    for (label, v), (color, ls) in zip((hlines or {}).items(), itertools.cycle(LEVEL_STYLES)):
        ax.axhline(v, ls=ls, lw=1.3, color=color, label=label)
    if logx:
        ax.set_xscale("log")
        ax.set_xticks(x[x > 0])
        ax.xaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    return _save(fig, ax, path, xlabel=xlabel, ylabel=ylabel, title=title, logy=logy, legend_outside=legend_outside)


def scatter(path: str | Path, predicted: Sequence[float], measured: Sequence[float], *, xlabel: str,
            ylabel: str, title: str, diagonal: bool = True, groups: Sequence | None = None,
            logx: bool = False, logy: bool = False) -> str:
    """Measured against predicted, one point per run or example, with the y = x line."""
    path = Path(path)
    fig, ax = plt.subplots(figsize=(5.2, 4.6), dpi=110)
    p, m = np.asarray(predicted, dtype=float), np.asarray(measured, dtype=float)
    if groups is None:
        ax.scatter(p, m, s=8, alpha=0.5)
    else:
        g = np.asarray(groups)
        for key in dict.fromkeys(g.tolist()):
            sel = g == key
            ax.scatter(p[sel], m[sel], s=8, alpha=0.5, label=str(key))
    if diagonal and p.size:
        finite = np.concatenate([p[np.isfinite(p)], m[np.isfinite(m)]])
        lo, hi = float(finite.min()), float(finite.max())
        ax.plot([lo, hi], [lo, hi], "k--", lw=1, label="y = x")
    if logx:
        ax.set_xscale("log")
    return _save(fig, ax, path, xlabel=xlabel, ylabel=ylabel, title=title, logy=logy)


def _save(fig, ax, path: Path, *, xlabel: str, ylabel: str, title: str, logy: bool,
          legend_outside: bool = False) -> str:
    """Labels, grid and legend, then write the figure to ``path`` and close it; returns the file name."""
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    if legend_outside:
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)
    else:
        ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path.name
