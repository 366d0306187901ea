"""Run configuration of the split-head subliminal-learning protocol.

A run is one frozen, hashable :class:`RunConfig`; a sweep is a list of them.
Defaults are the reference protocol (Priesemann-Group/subliminal_learning @ 7374bf2,
``src/run_subliminal.py`` CLI defaults), except the data set, whose default is the
embedded scikit-learn digits (MNIST cannot be downloaded here; pass
``data="mnist"`` with a data folder to get the reference's data).

Layer-keyed options (``init``, ``teacher_init``, ``trainable``, ``teacher_trainable``)
accept the reference's spellings and are normalised to one canonical string
(``"fc1:A,fc2:A,class_head:A,aux_head:A"``) so that equal runs have equal keys:

* a mapping ``{"fc1": "random"}`` (unnamed layers keep the default),
* ``"fc1:random,fc2:random"`` (``name:value`` pairs; ``all:value`` sets every layer
  first, later pairs override it),
* positional ``"random,random,A,A"`` (in layer order ``fc1..fcL, class_head, aux_head``).

Defaults: every layer ``A`` (init) and trainable (flags), as in the reference.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from typing import Any, Iterable, Mapping

SOURCES = ("A", "B", "random")
NOISES = ("uniform", "normal", "perlin")
ARCHS = ("mlp", "cnn")
TIMINGS = ("before_teacher_training", "after_teacher_training", "before_student_training", "after_student_training")
HEADS = ("class_head", "aux_head")
KNOWN_DATA = {"digits": 10, "mnist": 10, "fashion-mnist": 10, "emnist-balanced": 47, "emnist-letters": 26}
ACTIVATIONS = ("relu", "gelu", "tanh", "sigmoid", "none")
POOLS = ("max", "avg", "adaptive_avg", None)

#: The reference's default CNN feature extractor (``subliminal_core.py`` l.475); ``fc1``'s width
#: is the last entry of ``hidden`` (256 by default).
DEFAULT_CNN_SPEC = (
    {"type": "conv2d", "name": "conv1", "out": 32, "kernel": 3, "padding": 1, "activation": "relu", "pool": "max", "pool_kernel": 2},
    {"type": "conv2d", "name": "conv2", "out": 64, "kernel": 3, "padding": 1, "activation": "relu", "pool": "max", "pool_kernel": 2},
    {"type": "linear", "name": "fc1", "out": None, "activation": "relu"},
)
#: The CNN of the paper's MLP->CNN scripts (``figure3/mlp_teach_cnn_stud_m*.sh``), parameter-matched
#: to a 784-256-256-256 MLP.
PAPER_CNN_SPEC = (
    {"type": "conv2d", "name": "conv1", "out": 32, "kernel": 3, "padding": 1, "activation": "relu", "pool": "max", "pool_kernel": 2},
    {"type": "conv2d", "name": "conv2", "out": 128, "kernel": 3, "padding": 1, "activation": "relu", "pool": "max", "pool_kernel": 4},
    {"type": "linear", "name": "fc1", "out": 256, "activation": "relu"},
)


# ----------------------------------------------------------------------------- sizes

#: The small protocol of every ``--quick`` (``limen check``, the named sweeps, ``limen bench subliminal``):
#: a 64-64 MLP, noise batches of 500 and 2 000 held-out noise samples; the student keeps the
#: reference's 5 epochs x 60 steps.
QUICK = {"hidden": (64, 64), "noise_batch": 500, "eval_noise_batches": 2}
#: Teacher epochs on the embedded digits (1437 training images, two Adam steps per epoch at batch
#: 1024: the reference's 5 epochs do not teach it the task) at full size (checks) and quick.
DIGITS_TEACHER_EPOCHS = {"full": 40, "quick": 20}
#: Teacher epochs of the quick protocol on the 60 000-image data sets.
QUICK_TEACHER_EPOCHS = 2


def quick_overrides(data: str, quick: Mapping = QUICK, digits_epochs: Mapping = DIGITS_TEACHER_EPOCHS) -> dict:
    """The ``RunConfig`` fields of the quick protocol on ``data`` (:data:`QUICK` and the teacher's epochs)."""
    epochs = digits_epochs["quick"] if str(data).lower() == "digits" else QUICK_TEACHER_EPOCHS
    return {**quick, "teacher_epochs": epochs}


# ----------------------------------------------------------------------------- seeds

def rng_base(seed: int) -> int:
    """The reference's per-seed offset: ``100000 * seed``."""
    return 100000 * int(seed)


def derived_seed(seed: int, *parts: Any) -> int:
    """Seed of one random stream, exactly the reference's ``derived_seed`` (subliminal_core.py l.116-123).

    ``rng_base(seed) + int(sha256(":".join(parts))[:12], 16) % 9e8``.
    """
    digest = hashlib.sha256(":".join(str(p) for p in parts).encode()).hexdigest()
    return rng_base(seed) + int(digest[:12], 16) % 900_000_000


# ----------------------------------------------------------------------------- architecture

def canonical_cnn_spec(spec: Any, hidden: tuple[int, ...]) -> str:
    """A CNN spec (list of layer dicts, JSON string, or None for the default) as canonical JSON."""
    if spec is None:
        layers = [dict(d) for d in DEFAULT_CNN_SPEC]
    elif isinstance(spec, str):
        try:
            layers = json.loads(spec)
        except json.JSONDecodeError as exc:
            raise ValueError(f"cnn spec is not valid JSON: {exc}") from exc
    else:
        layers = [dict(d) for d in spec]
    if isinstance(layers, dict):
        layers = layers.get("layers", None)
    if not isinstance(layers, list) or not layers:
        raise ValueError("cnn spec must be a non-empty list of layer dicts")
    out, names = [], set()
    n_linear = sum(1 for d in layers if isinstance(d, dict) and d.get("type") == "linear")
    seen_linear = 0
    for i, d in enumerate(layers):
        if not isinstance(d, dict):
            raise ValueError(f"cnn spec layer {i} must be a dict, got {d!r}")
        kind = d.get("type")
        name = d.get("name") or (f"conv{i + 1}" if kind == "conv2d" else f"fc{seen_linear + 1}")
        if name in names or name in HEADS:
            raise ValueError(f"cnn spec layer name {name!r} is repeated or reserved")
        names.add(name)
        act = d.get("activation", "relu")
        if act not in ACTIVATIONS:
            raise ValueError(f"cnn spec layer {name}: activation {act!r} not in {ACTIVATIONS}")
        if kind == "conv2d":
            if seen_linear:
                raise ValueError(f"cnn spec layer {name}: conv2d after a linear layer is not supported")
            pool = d.get("pool")
            if pool not in POOLS:
                raise ValueError(f"cnn spec layer {name}: pool {pool!r} not in {POOLS}")
            c = {"type": "conv2d", "name": name, "out": int(d["out"]), "kernel": int(d.get("kernel", 3)),
                 "stride": int(d.get("stride", 1)), "padding": int(d.get("padding", 0)), "activation": act,
                 "pool": pool, "pool_kernel": int(d.get("pool_kernel", 2)) if pool else None}
            if c["out"] < 1 or c["kernel"] < 1 or c["stride"] < 1 or c["padding"] < 0:
                raise ValueError(f"cnn spec layer {name}: out, kernel, stride must be >= 1 and padding >= 0")
        elif kind == "linear":
            seen_linear += 1
            width = d.get("out")
            if width is None:
                if seen_linear != n_linear:
                    raise ValueError(f"cnn spec layer {name}: only the last linear layer may take its width from hidden")
                width = hidden[-1]
            c = {"type": "linear", "name": name, "out": int(width), "activation": act}
            if c["out"] < 1:
                raise ValueError(f"cnn spec layer {name}: out must be >= 1")
        else:
            raise ValueError(f"cnn spec layer {i}: type must be 'conv2d' or 'linear', got {kind!r}")
        out.append(c)
    return json.dumps(out, sort_keys=True, separators=(",", ":"))


def body_layer_names(arch: str, hidden: tuple[int, ...], cnn_spec: str | None) -> tuple[str, ...]:
    if arch == "mlp":
        return tuple(f"fc{i + 1}" for i in range(len(hidden)))
    return tuple(d["name"] for d in json.loads(cnn_spec))


# ----------------------------------------------------------------------------- layer maps

def _parse_layer_map(value: Any, names: tuple[str, ...], default: Any, what: str, convert) -> dict[str, Any]:
    """Parse a per-layer option into ``{layer: value}`` for every layer in ``names``."""
    out = {n: default for n in names}
    if value is None:
        return out
    if isinstance(value, Mapping):
        items = list(value.items())
    elif isinstance(value, str):
        parts = [p.strip() for p in value.split(",") if p.strip()]
        if parts and all(":" not in p for p in parts):
            if len(parts) != len(names):
                raise ValueError(f"{what}: {len(parts)} positional values for {len(names)} layers "
                                 f"({', '.join(names)}); give one per layer or use name:value pairs")
            items = list(zip(names, parts))
        else:
            items = []
            for p in parts:
                if ":" not in p:
                    raise ValueError(f"{what}: cannot mix positional values and name:value pairs ({value!r})")
                k, v = p.split(":", 1)
                items.append((k.strip(), v.strip()))
    elif isinstance(value, Iterable):
        items = [tuple(kv) for kv in value]
    else:
        raise ValueError(f"{what}: expected a mapping or a string, got {type(value).__name__}")
    for k, v in sorted(items, key=lambda kv: kv[0] != "all"):  # 'all' first, then overrides
        if k == "all":
            cv = convert(v, k)
            out = {n: cv for n in names}
        elif k not in out:
            raise ValueError(f"{what}: unknown layer {k!r}; layers are {', '.join(names)}")
        else:
            out[k] = convert(v, k)
    return out


def _source(v: Any, layer: str) -> str:
    s = str(v).strip()
    low = s.lower()
    if low in ("a", "b"):
        return low.upper()
    if low in ("random", "rand", "r"):
        return "random"
    raise ValueError(f"init source for {layer}: {v!r} is not one of A, B, random")


def _flag(v: Any, layer: str) -> bool:
    if isinstance(v, bool):
        return v
    s = str(v).strip().lower()
    if s in ("true", "1", "yes", "t", "y"):
        return True
    if s in ("false", "0", "no", "f", "n"):
        return False
    raise ValueError(f"trainable flag for {layer}: {v!r} is not a boolean (true/false)")


def _fmt_map(m: dict[str, Any]) -> str:
    return ",".join(f"{k}:{(str(v).lower() if isinstance(v, bool) else v)}" for k, v in m.items())


# ----------------------------------------------------------------------------- perturbations

@dataclasses.dataclass(frozen=True)
class Perturbation:
    """Additive Gaussian noise ``W <- W + std * N(0, 1)`` on chosen layers (reference §1.8).

    ``target``: ``student`` or ``teacher``; ``layers``: layer names or ``("all",)``;
    ``timing``: one of :data:`TIMINGS`. Each (spec index, timing, target, layer) draws
    from its own stream ``derived_seed(seed, "perturb", index, timing, target, layer)``
    (weight first, then bias).
    """

    target: str = "student"
    layers: tuple[str, ...] = ("all",)
    std: float = 0.0
    timing: str = "before_student_training"
    include_weight: bool = True
    include_bias: bool = True

    def __post_init__(self):
        if self.target not in ("student", "teacher"):
            raise ValueError(f"perturbation target must be 'student' or 'teacher', got {self.target!r}")
        layers = (self.layers,) if isinstance(self.layers, str) else tuple(self.layers)
        if len(layers) == 1 and "+" in layers[0]:
            layers = tuple(layers[0].split("+"))
        if not layers:
            raise ValueError("perturbation layers must not be empty")
        object.__setattr__(self, "layers", layers)
        std = float(self.std)
        if not math.isfinite(std) or std < 0:
            raise ValueError(f"perturbation std must be finite and >= 0, got {self.std!r}")
        object.__setattr__(self, "std", std)
        if self.timing not in TIMINGS:
            raise ValueError(f"perturbation timing {self.timing!r} not one of {', '.join(TIMINGS)}")
        object.__setattr__(self, "include_weight", _flag(self.include_weight, "include_weight"))
        object.__setattr__(self, "include_bias", _flag(self.include_bias, "include_bias"))

    @classmethod
    def parse(cls, text: str) -> "Perturbation":
        """The reference's shorthand ``target:layer1+layer2,std=0.05,timing=...,include_bias=false``."""
        head, *opts = [p.strip() for p in text.split(",")]
        if ":" in head:
            target, layers = head.split(":", 1)
        else:
            target, layers = head, "all"
        kw: dict[str, Any] = {}
        for o in opts:
            if "=" not in o:
                raise ValueError(f"perturbation option {o!r} must be key=value")
            k, v = o.split("=", 1)
            if k == "distribution":
                if v != "normal":
                    raise ValueError("only distribution=normal perturbations are supported (as in the reference)")
                continue
            if k not in ("std", "timing", "include_weight", "include_bias"):
                raise ValueError(f"unknown perturbation option {k!r}")
            kw[k] = v
        return cls(target=target.strip(), layers=tuple(layers.split("+")), **kw)


def _perturbations(value: Any) -> tuple[Perturbation, ...]:
    if value is None:
        return ()
    if isinstance(value, (Perturbation, str, Mapping)):
        value = [value]
    out = []
    for p in value:
        if isinstance(p, Perturbation):
            out.append(p)
        elif isinstance(p, str):
            out.append(Perturbation.parse(p))
        elif isinstance(p, Mapping):
            out.append(Perturbation(**p))
        else:
            raise ValueError(f"perturbation must be a Perturbation, a mapping or a string, got {p!r}")
    return tuple(out)


# ----------------------------------------------------------------------------- the run config

def _pos_int(name: str, v: Any, minimum: int = 1) -> int:
    if isinstance(v, bool) or int(v) != v or int(v) < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {v!r}")
    return int(v)


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """One teacher/student run of the split-head protocol (defaults = the reference's CLI defaults).

    Teacher: ``arch``/``hidden``/``cnn_spec``; student: ``student_arch``/``student_hidden``/
    ``student_cnn_spec`` (``None`` = same as the teacher). ``init`` / ``trainable`` are the
    student's per-layer options, ``teacher_init`` / ``teacher_trainable`` the teacher's.
    ``noise_pool=None`` draws fresh noise every step (reference); an integer N uses a fixed
    pool of N noise samples per run, reshuffled every epoch (steps per epoch = ceil(N / noise_batch),
    ``noise_steps`` is then ignored and normalised to 0).
    """

    seed: int = 0
    data: str = "digits"
    n_classes: int | None = None
    normalize: Any = "mnist"
    m: int = 10
    arch: str = "mlp"
    hidden: tuple[int, ...] = (256, 256)
    cnn_spec: Any = None
    student_arch: str | None = None
    student_hidden: tuple[int, ...] | None = None
    student_cnn_spec: Any = None
    init: Any = None
    teacher_init: Any = None
    trainable: Any = None
    teacher_trainable: Any = None
    teacher_epochs: int = 5
    student_epochs: int = 5
    batch_size: int = 1024
    noise_batch: int = 1000
    noise_steps: int = 60
    teacher_lr: float = 1e-3
    student_lr: float = 1e-3
    noise: str = "uniform"
    perlin_res: int = 4
    normalize_noise: bool = False
    noise_pool: int | None = None
    eval_noise_batches: int = 10
    eval_noise_batch: int = 1000
    perturb: Any = ()

    def __post_init__(self):
        s = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731
        s("seed", _pos_int("seed", self.seed, 0))
        if not isinstance(self.data, str) or self.data.lower() not in KNOWN_DATA:
            raise ValueError(f"data must be one of {', '.join(KNOWN_DATA)}, got {self.data!r}")
        s("data", self.data.lower())
        if self.n_classes is not None:
            k = _pos_int("n_classes", self.n_classes, 2)
            if k > KNOWN_DATA[self.data]:
                raise ValueError(f"n_classes={k} exceeds the {KNOWN_DATA[self.data]} classes of {self.data}")
            s("n_classes", None if k == KNOWN_DATA[self.data] else k)
        if isinstance(self.normalize, str):
            if self.normalize not in ("mnist", "none", "dataset"):
                raise ValueError(f"normalize must be 'mnist', 'none', 'dataset' or (mean, std), got {self.normalize!r}")
        else:
            try:
                mean, std = (float(v) for v in self.normalize)
            except (TypeError, ValueError) as exc:
                raise ValueError(f"normalize must be 'mnist', 'none', 'dataset' or (mean, std), got {self.normalize!r}") from exc
            if not std > 0:
                raise ValueError(f"normalize std must be > 0, got {std}")
            s("normalize", (mean, std))
        s("m", _pos_int("m", self.m))
        for role in ("", "student_"):
            arch = getattr(self, role + "arch")
            if role and arch is None:
                arch = self.arch
            if arch not in ARCHS:
                raise ValueError(f"{role}arch must be one of {ARCHS}, got {arch!r}")
            s(role + "arch", arch)
            hidden = getattr(self, role + "hidden")
            if role and hidden is None:
                hidden = self.hidden
            if isinstance(hidden, int):
                hidden = (hidden,)
            if isinstance(hidden, str):
                hidden = tuple(int(h) for h in hidden.split(",") if h.strip())
            hidden = tuple(_pos_int(f"{role}hidden width", h) for h in hidden)
            if not hidden:
                raise ValueError(f"{role}hidden needs at least one layer width")
            s(role + "hidden", hidden)
            spec = getattr(self, role + "cnn_spec")
            if arch == "cnn":
                if role and spec is None and self.arch == "cnn" and hidden == self.hidden:
                    spec = self.cnn_spec
                s(role + "cnn_spec", canonical_cnn_spec(spec, hidden))
            elif spec is not None:
                raise ValueError(f"{role}cnn_spec is given but {role}arch is 'mlp'")
        t_names = self.layer_names("teacher")
        st_names = self.layer_names("student")
        maps = {"teacher_init": _parse_layer_map(self.teacher_init, t_names, "A", "teacher_init", _source),
                "init": _parse_layer_map(self.init, st_names, "A", "init", _source),
                "teacher_trainable": _parse_layer_map(self.teacher_trainable, t_names, True, "teacher_trainable", _flag),
                "trainable": _parse_layer_map(self.trainable, st_names, True, "trainable", _flag)}
        for k, v in maps.items():
            s(k, _fmt_map(v))
        s("_maps", maps)  # parsed once (not a field: keys and equality use the canonical strings)
        s("teacher_epochs", _pos_int("teacher_epochs", self.teacher_epochs, 0))
        s("student_epochs", _pos_int("student_epochs", self.student_epochs, 0))
        s("batch_size", _pos_int("batch_size", self.batch_size))
        s("noise_batch", _pos_int("noise_batch", self.noise_batch))
        for k in ("teacher_lr", "student_lr"):
            v = float(getattr(self, k))
            if not (math.isfinite(v) and v > 0):
                raise ValueError(f"{k} must be a positive number, got {getattr(self, k)!r}")
            s(k, v)
        if self.noise not in NOISES:
            raise ValueError(f"noise must be one of {NOISES}, got {self.noise!r}")
        s("perlin_res", _pos_int("perlin_res", self.perlin_res) if self.noise == "perlin" else 4)
        s("normalize_noise", _flag(self.normalize_noise, "normalize_noise"))
        if self.noise_pool is None:
            s("noise_steps", _pos_int("noise_steps", self.noise_steps))
        else:
            s("noise_pool", _pos_int("noise_pool", self.noise_pool))
            s("noise_steps", 0)
        s("eval_noise_batches", _pos_int("eval_noise_batches", self.eval_noise_batches))
        s("eval_noise_batch", _pos_int("eval_noise_batch", self.eval_noise_batch))
        perturb = _perturbations(self.perturb)
        for p in perturb:
            names = t_names if p.target == "teacher" else st_names
            for layer in p.layers:
                if layer != "all" and layer not in names:
                    raise ValueError(f"perturbation of the {p.target}: unknown layer {layer!r}; layers are {', '.join(names)}")
        s("perturb", perturb)

    # -- derived views ---------------------------------------------------------------------
    def layer_names(self, role: str) -> tuple[str, ...]:
        """Layer order ``body..., class_head, aux_head`` of ``role`` (``teacher`` or ``student``)."""
        if role == "teacher":
            return body_layer_names(self.arch, self.hidden, self.cnn_spec) + HEADS
        if role == "student":
            return body_layer_names(self.student_arch, self.student_hidden, self.student_cnn_spec) + HEADS
        raise ValueError(f"role must be 'teacher' or 'student', got {role!r}")

    def sources(self, role: str) -> dict[str, str]:
        """Init source (``A``, ``B``, ``random``) of every layer of ``role``, in layer order."""
        return dict(self._maps["teacher_init" if role == "teacher" else "init"])

    def trainable_flags(self, role: str) -> dict[str, bool]:
        """Trainable flag of every layer of ``role``, in layer order."""
        return dict(self._maps["teacher_trainable" if role == "teacher" else "trainable"])

    def arch_of(self, role: str) -> tuple[str, tuple[int, ...], str | None]:
        if role == "teacher":
            return self.arch, self.hidden, self.cnn_spec
        return self.student_arch, self.student_hidden, self.student_cnn_spec

    @property
    def student_steps_per_epoch(self) -> int:
        if self.noise_pool is None:
            return self.noise_steps
        return -(-self.noise_pool // self.noise_batch)

    @property
    def condition(self) -> str:
        """Short label of the student's init sources, e.g. ``random,random,A,A``."""
        return ",".join(self.sources("student").values())

    def replace(self, **changes) -> "RunConfig":
        return dataclasses.replace(self, **changes)
