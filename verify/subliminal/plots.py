"""The plot of a sweep's summary: its main metrics (mean ± 95 % CI over seeds) against the swept variable.

The x axis is the varying config field with the most distinct numeric values -- a number
(``m``, ``noise_steps``), the one entry of a list that varies (``hidden`` 256,D -> D) or
a perturbation's σ; the other varying fields that are not fixed by x make the series
(e.g. the init condition of ``init-controls``). A sweep without such a field is plotted
against its conditions in order.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

from .run import _short

MAIN_METRICS = ("student_final_acc", "teacher_final_acc", "oracle_acc", "agreement", "tau", "cka_test")
PLOT_FILE = "summary.png"


def _scalars(field: str, values: list) -> tuple[str, list[float]] | None:
    """(axis label, one number per row) if ``values`` of ``field`` are numbers, or lists with one varying
    number, or single perturbations (their σ); else ``None``."""
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return field, [float(v) for v in values]
    if all(isinstance(v, list) and len(v) == 1 and isinstance(v[0], dict) and "std" in v[0] for v in values):
        return f"{field} σ ({'+'.join(values[0][0].get('layers', []))})", [float(v[0]["std"]) for v in values]
    if all(isinstance(v, list) and v and all(isinstance(e, (int, float)) for e in v) for v in values) \
            and len({len(v) for v in values}) == 1:
        varying = [i for i in range(len(values[0])) if len({v[i] for v in values}) > 1]
        if len(varying) == 1:
            i = varying[0]
            return f"{field}[{i}]", [float(v[i]) for v in values]
    return None


def axes_of(rows: Sequence[dict], by: Sequence[str]) -> tuple[str, list[float] | None, list[str]]:
    """(x label, x values -- ``None``: the rows' conditions in order --, series label per row)."""
    best = None
    for f in by:
        s = _scalars(f, [r[f] for r in rows])
        if s is not None and len(set(s[1])) > 1 and (best is None or len(set(s[1])) > len(set(best[2]))):
            best = (f, *s)
    if best is None:
        return "condition", None, ["" for _ in rows]
    field, label, x = best
    series_fields = []
    for f in by:
        per_x: dict[float, set] = {}
        for xv, r in zip(x, rows):
            per_x.setdefault(xv, set()).add(_short(r[f]))
        if f != field and any(len(v) > 1 for v in per_x.values()):  # not fixed by x: a series dimension
            series_fields.append(f)
    return label, x, [_label(r, series_fields) for r in rows]


def _label(row: dict, fields: Sequence[str]) -> str:
    return ", ".join(f"{f}={_short(row[f])}" for f in fields)


def plot_summary(rows: Sequence[dict], by: Sequence[str], out: str | Path) -> Path | None:
    """Write ``out/summary.png`` from :func:`~limen.verify.subliminal.run.summarize` rows grouped by the
    fields ``by``; ``None`` (no file) when nothing varies."""
    metrics = [m for m in MAIN_METRICS if any(math.isfinite(r.get(m, {}).get("mean", math.nan)) for r in rows)]
    if len(rows) < 2 or not by or not metrics:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    xlabel, x, series = axes_of(rows, by)
    positions = x if x is not None else list(range(len(rows)))
    ncol = min(3, len(metrics))
    nrow = -(-len(metrics) // ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(4.2 * ncol, 3.3 * nrow), dpi=110, squeeze=False)
    for ax, metric in zip(axes.flat, metrics):
        for name in dict.fromkeys(series):
            pts = sorted((p, r[metric]["mean"], r[metric]["ci95"]) for p, r, s in zip(positions, rows, series)
                         if s == name and math.isfinite(r[metric]["mean"]))
            if pts:
                px, mean, ci = zip(*pts)
                ax.errorbar(px, mean, yerr=[c if math.isfinite(c) else 0.0 for c in ci], marker="o", ms=3.5,
                            capsize=2.5, lw=1.2, label=name or None)
        ax.set_title(metric, fontsize=9)
        ax.grid(alpha=0.3)
        if x is None:
            ax.set_xticks(positions)
        elif min(x) > 0 and max(x) / min(x) >= 10:
            ax.set_xscale("log")
    for ax in axes.flat[len(metrics):]:
        ax.set_visible(False)
    for ax in axes[-1]:
        ax.set_xlabel(xlabel)
    fig.suptitle(f"mean ± 95 % CI over seeds against {xlabel}", fontsize=10)
    if x is None:  # the conditions, numbered as on the x axis
        legend = [f"{i}: {_label(r, by)}" for i, r in enumerate(rows)]
        handles = [plt.Line2D([], [], ls="none")] * len(legend)
    else:
        handles, legend = axes.flat[0].get_legend_handles_labels()
    bottom = 0.0
    if legend:
        ncols = 1 if x is None else min(3, len(legend))
        bottom = min(0.45, 0.035 * -(-len(legend) // ncols) + 0.02)
        fig.legend(handles, legend, loc="lower left" if x is None else "lower center", ncol=ncols, fontsize=7,
                   frameon=False, handlelength=0 if x is None else 2)
    fig.tight_layout(rect=(0, bottom, 1, 0.95))
    path = Path(out) / PLOT_FILE
    fig.savefig(path)
    plt.close(fig)
    return path
