"""The preset registry: names known without importing torch, modules imported on use."""

from __future__ import annotations

import importlib
import time
from pathlib import Path

from .core import CheckContext, CheckResult, Preset

# name -> module defining ``PRESET`` (or ``PRESETS``, a dict name -> Preset). Order = ``limen check all`` order.
PRESET_MODULES: dict[str, str] = {
    "linear-fixed-point": "limen.verify.checks.linear_fixed_point",
    "transfer-fraction": "limen.verify.checks.transfer_fraction",
    "predict-student": "limen.verify.checks.predict_student",
    "oracle-student": "limen.verify.checks.oracle_student",
    "init-controls": "limen.verify.checks.init_controls",
    "aux-perturbation": "limen.verify.checks.perturbation",
    "class-perturbation": "limen.verify.checks.perturbation",
    "width-transition": "limen.verify.checks.width_transition",
    "margin-bound": "limen.verify.checks.margin_bound",
    "infomorphic-ordering": "limen.verify.infomorphic.check",
}

_REGISTERED: dict[str, Preset] = {}


def register(preset: Preset) -> Preset:
    """Add a preset at run time (a third-party module); returns it, so it can decorate."""
    builtin = PRESET_MODULES.get(preset.name)
    if builtin is not None and preset.run.__module__ != builtin:
        raise ValueError(f"check {preset.name!r} is already provided by {builtin}")
    _REGISTERED[preset.name] = preset
    return preset


def names(*, in_all: bool = False) -> list[str]:
    """Every preset name (built-in first), or only those that ``limen check all`` runs."""
    out = list(PRESET_MODULES) + [n for n in _REGISTERED if n not in PRESET_MODULES]
    if in_all:
        out = [n for n in out if get(n).in_all]
    return out


def get(name: str) -> Preset:
    """The preset called ``name``; a ValueError lists the known names otherwise."""
    if name in _REGISTERED:
        return _REGISTERED[name]
    if name not in PRESET_MODULES:
        raise ValueError(f"unknown check {name!r}; known: {', '.join(names())}")
    mod = importlib.import_module(PRESET_MODULES[name])
    table = getattr(mod, "PRESETS", None) or {mod.PRESET.name: mod.PRESET}
    preset = table[name]
    _REGISTERED[name] = preset
    return preset


def run_preset(name: str, out: str | Path = "reports", *, write: bool = True, **options) -> CheckResult:
    """Run preset ``name`` with its report folder ``out/<name>/``; ``options`` go to :class:`CheckContext`.

    Writes ``summary.json`` (and whatever the preset writes: ``records.jsonl``, plots).
    """
    preset = get(name)
    ctx = CheckContext(out=Path(out) / name, **options)
    t0 = time.perf_counter()
    result = preset.run(ctx)
    result.elapsed_s = round(time.perf_counter() - t0, 3)
    result.config.setdefault("context", ctx.to_dict())
    if not result.run_info:
        from limen.verify.runinfo import run_info

        result.run_info = run_info()
    if write:
        from .report import write_summary

        write_summary(result, ctx.out)
    return result
