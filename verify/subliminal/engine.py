"""The batched engine: plan groups of shape-compatible runs and train each group in one pass.

One group = S runs with equal shapes and step counts (same data, architectures, trainable
flags, epochs, batch sizes, learning rates, noise settings); members may differ in seed,
init sources, m (aux heads zero-padded to the group's largest m, loss masked and divided
by each member's own m) and perturbations. Teachers are cached by everything they depend
on (:func:`~.teachers.teacher_key`) and trained, when missing, as one ensemble per group.

A group's pass (:class:`GroupPass`) has four steps: teachers (cached or trained), the stacked
teacher and student networks with their perturbations, distillation on noise
(:class:`~.noise.TrainingNoise`), and evaluation (:mod:`.evaluate`); then one record per run.

Exactness of batching: every member has its own generators (init, shuffle, noise, eval
noise, perturbations); losses are per-member means summed over members, so each member's
gradient is its solo gradient; Adam is elementwise, so Adam on stacked ``[S, ...]`` leaves
is per-member Adam; nothing couples members (no grad clipping, no shared statistics).
On the CPU a member's numbers are bit-identical to a solo run of the same config (tested);
on a GPU they can differ in the last bits because kernels are chosen by batch shape.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import math
import time
from typing import Any, Sequence

import torch

from ..device import resolve_device, synchronize
from ..records import config_dict, config_key
from ..runinfo import run_info
from . import nets
from .config import TIMINGS, RunConfig
from .evaluate import evaluate
from .noise import NOISE_RNG_GENERATOR, NOISE_RNG_PHILOX, TrainingNoise, philox_available
from .teachers import TEACHER_CACHE, TEACHER_TIMINGS, TeacherCache, TeacherEntry, teacher_key, train_teachers
from .training import adam, apply_perturbations, clone, freeze, image_shape, n_classes, specs

__all__ = ["RunModels", "PreRunModels", "TEACHER_CACHE", "TeacherCache", "TeacherEntry", "get_data", "group_key",
           "plan_groups", "specs", "teacher_key", "train_group"]

# ----------------------------------------------------------------------------- keys

_GROUP_EXCLUDE = {"seed", "m", "init", "teacher_init", "perturb"}


@functools.lru_cache(maxsize=1 << 16)
def group_key(cfg: RunConfig) -> str:
    """Identity of everything that fixes shapes and step counts (runs with equal keys batch together)."""
    d = config_dict(cfg)
    return config_key({k: v for k, v in d.items() if k not in _GROUP_EXCLUDE})


# ----------------------------------------------------------------------------- data

_DATA: dict[tuple, Any] = {}


def get_data(cfg: RunConfig, device: torch.device, data_root: str | None = None):
    """The run's data set, loaded once per process and device (tensors on ``device``)."""
    from ..data import load_dataset

    norm = cfg.normalize if isinstance(cfg.normalize, str) else tuple(cfg.normalize)
    key = (cfg.data, cfg.n_classes, norm, str(device), data_root)
    if key not in _DATA:
        _DATA[key] = load_dataset(cfg.data, root=data_root, n_classes=cfg.n_classes, normalize=norm, device=device)
    return _DATA[key]


# ----------------------------------------------------------------------------- planning

@functools.lru_cache(maxsize=1 << 16)
def member_bytes(cfg: RunConfig, m: int | None = None) -> int:
    """Rough device memory one member needs in a group (for sizing groups)."""
    t, s = specs(cfg, m)
    n_in = math.prod(image_shape(cfg))
    widths_t = sum(math.prod(lyr.out_shape) for lyr in t.body)
    widths_s = sum(math.prod(lyr.out_shape) for lyr in s.body)
    params = 5 * (s.body_params() + s.feat_dim * (s.m + 1)) + 3 * (t.body_params() + t.feat_dim * (t.m + 1))
    act = cfg.noise_batch * (n_in + 2 * widths_t + 4 * widths_s + 4 * s.m)
    act = max(act, cfg.batch_size * (n_in + 4 * widths_t + 2 * t.n_classes))
    pool = (cfg.noise_pool or 0) * n_in
    return 4 * (params + act + pool)
def plan_groups(configs: Sequence[RunConfig], max_group: int | None = None, memory_budget: int = 8 << 30,
                pad_ratio: float = 1.5) -> list[list[RunConfig]]:
    """Split configs into groups trained together.

    Runs batch when their :func:`group_key` matches. Within a class, runs are ordered by
    (m, teacher, seed) and cut into groups so that padding aux heads to the group's largest m
    costs at most ``pad_ratio`` times the unpadded work, and a group fits ``memory_budget``
    bytes (or ``max_group`` members). Deterministic: depends on the configs only, and removing
    whole finished groups from the front leaves the remaining plan unchanged.
    """
    classes: dict[str, list[RunConfig]] = collections.OrderedDict()
    for cfg in configs:
        if not isinstance(cfg, RunConfig):
            raise TypeError(f"plan_groups takes RunConfig objects, got {type(cfg).__name__}")
        classes.setdefault(group_key(cfg), []).append(cfg)
    groups: list[list[RunConfig]] = []
    for cfgs in classes.values():
        cfgs = sorted(cfgs, key=lambda c: (c.m, teacher_key(c), c.seed, config_key(c)))
        t, s = specs(cfgs[0], 1)
        body = t.body_params() + s.body_params()
        dims = t.feat_dim + s.feat_dim
        cost = lambda m: body + dims * m  # noqa: E731
        current: list[RunConfig] = []
        unpadded = 0.0
        for c in cfgs:
            n = len(current) + 1
            cap = max_group or max(1, memory_budget // member_bytes(c.replace(seed=0, init=None, teacher_init=None,
                                                                                 perturb=())))
            if current and (n > cap or n * cost(c.m) > pad_ratio * (unpadded + cost(c.m))):
                groups.append(current)
                current, unpadded = [], 0.0
            current.append(c)
            unpadded += cost(c.m)
        if current:
            groups.append(current)
    return groups




# ----------------------------------------------------------------------------- shared computations

class Sharing:
    """Which members of a group share a noise stream (same seed) and a teacher (same cached teacher, no
    per-run teacher perturbation of the body/class head), for computing those once.

    ``seeds``: distinct seeds (noise streams) in first-seen order; ``noise_of[i]``: member i's stream;
    teacher *slots* are distinct (teacher, seed) pairs, ``slot_of[i]`` member i's slot, ``slot_rep`` the
    first member of each slot and ``slot_noise`` each slot's stream.
    """

    def __init__(self, group: Sequence[RunConfig], tkeys: Sequence[tuple]):
        self.seeds = list(dict.fromkeys(c.seed for c in group))
        pos = {sd: i for i, sd in enumerate(self.seeds)}
        slots: dict[tuple, int] = {}
        slot_of, rep = [], []
        for i, (c, k) in enumerate(zip(group, tkeys)):
            own = any(p.target == "teacher" and p.timing in TIMINGS[2:] and p.std > 0 and p.layers != ("aux_head",)
                      for p in c.perturb)
            key = ("member", i) if own else (k, c.seed)
            if key not in slots:
                slots[key] = len(rep)
                rep.append(i)
            slot_of.append(slots[key])
        self._noise_of = [pos[c.seed] for c in group]
        self._slot_of = slot_of
        self.slot_rep = rep
        self._slot_noise = [pos[group[i].seed] for i in rep]
        self.n = len(group)
        self._t: dict[str, torch.Tensor] = {}

    def _index(self, name: str, values: list[int], device, identity_ok: bool = True) -> torch.Tensor | None:
        """Index tensor, or None when gathering with it would be the identity."""
        if identity_ok and values == list(range(len(values))):
            return None
        key = f"{name}@{device}"
        if key not in self._t:
            self._t[key] = torch.tensor(values, device=device)
        return self._t[key]

    def per_member(self, xu: torch.Tensor) -> torch.Tensor:
        """Per-stream tensor ``[U, ...]`` -> per-member ``[S, ...]``."""
        idx = self._index("noise_of", self._noise_of, xu.device)
        return xu if idx is None else xu[idx]

    def per_slot(self, xu: torch.Tensor) -> torch.Tensor:
        """Per-stream tensor ``[U, ...]`` -> per-slot ``[n_slots, ...]``."""
        idx = self._index("slot_noise", self._slot_noise, xu.device)
        return xu if idx is None else xu[idx]

    def slots_to_members(self, t: torch.Tensor) -> torch.Tensor:
        """Per-slot tensor ``[n_slots, ...]`` -> per-member ``[S, ...]``."""
        idx = self._index("slot_of", self._slot_of, t.device)
        return t if idx is None else t[idx]

    def teacher_body(self, tp: nets.Params) -> nets.Params:
        """The teacher body and class head of each slot (``[n_slots, ...]``)."""
        if len(self.slot_rep) == self.n:
            return tp
        idx = self._index("slot_rep", self.slot_rep, next(iter(tp.values()))[0].device, identity_ok=False)
        return {name: (w[idx], b[idx]) for name, (w, b) in tp.items() if name != "aux_head"}

    def teacher_features(self, spec_t: nets.NetSpec, tbody: nets.Params, xu: torch.Tensor) -> torch.Tensor:
        """Teacher last-hidden features per member ``[S, B, d]`` from per-stream inputs ``xu [U, B, ...]``."""
        return self.slots_to_members(nets.body(spec_t, tbody, self.per_slot(xu)))


# ----------------------------------------------------------------------------- the batched pass

# ----------------------------------------------------------------------------- trained networks of a run

@dataclasses.dataclass
class PreRunModels:
    """What exists of one run before its student is distilled (CPU tensors): the pre-run view.

    ``teacher_init``/``teacher``: teacher before/after its training (aux head = the one used in
    distillation); ``student_init``: the student before distillation. Each is a dict
    ``{layer: (weight, bias)}`` (aux heads unpadded). ``forward(which, x)`` returns
    ``(h, class_logits, aux_logits)`` for inputs ``x [B, C, H, W]`` (or flat), with ``h`` the last
    hidden representation. A *prediction* measurement receives only this view, so it cannot
    read the outcome of the run.
    """

    config: RunConfig
    teacher_spec: nets.NetSpec
    student_spec: nets.NetSpec
    teacher_init: nets.Params
    teacher: nets.Params
    student_init: nets.Params

    WHICH = ("teacher_init", "teacher", "student_init")

    def params(self, which: str) -> nets.Params:
        if which not in self.WHICH:
            raise ValueError(f"which must be one of {', '.join(self.WHICH)}, got {which!r}")
        return getattr(self, which)

    @torch.no_grad()
    def forward(self, which: str, x: torch.Tensor):
        spec = self.teacher_spec if which.startswith("teacher") else self.student_spec
        p = {k: (w.unsqueeze(0), b.unsqueeze(0)) for k, (w, b) in self.params(which).items()}
        h, y, z = nets.forward(spec, p, x.to(next(iter(p.values()))[0].device), shared=True)
        return h[0], y[0], z[0]


@dataclasses.dataclass
class RunModels(PreRunModels):
    """Trained networks of one run (CPU tensors): :class:`PreRunModels` plus ``student``, the
    student after distillation (``forward("student", x)``)."""

    student: nets.Params

    WHICH = ("teacher_init", "teacher", "student_init", "student")

    def pre_run(self) -> PreRunModels:
        """The same networks without the trained student."""
        return PreRunModels(**{f.name: getattr(self, f.name) for f in dataclasses.fields(PreRunModels)})


# ----------------------------------------------------------------------------- the batched pass

def _check_group(group: Sequence[RunConfig]) -> None:
    if not group:
        raise ValueError("train_group needs at least one config")
    for c in group:
        if not isinstance(c, RunConfig):
            raise TypeError(f"train_group takes RunConfig objects, got {type(c).__name__}")
    if len({group_key(c) for c in group}) != 1:
        raise ValueError("configs in one group must share shapes and step counts (use plan_groups to split a sweep)")


def train_group(group: Sequence[RunConfig], device: str | torch.device = "auto", *, data_root: str | None = None,
                allow_tf32: bool = False, return_models: bool = False, cache: TeacherCache | None = None,
                noise_rng: str = "auto", cka_max_features: int = 4096, cka_samples: int = 2048):
    """Train a group of shape-compatible runs together; one record dict per config, in order.

    ``return_models=True`` returns ``(records, models)`` with one :class:`RunModels` per config.
    ``allow_tf32`` enables TF32 matmuls/convolutions on CUDA (faster, lower precision; recorded).
    ``noise_rng``: ``generator`` (one torch.Generator per member: the reference's streams),
    ``philox`` (one fused Triton kernel per step on CUDA) or ``auto`` (philox where available);
    recorded in ``run_info["noise_rng"]``.
    CKA uses the whole test set (feature space) unless a representation is wider than
    ``cka_max_features``; then the first ``cka_samples`` test samples (sample space).
    """
    group = list(group)
    _check_group(group)
    dev = resolve_device(device) if isinstance(device, str) else torch.device(device)
    if noise_rng not in ("auto", NOISE_RNG_GENERATOR, NOISE_RNG_PHILOX):
        raise ValueError(f"noise_rng must be auto, generator or philox, got {noise_rng!r}")
    if noise_rng == NOISE_RNG_PHILOX and not philox_available(dev):
        raise ValueError("noise_rng='philox' needs a CUDA device and Triton")
    if noise_rng == "auto":
        noise_rng = NOISE_RNG_PHILOX if philox_available(dev) else NOISE_RNG_GENERATOR
    prev = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32,
            torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)
    torch.backends.cuda.matmul.allow_tf32 = allow_tf32
    torch.backends.cudnn.allow_tf32 = allow_tf32
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    try:
        g = GroupPass(group, dev, get_data(group[0], dev, data_root), allow_tf32)
        g.teachers(TEACHER_CACHE if cache is None else cache)
        g.networks()
        g.distill(noise_rng)
        met = evaluate(g, cka_max_features, cka_samples)
        records = g.records(met)
        return (records, g.models()) if return_models else records
    finally:
        (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32,
         torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark) = prev


class GroupPass:
    """The state of one group's batched pass, built step by step by :func:`train_group`.

    ``tp0``/``tp``: stacked teachers before/after training (aux head per member, zero-padded to
    the group's largest m, perturbed for the student phase); ``sp0``/``sp``: the students before
    and after distillation; ``mask [S, 1, M]`` keeps each member's own aux rows, ``mvec`` their m;
    ``share`` (:class:`Sharing`) the noise streams and teachers several members have in common;
    ``tbody`` the teacher body and class head per sharing slot.
    """

    def __init__(self, group: list[RunConfig], dev: torch.device, data, allow_tf32: bool):
        self.t_start = time.perf_counter()
        self.group, self.dev, self.data, self.allow_tf32 = group, dev, data, bool(allow_tf32)
        self.image_shape = tuple(data.image_shape)
        self.ms = [c.m for c in group]
        self.spec_t, self.spec_s = specs(group[0], max(self.ms), self.image_shape)
        self.times: dict[str, float] = {}

    def teachers(self, cache: TeacherCache) -> None:
        """Each member's teacher from ``cache``; the missing ones trained now as one ensemble."""
        self.tkeys = [(teacher_key(c), str(self.dev), self.allow_tf32) for c in self.group]  # TF32 changes numbers
        self.cached = [k in cache for k in self.tkeys]
        cache.hits += sum(self.cached)
        missing = {k: c for k, c, hit in zip(self.tkeys, self.group, self.cached) if not hit}  # one config per teacher
        cache.misses += len(missing)
        fresh = dict(zip(missing, train_teachers(list(missing.values()), self.dev, self.data))) if missing else {}
        for k, e in fresh.items():
            cache.put(k, e)
        self.entries = [fresh.get(k) or cache.get(k) for k in self.tkeys]
        self.times["teacher"] = time.perf_counter()

    def networks(self) -> None:
        """Stacked teachers (aux head regenerated per member) and students, with their perturbations."""
        dev, mmax = self.dev, max(self.ms)
        srcs = nets.SourceCache(dev)
        t_names, s_names = self.spec_t.names, self.spec_s.names
        teacher, teacher0, student = [], [], []
        for c, e in zip(self.group, self.entries):
            st, ss = specs(c, c.m, self.image_shape)
            aux = nets.aux_head_from_state(st, c.seed, c.sources("teacher")["aux_head"], e.aux_state, dev, srcs)
            teacher.append({**e.final, "aux_head": aux})
            teacher0.append({**e.init, "aux_head": aux})
            student.append(nets.init_member(ss, c.seed, "student", c.sources("student"), dev, srcs)[0])
        self.tp = nets.stack(teacher, t_names, pad_aux_to=mmax)
        self.tp0 = nets.stack(teacher0, t_names, pad_aux_to=mmax)
        self.sp = nets.stack(student, s_names, pad_aux_to=mmax)
        for i, c in enumerate(self.group):
            apply_perturbations(self.tp0, i, c, "teacher", ("before_teacher_training",), t_names, dev,
                                only=("aux_head",), m=c.m)
            apply_perturbations(self.tp, i, c, "teacher", TEACHER_TIMINGS, t_names, dev, only=("aux_head",), m=c.m)
            apply_perturbations(self.tp, i, c, "teacher", ("before_student_training",), t_names, dev, m=c.m)
            apply_perturbations(self.sp, i, c, "student", TIMINGS[:3], s_names, dev, m=c.m)
        self.sp0 = clone(self.sp)
        self.mvec = torch.tensor(self.ms, device=dev, dtype=torch.float32)
        self.mask = (torch.arange(mmax, device=dev).unsqueeze(0) < self.mvec.unsqueeze(1)).float().unsqueeze(1)
        # Members with the same seed draw the same noise stream, and members that also share a cached
        # teacher (not perturbed per run) see the same teacher features on it: both are computed once
        # per distinct seed / (teacher, seed) and gathered per member (exact: identical computations).
        self.share = Sharing(self.group, self.tkeys)
        self.tbody = self.share.teacher_body(self.tp)

    def distill(self, noise_rng: str) -> None:
        """The student's training: Adam on the masked aux-logit MSE against the frozen teacher, on noise."""
        cfg0, dev, share = self.group[0], self.dev, self.share
        opt = adam(self.sp, cfg0.trainable_flags("student"), cfg0.student_lr, dev, exclude=("class_head",))
        norm = tuple(self.data.normalization) if cfg0.normalize_noise else None
        noise = TrainingNoise(cfg0, share.seeds, self.image_shape, dev, noise_rng, norm)
        self.noise_scheme = noise.scheme
        last = torch.zeros(len(self.group), device=dev, dtype=torch.float64)
        n_last = 0
        for epoch in range(cfg0.student_epochs):
            for step in range(noise.steps):
                xu = noise.batch(epoch, step)
                with torch.no_grad():
                    zt = nets.head(self.tp, "aux_head", share.teacher_features(self.spec_t, self.tbody, xu))
                zs = nets.head(self.sp, "aux_head", nets.body(self.spec_s, self.sp, share.per_member(xu)))
                loss = ((zs - zt) * self.mask).pow(2).sum((1, 2)) / (xu.shape[1] * self.mvec)
                if opt is not None:
                    opt.zero_grad(set_to_none=True)
                    loss.sum().backward()
                    opt.step()
                if epoch == cfg0.student_epochs - 1:
                    last += loss.detach().double()
                    n_last += 1
        freeze(self.sp)
        for i, c in enumerate(self.group):
            apply_perturbations(self.sp, i, c, "student", ("after_student_training",), self.spec_s.names, dev, m=c.m)
            apply_perturbations(self.tp, i, c, "teacher", ("after_student_training",), self.spec_t.names, dev, m=c.m)
        self.tbody = share.teacher_body(self.tp)  # after the after_student_training perturbations
        self.last_loss = last / n_last if n_last else torch.full_like(last, float("nan"))
        synchronize(dev)
        self.times["student"] = time.perf_counter()

    def records(self, met: dict[str, Any]) -> list[dict]:
        """One record per run from the evaluation ``met`` (one device-to-host transfer for the scalars)."""
        s, dev = len(self.group), self.dev
        met["student_train_aux_loss_last"] = self.last_loss
        for name in ("teacher_init_acc", "teacher_init_ce", "teacher_final_acc", "teacher_final_ce",
                     "teacher_train_loss_last"):
            met[name] = torch.stack([e.metrics[name] for e in self.entries]).to(dev)
        scalar_names = [k for k, v in met.items() if isinstance(v, torch.Tensor) and v.dim() == 1]
        table = torch.stack([met[k].double() for k in scalar_names], 1).cpu().tolist()
        lists = _to_host({k: v for k, v in met.items() if k not in scalar_names})  # principal_cos (2-D), cos (dict)
        synchronize(dev)
        t_end = time.perf_counter()
        t_teacher, t_student = self.times["teacher"], self.times["student"]
        info = run_info(dev)
        info.update({"allow_tf32": bool(self.allow_tf32 and dev.type == "cuda"), "group_size": s,
                     "cudnn_deterministic": True, "noise_rng": self.noise_scheme})
        records = []
        for i, c in enumerate(self.group):
            metrics = {k: _num(table[i][j]) for j, k in enumerate(scalar_names)}
            metrics.update({k: _index(v, i) for k, v in lists.items()})
            metrics["principal_cos"] = metrics["principal_cos"][:min(n_classes(c), c.m, self.spec_s.feat_dim)]
            timings = {
                "teacher_cached": bool(self.cached[i]),
                "teacher_train_s": 0.0 if self.cached[i] else self.entries[i].train_seconds,
                "group_teacher_s": t_teacher - self.t_start,
                "group_student_s": t_student - t_teacher,
                "group_eval_s": t_end - t_student,
                "group_wall_s": t_end - self.t_start,
                "wall_s_per_run": (t_end - self.t_start) / s,
            }
            records.append({"key": config_key(c), "config": config_dict(c), "seed": c.seed,
                            "metrics": dict(sorted(metrics.items())), "timings": timings, "run_info": info})
        return records

    def models(self) -> list[RunModels]:
        """Each run's networks as CPU tensors (aux heads cut to the run's own m)."""
        out = []
        for i, c in enumerate(self.group):
            st, ss = specs(c, c.m, self.image_shape)
            pick = lambda p: {k: ((w[i, :c.m] if k == "aux_head" else w[i]).detach().cpu().clone(),  # noqa: E731
                                  (b[i, :c.m] if k == "aux_head" else b[i]).detach().cpu().clone())
                              for k, (w, b) in p.items()}
            out.append(RunModels(c, st, ss, pick(self.tp0), pick(self.tp), pick(self.sp0), pick(self.sp)))
        return out


def _num(v: float) -> float | None:
    return None if v != v else float(v)  # NaN -> null in JSON


def _to_host(obj):
    if isinstance(obj, torch.Tensor):
        return obj.cpu().tolist()
    if isinstance(obj, dict):
        return {k: _to_host(v) for k, v in obj.items()}
    return obj


def _index(v, i):
    if isinstance(v, dict):
        return {k: _index(x, i) for k, x in v.items()}
    return v[i]
