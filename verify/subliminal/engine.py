"""The batched engine: plan groups of shape-compatible runs and train each group in one pass.

One group = S runs with equal shapes and step counts (same data, architectures, trainable
flags, epochs, batch sizes, learning rates, noise settings); members may differ in seed,
init sources, m (aux heads zero-padded to the group's largest m, loss masked and divided
by each member's own m) and perturbations. Teachers are cached by everything they depend
on (:func:`teacher_key`) and trained, when missing, as one ensemble per group.

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
import torch.nn.functional as F

from ..device import resolve_device, synchronize
from ..records import config_dict, config_key
from ..runinfo import run_info
from . import nets
from .config import KNOWN_DATA, TIMINGS, RunConfig, derived_seed
from .metrics import CKA, cka_sample_space, cosine, head_geometry, singular_extremes
from .noise import NOISE_RNG_GENERATOR, NOISE_RNG_PHILOX, draw, draw_philox, philox_available, philox_keys

# ----------------------------------------------------------------------------- keys

_GROUP_EXCLUDE = {"seed", "m", "init", "teacher_init", "perturb"}
_TEACHER_FIELDS = ("seed", "data", "n_classes", "normalize", "arch", "hidden", "cnn_spec", "teacher_epochs",
                   "batch_size", "teacher_lr")
_TEACHER_TIMINGS = ("before_teacher_training", "after_teacher_training")


@functools.lru_cache(maxsize=1 << 16)
def group_key(cfg: RunConfig) -> str:
    """Identity of everything that fixes shapes and step counts (runs with equal keys batch together)."""
    d = config_dict(cfg)
    return config_key({k: v for k, v in d.items() if k not in _GROUP_EXCLUDE})


def _teacher_perturbations(cfg: RunConfig) -> list[tuple[int, Any]]:
    """Teacher perturbations that change the trained teacher body/class head (index kept: it seeds the stream)."""
    return [(i, p) for i, p in enumerate(cfg.perturb)
            if p.target == "teacher" and p.timing in _TEACHER_TIMINGS and p.layers != ("aux_head",)]


@functools.lru_cache(maxsize=1 << 16)
def teacher_key(cfg: RunConfig) -> str:
    """Cache key of the trained teacher (body + class head).

    Everything the teacher depends on: seed, data, K, normalisation, architecture, init sources
    and trainability of every layer except the aux head, epochs, batch size, learning rate and the
    teacher perturbations before/after its training. Not m: the teacher's aux head gets no gradient
    and is drawn last from the random-init stream (or from its own A/B seed), so m changes nothing
    else; the engine regenerates the aux head per run from the saved stream state.
    """
    full = config_dict(cfg)
    d = {k: full[k] for k in _TEACHER_FIELDS}
    src = cfg.sources("teacher")
    flags = cfg.trainable_flags("teacher")
    d["init"] = {k: v for k, v in src.items() if k != "aux_head"}
    d["trainable"] = {k: v for k, v in flags.items() if k != "aux_head"}
    d["perturb"] = [(i, dataclasses.asdict(p)) for i, p in _teacher_perturbations(cfg)]
    return config_key(d)


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


def _image_shape(cfg: RunConfig) -> tuple[int, ...]:
    return (1, 8, 8) if cfg.data == "digits" else (1, 28, 28)


def _n_classes(cfg: RunConfig) -> int:
    return cfg.n_classes or KNOWN_DATA[cfg.data]


def specs(cfg: RunConfig, m: int | None = None, image_shape: tuple[int, ...] | None = None):
    """Shapes (:class:`nets.NetSpec`) of the run's teacher and student."""
    shape = image_shape or _image_shape(cfg)
    k, m = _n_classes(cfg), cfg.m if m is None else m
    t = nets.build_spec(*cfg.arch_of("teacher"), shape, k, m)
    s = nets.build_spec(*cfg.arch_of("student"), shape, k, m)
    return t, s


# ----------------------------------------------------------------------------- teacher cache

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


#: The process-wide teacher cache used by :func:`train_group` (one per worker process).
TEACHER_CACHE = TeacherCache()


# ----------------------------------------------------------------------------- planning

@functools.lru_cache(maxsize=1 << 16)
def member_bytes(cfg: RunConfig, m: int | None = None) -> int:
    """Rough device memory one member needs in a group (for sizing groups)."""
    t, s = specs(cfg, m)
    n_in = math.prod(_image_shape(cfg))
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


# ----------------------------------------------------------------------------- helpers

def _apply_perturbations(params: nets.Params, member: int, cfg: RunConfig, target: str, timings, names,
                         device, only: Sequence[str] | None = None, exclude: Sequence[str] = (),
                         m: int | None = None) -> None:
    """Apply ``cfg``'s perturbations of ``target`` at ``timings`` to member ``member`` of stacked ``params``.

    ``m`` restricts the aux-head perturbation to the member's own rows (padding stays zero).
    """
    for timing in TIMINGS:
        if timing not in timings:
            continue
        for idx, p in enumerate(cfg.perturb):
            if p.target != target or p.timing != timing or p.std == 0.0:
                continue
            layers = names if "all" in p.layers else p.layers
            for name in layers:
                if name not in params or name in exclude or (only is not None and name not in only):
                    continue
                w, b = params[name]
                gen = nets.generator(derived_seed(cfg.seed, "perturb", idx, timing, target, name), device)
                with torch.no_grad():
                    wi, bi = w[member], b[member]
                    if name == "aux_head" and m is not None:
                        wi, bi = wi[:m], bi[:m]
                    if p.include_weight:
                        wi.add_(torch.empty(wi.shape, device=device).normal_(generator=gen), alpha=p.std)
                    if p.include_bias:
                        bi.add_(torch.empty(bi.shape, device=device).normal_(generator=gen), alpha=p.std)


def _clone(p: nets.Params) -> nets.Params:
    return {k: (w.detach().clone(), b.detach().clone()) for k, (w, b) in p.items()}


def _eval_chunk(n_members: int, widths: int, budget: int = 3 << 30) -> int:
    """Evaluation chunk (samples per member) so that a chunk's activations stay within ``budget`` bytes."""
    return int(max(128, min(10000, budget // max(1, n_members * widths * 4 * 4))))


@torch.no_grad()
def _accuracy_ce(spec: nets.NetSpec, params: nets.Params, x: torch.Tensor, y: torch.Tensor, chunk: int):
    """Test accuracy and mean class cross-entropy per member (shared test inputs)."""
    s = params["class_head"][0].shape[0]
    correct = torch.zeros(s, device=x.device, dtype=torch.float64)
    ce = torch.zeros(s, device=x.device, dtype=torch.float64)
    for a in range(0, x.shape[0], chunk):
        xb, yb = x[a:a + chunk], y[a:a + chunk]
        logits = nets.head(params, "class_head", nets.body(spec, params, xb, shared=True))
        correct += (logits.argmax(-1) == yb).sum(1)
        ce += F.cross_entropy(logits.transpose(1, 2), yb.expand(s, -1), reduction="none").double().sum(1)
    n = x.shape[0]
    return correct / n, ce / n


def _adam(params: nets.Params, trainable: dict[str, bool], lr: float, device, exclude=()) -> torch.optim.Adam | None:
    leaves = []
    for name, (w, b) in params.items():
        if trainable.get(name, True) and name not in exclude:
            w.requires_grad_(True)
            b.requires_grad_(True)
            leaves += [w, b]
        else:
            w.requires_grad_(False)
            b.requires_grad_(False)
    if not leaves:
        return None
    kw = {"fused": True} if device.type == "cuda" else {"foreach": True}
    return torch.optim.Adam(leaves, lr=lr, **kw)


# ----------------------------------------------------------------------------- teachers

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
        _apply_perturbations(params, i, c, "teacher", ("before_teacher_training",), names, device, exclude=("aux_head",))
    init = _clone(params)
    x_tr, y_tr = data.x_train, data.y_train
    x_te, y_te = data.x_test, data.y_test
    widths = sum(math.prod(lyr.out_shape) for lyr in spec.body)
    chunk = _eval_chunk(len(cfgs), widths)
    init_acc, init_ce = _accuracy_ce(spec, params, x_te, y_te, chunk)

    flags = cfg0.trainable_flags("teacher")
    opt = _adam(params, flags, cfg0.teacher_lr, device)
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
    for w, b in params.values():
        w.requires_grad_(False)
        b.requires_grad_(False)
    for i, c in enumerate(cfgs):
        _apply_perturbations(params, i, c, "teacher", ("after_teacher_training",), names, device, exclude=("aux_head",))
    final_acc, final_ce = _accuracy_ce(spec, params, x_te, y_te, chunk)
    loss_last = last / n if cfg0.teacher_epochs else torch.full((s,), float("nan"), device=device, dtype=torch.float64)
    synchronize(device)
    per = (time.perf_counter() - t0) / s
    out = []
    for i in range(s):
        out.append(TeacherEntry(
            init={k: (w[i].clone(), b[i].clone()) for k, (w, b) in init.items()},
            final={k: (w[i].detach().clone(), b[i].detach().clone()) for k, (w, b) in params.items()},
            aux_state=states[i],
            metrics={"teacher_init_acc": init_acc[i], "teacher_init_ce": init_ce[i], "teacher_final_acc": final_acc[i],
                     "teacher_final_ce": final_ce[i], "teacher_train_loss_last": loss_last[i]},
            train_seconds=per))
    return out


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

@dataclasses.dataclass
class RunModels:
    """Trained networks of one run (CPU tensors), for measuring theory quantities.

    ``teacher_init``/``teacher``: teacher before/after training (aux head = the one used in
    distillation); ``student_init``/``student``: student before/after distillation. Each is a
    dict ``{layer: (weight, bias)}``. ``forward(which, x)`` returns ``(h, class_logits, aux_logits)``
    for inputs ``x [B, C, H, W]`` (or flat), with ``h`` the last hidden representation.
    """

    config: RunConfig
    teacher_spec: nets.NetSpec
    student_spec: nets.NetSpec
    teacher_init: nets.Params
    teacher: nets.Params
    student_init: nets.Params
    student: nets.Params

    def params(self, which: str) -> nets.Params:
        if which not in ("teacher_init", "teacher", "student_init", "student"):
            raise ValueError(f"which must be teacher_init, teacher, student_init or student, got {which!r}")
        return getattr(self, which)

    @torch.no_grad()
    def forward(self, which: str, x: torch.Tensor):
        spec = self.teacher_spec if which.startswith("teacher") else self.student_spec
        p = {k: (w.unsqueeze(0), b.unsqueeze(0)) for k, (w, b) in self.params(which).items()}
        h, y, z = nets.forward(spec, p, x.to(next(iter(p.values()))[0].device), shared=True)
        return h[0], y[0], z[0]


def _check_group(group: Sequence[RunConfig]) -> None:
    if not group:
        raise ValueError("train_group needs at least one config")
    for c in group:
        if not isinstance(c, RunConfig):
            raise TypeError(f"train_group takes RunConfig objects, got {type(c).__name__}")
    keys = {group_key(c) for c in group}
    if len(keys) != 1:
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
    cache = TEACHER_CACHE if cache is None else cache
    prev = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32,
            torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)
    torch.backends.cuda.matmul.allow_tf32 = allow_tf32
    torch.backends.cudnn.allow_tf32 = allow_tf32
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    try:
        return _train_group(group, dev, data_root, allow_tf32, return_models, cache, noise_rng, cka_max_features,
                            cka_samples)
    finally:
        (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32,
         torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark) = prev


def _train_group(group, dev, data_root, allow_tf32, return_models, cache, noise_rng, cka_max_features, cka_samples):
    t_start = time.perf_counter()
    cfg0 = group[0]
    data = get_data(cfg0, dev, data_root)
    image_shape = tuple(data.image_shape)
    s = len(group)
    ms = [c.m for c in group]
    mmax = max(ms)
    spec_t, spec_s = specs(cfg0, mmax, image_shape)

    # -- teachers: cached or trained now as one ensemble
    tkeys = [(teacher_key(c), str(dev), bool(allow_tf32)) for c in group]  # TF32 changes the numbers
    cached_flags = [k in cache for k in tkeys]
    cache.hits += sum(cached_flags)
    missing = {k: c for k, c, hit in zip(tkeys, group, cached_flags) if not hit}  # one config per teacher
    cache.misses += len(missing)
    fresh = dict(zip(missing, train_teachers(list(missing.values()), dev, data))) if missing else {}
    for k, e in fresh.items():
        cache.put(k, e)
    entries = [fresh.get(k) or cache.get(k) for k in tkeys]
    t_teacher = time.perf_counter()

    # -- stacked teacher (aux head regenerated per member) and student
    srcs = nets.SourceCache(dev)
    t_names, s_names = spec_t.names, spec_s.names
    teacher_members, teacher0_members, student_members = [], [], []
    for c, e in zip(group, entries):
        st, ss = specs(c, c.m, image_shape)
        aux = nets.aux_head_from_state(st, c.seed, c.sources("teacher")["aux_head"], e.aux_state, dev, srcs)
        teacher_members.append({**e.final, "aux_head": aux})
        teacher0_members.append({**e.init, "aux_head": aux})
        p, _ = nets.init_member(ss, c.seed, "student", c.sources("student"), dev, srcs)
        student_members.append(p)
    tp = nets.stack(teacher_members, t_names, pad_aux_to=mmax)
    tp0 = nets.stack(teacher0_members, t_names, pad_aux_to=mmax)
    sp = nets.stack(student_members, s_names, pad_aux_to=mmax)
    del teacher_members, teacher0_members, student_members
    for i, c in enumerate(group):
        _apply_perturbations(tp0, i, c, "teacher", ("before_teacher_training",), t_names, dev, only=("aux_head",), m=c.m)
        _apply_perturbations(tp, i, c, "teacher", _TEACHER_TIMINGS, t_names, dev, only=("aux_head",), m=c.m)
        _apply_perturbations(tp, i, c, "teacher", ("before_student_training",), t_names, dev, m=c.m)
        _apply_perturbations(sp, i, c, "student", TIMINGS[:3], s_names, dev, m=c.m)
    sp0 = _clone(sp)
    mvec = torch.tensor(ms, device=dev, dtype=torch.float32)
    mask = (torch.arange(mmax, device=dev).unsqueeze(0) < mvec.unsqueeze(1)).float().unsqueeze(1)  # [S,1,M]

    # -- distillation on noise
    # Members with the same seed draw the same noise stream, and members that also share a cached
    # teacher (not perturbed per run) see the same teacher features on it: both are computed once
    # per distinct seed / (teacher, seed) and gathered per member (exact: identical computations).
    share = Sharing(group, tkeys)
    flags = cfg0.trainable_flags("student")
    opt = _adam(sp, flags, cfg0.student_lr, dev, exclude=("class_head",))
    norm = tuple(data.normalization) if cfg0.normalize_noise else None
    bsz = cfg0.noise_batch
    noise_kw = dict(perlin_res=cfg0.perlin_res, normalization=norm)
    last = torch.zeros(s, device=dev, dtype=torch.float64)
    steps = cfg0.student_steps_per_epoch
    useeds = share.seeds
    use_philox = cfg0.noise_pool is None and noise_rng == NOISE_RNG_PHILOX and cfg0.noise in ("uniform", "normal")
    if use_philox:
        keys = philox_keys([derived_seed(sd, "student_training_noise") for sd in useeds], dev)
    elif cfg0.noise_pool is None:
        gens = [nets.generator(derived_seed(sd, "student_training_noise"), dev) for sd in useeds]
    else:
        pool_gens = [nets.generator(derived_seed(sd, "student_noise_pool"), dev) for sd in useeds]
        pool = torch.cat([draw(cfg0.noise, pool_gens, min(bsz, cfg0.noise_pool - a), image_shape, dev, **noise_kw)
                          for a in range(0, cfg0.noise_pool, bsz)], dim=1)
        shuf = [nets.generator(derived_seed(sd, "student_noise_shuffle"), dev) for sd in useeds]
    tbody = share.teacher_body(tp)
    n_last = 0
    for epoch in range(cfg0.student_epochs):
        if cfg0.noise_pool is not None:
            perm = torch.stack([torch.randperm(cfg0.noise_pool, generator=g, device=dev) for g in shuf])
        for step in range(steps):
            if use_philox:
                xu = draw_philox(cfg0.noise, keys, epoch * steps + step, bsz, image_shape, norm)
            elif cfg0.noise_pool is None:
                xu = draw(cfg0.noise, gens, bsz, image_shape, dev, **noise_kw)
            else:
                idx = perm[:, step * bsz:(step + 1) * bsz]
                xu = torch.gather(pool, 1, idx.view(len(useeds), -1, *([1] * len(image_shape))).expand(
                    -1, -1, *image_shape))
            with torch.no_grad():
                zt = nets.head(tp, "aux_head", share.teacher_features(spec_t, tbody, xu))
            zs = nets.head(sp, "aux_head", nets.body(spec_s, sp, share.per_member(xu)))
            r = (zs - zt) * mask
            loss = r.pow(2).sum((1, 2)) / (xu.shape[1] * mvec)
            if opt is not None:
                opt.zero_grad(set_to_none=True)
                loss.sum().backward()
                opt.step()
            if epoch == cfg0.student_epochs - 1:
                last += loss.detach().double()
                n_last += 1
    for w, b in sp.values():
        w.requires_grad_(False)
        b.requires_grad_(False)
    for i, c in enumerate(group):
        _apply_perturbations(sp, i, c, "student", ("after_student_training",), s_names, dev, m=c.m)
        _apply_perturbations(tp, i, c, "teacher", ("after_student_training",), t_names, dev, m=c.m)
    synchronize(dev)
    t_student = time.perf_counter()

    # -- evaluation
    met = _evaluate(group, dev, data, spec_t, spec_s, tp, tp0, sp, sp0, mask, mvec, ms, cka_max_features, cka_samples,
                    share)
    met["student_train_aux_loss_last"] = last / n_last if n_last else torch.full((s,), float("nan"), device=dev,
                                                                                   dtype=torch.float64)
    for name in ("teacher_init_acc", "teacher_init_ce", "teacher_final_acc", "teacher_final_ce", "teacher_train_loss_last"):
        met[name] = torch.stack([e.metrics[name] for e in entries]).to(dev)
    # one device->host transfer for all scalar metrics
    scalar_names = [k for k, v in met.items() if isinstance(v, torch.Tensor) and v.dim() == 1]
    # (principal_cos is 2-D and cos a dict: both travel in `lists`)
    table = torch.stack([met[k].double() for k in scalar_names], 1).cpu().tolist()
    lists = {k: v for k, v in met.items() if not (isinstance(v, torch.Tensor) and v.dim() == 1)}
    lists = _to_host(lists)
    synchronize(dev)
    t_end = time.perf_counter()

    info = run_info(dev)
    info.update({"allow_tf32": bool(allow_tf32 and dev.type == "cuda"), "group_size": s,
                 "cudnn_deterministic": True,
                 "noise_rng": NOISE_RNG_PHILOX if use_philox else NOISE_RNG_GENERATOR})
    records = []
    for i, c in enumerate(group):
        metrics = {k: _num(table[i][j]) for j, k in enumerate(scalar_names)}
        for k, v in lists.items():
            metrics[k] = _index(v, i)
        metrics["principal_cos"] = metrics["principal_cos"][:min(_n_classes(c), c.m, spec_s.feat_dim)]
        metrics = dict(sorted(metrics.items()))
        timings = {
            "teacher_cached": bool(cached_flags[i]),
            "teacher_train_s": 0.0 if cached_flags[i] else entries[i].train_seconds,
            "group_teacher_s": t_teacher - t_start,
            "group_student_s": t_student - t_teacher,
            "group_eval_s": t_end - t_student,
            "group_wall_s": t_end - t_start,
            "wall_s_per_run": (t_end - t_start) / s,
        }
        records.append({"key": config_key(c), "config": config_dict(c), "seed": c.seed, "metrics": metrics,
                        "timings": timings, "run_info": info})
    if not return_models:
        return records
    models = []
    for i, c in enumerate(group):
        st, ss = specs(c, c.m, image_shape)
        pick = lambda p: {k: ((w[i, :c.m] if k == "aux_head" else w[i]).detach().cpu().clone(),  # noqa: E731
                              (b[i, :c.m] if k == "aux_head" else b[i]).detach().cpu().clone()) for k, (w, b) in p.items()}
        models.append(RunModels(c, st, ss, pick(tp0), pick(tp), pick(sp0), pick(sp)))
    return records, models


def _num(v: float) -> float | None:
    return None if v != v else float(v)  # NaN -> null in JSON


def _to_host(obj):
    if isinstance(obj, torch.Tensor):
        return obj.cpu().tolist()
    if isinstance(obj, dict):
        return {k: _to_host(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_to_host(v) for v in obj]
    return obj


def _index(v, i):
    if isinstance(v, dict):
        return {k: _index(x, i) for k, x in v.items()}
    return v[i]


@torch.no_grad()
def _evaluate(group, dev, data, spec_t, spec_s, tp, tp0, sp, sp0, mask, mvec, ms, cka_max_features, cka_samples,
              share: Sharing):
    s = len(group)
    tbody = share.teacher_body(tp)  # after the after_student_training perturbations
    met: dict[str, Any] = {}
    # head geometry per distinct m (float64), pinv of the student's initial aux head for the oracle
    d_s, d_t = spec_s.feat_dim, spec_t.feat_dim
    mmax = max(ms)
    pinv = torch.zeros(s, d_s, mmax, device=dev, dtype=torch.float64)
    k = spec_s.n_classes
    n_cos = min(k, mmax, d_s)
    tau0 = torch.zeros(s, device=dev, dtype=torch.float64)
    tau1, tau_t = torch.zeros_like(tau0), torch.zeros_like(tau0)
    pcos = torch.full((s, n_cos), float("nan"), device=dev, dtype=torch.float64)
    for m in sorted(set(ms)):
        idx = torch.tensor([i for i, mi in enumerate(ms) if mi == m], device=dev)
        g0 = head_geometry(sp0["class_head"][0][idx], sp0["aux_head"][0][idx, :m])
        g1 = head_geometry(sp0["class_head"][0][idx], sp["aux_head"][0][idx, :m])
        gt = head_geometry(tp["class_head"][0][idx], tp["aux_head"][0][idx, :m])
        pinv[idx, :, :m] = g0["pinv"]
        tau0[idx], tau1[idx], tau_t[idx] = g0["tau"], g1["tau"], gt["tau"]
        pcos[idx, :g0["principal_cos"].shape[1]] = g0["principal_cos"]
        # singular values of the student's initial and the teacher's aux heads in one call (shared heads once)
        a_s, a_t = sp0["aux_head"][0][idx, :m], tp["aux_head"][0][idx, :m]
        if a_s.shape == a_t.shape:
            smin, smax = singular_extremes(torch.cat([a_s, a_t]))
            smin_t, smin, smax = smin[idx.shape[0]:], smin[:idx.shape[0]], smax[:idx.shape[0]]
        else:
            (smin, smax), (smin_t, _) = singular_extremes(a_s), singular_extremes(a_t)
        met.setdefault("aux_sigma_min", torch.zeros_like(tau0))[idx] = smin
        met.setdefault("aux_sigma_max", torch.zeros_like(tau0))[idx] = smax
        met.setdefault("teacher_aux_sigma_min", torch.zeros_like(tau0))[idx] = smin_t
    met.update({"tau": tau0, "tau_final": tau1, "tau_teacher": tau_t})
    met["principal_cos"] = pcos  # [S, n_cos], NaN past each member's min(K, m, d); trimmed per record
    pinv32 = pinv.float()

    # test set: accuracies, CE, agreement, logit error, oracle projected student, CKA
    x, y = data.x_test, data.y_test
    n = x.shape[0]
    widths = sum(math.prod(lyr.out_shape) for lyr in spec_t.body) + 2 * sum(math.prod(lyr.out_shape) for lyr in spec_s.body)
    chunk = _eval_chunk(s, widths)
    feat_space = max(d_s, d_t) <= cka_max_features
    z = lambda: torch.zeros(s, device=dev, dtype=torch.float64)  # noqa: E731
    acc0, acc1, ce0, ce1, agr0, agr1, lmse, oracle, oracle_agr = (z() for _ in range(9))
    ckas = {"cka_test_init": CKA(), "cka_test": CKA()}
    sub = {"t": [], "s0": [], "s1": []}
    for a in range(0, n, chunk):
        xb, yb = x[a:a + chunk], y[a:a + chunk]
        h_slots = nets.body(spec_t, tbody, xb, shared=True)  # teachers shared by several runs: once
        ht = share.slots_to_members(h_slots)
        yt = share.slots_to_members(nets.head(tbody, "class_head", h_slots))
        zt = nets.head(tp, "aux_head", ht)
        h0, y0, z0 = nets.forward(spec_s, sp0, xb, shared=True)
        h1 = nets.body(spec_s, sp, xb, shared=True)
        y1 = nets.head(sp, "class_head", h1)
        ye = yb.expand(s, -1)
        pt, p0, p1 = yt.argmax(-1), y0.argmax(-1), y1.argmax(-1)
        acc0 += (p0 == yb).sum(1)
        acc1 += (p1 == yb).sum(1)
        ce0 += F.cross_entropy(y0.transpose(1, 2), ye, reduction="none").double().sum(1)
        ce1 += F.cross_entropy(y1.transpose(1, 2), ye, reduction="none").double().sum(1)
        agr0 += (p0 == pt).sum(1)
        agr1 += (p1 == pt).sum(1)
        lmse += (y1 - yt).double().pow(2).mean(2).sum(1)
        h_or = h0 + torch.bmm(zt - z0, pinv32.transpose(1, 2))
        po = nets.head(sp0, "class_head", h_or).argmax(-1)
        oracle += (po == yb).sum(1)
        oracle_agr += (po == p1).sum(1)
        if feat_space:
            ckas["cka_test_init"].update(ht, h0)
            ckas["cka_test"].update(ht, h1)
        elif a < cka_samples:
            sub["t"].append(ht[:, :cka_samples - a])
            sub["s0"].append(h0[:, :cka_samples - a])
            sub["s1"].append(h1[:, :cka_samples - a])
    met.update({"student_init_acc": acc0 / n, "student_final_acc": acc1 / n, "student_init_ce": ce0 / n,
                "student_final_ce": ce1 / n, "agreement_init": agr0 / n, "agreement": agr1 / n,
                "class_logit_mse": lmse / n, "oracle_acc": oracle / n, "oracle_agreement": oracle_agr / n})
    if feat_space:
        met["cka_test_init"], met["cka_test"] = ckas["cka_test_init"].value(), ckas["cka_test"].value()
        met["cka_n_test"] = torch.full((s,), float(n), device=dev)
    else:
        ht, h0, h1 = (torch.cat(sub[k], 1) for k in ("t", "s0", "s1"))
        met["cka_test_init"], met["cka_test"] = cka_sample_space(ht, h0), cka_sample_space(ht, h1)
        met["cka_n_test"] = torch.full((s,), float(ht.shape[1]), device=dev)

    # held-out noise: aux MSE (init/final) and CKA on noise
    cfg0 = group[0]
    gens = [nets.generator(derived_seed(sd, "eval_noise"), dev) for sd in share.seeds]
    norm = tuple(data.normalization) if cfg0.normalize_noise else None
    mse0, mse1 = z(), z()
    ck0, ck1 = CKA(), CKA()
    sub = {"t": [], "s0": [], "s1": []}
    seen = 0
    for _ in range(cfg0.eval_noise_batches):
        xb = draw(cfg0.noise, gens, cfg0.eval_noise_batch, tuple(data.image_shape), dev, cfg0.perlin_res, norm)
        for a in range(0, xb.shape[1], chunk):
            xu = xb[:, a:a + chunk]
            ht = share.teacher_features(spec_t, tbody, xu)
            zt = nets.head(tp, "aux_head", ht)
            xc = share.per_member(xu)
            h0, _, z0 = nets.forward(spec_s, sp0, xc)
            h1, _, z1 = nets.forward(spec_s, sp, xc)
            mse0 += ((z0 - zt) * mask).double().pow(2).sum((1, 2))
            mse1 += ((z1 - zt) * mask).double().pow(2).sum((1, 2))
            if feat_space:
                ck0.update(ht, h0)
                ck1.update(ht, h1)
            elif seen < cka_samples:
                sub["t"].append(ht[:, :cka_samples - seen])
                sub["s0"].append(h0[:, :cka_samples - seen])
                sub["s1"].append(h1[:, :cka_samples - seen])
            seen += xc.shape[1]
    n_noise = cfg0.eval_noise_batches * cfg0.eval_noise_batch
    met["student_init_aux_mse"] = mse0 / (n_noise * mvec.double())
    met["student_final_aux_mse"] = mse1 / (n_noise * mvec.double())
    if feat_space:
        met["cka_noise_init"], met["cka_noise"] = ck0.value(), ck1.value()
    else:
        ht, h0, h1 = (torch.cat(sub[k], 1) for k in ("t", "s0", "s1"))
        met["cka_noise_init"], met["cka_noise"] = cka_sample_space(ht, h0), cka_sample_space(ht, h1)

    # weight-space cosines per layer (layers with equal names and shapes; aux heads compared on own rows:
    # padded rows are zero in both and add nothing)
    cos: dict[str, dict[str, torch.Tensor]] = {}
    pairs = {"init_teacher_student": (tp0, sp0), "final_teacher_student": (tp, sp),
             "teacher_init_final": (tp0, tp), "student_init_final": (sp0, sp)}
    for comp, (pa, pb) in pairs.items():
        out = {}
        for name in pa:
            if name in pb and pa[name][0].shape == pb[name][0].shape:
                out[f"{name}.weight"] = cosine(pa[name][0], pb[name][0])
                out[f"{name}.bias"] = cosine(pa[name][1], pb[name][1])
        cos[comp] = out
    met["cos"] = cos
    return met
