"""Trained teachers: their cache key, an LRU cache per process, and ensemble training.

A teacher (body + class head) depends on everything in :func:`teacher_key` but not on m:
its aux head gets no gradient and is drawn last from its random-init stream (or from its
own A/B seed), so the cache keeps the generator state and the engine regenerates the aux
head per run.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import time
from typing import Any, Sequence

import torch
import torch.nn.functional as F

from ..device import synchronize
from ..records import config_dict, config_key
from . import nets
from .config import RunConfig, derived_seed
from .training import accuracy_ce, adam, apply_perturbations, clone, eval_chunk, freeze, specs, widths

_TEACHER_FIELDS = ("seed", "data", "n_classes", "normalize", "arch", "hidden", "cnn_spec", "teacher_epochs",
                   "batch_size", "teacher_lr")
#: perturbation timings that change the cached teacher (later ones act on the per-run copy)
TEACHER_TIMINGS = ("before_teacher_training", "after_teacher_training")


def _teacher_perturbations(cfg: RunConfig) -> list[tuple[int, Any]]:
    """Teacher perturbations that change the trained teacher body/class head (index kept: it seeds the stream)."""
    return [(i, p) for i, p in enumerate(cfg.perturb)
            if p.target == "teacher" and p.timing in TEACHER_TIMINGS and p.layers != ("aux_head",)]


@functools.lru_cache(maxsize=1 << 16)
def teacher_key(cfg: RunConfig) -> str:
    """Cache key of the trained teacher (body + class head).

    Everything the teacher depends on: seed, data, K, normalisation, architecture, init sources
    and trainability of every layer except the aux head, epochs, batch size, learning rate and the
    teacher perturbations before/after its training. Not m (module docstring).
    """
    full = config_dict(cfg)
    d = {k: full[k] for k in _TEACHER_FIELDS}
    d["init"] = {k: v for k, v in cfg.sources("teacher").items() if k != "aux_head"}
    d["trainable"] = {k: v for k, v in cfg.trainable_flags("teacher").items() if k != "aux_head"}
    d["perturb"] = [(i, dataclasses.asdict(p)) for i, p in _teacher_perturbations(cfg)]
    return config_key(d)


@dataclasses.dataclass
class TeacherEntry:
    init: nets.Params          # initial teacher without aux head (after before_teacher_training perturbations)
    final: nets.Params         # trained teacher without aux head (after after_teacher_training perturbations)
    aux_state: torch.Tensor | None
    metrics: dict[str, torch.Tensor]
    train_seconds: float

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for p in (self.init, self.final) for wb in p.values() for t in wb)


class TeacherCache:
    """LRU cache of trained teachers keyed by :func:`teacher_key` and device (bounded in bytes)."""

    def __init__(self, max_bytes: int = 4 << 30):
        self.max_bytes = max_bytes
        self._d: collections.OrderedDict[tuple, TeacherEntry] = collections.OrderedDict()
        self.hits = 0
        self.misses = 0

    def get(self, key: tuple) -> TeacherEntry | None:
        e = self._d.get(key)
        if e is not None:
            self._d.move_to_end(key)
        return e

    def put(self, key: tuple, entry: TeacherEntry) -> None:
        self._d[key] = entry
        self._d.move_to_end(key)
        total = sum(e.nbytes for e in self._d.values())
        while total > self.max_bytes and len(self._d) > 1:
            _, old = self._d.popitem(last=False)
            total -= old.nbytes

    def __contains__(self, key) -> bool:
        return key in self._d

    def __len__(self) -> int:
        return len(self._d)

    def clear(self) -> None:
        self._d.clear()
        self.hits = self.misses = 0


#: The process-wide teacher cache used by ``train_group`` (one per worker process).
TEACHER_CACHE = TeacherCache()


def train_teachers(cfgs: Sequence[RunConfig], device: torch.device, data) -> list[TeacherEntry]:
    """Train one teacher per config (distinct teacher keys, same group) as one ensemble."""
    t0 = time.perf_counter()
    cfg0 = cfgs[0]
    spec, _ = specs(cfg0, 1, tuple(data.image_shape))
    names = [n for n in spec.names if n != "aux_head"]
    srcs = nets.SourceCache(device)
    members, states = [], []
    for c in cfgs:
        p, st = nets.init_member(spec, c.seed, "teacher", c.sources("teacher"), device, srcs, skip=("aux_head",))
        members.append(p)
        states.append(st)
    params = nets.stack(members, names)
    del members
    for i, c in enumerate(cfgs):
        apply_perturbations(params, i, c, "teacher", ("before_teacher_training",), names, device, exclude=("aux_head",))
    init = clone(params)
    x_tr, y_tr = data.x_train, data.y_train
    x_te, y_te = data.x_test, data.y_test
    chunk = eval_chunk(len(cfgs), widths(spec))
    init_acc, init_ce = accuracy_ce(spec, params, x_te, y_te, chunk)

    opt = adam(params, cfg0.trainable_flags("teacher"), cfg0.teacher_lr, device)
    n, bsz, s = x_tr.shape[0], cfg0.batch_size, len(cfgs)
    gens = [nets.generator(derived_seed(c.seed, "dataloader_shuffle"), device) for c in cfgs]
    last = torch.zeros(s, device=device, dtype=torch.float64)
    for epoch in range(cfg0.teacher_epochs):
        perm = torch.stack([torch.randperm(n, generator=g, device=device) for g in gens])
        for a in range(0, n, bsz):
            idx = perm[:, a:a + bsz]
            xb, yb = x_tr[idx], y_tr[idx]
            logits = nets.head(params, "class_head", nets.body(spec, params, xb))
            loss = F.cross_entropy(logits.transpose(1, 2), yb, reduction="none").mean(1)
            if opt is not None:
                opt.zero_grad(set_to_none=True)
                loss.sum().backward()
                opt.step()
            if epoch == cfg0.teacher_epochs - 1:
                last += loss.detach().double() * idx.shape[1]
    freeze(params)
    for i, c in enumerate(cfgs):
        apply_perturbations(params, i, c, "teacher", ("after_teacher_training",), names, device, exclude=("aux_head",))
    final_acc, final_ce = accuracy_ce(spec, params, x_te, y_te, chunk)
    loss_last = last / n if cfg0.teacher_epochs else torch.full((s,), float("nan"), device=device, dtype=torch.float64)
    synchronize(device)
    per = (time.perf_counter() - t0) / s
    return [TeacherEntry(
        init={k: (w[i].clone(), b[i].clone()) for k, (w, b) in init.items()},
        final={k: (w[i].detach().clone(), b[i].detach().clone()) for k, (w, b) in params.items()},
        aux_state=states[i],
        metrics={"teacher_init_acc": init_acc[i], "teacher_init_ce": init_ce[i], "teacher_final_acc": final_acc[i],
                 "teacher_final_ce": final_ce[i], "teacher_train_loss_last": loss_last[i]},
        train_seconds=per) for i in range(s)]
