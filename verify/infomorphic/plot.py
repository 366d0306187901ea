"""Plots of infomorphic runs: accuracy vs N per model, mean PID atoms of trained neurons, atom evolution."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Sequence

import numpy as np

__all__ = ["accuracy_vs_n", "mean_atoms", "atom_evolution", "plot_all"]


def _by(records, *keys):
    out = defaultdict(list)
    for r in records:
        out[tuple(r["config"].get(k) for k in keys)].append(r)
    return out


def accuracy_vs_n(records: Sequence[dict], path: str | Path, title: str = "") -> str:
    """Test accuracy (mean ± 95 % CI over seeds) against the hidden size, one curve per model."""
    from ..checks.plots import curve
    from .compare import summarise

    groups = _by(records, "model", "n_hidden")
    models = sorted({m for m, _ in groups})
    ns = sorted({n for _, n in groups})
    measured = {}
    for m in models:
        mean, lo, hi = [], [], []
        for n in ns:
            recs = groups.get((m, n), [])
            if not recs:
                mean.append(np.nan), lo.append(np.nan), hi.append(np.nan)
                continue
            s = summarise([100 * r["metrics"]["test_acc"] for r in recs])
            mean.append(s["mean"]), lo.append(s["ci_lo"]), hi.append(s["ci_hi"])
        measured[m] = (mean, lo, hi)
    return curve(path, ns, measured=measured, xlabel="hidden neurons N", ylabel="test accuracy (%)",
                 title=title or "infomorphic networks: test accuracy vs N", logx=len(ns) > 1 and min(ns) > 0)


def mean_atoms(records: Sequence[dict], path: str | Path, title: str = "") -> str | None:
    """Bar chart: the PID atoms (γ order, then H_res) of trained hidden neurons, mean over neurons and seeds.

    One group of bars per (model, N) with trivariate hidden neurons; error bars: the spread
    (std) over neurons. Neurons whose label context fell into one bin (``context_collapsed_hidden``:
    their {F}{C} and every atom with the singleton {C} are exactly 0) form a group of their
    own, labelled with their share. Returns None when no run has trivariate hidden atoms.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = {}
    names = None
    for (m, n), recs in sorted(_by(records, "model", "n_hidden").items(), key=lambda kv: (str(kv[0][0]), kv[0][1])):
        atoms, flags = [], []
        for r in recs:
            a = np.asarray(r["metrics"].get("atoms_hidden") or [])
            if a.ndim == 2 and a.shape[1] == 19:
                names = r["metrics"]["atom_names_hidden"]
                atoms.append(a)
                f = r["metrics"].get("context_collapsed_hidden")
                flags.append(np.asarray(f, bool) if f is not None else np.zeros(len(a), bool))
        if not atoms:
            continue
        allv, collapsed = np.concatenate(atoms), np.concatenate(flags)
        if not collapsed.any():
            groups[f"{m} N={n}"] = (allv.mean(0), allv.std(0))
            continue
        share = f"{100 * collapsed.mean():.0f} %"
        if not collapsed.all():
            groups[f"{m} N={n}, context in ≥ 2 bins"] = (allv[~collapsed].mean(0), allv[~collapsed].std(0))
        groups[f"{m} N={n}, context in one bin ({share})"] = (allv[collapsed].mean(0), allv[collapsed].std(0))
    if not groups:
        return None
    path = Path(path)
    fig, ax = plt.subplots(figsize=(11, 4.2), dpi=110)
    width = 0.8 / len(groups)
    x = np.arange(len(names))
    for i, (label, (mu, sd)) in enumerate(groups.items()):
        ax.bar(x + (i - (len(groups) - 1) / 2) * width, mu, width, yerr=sd, capsize=1.5, label=label,
               error_kw={"lw": 0.6})
    ax.axhline(0, color="k", lw=0.6)
    ax.set_xticks(x)
    ax.set_xticklabels(names, rotation=60, ha="right", fontsize=8)
    ax.set_ylabel("bits (mean over neurons; bars: std)")
    ax.set_title(title or "PID atoms of trained hidden neurons (F feedforward, C context, L lateral)", fontsize=10)
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path.name


def atom_evolution(record: dict, path: str | Path, top: int = 6) -> str | None:
    """Mean hidden atoms over epochs for one run (the ``top`` atoms largest in magnitude at the end).

    With a context source, a dashed line on the right axis shows the share of hidden neurons
    whose label context fell into one bin.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    hist = [h["atoms_hidden_mean"] for h in record["metrics"]["history"] if h.get("atoms_hidden_mean")]
    if not hist:
        return None
    a = np.asarray(hist)
    names = record["metrics"]["atom_names_hidden"]
    order = np.argsort(-np.abs(a[-1]))[:top]
    path = Path(path)
    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=110)
    epochs = [h["epoch"] for h in record["metrics"]["history"] if h.get("atoms_hidden_mean")]
    for i in order:
        ax.plot(epochs, a[:, i], label=names[i])
    ax.axhline(0, color="k", lw=0.6)
    ax.set_xlabel("epoch")
    ax.set_ylabel("bits (mean over neurons)")
    shares = [(h["epoch"], h["context_collapsed_share"]["hidden"]) for h in record["metrics"]["history"]
              if (h.get("context_collapsed_share") or {}).get("hidden") is not None]
    if shares:
        ax2 = ax.twinx()
        ax2.plot(*zip(*shares), color="0.4", ls="--", lw=1.0, label="context in one bin (share, right axis)")
        ax2.set_ylim(0, 1)
        ax2.set_ylabel("share of neurons with the context in one bin", fontsize=8)
        ax2.legend(fontsize=7, loc="lower right")
    cfg = record["config"]
    ax.set_title(f"atom evolution: {cfg.get('model')} N={cfg.get('n_hidden')} seed {cfg.get('seed')}", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path.name


def plot_all(records: Sequence[dict], out: str | Path) -> list[str]:
    """Write ``accuracy_vs_n.png``, ``atoms.png`` and one ``atoms_evolution_<model>.png`` per model."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    files = [accuracy_vs_n(records, out / "accuracy_vs_n.png")]
    f = mean_atoms(records, out / "atoms.png")
    if f:
        files.append(f)
    seen = set()
    for r in records:
        m = r["config"].get("model") or r["config"].get("kind")
        if m in seen or not r["metrics"].get("atom_names_hidden") or r["metrics"]["atom_names_hidden"] is None:
            continue
        if len(r["metrics"]["atom_names_hidden"]) != 19:
            continue
        seen.add(m)
        f = atom_evolution(r, out / f"atoms_evolution_{m}.png")
        if f:
            files.append(f)
    return files
