"""Types and comparison rules of a check: measurements with intervals, rows, verdicts.

Verdict rules (all use the 95 % interval ``[lo, hi]`` of the measurement):

* :func:`within` -- PASS when the whole interval lies inside ``predicted ± tol``,
  FAIL when the whole interval lies outside it, INCONCLUSIVE when it straddles an
  edge (the seeds do not decide). This is an equivalence test: a noisy
  measurement cannot PASS by having a wide interval.
* :func:`at_most` / :func:`at_least` -- one-sided (bounds, "above chance"):
  PASS when the interval is on the predicted side, FAIL when it is wholly on the
  other side, else INCONCLUSIVE.
* :func:`info` -- a number reported for the reader, no verdict.

Intervals: :func:`mean_ci` is the Student-t interval of the mean over seeds
(``mean ± t_{0.975, n-1} s / sqrt(n)``; with one seed it is unbounded, so such a
row can only be INCONCLUSIVE); :func:`bootstrap_ci` is a percentile bootstrap
(for statistics that are not means, e.g. a correlation over an m-sweep);
bootstrap intervals need at least ``MIN_BOOTSTRAP`` (4) samples -- with fewer
there are too few distinct resamples, and the interval is left unbounded (so the
verdict is INCONCLUSIVE); :func:`exact` is a deterministic number (interval of width 0) and :func:`worst`
the maximum (or minimum) over runs, used where a prediction must hold on every
run (exact identities, bounds).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from ..stats import t_interval


class Verdict:
    PASS = "PASS"
    FAIL = "FAIL"
    INCONCLUSIVE = "INCONCLUSIVE"
    INFO = "INFO"
    ALL = (PASS, FAIL, INCONCLUSIVE, INFO)


def fmt(x: Any, digits: int = 4) -> str:
    """Compact human formatting of a number (scientific when tiny or huge)."""
    if x is None:
        return "—"
    if isinstance(x, str):
        return x
    x = float(x)
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    if x == 0:
        return "0"
    if abs(x) < 1e-3 or abs(x) >= 1e5:
        return f"{x:.{max(digits - 2, 1)}e}"
    return f"{x:.{digits}g}"


@dataclass(frozen=True)
class Measurement:
    """A measured quantity: point estimate, 95 % interval, sample size, method."""

    mean: float
    lo: float
    hi: float
    n: int
    method: str  # "t95" | "bootstrap95" | "exact" | "max" | "min"
    values: tuple[float, ...] = ()

    def text(self) -> str:
        if self.method == "exact":
            return fmt(self.mean)
        if self.method in ("max", "min"):
            return f"{self.method} {fmt(self.mean)} (n={self.n})"
        if math.isinf(self.mean) and math.isfinite(self.lo):
            return f"not reached [{fmt(self.lo, 3)}, inf] (n={self.n})"
        if not (math.isfinite(self.lo) and math.isfinite(self.hi)):
            if math.isfinite(self.lo):
                return f"{fmt(self.mean)} [{fmt(self.lo, 3)}, inf] (n={self.n})"
            return f"{fmt(self.mean)} (n={self.n}, no CI)"
        half = (self.hi - self.lo) / 2
        if abs((self.mean - self.lo) - half) <= 1e-9 * max(abs(half), 1e-300):
            return f"{fmt(self.mean)} ± {fmt(half, 2)} (n={self.n})"
        return f"{fmt(self.mean)} [{fmt(self.lo, 3)}, {fmt(self.hi, 3)}] (n={self.n})"

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["values"] = [float(v) for v in self.values]
        return d


def _clean(values: Sequence[float]) -> np.ndarray:
    arr = np.asarray([float(v) for v in values], dtype=float)
    if arr.size == 0:
        raise ValueError("a measurement needs at least one value")
    return arr


def mean_ci(values: Sequence[float], level: float = 0.95) -> Measurement:
    """Mean with its Student-t interval over independent runs (seeds)."""
    arr = _clean(values)
    mean, half, n = t_interval(arr, level)
    if n < 2:
        return Measurement(mean, -math.inf, math.inf, n, "t95", tuple(arr))
    return Measurement(mean, mean - half, mean + half, n, "t95", tuple(arr))


MIN_BOOTSTRAP = 4  # fewer samples have too few distinct resamples for a percentile interval


def bootstrap_ci(samples: Sequence[Any], statistic: Callable[[list], float], *, n_boot: int = 2000,
                 level: float = 0.95, seed: int = 0) -> Measurement:
    """Percentile bootstrap of ``statistic`` over resampled ``samples`` (e.g. seeds).

    ``statistic(list_of_samples) -> float``; resamples that give a non-finite
    statistic are dropped. ``n`` is the number of samples.
    """
    samples = list(samples)
    if not samples:
        raise ValueError("bootstrap needs at least one sample")
    point = float(statistic(samples))
    if len(samples) < MIN_BOOTSTRAP:
        return Measurement(point, -math.inf, math.inf, len(samples), "bootstrap95")
    rng = np.random.default_rng(seed)
    stats_ = []
    for _ in range(n_boot):
        idx = rng.integers(0, len(samples), len(samples))
        v = float(statistic([samples[i] for i in idx]))
        if math.isfinite(v):
            stats_.append(v)
    if len(stats_) < n_boot // 2:
        return Measurement(point, -math.inf, math.inf, len(samples), "bootstrap95")
    lo, hi = np.quantile(stats_, [0.5 - level / 2, 0.5 + level / 2])
    return Measurement(point, float(lo), float(hi), len(samples), "bootstrap95")


def exact(value: float) -> Measurement:
    """A deterministic number (no sampling error)."""
    v = float(value)
    return Measurement(v, v, v, 1, "exact", (v,))


def worst(values: Sequence[float], kind: str = "max") -> Measurement:
    """The largest (``kind="max"``) or smallest value over runs, for every-run claims."""
    if kind not in ("max", "min"):
        raise ValueError("kind must be 'max' or 'min'")
    arr = _clean(values)
    v = float(arr.max() if kind == "max" else arr.min())
    return Measurement(v, v, v, arr.size, kind, tuple(arr))


@dataclass(frozen=True)
class Row:
    """One line of a check's table."""

    quantity: str
    predicted: float | str | None
    measured: Measurement | None
    tolerance: str
    verdict: str
    detail: str = ""

    def to_dict(self) -> dict:
        return {
            "quantity": self.quantity,
            "predicted": self.predicted if isinstance(self.predicted, (str, type(None))) else float(self.predicted),
            "measured": self.measured.to_dict() if self.measured else None,
            "tolerance": self.tolerance,
            "verdict": self.verdict,
            "detail": self.detail,
        }


def _band_verdict(m: Measurement, lo: float, hi: float) -> str:
    if m.lo >= lo and m.hi <= hi:
        return Verdict.PASS
    if m.hi < lo or m.lo > hi:
        return Verdict.FAIL
    return Verdict.INCONCLUSIVE


def within(quantity: str, predicted: float, measured: Measurement, tol: float, *,
           detail: str = "", tol_text: str | None = None) -> Row:
    """PASS iff the measured interval lies inside ``predicted ± tol`` (see module doc)."""
    p = float(predicted)
    verdict = Verdict.FAIL if math.isnan(measured.mean) else _band_verdict(measured, p - tol, p + tol)
    return Row(quantity, p, measured, tol_text or f"± {fmt(tol, 2)}", verdict, detail)


def within_factor(quantity: str, predicted: float, measured: Measurement, factor: float, *,
                  detail: str = "") -> Row:
    """PASS iff the measured interval lies inside ``[predicted / factor, predicted · factor]`` (scales, σ*, D*)."""
    p = float(predicted)
    verdict = Verdict.FAIL if math.isnan(measured.mean) else _band_verdict(measured, p / factor, p * factor)
    return Row(quantity, p, measured, f"×/÷ {fmt(factor, 2)}", verdict, detail)


def at_most(quantity: str, bound: float, measured: Measurement, *, detail: str = "",
            tol_text: str | None = None, predicted: float | str | None = None) -> Row:
    """PASS iff the measured interval lies at or below ``bound``."""
    verdict = _band_verdict(measured, -math.inf, float(bound))
    shown = f"≤ {fmt(bound)}" if predicted is None else predicted
    return Row(quantity, shown, measured, tol_text or "one-sided", verdict, detail)


def at_least(quantity: str, bound: float, measured: Measurement, *, detail: str = "",
             tol_text: str | None = None, predicted: float | str | None = None) -> Row:
    """PASS iff the measured interval lies at or above ``bound``."""
    verdict = _band_verdict(measured, float(bound), math.inf)
    shown = f"≥ {fmt(bound)}" if predicted is None else predicted
    return Row(quantity, shown, measured, tol_text or "one-sided", verdict, detail)


def info(quantity: str, measured: Measurement | None, *, predicted: float | str | None = None,
         detail: str = "") -> Row:
    """A number reported without a verdict."""
    return Row(quantity, predicted, measured, "—", Verdict.INFO, detail)


@dataclass
class CheckContext:
    """What a preset receives from the CLI or :func:`run_preset`."""

    out: Path
    data: str = "digits"
    data_dir: str | None = None
    device: str = "auto"
    seeds: int | None = None
    quick: bool = False
    progress: bool = False
    reuse_stale: bool = False      # runs of other code versions are reused (marked stale), not retrained
    keep_models: bool = False      # runs keep their networks, so later measurements need no training
    executor: str = "local"        # where engine runs train: local or ray (address: the Ray cluster)
    address: str | None = None

    def __post_init__(self) -> None:
        from limen.verify.store import check_out

        self.out = check_out(self.out)
        self.out.mkdir(parents=True, exist_ok=True)

    @property
    def records_path(self) -> Path:
        """This check's export of its runs (the runs themselves are in ``out.parent / "results.db"``)."""
        return self.out / "records.jsonl"

    def n_seeds(self, full: int, quick: int) -> int:
        """The number of seeds asked for (``--seeds``), else the preset's default."""
        if self.seeds is not None:
            if self.seeds < 1:
                raise ValueError("--seeds must be at least 1")
            return int(self.seeds)
        return quick if self.quick else full

    def torch_device(self):
        from limen.verify.device import resolve_device

        return resolve_device(self.device)

    def to_dict(self) -> dict:
        return {"data": self.data, "data_dir": self.data_dir, "device": self.device,
                "seeds": self.seeds, "quick": self.quick, "out": str(self.out), "reuse_stale": self.reuse_stale,
                "keep_models": self.keep_models, "executor": self.executor, "address": self.address}


@dataclass
class CheckResult:
    """What a preset returns; ``to_dict()`` is written as ``summary.json``."""

    preset: str
    title: str
    rows: list[Row]
    config: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    plots: list[str] = field(default_factory=list)
    run_info: dict = field(default_factory=dict)
    elapsed_s: float | None = None
    series: dict = field(default_factory=dict)  # the measured curves behind the plots (JSON-ready)

    def counts(self) -> dict[str, int]:
        out = {v: 0 for v in Verdict.ALL}
        for r in self.rows:
            out[r.verdict] += 1
        return out

    @property
    def verdict(self) -> str:
        """FAIL if any row fails, else INCONCLUSIVE if any is, else PASS (INFO rows ignored)."""
        c = self.counts()
        if c[Verdict.FAIL]:
            return Verdict.FAIL
        if c[Verdict.INCONCLUSIVE]:
            return Verdict.INCONCLUSIVE
        return Verdict.PASS if c[Verdict.PASS] else Verdict.INFO

    def to_dict(self) -> dict:
        return {
            "preset": self.preset,
            "title": self.title,
            "verdict": self.verdict,
            "counts": self.counts(),
            "rows": [r.to_dict() for r in self.rows],
            "config": self.config,
            "notes": list(self.notes),
            "plots": list(self.plots),
            "run_info": self.run_info,
            "elapsed_s": self.elapsed_s,
            "series": self.series,
        }


@dataclass(frozen=True)
class Preset:
    """A named check: ``run(ctx) -> CheckResult``; ``in_all``: part of ``limen check all``."""

    name: str
    title: str
    run: Callable[[CheckContext], CheckResult]
    in_all: bool = True
    description: str = ""
