"""Discrete joint distributions of n sources and one target, with input validation.

A :class:`Distribution` holds a dense pmf of shape ``(|S1|, ..., |Sn|, |T|)`` (last axis = target)
and the alphabet (list of outcome labels) of every source and of the target. Build one from

* outcomes: ``Distribution.from_outcomes(["000", "011", "101", "110"], sources=2)`` (uniform when
  no probabilities are given; each character of a string, or each entry of a tuple, is a variable;
  ``sources=k`` makes the first k variables the sources and the rest the (joint) target, or give
  ``sources=[[0], [1, 2]]`` (variable groups) and ``target=[3]``);
* a dense array: ``Distribution.from_pmf(p)`` (labels 0..k-1);
* samples: ``Distribution.from_samples(sources, target)`` (plug-in estimate; ``sources`` of shape
  ``(N, n)`` or a list of n arrays of length N; ``bins=N`` discretises continuous columns);
* dit: ``Distribution.from_dit(d)`` / ``d.to_dit()``.

Exact mode: probabilities given as ``fractions.Fraction``, sympy ``Rational``, ``"p/q"`` strings, or
any probabilities with ``exact=True`` (floats are then read as their decimal string, 0.1 -> 1/10),
are stored as sympy Rationals (object array) and must sum to exactly 1; :func:`limen.estimators.pid`
then gives exact atoms. Every constructor raises ``ValueError`` saying what is wrong: NaN/inf or
negative probabilities, pmfs not summing to 1 (beyond ``tol``; ``normalize=True`` rescales),
wrong shapes, a number of sources outside [2, 5], samples of mismatched lengths, NaN samples,
samples that do not look discrete, and dense pmfs larger than the memory limit
(:func:`limen.estimators.memory_limit`).
"""

from __future__ import annotations

import itertools
from fractions import Fraction
from typing import Any, Sequence

import numpy as np

from ._arrays import check_pmf, is_torch, resolve_n
from .base import check_memory

__all__ = ["Distribution"]


def _sort_labels(values) -> tuple:
    vals = list(dict.fromkeys(values))
    try:
        return tuple(sorted(vals))
    except TypeError:
        return tuple(sorted(vals, key=repr))


def _to_rational(x):
    import sympy

    if isinstance(x, sympy.Basic):
        r = sympy.nsimplify(x) if not x.is_Rational else x
        if not r.is_Rational:
            raise ValueError(f"exact probabilities must be rational, got {x}")
        return sympy.Rational(r)
    if isinstance(x, Fraction):
        return sympy.Rational(x.numerator, x.denominator)
    if isinstance(x, (int, np.integer)) and not isinstance(x, bool):
        return sympy.Rational(int(x))
    if isinstance(x, str):
        try:
            f = Fraction(x.strip())
        except (ValueError, ZeroDivisionError) as exc:
            raise ValueError(f"cannot read probability {x!r} as a fraction") from exc
        return sympy.Rational(f.numerator, f.denominator)
    if isinstance(x, (float, np.floating)):
        if not np.isfinite(x):
            raise ValueError("the pmf contains NaN or infinite entries")
        f = Fraction(repr(float(x)))
        return sympy.Rational(f.numerator, f.denominator)
    raise ValueError(f"cannot read probability {x!r} (type {type(x).__name__})")


def _is_exact_value(x) -> bool:
    if isinstance(x, (Fraction, str)):
        return True
    return type(x).__module__.split(".")[0] == "sympy"


class Distribution:
    """A joint pmf of ``n`` sources and one target; see the module docstring for constructors."""

    def __init__(self, pmf, n_sources: int | None = None, *, alphabets: Sequence[Sequence] | None = None,
                 normalize: bool = False, tol: float | None = None, exact: bool | None = None):
        if is_torch(pmf):
            pmf = pmf.detach().cpu().numpy()
        raw = np.asarray(pmf, dtype=object) if not isinstance(pmf, np.ndarray) else pmf
        if exact is None:
            exact = raw.dtype == object and raw.size > 0 and _is_exact_value(raw.flat[0])
        if exact:
            arr = np.empty(raw.shape, dtype=object)
            for idx, v in np.ndenumerate(raw):
                arr[idx] = _to_rational(v)
            n = resolve_n(arr.shape, n_sources)
            if arr.ndim != n + 1:
                raise ValueError(f"a Distribution holds one pmf of {n + 1} dimensions, got shape {arr.shape}")
            if any(v < 0 for v in arr.flat):
                raise ValueError("the pmf has negative entries")
            total = sum(arr.flat)
            if normalize:
                if total == 0:
                    raise ValueError("cannot normalize a pmf whose entries are all zero")
                arr = arr / total
            elif total != 1:
                raise ValueError(f"the exact pmf sums to {total}, not 1; pass normalize=True (limen pid: --normalize) to rescale it")
            self.pmf = arr
        else:
            try:
                arr = np.array(raw, dtype=np.float64)
            except (TypeError, ValueError) as exc:
                raise ValueError(f"the pmf must be numeric, got {raw.dtype}") from exc
            n = resolve_n(arr.shape, n_sources)
            if arr.ndim != n + 1:
                raise ValueError(f"a Distribution holds one pmf of {n + 1} dimensions, got shape {arr.shape} "
                                 "(for batches use the vectorised functions, e.g. sx_pid(p, n_sources=n))")
            self.pmf = check_pmf(arr, n, tol=tol, normalize=normalize, given_dtype=raw.dtype)
        self.exact = bool(exact)
        self.n_sources = n
        if alphabets is None:
            alphabets = [tuple(range(k)) for k in self.pmf.shape]
        alphabets = [tuple(a) for a in alphabets]
        if len(alphabets) != n + 1 or any(len(a) != k for a, k in zip(alphabets, self.pmf.shape)):
            raise ValueError(f"alphabets {[len(a) for a in alphabets]} do not match the pmf shape {self.pmf.shape}")
        self.alphabets = alphabets
        self.pmf.setflags(write=False)

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_pmf(cls, pmf, n_sources: int | None = None, **kw) -> "Distribution":
        """Dense pmf ``(|S1|, ..., |Sn|, |T|)``, last axis the target; labels 0..k-1."""
        return cls(pmf, n_sources, **kw)

    @classmethod
    def from_outcomes(cls, outcomes: Sequence, probs: Sequence | None = None, *, sources=None, target=None,
                      exact: bool | None = None, normalize: bool = False, tol: float | None = None
                      ) -> "Distribution":
        """Outcomes (strings or tuples, one entry per variable) with probabilities (uniform if omitted).

        ``sources``: int k (the first k variables are the sources, the remaining ones the joint
        target) or a list of variable-index groups, one per source; ``target``: variable indices of
        the target (default: the variables not in any source). Repeated outcomes add up.
        """
        outcomes = list(outcomes)
        if not outcomes:
            raise ValueError("no outcomes given")
        rows = [tuple(o) for o in outcomes]
        n_var = len(rows[0])
        if any(len(r) != n_var for r in rows):
            raise ValueError("all outcomes must have the same number of variables")
        if probs is None:
            probs = [Fraction(1, len(rows))] * len(rows)
            if exact is None:
                exact = False
        probs = list(probs)
        if len(probs) != len(rows):
            raise ValueError(f"{len(rows)} outcomes but {len(probs)} probabilities")
        if exact is None:
            exact = any(_is_exact_value(p) for p in probs)
        if sources is None:
            sources = n_var - 1
        if isinstance(sources, (int, np.integer)) and not isinstance(sources, bool):
            if not 1 <= sources < n_var:
                raise ValueError(f"sources={sources} leaves no target among {n_var} variables")
            groups = [[i] for i in range(int(sources))]
        else:
            groups = [list(g) if isinstance(g, (list, tuple)) else [g] for g in sources]
        if target is None:
            used = {i for g in groups for i in g}
            target = [i for i in range(n_var) if i not in used]
        target = list(target) if isinstance(target, (list, tuple)) else [target]
        allv = [i for g in groups for i in g] + target
        if not target:
            raise ValueError("no target variable left")
        if any(not 0 <= int(i) < n_var for i in allv) or len(set(allv)) != len(allv):
            raise ValueError(f"sources {groups} and target {target} must be distinct variable indices < {n_var}")

        def key(row, g):
            return row[g[0]] if len(g) == 1 else tuple(row[i] for i in g)

        cols = groups + [target]
        keyed = [tuple(key(r, g) for g in cols) for r in rows]
        alphabets = [_sort_labels(k[j] for k in keyed) for j in range(len(cols))]
        pos = [{v: i for i, v in enumerate(a)} for a in alphabets]
        shape = tuple(len(a) for a in alphabets)
        cells = float(np.prod(shape, dtype=np.float64))
        check_memory(8 * cells, f"a dense pmf of shape {shape} ({cells:.3g} cells)")
        if exact:
            vals = [_to_rational(p) for p in probs]
            arr = np.empty(shape, dtype=object)
            arr.fill(_to_rational(0))
        else:
            try:
                vals = [float(p) for p in probs]
            except (TypeError, ValueError) as exc:
                raise ValueError(f"probabilities must be numbers: {exc}") from exc
            arr = np.zeros(shape)
        for k, v in zip(keyed, vals):
            idx = tuple(pos[j][x] for j, x in enumerate(k))
            arr[idx] = arr[idx] + v
        if not exact and not all(np.isfinite(vals)):
            raise ValueError("the pmf contains NaN or infinite entries")
        if not exact and min(vals) < 0:
            raise ValueError(f"the pmf has negative entries (min {min(vals):.3g})")
        return cls(arr, len(groups), alphabets=alphabets, normalize=normalize, tol=tol, exact=exact)

    @classmethod
    def from_samples(cls, sources, target, *, exact: bool = False, bins: int | None = None,
                     names: Sequence[str] | None = None) -> "Distribution":
        """Plug-in pmf of N samples (empirical frequencies).

        ``sources``: an array-like of shape ``(N, n)`` (rows = samples; nested lists are rows), or a
        list/tuple of n 1-D numpy arrays or torch tensors (columns) of length N. ``target``: ``(N,)``.
        NaN/inf samples and columns that do not look discrete (more than half of the samples carry
        a value seen only once) are refused; ``bins=N`` first cuts every numeric column with more
        than N distinct values into N equal-width bins (rule in :mod:`limen.estimators.binning`).
        ``names``: the n source names and the target's, for messages.
        """
        from .binning import bin_column, check_bins, check_discrete, check_finite

        if is_torch(target):
            target = target.detach().cpu().numpy()
        t = np.asarray(target)
        if isinstance(sources, (list, tuple)) and sources and all(
                isinstance(c, np.ndarray) or is_torch(c) for c in sources):
            cols = [np.asarray(s.detach().cpu().numpy() if is_torch(s) else s) for s in sources]
            lens = {len(c) for c in cols}
            if len(lens) != 1 or any(c.ndim != 1 for c in cols):
                raise ValueError(f"source sample arrays must be 1-D of one length, got lengths "
                                 f"{[len(c) for c in cols]} and shapes {[c.shape for c in cols]}")
        else:
            s = np.asarray(sources.detach().cpu().numpy() if is_torch(sources) else sources)
            if s.ndim != 2:
                raise ValueError(f"sources must have shape (N, n_sources), got {s.shape}")
            cols = [s[:, i] for i in range(s.shape[1])]
        if t.ndim != 1:
            raise ValueError(f"target must be 1-D (N,), got shape {t.shape}")
        if len(cols[0]) != len(t):
            raise ValueError(f"{len(cols[0])} source samples but {len(t)} target samples")
        if len(t) == 0:
            raise ValueError("no samples given")
        resolve_n((1,) * (len(cols) + 1), len(cols))
        if names is None:
            names = [f"source {i + 1}" for i in range(len(cols))] + ["the target"]
        elif len(names) != len(cols) + 1:
            raise ValueError(f"names must name the {len(cols)} sources and the target, got {len(names)} names")
        cols = cols + [t]
        for c, name in zip(cols, names):
            check_finite(c, name)
        if bins is not None:
            bins = check_bins(bins)
            cols = [bin_column(c, bins, name) for c, name in zip(cols, names)]
        check_discrete(cols, names)
        rows = list(zip(*[c.tolist() for c in cols]))
        counts: dict = {}
        for r in rows:
            counts[r] = counts.get(r, 0) + 1
        outs = list(counts)
        probs = [Fraction(counts[o], len(rows)) for o in outs] if exact else [counts[o] / len(rows) for o in outs]
        return cls.from_outcomes(outs, probs, sources=len(cols) - 1, exact=exact)

    @classmethod
    def from_dit(cls, d, sources=None, target=None) -> "Distribution":
        """From a dit Distribution (default: last variable = target, each other variable a source)."""
        outs = [tuple(o) for o in d.outcomes]
        probs = [float(p) for p in d.pmf] if d.is_log() is False else [float(2 ** p) for p in d.pmf]
        return cls.from_outcomes(outs, probs, sources=sources, target=target)

    # ------------------------------------------------------------------ views
    @property
    def shape(self) -> tuple:
        return tuple(self.pmf.shape)

    @property
    def target_alphabet(self) -> tuple:
        return self.alphabets[-1]

    def support(self) -> list[tuple[tuple, Any]]:
        """``[(outcome_labels, probability), ...]`` for every cell with p > 0 (labels: sources..., target)."""
        out = []
        for idx in itertools.product(*[range(k) for k in self.shape]):
            v = self.pmf[idx]
            if v != 0:
                out.append((tuple(a[i] for a, i in zip(self.alphabets, idx)), v))
        return out

    def support_indices(self) -> list[tuple[int, ...]]:
        return [idx for idx in itertools.product(*[range(k) for k in self.shape]) if self.pmf[idx] != 0]

    def float_pmf(self) -> np.ndarray:
        return np.array(self.pmf, dtype=np.float64)

    def to_exact(self) -> "Distribution":
        """Exact copy (floats read as their decimal string)."""
        return Distribution(self.pmf, self.n_sources, alphabets=self.alphabets, exact=True, normalize=True)

    def to_dit(self):
        """dit Distribution over index tuples (s_1, ..., s_n, t), 0-based indices into the alphabets."""
        import dit

        idx = self.support_indices()
        return dit.Distribution(idx, [float(self.pmf[i]) for i in idx])

    def __repr__(self) -> str:
        kind = "exact" if self.exact else "float"
        return f"Distribution(n_sources={self.n_sources}, shape={self.shape}, support={len(self.support_indices())}, {kind})"
