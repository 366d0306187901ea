"""A linear split-head student distilled on noise (float64 torch), for exact theory checks.

The model is the linear limit of the split-head protocol (theory R3): features
``h = W x`` with ``W`` of shape ``(d, n_in)``, a fixed auxiliary head ``A``
``(m, d)`` shared by teacher and student and a class head ``C`` ``(K, d)``. The
student minimises the protocol's loss, torch's ``mse_loss`` with mean reduction
over the m aux logits and the N noise samples,

    L(W) = 1/(m N) · || A W X − A W_T X ||_F²,     X: (n_in, N) noise samples as columns,

by full-batch plain gradient descent (``W ← W − lr ∇L``) or Adam, on a fixed noise
pool. Every iterate is kept, so a check can compare the whole trajectory with a
closed form. The prediction itself comes from :mod:`limen.theory`; this module
only trains.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class LinearConfig:
    """One linear distillation run (all draws from ``seed``).

    ``init``: ``"shared"`` -- the student starts at the teacher's initial weights
    ``W0`` and the teacher is ``W0 + ΔW`` (a trained teacher's update);
    ``"random"`` -- the student starts from independent weights. Weights and
    heads use PyTorch's default Linear scale U(±1/√fan_in); ΔW has the same scale.
    ``noise``: ``"uniform"`` (U[−1, 1], the protocol's) or ``"normal"``.
    """

    seed: int = 0
    n_in: int = 24
    d: int = 16
    m: int = 4
    K: int = 10
    N: int = 12
    steps: int = 2000
    lr: float = 0.1
    optimizer: str = "gd"
    init: str = "random"
    noise: str = "uniform"
    n_test: int = 256

    def __post_init__(self) -> None:
        for f in ("n_in", "d", "m", "K", "N", "steps", "n_test"):
            if getattr(self, f) < 1:
                raise ValueError(f"LinearConfig.{f} must be a positive integer, got {getattr(self, f)}")
        if not self.lr > 0:
            raise ValueError(f"LinearConfig.lr must be positive, got {self.lr}")
        if self.optimizer not in ("gd", "adam"):
            raise ValueError(f"LinearConfig.optimizer must be 'gd' or 'adam', got {self.optimizer!r}")
        if self.init not in ("shared", "random"):
            raise ValueError(f"LinearConfig.init must be 'shared' or 'random', got {self.init!r}")
        if self.noise not in ("uniform", "normal"):
            raise ValueError(f"LinearConfig.noise must be 'uniform' or 'normal', got {self.noise!r}")

    def replace(self, **changes) -> "LinearConfig":
        return dataclasses.replace(self, **changes)


@dataclass
class LinearProblem:
    """The draws of one run (float64, on the run's device)."""

    W0: torch.Tensor  # (d, n_in) student's initial weights
    WT: torch.Tensor  # (d, n_in) teacher's weights
    A: torch.Tensor  # (m, d) shared aux head
    C: torch.Tensor  # (K, d) shared class head
    X: torch.Tensor  # (n_in, N) training noise, samples as columns
    X_test: torch.Tensor  # (n_in, n_test) held-out inputs


def _uniform(shape, scale, gen):
    return (torch.rand(shape, generator=gen, dtype=torch.float64) * 2 - 1) * scale


def make_problem(cfg: LinearConfig, device: torch.device | str = "cpu") -> LinearProblem:
    """Draw teacher, student, heads and noise for ``cfg`` (CPU generator, then moved: device-independent)."""
    gen = torch.Generator().manual_seed(int(cfg.seed))
    w_scale, h_scale = cfg.n_in ** -0.5, cfg.d ** -0.5
    W_teacher0 = _uniform((cfg.d, cfg.n_in), w_scale, gen)
    dW = _uniform((cfg.d, cfg.n_in), w_scale, gen)
    W_student_random = _uniform((cfg.d, cfg.n_in), w_scale, gen)
    A = _uniform((cfg.m, cfg.d), h_scale, gen)
    C = _uniform((cfg.K, cfg.d), h_scale, gen)
    if cfg.noise == "uniform":
        X = _uniform((cfg.n_in, cfg.N), 1.0, gen)
        X_test = _uniform((cfg.n_in, cfg.n_test), 1.0, gen)
    else:
        X = torch.randn((cfg.n_in, cfg.N), generator=gen, dtype=torch.float64)
        X_test = torch.randn((cfg.n_in, cfg.n_test), generator=gen, dtype=torch.float64)
    WT = W_teacher0 + dW
    W0 = W_teacher0.clone() if cfg.init == "shared" else W_student_random
    dev = torch.device(device)
    return LinearProblem(*(t.to(dev) for t in (W0, WT, A, C, X, X_test)))


def distillation_loss(W: torch.Tensor, p: LinearProblem) -> torch.Tensor:
    """The protocol's loss: ``mse_loss`` (mean over m × N) of student vs teacher aux logits."""
    return F.mse_loss(p.A @ W @ p.X, p.A @ p.WT @ p.X)


def train(cfg: LinearConfig, problem: LinearProblem) -> torch.Tensor:
    """Distil; returns every iterate, shape ``(steps + 1, d, n_in)`` (``[0]`` is ``W0``).

    On the CPU the loop runs single-threaded: the matrices are tiny, and thread
    hand-offs cost ~30× the arithmetic on a loaded machine.
    """
    if problem.W0.device.type == "cpu":
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return _train(cfg, problem)
        finally:
            torch.set_num_threads(threads)
    return _train(cfg, problem)


def _train(cfg: LinearConfig, problem: LinearProblem) -> torch.Tensor:
    W = problem.W0.clone().requires_grad_(True)
    traj = torch.empty((cfg.steps + 1, *W.shape), dtype=W.dtype, device=W.device)
    traj[0] = W.detach()
    opt = torch.optim.Adam([W], lr=cfg.lr) if cfg.optimizer == "adam" else None
    for k in range(cfg.steps):
        loss = distillation_loss(W, problem)
        (grad,) = torch.autograd.grad(loss, W)
        with torch.no_grad():
            if opt is None:
                W -= cfg.lr * grad
            else:
                W.grad = grad
                opt.step()
            traj[k + 1] = W
    return traj
