"""Training and evaluation of one infomorphic (or baseline) network.

:func:`train_run` trains one :class:`InfomorphicConfig` and returns a results record
(JSON-ready dict, see :func:`train_run`); per-neuron atoms of every epoch go to an
``.npz`` file next to the results when an output folder is given.

Protocol (Schneider et al., arXiv 2412.02482; the public code's
``paper_trivariate/base_model.py``, ``conf/base_config.yaml`` and ``im_net/datasets.py``):
inputs are standardised with the data set's own training mean and std (one scalar each,
over every pixel of the whole training set, as the public code does for MNIST and
Fashion-MNIST; ``normalize="mnist"`` uses MNIST's 0.1307/0.3081 instead); 20 % of the
training set is held out for validation with a seeded split; every epoch runs
minibatches of 1024 in a seeded random order (the last one partial); epoch 0 is an
evaluation before any update. Evaluation sets the label context to zero, flips the
output neurons whose mean θ over the evaluated set (or over each block of ``eval_batch``
samples) is ≥ 0.5 and predicts the argmax; the hidden layer samples, so an evaluation
is random: the final accuracies are the mean over ``eval_passes`` passes (each pass in
the record). "Training accuracy" is measured during training with the label fed as
context, as in the study. Atoms are measured at the end of every ``atoms_every``-th
epoch (and the last) on a fixed probe batch of training samples (the first
``batch_size`` of the training split) in training mode (label context, stochastic
hidden outputs), in float64, together with the neurons whose label context falls into
a single bin (:meth:`InfomorphicNet.context_collapsed`).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..device import resolve_device, synchronize
from ..records import config_dict, config_key
from ..runinfo import run_info
from .goals import OUTPUT_GOAL, atom_names, describe_goal, goal_vector
from .model import BINARY_CODES, KINDS, InfomorphicNet, flip_and_argmax, one_hot

__all__ = ["InfomorphicConfig", "PRESETS", "preset", "train_run", "train_configs", "prepare_data", "evaluate", "build",
           "optimizers", "make_step", "GraphedStep", "validate_config", "input_statistics", "input_normalization",
           "NORMALIZATIONS"]

#: how the inputs of a run are standardised (see :func:`input_normalization`)
NORMALIZATIONS = ("train", "mnist")

#: the modules whose code fixes the numbers of a record (its code version in the results store)
SOURCES = ("limen.verify.infomorphic.train", "limen.verify.infomorphic.model", "limen.verify.infomorphic.goals",
           "limen.estimators", "limen.verify.data")

#: named models used by the comparison: model kind + hidden goal
PRESETS: dict[str, dict[str, Any]] = {
    "optimised": {"kind": "trivariate", "goal": "optimised"},
    "optimised-sparse": {"kind": "trivariate", "goal": "optimised-sparse"},
    "heuristic": {"kind": "trivariate", "goal": "heuristic"},
    "backprop": {"kind": "backprop", "goal": None},
    "readout": {"kind": "readout", "goal": None},
    "random-projection": {"kind": "random-projection", "goal": None},
    "bivariate-fc": {"kind": "bivariate-fc", "goal": "heuristic"},
    "bivariate-fc-optimised": {"kind": "bivariate-fc", "goal": "optimised"},
    "bivariate-fl": {"kind": "bivariate-fl", "goal": "heuristic"},
    "bivariate-fl-optimised": {"kind": "bivariate-fl", "goal": "optimised"},
}
_PRESET_ALIASES = {"optimized": "optimised", "optimized-sparse": "optimised-sparse", "random": "random-projection",
                   "bp": "backprop", "readout-only": "readout", "naive": "heuristic"}


@dataclass(frozen=True)
class InfomorphicConfig:
    """One training run. ``goal`` is a named goal, a spec string or a γ sequence (see ``goals``).

    ``normalize``: ``"train"`` (the data set's own training mean and std) or ``"mnist"``.
    ``eval_passes``: stochastic evaluation passes averaged for the final accuracies.
    Options that reproduce the public code where limen differs (see docs/infomorphic.md):
    ``eval_batch`` (flip rule per block of this many samples; 0 = the whole set),
    ``theta_clip`` (bivariate θ clamped into [ε, 1 − ε]; 0 = no clamp), ``binary``
    (``"pm1"`` or ``"01"``: hidden outputs of the backprop and random-projection baselines).
    """

    kind: str = "trivariate"
    goal: Any = "optimised"
    data: str = "digits"
    n_hidden: int = 100
    epochs: int = 100
    batch_size: int = 1024
    seed: int = 0
    n_bins: int = 20
    half_range: float = 20.0
    alpha_c: float = 0.1
    alpha_l: float = 0.1
    beta_c: float = 2.0
    beta_l: float = 2.0
    k1_hidden: float = 0.9
    k1_output: float = 1.0
    k2: float = 2.0
    passes: int = 2
    lateral: str = "dense"
    max_connections: int = 100
    lr_hidden: float = 2e-3
    wd_hidden: float = 3.5e-4
    lr_output: float = 3e-3
    wd_output: float = 1.5e-4
    lr_backprop: float = 1e-3
    output_goal: tuple = OUTPUT_GOAL
    val_fraction: float = 0.2
    n_classes: int | None = None
    normalize: str = "train"
    eval_passes: int = 5
    eval_batch: int = 0
    theta_clip: float = 0.0
    binary: str = "pm1"
    model: str = ""  # preset name, informational

    def __post_init__(self):
        # canonical, JSON-ready forms (the run key hashes the config)
        if self.goal is not None and not isinstance(self.goal, str):
            object.__setattr__(self, "goal", tuple(float(v) for v in np.asarray(self.goal, dtype=float).ravel()))
        if not isinstance(self.output_goal, str):
            object.__setattr__(self, "output_goal",
                               tuple(float(v) for v in np.asarray(self.output_goal, dtype=float).ravel()))
        if isinstance(self.theta_clip, (int, float, np.number)) and not isinstance(self.theta_clip, bool):
            object.__setattr__(self, "theta_clip", float(self.theta_clip))  # 0 and 0.0: one run key
        validate_config(self)

    def gamma_hidden(self) -> np.ndarray | None:
        if self.kind not in ("trivariate", "bivariate-fc", "bivariate-fl"):
            return None
        return np.asarray(goal_vector(self.goal, self.kind))

    def gamma_output(self) -> np.ndarray:
        return np.asarray(goal_vector(self.output_goal, "output"))


def validate_config(cfg: InfomorphicConfig) -> None:
    """Raise ``ValueError`` naming the first invalid field."""
    if cfg.kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {cfg.kind!r}")
    for name in ("n_hidden", "epochs", "batch_size", "n_bins", "passes", "eval_passes", "eval_batch"):
        v = getattr(cfg, name)
        lo = 0 if name == "eval_batch" else 1
        if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < lo:
            raise ValueError(f"{name} must be an integer >= {lo}, got {v!r}")
    if cfg.normalize not in NORMALIZATIONS:
        raise ValueError(f"normalize must be one of {', '.join(NORMALIZATIONS)}, got {cfg.normalize!r}")
    if cfg.binary not in BINARY_CODES:
        raise ValueError(f"binary must be one of {', '.join(BINARY_CODES)}, got {cfg.binary!r}")
    if not (isinstance(cfg.theta_clip, (int, float)) and 0 <= cfg.theta_clip < 0.5):
        raise ValueError(f"theta_clip must lie in [0, 0.5), got {cfg.theta_clip!r}")
    if cfg.n_bins < 2:
        raise ValueError(f"n_bins must be at least 2, got {cfg.n_bins}")
    if cfg.kind in ("trivariate", "backprop", "bivariate-fl") and cfg.n_hidden < 2:
        raise ValueError("lateral connections need n_hidden >= 2")
    if cfg.batch_size < 2:
        raise ValueError(f"batch_size must be at least 2, got {cfg.batch_size}")
    if not cfg.half_range > 0:
        raise ValueError(f"half_range must be positive, got {cfg.half_range}")
    if not (cfg.alpha_c >= 0 and cfg.alpha_l >= 0 and cfg.alpha_c + cfg.alpha_l <= 1):
        raise ValueError(f"need alpha_c, alpha_l >= 0 and alpha_c + alpha_l <= 1, got {cfg.alpha_c}, {cfg.alpha_l}")
    if not 0 <= cfg.k1_hidden <= 1 or not 0 <= cfg.k1_output <= 1:
        raise ValueError("k1_hidden and k1_output must lie in [0, 1]")
    if cfg.lateral not in ("dense", "sparse"):
        raise ValueError(f"lateral must be 'dense' or 'sparse', got {cfg.lateral!r}")
    if cfg.lateral == "sparse" and (not isinstance(cfg.max_connections, int) or cfg.max_connections < 1):
        raise ValueError(f"max_connections must be a positive integer, got {cfg.max_connections!r}")
    for name in ("lr_hidden", "lr_output", "lr_backprop"):
        if not getattr(cfg, name) > 0:
            raise ValueError(f"{name} must be positive, got {getattr(cfg, name)}")
    for name in ("wd_hidden", "wd_output"):
        if not getattr(cfg, name) >= 0:
            raise ValueError(f"{name} must be >= 0, got {getattr(cfg, name)}")
    if not 0 <= cfg.val_fraction < 1:
        raise ValueError(f"val_fraction must lie in [0, 1), got {cfg.val_fraction}")
    if cfg.kind in ("trivariate", "bivariate-fc", "bivariate-fl"):
        if cfg.goal is None:
            raise ValueError(f"a {cfg.kind} model needs a goal")
        goal_vector(cfg.goal, cfg.kind)  # raises on a bad goal
    goal_vector(cfg.output_goal, "output")


def preset(name: str, **overrides) -> InfomorphicConfig:
    """Config of a named model (:data:`PRESETS`), with field overrides."""
    key = _PRESET_ALIASES.get(name, name)
    if key not in PRESETS:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(PRESETS)}")
    fields = dict(PRESETS[key])
    if "goal" in overrides and overrides["goal"] is None:
        overrides.pop("goal")
    fields.update(overrides)
    fields["model"] = key
    return InfomorphicConfig(**fields)


# --------------------------------------------------------------------------- data
@dataclass
class Prepared:
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    n_classes: int
    name: str
    normalization: tuple[float, float]  # (mean, std) in pixel units that the inputs were standardised with


def input_statistics(x: torch.Tensor, chunk: int = 8192) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof 1) of all elements of ``x``, accumulated in float64.

    Two passes over row chunks: x̄ = Σx / n, s = √(Σ(x − x̄)² / (n − 1)).
    """
    rows = x.reshape(x.shape[0], -1)
    n = rows.numel()
    if n < 2:
        raise ValueError(f"need at least two input values for a mean and std, got {n}")
    mean = sum(float(c.double().sum()) for c in rows.split(chunk)) / n
    ss = sum(float((c.double() - mean).square().sum()) for c in rows.split(chunk))
    return mean, math.sqrt(ss / (n - 1))


def input_normalization(ds, mode: str = "train") -> tuple[float, float]:
    """(mean, std) in pixel units (pixels scaled to [0, 1]) that a run standardises its inputs with.

    ``"train"``: over every pixel of ``ds``'s whole training set (before the validation
    split), as the public code does for MNIST and Fashion-MNIST; ``"mnist"``: MNIST's
    (0.1307, 0.3081). ``ds.normalization`` (what the loader applied) is undone first, so
    the result does not depend on how ``ds`` was loaded.
    """
    from ..data import MNIST_MEAN, MNIST_STD

    if mode not in NORMALIZATIONS:
        raise ValueError(f"normalize must be one of {', '.join(NORMALIZATIONS)}, got {mode!r}")
    if mode == "mnist":
        return MNIST_MEAN, MNIST_STD
    m0, s0 = ds.normalization
    mean, std = input_statistics(ds.x_train)
    if not std > 0:
        raise ValueError(f"the training images of {getattr(ds, 'name', 'the data set')} are constant (std 0)")
    return m0 + s0 * mean, s0 * std


def prepare_data(ds, val_fraction: float, seed: int, device: torch.device | None = None,
                 normalize: str = "train") -> Prepared:
    """Standardise, flatten and move the images to ``device``; hold out ``val_fraction`` (seeded split).

    Inputs become (pixel − mean) / std with :func:`input_normalization` (``normalize``).
    """
    dev = ds.x_train.device if device is None else device
    mean, std = input_normalization(ds, normalize)
    m0, s0 = ds.normalization
    scale, shift = s0 / std, (m0 - mean) / std  # x → pixel = x·s0 + m0 → (pixel − mean) / std

    def inputs(x):
        return x.reshape(x.shape[0], -1).to(dev).mul(scale).add_(shift)

    xtr, xte = inputs(ds.x_train), inputs(ds.x_test)
    ytr = ds.y_train.to(dev)
    n = xtr.shape[0]
    n_val = int(round(val_fraction * n))
    g = torch.Generator().manual_seed(int(seed))
    perm = torch.randperm(n, generator=g).to(xtr.device)
    val, tr = perm[:n_val], perm[n_val:]
    return Prepared(xtr[tr], ytr[tr], xtr[val], ytr[val], xte, ds.y_test.to(dev), int(ds.n_classes),
                    getattr(ds, "name", "?"), (mean, std))


# --------------------------------------------------------------------------- evaluation
@torch.no_grad()
def evaluate(net: InfomorphicNet, x: torch.Tensor, y: torch.Tensor, chunk: int = 8192,
             flip_batch: int = 0) -> torch.Tensor:
    """Accuracy (0-dim tensor on the device) with zero label context and the flip rule.

    The flip rule uses the mean θ over the whole set, or over each consecutive block of
    ``flip_batch`` samples when it is > 0 (the public code evaluates in batches of 1024).
    """
    if x.shape[0] == 0:
        return torch.tensor(float("nan"))
    thetas = []
    for i in range(0, x.shape[0], chunk):
        xb = x[i:i + chunk]
        thetas.append(net(xb, torch.zeros(xb.shape[0], net.n_classes, device=x.device, dtype=x.dtype)))
    theta = torch.cat(thetas)
    if flip_batch:
        pred = torch.cat([flip_and_argmax(t) for t in theta.split(flip_batch)])
    else:
        pred = flip_and_argmax(theta)
    return (pred == y).float().mean()


# --------------------------------------------------------------------------- training
def build(cfg: InfomorphicConfig, d_in: int, n_classes: int, device: torch.device) -> InfomorphicNet:
    torch.manual_seed(cfg.seed)
    net = InfomorphicNet(cfg.kind, d_in, cfg.n_hidden, n_classes, n_bins=cfg.n_bins, half_range=cfg.half_range,
                         alpha_c=cfg.alpha_c, alpha_l=cfg.alpha_l, beta_c=cfg.beta_c, beta_l=cfg.beta_l,
                         k1_hidden=cfg.k1_hidden, k1_output=cfg.k1_output, k2=cfg.k2,
                         passes=cfg.passes if cfg.kind != "bivariate-fc" else 1,
                         max_connections=cfg.max_connections if cfg.lateral == "sparse" else None,
                         binary=cfg.binary, theta_clip=cfg.theta_clip)
    return net.to(device)


def optimizers(net: InfomorphicNet, cfg: InfomorphicConfig, capturable: bool = False):
    """One Adam per layer (the backprop baseline: one for all); ``capturable`` for CUDA graphs."""
    kw = {"capturable": True} if capturable else {}
    if cfg.kind == "backprop":
        return [torch.optim.Adam(net.parameters(), lr=cfg.lr_backprop, **kw)]
    opts = []
    hp = net.hidden_parameters()
    if hp:
        opts.append(torch.optim.Adam(hp, lr=cfg.lr_hidden, weight_decay=cfg.wd_hidden, **kw))
    opts.append(torch.optim.Adam(net.output_parameters(), lr=cfg.lr_output, weight_decay=cfg.wd_output, **kw))
    return opts


class GraphedStep:
    """A training step replayed from a CUDA graph for full batches (launch overhead removed).

    The first ``warmup`` full batches run eagerly on a side stream (real training steps, as
    CUDA graph capture requires), the next one is captured and then replayed; batches of
    another size (the last, partial one) run eagerly. Results are identical in distribution
    to eager steps (the RNG is graph-safe); the step must not synchronise with the host.
    If the capture fails, the step falls back to eager execution for the rest of the run
    (``error`` says why).
    """

    def __init__(self, step, warmup: int = 2):
        self.step, self.warmup, self.n_eager = step, warmup, 0
        self.graph = self.static = self.out = self.error = None
        self.shape = None

    def __call__(self, xb: torch.Tensor, yb: torch.Tensor):
        if self.shape is None:
            self.shape = xb.shape
        if xb.shape != self.shape or self.error is not None:
            return self.step(xb, yb)
        if self.graph is None:
            if self.n_eager < self.warmup:
                self.n_eager += 1
                side = torch.cuda.Stream(device=xb.device)
                side.wait_stream(torch.cuda.current_stream(xb.device))
                with torch.cuda.stream(side):
                    out = self.step(xb, yb)
                torch.cuda.current_stream(xb.device).wait_stream(side)
                return out
            self.static = (xb.clone(), yb.clone())
            graph = torch.cuda.CUDAGraph()
            try:
                with torch.cuda.graph(graph):
                    self.out = self.step(*self.static)
            except Exception as exc:  # not capturable here: train eagerly
                self.error = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
                torch.cuda.synchronize(xb.device)
                return self.step(xb, yb)
            self.graph = graph
        self.static[0].copy_(xb)
        self.static[1].copy_(yb)
        self.graph.replay()
        return self.out


def make_step(net: InfomorphicNet, cfg: InfomorphicConfig, opts, goal_fn=None):
    """One optimisation step on a minibatch; returns device tensors (no host sync).

    ``goal_fn``: the PID goal implementation (default: the sample-based estimator).
    """
    g_h, g_o = cfg.gamma_hidden(), cfg.gamma_output()
    n_classes = net.n_classes

    def step(xb: torch.Tensor, yb: torch.Tensor):
        ctx = one_hot(yb, n_classes, xb.dtype)
        for o in opts:
            o.zero_grad(set_to_none=True)
        if cfg.kind == "backprop":
            theta = net(xb, ctx)
            loss = torch.nn.functional.cross_entropy(theta, yb)  # θ used as logits (study's baseline)
            loss.backward()
            loss_h, loss_o = loss.detach(), loss.detach()
        else:
            loss_h, loss_o, theta = net.local_losses(xb, ctx, g_h, g_o, goal_fn)
            total = loss_o if loss_h is None else loss_h + loss_o
            total.backward()
            loss_h = torch.zeros((), device=xb.device) if loss_h is None else loss_h.detach()
            loss_o = loss_o.detach()
        for o in opts:
            o.step()
        correct = (flip_and_argmax(theta.detach()) == yb).sum()
        return loss_h, loss_o, correct

    return step


def train_run(cfg: InfomorphicConfig, *, device: str | torch.device = "auto", data=None, out: str | Path | None = None,
              progress=None, keep_atom_history: bool = True, cuda_graphs: bool | None = None,
              atoms_every: int = 1) -> dict:
    """Train one run; return its record ``{"key", "config", "metrics", "run_info"}``.

    ``data``: a loaded ``limen.verify.data.Dataset`` (loaded from ``cfg.data`` when None).
    ``out``: folder for the per-neuron atom history (``atoms/<key>.npz``); nothing is written when None.
    ``progress``: optional callable ``(epoch, metrics_dict)`` called after every epoch.
    ``cuda_graphs``: replay full-batch steps from a CUDA graph (:class:`GraphedStep`); default
    on for CUDA devices. ``atoms_every``: measure the probe atoms every k epochs (and at
    epochs 0 and the last). Execution details only: not part of the config or its key,
    and they do not change the training (the RNG is reseeded at every epoch end).

    ``metrics`` holds ``train_acc`` and ``val_acc``/``test_acc`` (final; means over the
    ``eval_passes`` evaluation passes listed in ``val_acc_passes``/``test_acc_passes``),
    ``history`` (one entry per epoch 0..epochs: accuracies from one pass, except the last
    epoch's means, layer losses, mean hidden atoms, output atoms per neuron, and at the
    measured epochs the share of neurons whose context fell into one bin),
    ``atoms_hidden`` (final, per neuron, γ order + H_res), ``atom_names_hidden``,
    ``atoms_output``/``atom_names_output``, ``context_collapsed_hidden``/``_output``
    (final, per neuron; None without a context source), ``normalization`` (mode, and
    mean and std in pixel units), timing (``time_s``, ``step_ms``) and ``atoms_file``.
    """
    if atoms_every < 1:
        raise ValueError(f"atoms_every must be at least 1, got {atoms_every}")
    dev = resolve_device(device) if isinstance(device, str) else torch.device(device)
    if data is None:
        from ..data import load_dataset

        data = load_dataset(cfg.data, n_classes=cfg.n_classes, device=dev)
    prep = prepare_data(data, cfg.val_fraction, cfg.seed, dev, normalize=cfg.normalize)
    net = build(cfg, prep.x_train.shape[1], prep.n_classes, dev)
    graphs = dev.type == "cuda" if cuda_graphs is None else bool(cuda_graphs and dev.type == "cuda")
    opts = optimizers(net, cfg, capturable=graphs)
    step = make_step(net, cfg, opts)
    if graphs:
        step = GraphedStep(step)
    n_train = prep.x_train.shape[0]
    bs = cfg.batch_size
    probe_x, probe_y = prep.x_train[:bs], prep.y_train[:bs]
    probe_ctx = one_hot(probe_y, prep.n_classes, probe_x.dtype)
    gen = torch.Generator(device="cpu").manual_seed(int(cfg.seed) + 1)

    hidden_kind = net.hidden_kind
    names_h = atom_names(hidden_kind) if hidden_kind else None
    names_o = atom_names("output")
    history, atom_hist, collapse_hist, atom_epochs = [], [], [], []
    t_train, n_steps = 0.0, 0
    passes: dict[str, list[float]] = {}
    collapsed: tuple = (None, None)

    def share(flags):
        return None if flags is None else float(flags.float().mean())

    def record_epoch(epoch, loss_h, loss_o, train_acc):
        nonlocal collapsed
        torch.manual_seed(cfg.seed * 100003 + epoch)  # probe and evaluation noise, reproducible
        ah = ao = None
        measured = epoch % atoms_every == 0 or epoch == cfg.epochs
        if measured:
            ah, ao = net.atoms(probe_x, probe_ctx)
            collapsed = net.context_collapsed(probe_ctx)
            if ah is not None and keep_atom_history:
                atom_hist.append(ah.float().cpu().numpy())
                atom_epochs.append(epoch)
                if collapsed[0] is not None:
                    collapse_hist.append(collapsed[0].cpu().numpy())
        n_eval = cfg.eval_passes if epoch == cfg.epochs else 1
        for split, x, y in (("val", prep.x_val, prep.y_val), ("test", prep.x_test, prep.y_test)):
            passes[split] = [float(evaluate(net, x, y, flip_batch=cfg.eval_batch)) for _ in range(n_eval)]
        entry = {
            "epoch": epoch,
            "train_acc": train_acc,
            "val_acc": float(np.mean(passes["val"])),
            "test_acc": float(np.mean(passes["test"])),
            "loss_hidden": loss_h,
            "loss_output": loss_o,
            "atoms_hidden_mean": ah.mean(0).tolist() if ah is not None else None,
            "atoms_output": ao.tolist() if ao is not None else None,
            "context_collapsed_share": ({"hidden": share(collapsed[0]), "output": share(collapsed[1])}
                                        if measured else None),
        }
        history.append(entry)
        if progress is not None:
            progress(epoch, entry)
        return ah, ao

    net.train()
    ah, ao = record_epoch(0, None, None, None)
    torch.manual_seed(cfg.seed)
    for epoch in range(1, cfg.epochs + 1):
        perm = torch.randperm(n_train, generator=gen).to(dev)
        sums = torch.zeros(3, device=dev)
        synchronize(dev)
        t0 = time.perf_counter()
        for i in range(0, n_train, bs):
            idx = perm[i:i + bs]
            lh, lo, corr = step(prep.x_train[idx], prep.y_train[idx])
            sums += torch.stack([lh, lo, corr.to(sums.dtype)])
            n_steps += 1
        synchronize(dev)
        t_train += time.perf_counter() - t0
        n_batches = (n_train + bs - 1) // bs
        s = sums.tolist()
        ah, ao = record_epoch(epoch, s[0] / n_batches, s[1] / n_batches, s[2] / n_train)

    key = config_key(cfg)
    atoms_file = None
    if out is not None and atom_hist:
        atoms_file = Path("atoms") / f"{key}.npz"
        path = Path(out) / atoms_file
        path.parent.mkdir(parents=True, exist_ok=True)
        extra = {"context_collapsed": np.stack(collapse_hist)} if collapse_hist else {}
        np.savez_compressed(path, atoms=np.stack(atom_hist), epochs=np.array(atom_epochs), names=np.array(names_h),
                            **extra)
    last = history[-1]
    metrics = {
        "train_acc": last["train_acc"],
        "val_acc": last["val_acc"],
        "test_acc": last["test_acc"],
        "val_acc_passes": passes["val"],
        "test_acc_passes": passes["test"],
        "history": history,
        "atom_names_hidden": names_h,
        "atoms_hidden": ah.tolist() if ah is not None else None,
        "atom_names_output": names_o,
        "atoms_output": ao.tolist(),
        "context_collapsed_hidden": None if collapsed[0] is None else collapsed[0].tolist(),
        "context_collapsed_output": collapsed[1].tolist(),
        "normalization": {"mode": cfg.normalize, "mean": prep.normalization[0], "std": prep.normalization[1]},
        "goal_hidden": describe_goal(cfg.gamma_hidden(), cfg.kind) if cfg.gamma_hidden() is not None else None,
        "steps": n_steps,
        "cuda_graphs": graphs and getattr(step, "error", None) is None,
        "cuda_graph_error": getattr(step, "error", None),
        "time_s": t_train,
        "step_ms": 1e3 * t_train / max(n_steps, 1),
        "atoms_file": str(atoms_file) if atoms_file else None,
        "n_train": n_train,
        "data": prep.name,
    }
    return {"key": key, "config": config_dict(cfg), "metrics": metrics, "run_info": run_info(dev)}


def finished_keys(configs, out: str | Path | None) -> set[str]:
    """Keys of ``configs`` whose records of the current code version are in ``out``'s results store."""
    from ..road import EachProducer
    from ..store import DB_FILE, Store

    if out is None or not (Path(out) / DB_FILE).exists():
        return set()
    version = EachProducer("infomorphic", None, SOURCES).version
    with Store(out) as store:
        return {k for k, vs in store.versions(config_key(c) for c in configs).items() if version in vs}


def train_configs(configs, *, out: str | Path | None = None, device: str | torch.device = "auto", data_root=None,
                  on_epoch=None, on_run=None, **train_kw) -> list[dict]:
    """Records of ``configs`` (in order): read from the results store ``out/results.db`` when finished, else trained.

    Goes through the road (:mod:`limen.verify.road`), like every sweep: each new record is stored as
    soon as its run ends, so an interrupted sweep resumes, and runs of another code version are not
    reused; data sets are loaded once, when first needed. ``on_epoch(cfg, epoch, entry)`` and
    ``on_run(cfg, record)`` report progress; ``train_kw`` go to :func:`train_run`.
    """
    from ..data import load_dataset
    from ..road import EachProducer, Road

    dev = resolve_device(device) if isinstance(device, str) else torch.device(device)
    datasets: dict = {}

    def compute(cfg) -> dict:
        dkey = (cfg.data, cfg.n_classes)
        if dkey not in datasets:
            datasets[dkey] = load_dataset(cfg.data, root=data_root, n_classes=cfg.n_classes, device=dev)
        report = None if on_epoch is None else (lambda epoch, entry: on_epoch(cfg, epoch, entry))
        rec = train_run(cfg, device=dev, data=datasets[dkey], out=out, progress=report, **train_kw)
        if on_run is not None:
            on_run(cfg, rec)
        return rec

    if out is None:
        done: dict[str, dict] = {}
        for c in configs:
            if config_key(c) not in done:
                done[config_key(c)] = compute(c)
        return [done[config_key(c)] for c in configs]
    producer = EachProducer("infomorphic", compute, SOURCES)
    return Road(out, producer, progress=False, description="infomorphic runs").run(configs)
