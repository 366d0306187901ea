"""Helpers of the batched training passes on stacked ``[S, ...]`` parameters.

Shapes of a run's networks (:func:`specs`), the reference's Gaussian weight perturbations
applied per member (:func:`apply_perturbations`), Adam on the trainable leaves
(:func:`adam`), and accuracy / cross-entropy on shared test inputs in memory-bounded
chunks (:func:`accuracy_ce`, :func:`eval_chunk`).
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F

from . import nets
from .config import KNOWN_DATA, TIMINGS, RunConfig, derived_seed


def image_shape(cfg: RunConfig) -> tuple[int, ...]:
    return (1, 8, 8) if cfg.data == "digits" else (1, 28, 28)


def n_classes(cfg: RunConfig) -> int:
    return cfg.n_classes or KNOWN_DATA[cfg.data]


def specs(cfg: RunConfig, m: int | None = None, shape: tuple[int, ...] | None = None):
    """Shapes (:class:`nets.NetSpec`) of the run's teacher and student (aux width ``m``, default ``cfg.m``)."""
    shape = shape or image_shape(cfg)
    k, m = n_classes(cfg), cfg.m if m is None else m
    return nets.build_spec(*cfg.arch_of("teacher"), shape, k, m), nets.build_spec(*cfg.arch_of("student"), shape, k, m)


def apply_perturbations(params: nets.Params, member: int, cfg: RunConfig, target: str, timings, names,
                        device, only: Sequence[str] | None = None, exclude: Sequence[str] = (),
                        m: int | None = None) -> None:
    """``W <- W + std * N(0, 1)`` for ``cfg``'s perturbations of ``target`` at ``timings``, on member ``member``.

    Each (perturbation index, timing, target, layer) draws from its own stream (weight, then bias);
    ``m`` restricts an aux-head perturbation to the member's own rows (padding stays zero).
    """
    for timing in TIMINGS:
        if timing not in timings:
            continue
        for idx, p in enumerate(cfg.perturb):
            if p.target != target or p.timing != timing or p.std == 0.0:
                continue
            for name in (names if "all" in p.layers else p.layers):
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


def clone(p: nets.Params) -> nets.Params:
    return {k: (w.detach().clone(), b.detach().clone()) for k, (w, b) in p.items()}


def freeze(p: nets.Params) -> None:
    for w, b in p.values():
        w.requires_grad_(False)
        b.requires_grad_(False)


def eval_chunk(n_members: int, widths: int, budget: int = 3 << 30) -> int:
    """Evaluation chunk (samples per member) so that a chunk's activations stay within ``budget`` bytes."""
    return int(max(128, min(10000, budget // max(1, n_members * widths * 4 * 4))))


@torch.no_grad()
def accuracy_ce(spec: nets.NetSpec, params: nets.Params, x: torch.Tensor, y: torch.Tensor, chunk: int):
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


def adam(params: nets.Params, trainable: dict[str, bool], lr: float, device, exclude=()) -> torch.optim.Adam | None:
    """Adam on the trainable leaves (``None`` when nothing trains); the others get ``requires_grad=False``."""
    leaves = []
    for name, (w, b) in params.items():
        on = trainable.get(name, True) and name not in exclude
        w.requires_grad_(on)
        b.requires_grad_(on)
        if on:
            leaves += [w, b]
    if not leaves:
        return None
    kw = {"fused": True} if device.type == "cuda" else {"foreach": True}
    return torch.optim.Adam(leaves, lr=lr, **kw)


def widths(spec: nets.NetSpec) -> int:
    """Activations per sample of a body (for sizing evaluation chunks)."""
    return sum(math.prod(lyr.out_shape) for lyr in spec.body)
