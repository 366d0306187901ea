"""Named sweeps of the subliminal-learning study (the reference's figure scripts, Priesemann-Group/
subliminal_learning, ``figure2``-``figure6``; arXiv 2605.23645, figures 2-6).

Each entry of :data:`SWEEPS` is ``fn(seeds=20, data="digits", quick=False, **overrides) -> list[RunConfig]``.
``seeds`` is a count (seeds ``0..seeds-1``, the reference uses 20) or an explicit iterable.
``quick=True`` keeps the design but trims the grid (fewer m / sigma / width values) and uses the
quick protocol (:func:`~.config.quick_overrides`: a 64-64 MLP where the sweep does not set the
widths, noise batches of 500) so that a sweep runs in seconds to minutes on a laptop CPU with the
digits data; ``overrides`` are :class:`RunConfig` fields applied to every run (e.g.
``teacher_epochs=2``). The grids are module constants, read by the benchmark's cost model too.
"""

from __future__ import annotations

from typing import Callable, Iterable

import numpy as np

from .config import PAPER_CNN_SPEC, RunConfig, quick_overrides

M_FIG2 = (3, 10, 25, 50, 100, 250)
#: round(sqrt(2)^k), k = 0..20 (figure 4 grid) and its k = 1..26 extension (m = 1 noise sweep).
SQRT2_GRID = (1, 2, 3, 4, 6, 8, 11, 16, 23, 32, 45, 64, 91, 128, 181, 256, 362, 512, 724, 1024)
SQRT2_GRID_26 = (1, 2, 3, 4, 6, 8, 11, 16, 23, 32, 45, 64, 91, 128, 181, 256, 362, 512, 724, 1024, 1448, 2048,
                 2896, 4096, 5793, 8192)
SIGMAS = tuple(float(s) for s in np.linspace(0.0, 0.2, 40))
STUDENT_D1 = (8, 11, 16, 23, 32, 45, 64, 91, 128, 181, 256, 362, 512, 724, 1024, 1448, 2048, 2896, 4096)
WIDTH_D = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 12, 16, 23, 32, 45, 64, 91, 128, 181, 256, 362, 512, 724, 1024, 1448,
           2048, 2896, 4096, 5793, 8192, 11585)
EMNIST_K = tuple(range(2, 48))  # EMNIST-balanced class counts of figure 3

#: The six initialisation conditions of figure 2 (student sources for fc1, fc2, class_head, aux_head).
INIT_CONDITIONS = {
    "shared": "A,A,A,A",
    "random-fc1": "random,A,A,A",
    "random-fc2": "A,random,A,A",
    "random-hidden": "random,random,A,A",
    "random-class-head": "A,A,random,A",
    "random-aux-head": "A,A,A,random",
}
HEADS_ONLY = {"fc1": "random", "fc2": "random"}

def _seeds(seeds) -> list[int]:
    return list(range(seeds)) if isinstance(seeds, int) else [int(s) for s in seeds]


def _make(seeds, data: str, quick: bool, overrides: dict, variants: Iterable[dict]) -> list[RunConfig]:
    base = {"data": data, **(quick_overrides(data) if quick else {})}
    out = []
    for v in variants:
        for s in _seeds(seeds):
            out.append(RunConfig(seed=s, **{**base, **v, **overrides}))  # overrides win, also over the grid
    return out


def _thin(values, quick: bool, keep: int):
    if not quick or len(values) <= keep:
        return tuple(values)
    idx = np.unique(np.linspace(0, len(values) - 1, keep).round().astype(int))
    return tuple(values[i] for i in idx)


def init_controls(seeds=20, data="digits", quick=False, **kw) -> list[RunConfig]:
    """Figure 2: six init conditions x m in {3, 10, 25, 50, 100, 250} (720 runs at 20 seeds)."""
    ms = (3, 10, 50) if quick else M_FIG2
    return _make(seeds, data, quick, kw, [{"init": init, "m": m} for init in INIT_CONDITIONS.values() for m in ms])


def m_sweep(seeds=20, data="digits", quick=False, **kw) -> list[RunConfig]:
    """Shared initialisation, m over the figure-4 grid 1..1024 at the default 60 noise steps."""
    return _make(seeds, data, quick, kw, [{"m": m} for m in _thin(SQRT2_GRID, quick, 6)])


def aux_perturbation(seeds=20, data="digits", quick=False, **kw) -> list[RunConfig]:
    """Figure 5: Gaussian noise sigma in linspace(0, 0.2, 40) on the student's aux head before distillation."""
    return _make(seeds, data, quick, kw, [
        {"m": 10, "perturb": (f"student:aux_head,std={s!r},timing=before_student_training",)}
        for s in _thin(SIGMAS, quick, 8)])


def class_perturbation(seeds=20, data="digits", quick=False, **kw) -> list[RunConfig]:
    """Figure 5: Gaussian noise sigma in linspace(0, 0.2, 40) on the student's class head before distillation."""
    return _make(seeds, data, quick, kw, [
        {"m": 10, "perturb": (f"student:class_head,std={s!r},timing=before_student_training",)}
        for s in _thin(SIGMAS, quick, 8)])


def width(seeds=20, data="digits", quick=False, frozen: str = "both", m: int | None = None, **kw) -> list[RunConfig]:
    """Figure 6: width D of the layer the heads read (hidden 256,D for teacher and student), shared init.

    ``frozen``: ``none`` (baseline), ``class`` (class heads frozen in both), ``aux`` (aux heads frozen),
    ``both``. The reference's two single-head scripts (``figure6``) have their flags swapped relative
    to their names; here the names mean what they say.
    """
    flags = {"none": None, "class": "class_head:false", "aux": "aux_head:false",
             "both": "class_head:false,aux_head:false"}
    if frozen not in flags:
        raise ValueError(f"frozen must be one of {sorted(flags)}, got {frozen!r}")
    m = m or (50 if data.startswith("emnist") else 10)
    ds = (2, 5, 10, 20, 64, 256) if quick else WIDTH_D
    return _make(seeds, data, quick, kw, [
        {"m": m, "hidden": (256, d), "trainable": flags[frozen], "teacher_trainable": flags[frozen]} for d in ds])


def emnist_classes(seeds=20, data="emnist-balanced", quick=False, **kw) -> list[RunConfig]:
    """Figure 3: EMNIST-balanced class count K = 2..47, m = 50, random hidden layers, shared heads."""
    ks = (2, 5, 10, 20, 47) if quick else EMNIST_K
    return _make(seeds, data, quick, kw, [{"m": 50, "n_classes": k, "init": HEADS_ONLY} for k in ks])


def student_width(seeds=20, data="digits", quick=False, **kw) -> list[RunConfig]:
    """Figure 3: student first-layer width D1 (teacher 256,256 A; student D1,256, random hidden, heads A), m in {10, 50}."""
    d1s = (8, 32, 128, 512) if quick else STUDENT_D1
    return _make(seeds, data, quick, kw, [{"m": m, "student_hidden": (d, 256), "init": HEADS_ONLY}
                                          for m in (10, 50) for d in d1s])


def student_depth(seeds=20, data="digits", quick=False, **kw) -> list[RunConfig]:
    """Figure 3: student with one layer fewer (256) or more (256,256,256); random hidden, heads A; m in {10, 50}."""
    variants = []
    for m in (10, 50):
        variants.append({"m": m, "teacher_init": HEADS_ONLY, "student_hidden": (256,), "init": {"fc1": "random"}})
        variants.append({"m": m, "teacher_init": HEADS_ONLY, "student_hidden": (256, 256, 256),
                         "init": {"fc1": "random", "fc2": "random", "fc3": "random"}})
    return _make(seeds, data, quick, kw, variants)


def mlp_cnn(seeds=20, data="digits", quick=False, **kw) -> list[RunConfig]:
    """Figure 3: MLP teacher (256,256,256, random hidden, heads A) -> CNN student (paper spec, random body,
    heads A), Perlin noise resolution 8, m in {10, 50}. On 8x8 digits the conv stack is shrunk
    (pool 2 then 2) so that it fits; on 28x28 data it is the paper's spec."""
    spec = [dict(d) for d in PAPER_CNN_SPEC]
    if data == "digits":
        spec[1]["pool_kernel"] = 2
    return _make(seeds, data, quick, kw, [
        {"m": m, "hidden": (256, 256, 256), "teacher_init": {"fc1": "random", "fc2": "random", "fc3": "random"},
         "student_arch": "cnn", "student_hidden": (256,), "student_cnn_spec": spec,
         "init": {"conv1": "random", "conv2": "random", "fc1": "random"}, "noise": "perlin", "perlin_res": 8}
        for m in (10, 50)])


def noise_budget(seeds=20, data="digits", quick=False, **kw) -> list[RunConfig]:
    """Figure 4: m x noise steps per epoch, both over round(sqrt(2)^k), k = 0..20 (8000 runs at 20 seeds)."""
    grid = _thin(SQRT2_GRID, quick, 4)
    return _make(seeds, data, quick, kw, [{"m": m, "noise_steps": n} for m in grid for n in grid])


def m1_noise(seeds=20, data="digits", quick=False, **kw) -> list[RunConfig]:
    """Figure 4: m = 1, noise steps per epoch over the 26 values 1..8192 of round(sqrt(2)^k)."""
    return _make(seeds, data, quick, kw, [{"m": 1, "noise_steps": n} for n in _thin(SQRT2_GRID_26, quick, 5)])


def noise1_m(seeds=20, data="digits", quick=False, **kw) -> list[RunConfig]:
    """Figure 4: one noise step per epoch (N = 1000 samples per epoch), m over the 26 values 1..8192."""
    return _make(seeds, data, quick, kw, [{"m": m, "noise_steps": 1} for m in _thin(SQRT2_GRID_26, quick, 5)])


def noise_pool(seeds=20, data="digits", quick=False, **kw) -> list[RunConfig]:
    """Fixed noise pools of N samples (reshuffled each epoch) at m = 10: separates the number of distinct
    samples from the number of optimiser steps (not in the reference)."""
    pools = (100, 1000, 10000) if quick else (100, 300, 1000, 3000, 10000, 30000, 60000)
    return _make(seeds, data, quick, kw, [{"m": 10, "noise_pool": n} for n in pools])


def study(seeds=20, data="mnist", quick=False, **kw) -> list[RunConfig]:
    """The whole reference grid (~16,000 runs at 20 seeds): figures 2-6 on ``data`` (EMNIST sweeps on
    emnist-balanced)."""
    emnist = "emnist-balanced"
    out = init_controls(seeds, data, quick, **kw)
    out += emnist_classes(seeds, emnist, quick, **kw)
    out += student_width(seeds, data, quick, **kw)
    out += student_depth(seeds, data, quick, **kw)
    out += mlp_cnn(seeds, data, quick, **kw)
    out += noise_budget(seeds, data, quick, **kw)
    out += m1_noise(seeds, data, quick, **kw)
    out += noise1_m(seeds, data, quick, **kw)
    out += aux_perturbation(seeds, data, quick, **kw)
    out += class_perturbation(seeds, data, quick, **kw)
    for frozen in ("none", "class", "aux", "both"):
        out += width(seeds, data, quick, frozen=frozen, **kw)
    out += width(seeds, emnist, quick, frozen="none", **kw)
    return out


SWEEPS: dict[str, Callable[..., list[RunConfig]]] = {
    "init-controls": init_controls,
    "m-sweep": m_sweep,
    "aux-perturbation": aux_perturbation,
    "class-perturbation": class_perturbation,
    "width": width,
    "emnist-classes": emnist_classes,
    "student-width": student_width,
    "student-depth": student_depth,
    "mlp-cnn": mlp_cnn,
    "noise-budget": noise_budget,
    "m1-noise": m1_noise,
    "noise1-m": noise1_m,
    "noise-pool": noise_pool,
    "study": study,
}
