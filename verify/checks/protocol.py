"""Run sizes shared by the presets that train split-head networks.

Full size is the reference protocol (``RunConfig`` defaults: 256-256 MLP, 5 teacher +
5 student epochs, 60 × 1000 noise steps per epoch) on the chosen data, except that on
the embedded digits (1437 training images, two Adam steps per teacher epoch at batch
1024) the teacher trains for 40 epochs so that it learns the task. ``--quick`` is the
engine's quick protocol (:func:`limen.verify.subliminal.config.quick_overrides`: a
64-64 MLP, noise batches of 500, 2 000 held-out noise samples, the student's 5 × 60
steps; teacher: 20 epochs on digits, 2 elsewhere).
"""

from __future__ import annotations

from limen.verify.subliminal.config import DIGITS_TEACHER_EPOCHS, QUICK, quick_overrides

__all__ = ["DIGITS_TEACHER_EPOCHS", "QUICK", "base", "describe", "n_classes", "width"]


def base(ctx, **changes) -> dict:
    """RunConfig keyword arguments for this context (data, sizes), updated with ``changes``."""
    kw: dict = {"data": ctx.data}
    if ctx.quick:
        kw.update(quick_overrides(ctx.data, QUICK, DIGITS_TEACHER_EPOCHS))
    elif ctx.data == "digits":
        kw["teacher_epochs"] = DIGITS_TEACHER_EPOCHS["full"]
    kw.update(changes)
    return kw


def width(ctx) -> int:
    """Width d of the layer the heads read, at this context's size."""
    return base(ctx).get("hidden", (256, 256))[-1]


def n_classes(ctx) -> int:
    """Number of classes K of the context's data set (chance = 1/K)."""
    from limen.verify.subliminal.config import KNOWN_DATA

    return KNOWN_DATA[ctx.data.lower()]


def describe(ctx) -> dict:
    """The run settings shared by the preset's runs, for summary.json."""
    from limen.verify.records import config_dict
    from limen.verify.subliminal import RunConfig

    return config_dict(RunConfig(**base(ctx)))
