"""The subsampled-Adam student: the real network, Adam's steps on a twentieth of the training's noise.

A model of the student's finite-time dynamics that keeps what every linear model of it loses -- the network's
nonlinearity, its gates moving, the coupling between layers -- and cuts the cost of training by using fewer noise
samples: ``T·⌈B/FRACTION⌉`` in all, against training's ``T·B`` (``B`` the training batch). With ``stride=k`` each
model step stands for ``k`` training steps: ``⌈T/k⌉`` steps of learning rate ``k·η`` with Adam's averages decaying by
``β1^k`` and ``β2^k`` per step, as they do over ``k`` training steps (for a constant gradient the bias-corrected
moments, and so the displacement, are those of ``k`` steps exactly); the default ``STRIDE = 1`` is training's own
time step. Each step draws ``b = k⌈B/FRACTION⌉`` fresh noise samples (at most ``B``), takes the real network's
gradient of ``mean (z_S(x) − z_T(x))²`` and makes Adam's update (the student's ε = 1e-8, bias correction) with the
second moment training would see at batch ``B`` (theory ``subsampled-adam-moment``):

    v ← β2 v + (1 − β2) v̂_B,   v̂_B = max(ḡ_b² − κ (mean_i g_i² − ḡ_b²), mean_i g_i² / B)   (b < B),

with the per-sample squares of a linear layer in closed form, ``mean_i g_i² = b (e²)ᵀ(a²)`` (``e`` the output
gradients of the mean loss, ``a`` the inputs). The floor keeps a single draw from going negative:
``μ² + σ²/B ≥ (μ² + σ²)/B`` in expectation. At ``b = B`` (``fraction=1``) κ = 0 and the model is Adam on the real
network (``fraction=1, stride=1``). Without the correction a small batch's larger second moment shrinks every step.

What it approximates: its steps keep the small sample's noise (B/b times training's variance per unit of
training time), which the student's drift does not see; a larger sample (``fraction`` 5–10) follows the students
more closely at full size. Its cost (``limen bench predict``, full size, 2-core CPU) is 11–18 % of the student's
training, above the 10 % budget; at b = 2 it still costs 10 %, the per-step work over every parameter (Adam's
update, the gradient and square buffers). ``stride=4`` cuts that work to a quarter and costs 6.4–9.3 %, but the
coarser time step follows the full-size students less well (pooled error 0.109 against 0.086, class-logit
correlation 0.59–0.70 against 0.74–0.76), so it is not the default. Computed from the pre-run view only (initial
student, trained teacher, noise law, optimiser settings). Fresh noise only: a fixed noise pool would be a different
pool at b per step.
"""

from __future__ import annotations

import dataclasses
import math

import torch

from limen import theory

from .engine import PreRunModels
from .linear_student import _batches, _start
from .predict import body_layers, linear_target, relu_forward, resolve_target

FRACTION = 20    # training's noise samples over the model's
STRIDE = 1       # training steps per model step
BETA1, BETA2, EPS = 0.9, 0.999, 1e-8   # torch.optim.Adam's defaults, as the student's optimiser


def subsampled_batch(train_batch: int, fraction: int = FRACTION) -> int:
    """``b = max(2, ⌈B / fraction⌉)`` (the variance estimate needs two samples), never above ``B``."""
    return min(int(train_batch), max(2, math.ceil(train_batch / fraction)))


def _grads_and_squares(weights, x, zt, grads, squares) -> None:
    """For ``weights = [(W, b), ...]`` (body layers, then the aux head): writes into ``grads[i] = (gW, gb)`` (any layer
    with ``None`` is skipped) the gradient of ``mean (z − zt)²`` over the ``n`` rows of ``x``, and into ``squares[i]``
    ``(e²)ᵀ(a²)`` and ``Σ_i e_i²``, 1/n of the mean of its squared per-sample gradients (back-propagation in closed
    form, ReLU body; ``e`` already carries the mean's 1/n, so the per-sample gradient is ``n e_i a_iᵀ``)."""
    acts, masks = relu_forward(weights[:-1], x)
    A, a = weights[-1]
    e = (acts[-1] @ A.T + a - zt) * (2.0 / zt.numel())
    for i in range(len(weights) - 1, -1, -1):
        if grads[i] is not None:
            e2 = e * e
            torch.matmul(e.T, acts[i], out=grads[i][0])
            torch.sum(e, 0, out=grads[i][1])
            torch.matmul(e2.T, acts[i] * acts[i], out=squares[i][0])
            torch.sum(e2, 0, out=squares[i][1])
        if i:
            e = (e @ weights[i][0]) * masks[i - 1]


@torch.no_grad()
def subsampled_student(pre: PreRunModels, data, *, fraction: int = FRACTION, stride: int = STRIDE,
                       device=None) -> dict:
    """``{"params": θ_S0 + δ, "target": "function", "batch": b, "steps": ⌈T/stride⌉}``: the module docstring's model
    (evaluate the parameters through the real network)."""
    resolve_target(pre, "function", "subsampled_student")   # a pre-run view of a ReLU MLP body
    cfg = pre.config
    if cfg.noise_pool is not None:
        raise ValueError("subsampled_student models fresh noise every step; this run uses a fixed noise pool "
                         f"(noise_pool={cfg.noise_pool})")
    for name, value in (("fraction", fraction), ("stride", stride)):
        if int(value) != value or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    k = int(stride)
    B, b = cfg.noise_batch, min(cfg.noise_batch, k * subsampled_batch(cfg.noise_batch, int(fraction)))
    if b < 2:
        raise ValueError(f"noise_batch must be at least 2 for the variance estimate, got {B}")
    dev, s0, body, _, trained = _start(pre, device)
    names = body + ["aux_head"]
    layers = dict(zip(names, body_layers(s0, pre.student_spec) + [s0["aux_head"]]))
    steps = math.ceil(cfg.student_epochs * cfg.student_steps_per_epoch / k)
    beta1, beta2, lr = BETA1 ** k, BETA2 ** k, cfg.student_lr * k
    draw = _batches(dataclasses.replace(cfg, noise_batch=b), data, dev)   # b fresh samples per step
    x_all = torch.cat([draw(t) for t in range(steps)])   # every step's batch, then the teacher's logits in one pass
    zt_all = torch.cat([linear_target(pre, "function", x_all[a:a + 4096], None, None, list(layers.values())[:-1],
                                      layers["aux_head"], None) for a in range(0, x_all.shape[0], 4096)])
    # the trained parameters, Adam's moments and each step's gradient and squares as flat buffers, updated in place
    # (one kernel per update, no allocation per step); θ[n], and each layer's gradient and squares, are views of them
    shapes = [t.shape for n in trained for t in layers[n]]
    sizes = [t.numel() for n in trained for t in layers[n]]
    flat = torch.cat([t.reshape(-1) for n in trained for t in layers[n]])
    m1, v2, g, sq, est, tmp = (torch.zeros_like(flat) for _ in range(6))
    a_g, c_sq = theory.subsampled_coefficients(b, B)   # v̂_B = a_g ḡ² − c_sq mean_i g_i², mean_i g_i² = b sq

    def per_layer(buffer, fill):
        views = iter(v.view(shape) for v, shape in zip(buffer.split(sizes), shapes))
        return [(next(views), next(views)) if n in trained else fill(n) for n in names]

    theta = per_layer(flat, lambda n: layers[n])
    grads, squares = per_layer(g, lambda n: None), per_layer(sq, lambda n: None)
    for t in range(1, steps + 1):
        rows = slice((t - 1) * b, t * b)
        _grads_and_squares(theta, x_all[rows], zt_all[rows], grads, squares)
        torch.mul(sq, -c_sq * b, out=est).addcmul_(g, g, value=a_g)   # v̂_B, in place
        if b < B:   # a single draw can go negative; at b = B the estimate is g² and this is Adam itself
            torch.maximum(est, torch.mul(sq, b / B, out=tmp), out=est)
        m1.lerp_(g, 1.0 - beta1)
        v2.lerp_(est, 1.0 - beta2)
        # Adam's step m̂/(√v̂ + ε) with the bias corrections folded into scalars: m/(√v + ε√c2) · √c2/c1
        c1, c2 = 1.0 - beta1 ** t, math.sqrt(1.0 - beta2 ** t)
        flat.addcdiv_(m1, torch.sqrt(v2, out=tmp).add_(EPS * c2), value=-lr * c2 / c1)
    moved = dict(zip(names, theta))
    return {"params": {**{name: (w.clone(), bias.clone()) for name, (w, bias) in s0.items()},
                       **{n: (moved[n][0].clone(), moved[n][1].clone()) for n in trained}},
            "target": "function", "batch": b, "steps": steps}
