"""The subsampled-Adam student: the real network, Adam's steps on a twentieth of the training's noise.

A model of the student's finite-time dynamics that keeps what every linear model of it loses -- the network's
nonlinearity, its gates moving, the coupling between layers -- and cuts the cost of training by using fewer noise
samples: ``T·⌈B/FRACTION⌉`` in all, against training's ``T·B`` (``B`` the training batch). With ``stride=k`` each
model step stands for ``k`` training steps: ``⌈T/k⌉`` steps of learning rate ``k·η`` with Adam's averages decaying by
``β1^k`` and ``β2^k`` per step, as they do over ``k`` training steps (for a constant gradient the bias-corrected
moments, and so the displacement, are those of ``k`` steps exactly); the default is ``STRIDE = 2`` (``stride=1``
is training's own time step). Each step draws ``b = k⌈B/FRACTION⌉`` fresh noise samples (at most ``B``), takes the
real network's gradient of ``mean (z_S(x) − z_T(x))²`` and makes Adam's update (the student's ε = 1e-8, bias
correction) with the second moment training would see at batch ``B`` (theory ``subsampled-adam-moment``):

    v ← β2 v + (1 − β2) v̂_B,   v̂_B = max(ḡ_b² − κ (mean_i g_i² − ḡ_b²), mean_i g_i² / B)   (b < B),

with the per-sample squares of a linear layer in closed form, ``mean_i g_i² = b (e²)ᵀ(a²)`` (``e`` the output
gradients of the mean loss, ``a`` the inputs). The floor keeps a single draw from going negative:
``μ² + σ²/B ≥ (μ² + σ²)/B`` in expectation. At ``b = B`` (``fraction=1``) κ = 0 and the model is Adam on the real
network (``fraction=1, stride=1``). Without the correction a small batch's larger second moment shrinks every step.

The first layer's weight gradient is the one whose drift the small sample loses: sampled as ``e xᵀ`` each
sample carries a random-sign input coordinate, and at full size the drift is 3–4 parts in 10⁴ of the per-sample
variance. With ``first_layer="integrated"`` that layer's weight gradient comes from :func:`first_layer_drift`,
integration by parts over the noise law (theory ``noise-integration-by-parts``), which moves the weight onto
derivatives, and so does its second moment: ``v̂_B = μ²(1 − 1/B) + mean_i g_i²/B`` (the same ``E[ḡ_B²]``) with μ the
drift and the per-sample squares ``(e²)ᵀ(x²)`` taken as ``Σ_i e_i² E[x²]`` from the noise law (each input coordinate
moves ``e`` by O(1/√d), so the two are nearly independent; this drops the last product with the batch's inputs),
where the sampled estimate's per-draw floor would be biased up about sixfold by the noise (its expectation
is near ``σ²/B + 0.48 σ²/b`` where the noise dominates). ``"sampled"`` is the plain model; ``"auto"`` (the default)
is ``"integrated"`` for uniform or normal noise and ``"sampled"`` for Perlin noise, whose coordinates are not
independent.

What it approximates: its steps keep the small sample's noise (B/b times training's variance per unit of
training time) in every other gradient, which the student's drift does not see, and the integrated first layer
drops the deeper layers' gate jumps; a larger sample (``fraction`` 5–10) follows the students more closely at full
size. Its cost (``limen bench predict``, full size, 2-core CPU) is 13.5–15.6 % of the student's training at the
default stride 2 with the integrated first layer, above the 10 % budget; the per-step work over every parameter
(Adam's update, the gradient and square buffers) is what a smaller b does not cut. Stride 4 costs less but
follows the full-size students less well (docs/theory.md §6), so it is not the default. Computed from the pre-run
view only (initial student, trained teacher, noise law, optimiser settings). Fresh noise only: a fixed noise pool
would be a different pool at b per step.
"""

from __future__ import annotations

import math

import torch

from limen import theory

from . import nets
from .config import derived_seed
from .engine import PreRunModels
from .linear_student import _start, noise_stream
from .predict import aux_forward, body_layers, noise_law, relu_forward, resolve_target

FRACTION = 20    # training's noise samples over the model's
STRIDE = 2       # training steps per model step
FIRST_LAYER = "auto"   # "integrated" (the first layer's drift by integration by parts) where the noise law allows it
KERNEL_WIDTH = 0.3   # the gate-crossing kernel's width, in standard deviations of each first-layer pre-activation
BETA1, BETA2, EPS = 0.9, 0.999, 1e-8   # torch.optim.Adam's defaults, as the student's optimiser


def subsampled_batch(train_batch: int, fraction: int = FRACTION) -> int:
    """``b = max(2, ⌈B / fraction⌉)`` (the variance estimate needs two samples), never above ``B``."""
    return min(int(train_batch), max(2, math.ceil(train_batch / fraction)))


def _grads_and_squares(weights, x, zt, grads, squares):
    """For ``weights = [(W, b), ...]`` (body layers, then the aux head): writes into ``grads[i] = (gW, gb)`` (a layer
    with ``None``, or a weight with ``gW = None``, is skipped, with its squares) the gradient of ``mean (z − zt)²`` over the ``n`` rows
    of ``x``, and into ``squares[i]`` ``(e²)ᵀ(a²)`` and ``Σ_i e_i²``, 1/n of the mean of its squared per-sample
    gradients (back-propagation in closed form, ReLU body; ``e`` already carries the mean's 1/n, so the per-sample
    gradient is ``n e_i a_iᵀ``). Returns the first layer's pre-activations, every layer's ReLU masks (in ``x``'s
    dtype: a boolean factor would be converted at every use), the output gradient ``e`` at the aux logits and ``e`` at
    the first layer's output before its mask."""
    W1, b1 = weights[0]
    s1 = x @ W1.T + b1
    acts, masks = relu_forward(weights[1:-1], torch.relu(s1))
    acts, masks = [x] + acts, [mask.to(x.dtype) for mask in [s1 > 0] + masks]
    A, a = weights[-1]
    e = out = (acts[-1] @ A.T + a - zt) * (2.0 / zt.numel())
    before = None
    for i in range(len(weights) - 1, -1, -1):
        if grads[i] is not None:
            e2 = e * e
            if grads[i][0] is not None:
                torch.matmul(e.T, acts[i], out=grads[i][0])
                torch.matmul(e2.T, acts[i] * acts[i], out=squares[i][0])
            torch.sum(e, 0, out=grads[i][1])
            torch.sum(e2, 0, out=squares[i][1])
        if i:
            e = before = e @ weights[i][0]
            e = e * masks[i - 1]
    return s1, masks, out, before


def _back_to_first(layers, masks, y):
    """``y`` at the aux logits (rows: samples) back-propagated through the head and the ReLU body to the first
    layer's output, before its own mask."""
    e = y @ layers[-1][0]
    for i in range(len(layers) - 2, 0, -1):
        e = (e * masks[i]) @ layers[i][0]
    return e


def teacher_pass(teacher, x, xi):
    """The teacher (``[(W, b), ...]``, ReLU body then aux head) on ``x``: its aux logits ``z_T``, and with a sketch
    ``ξ`` (rows: samples) the teacher's side of :func:`first_layer_drift`'s smooth term, ``(ξ J_T) W1_T`` (``None``
    without one). Neither depends on the student, so the model computes both once for every step's batch."""
    zt, masks = aux_forward(teacher, x)
    if xi is None:
        return zt, None
    masks = [mask.to(x.dtype) for mask in masks]
    return zt, (_back_to_first(teacher, masks, xi) * masks[0]) @ teacher[0][0]


def first_layer_drift(weights, x, s1, masks, before, xi, sketch_t, bias_grad, law, width=KERNEL_WIDTH, out=None):
    """The first layer's weight gradient ``E[e xᵀ]`` of ``mean (z − z_T)²`` by integration by parts over the noise
    (theory ``noise-integration-by-parts``; ``e`` the error at its pre-activations, ``c``, ``w``, ``var`` the noise
    law's centre, weight and variance; ``J``, ``J_T`` the aux logits' Jacobians in the student's and the teacher's
    first-layer pre-activations, ``q`` the error before the first layer's mask, n times ``before``):

        E[e xᵀ] = E[e] cᵀ + (2/m) E[Jᵀ (J W1 − J_T W1_T) ⊙ w(x)] + diag(E[δ(s1) q]) W1 var  (+ deeper gates' jumps),

    the first term from the bias gradient, the second with the Rademacher sketch ``xi`` over the m outputs
    (``E ξξᵀ = I``; ``sketch_t`` its teacher side from :func:`teacher_pass`), the third -- the first layer's own
    gates switching -- with a Gaussian kernel of ``width`` standard deviations of each pre-activation. The jumps of the
    deeper layers' gates are dropped: at θ_S0 of the full-size runs the estimate keeps 0.92–0.95 of the drift's
    direction, at a sixth to a hundredth of the sampled ``e xᵀ``'s mean squared error for the same samples
    (docs/theory.md §6). ``s1``, ``masks``, ``before``: the student's, from :func:`_grads_and_squares` on ``x``;
    written into ``out`` when given."""
    centre, var, weight = law
    n, m = xi.shape
    W1 = weights[0][0]
    v = _back_to_first(weights, masks, xi) * masks[0]
    smooth = torch.matmul(v.T, (v @ W1 - sketch_t) * weight(x), out=out).mul_(2.0 / (m * n))
    h = width * W1.norm(dim=1) * math.sqrt(var)
    own = (torch.exp(-0.5 * (s1 / h) ** 2) * before).sum(0) / (h * math.sqrt(2 * math.pi))
    return smooth.add_(W1 * (own * var)[:, None]).add_(bias_grad[:, None] * centre)


@torch.no_grad()
def subsampled_student(pre: PreRunModels, data, *, fraction: int = FRACTION, stride: int = STRIDE,
                       first_layer: str = FIRST_LAYER, device=None) -> dict:
    """``{"params": θ_S0 + δ, "target": "function", "batch": b, "steps": ⌈T/stride⌉, "first_layer": ...}``: the module
    docstring's model (evaluate the parameters through the real network). ``first_layer="integrated"`` gives both of
    Adam's moments the first layer's weight gradient from :func:`first_layer_drift` (uniform or normal noise),
    ``"sampled"`` the sampled one, ``"auto"`` (default) the first where the noise allows it."""
    resolve_target(pre, "function", "subsampled_student")   # a pre-run view of a ReLU MLP body
    cfg = pre.config
    if cfg.noise_pool is not None:
        raise ValueError("subsampled_student models fresh noise every step; this run uses a fixed noise pool "
                         f"(noise_pool={cfg.noise_pool})")
    if first_layer not in ("auto", "integrated", "sampled"):
        raise ValueError(f"first_layer must be 'auto', 'integrated' or 'sampled', got {first_layer!r}")
    law = noise_law(cfg, data.normalization) if first_layer != "sampled" else None
    if first_layer == "integrated" and law is None:
        raise ValueError(f"first_layer='integrated' needs independent uniform or normal noise coordinates, got "
                         f"noise={cfg.noise!r}; use first_layer='sampled' or 'auto'")
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
    x_all = noise_stream(cfg, data, dev)(steps * b)   # every step's batch, from the linear students' stream
    integrated = law is not None and body[0] in trained
    teacher = [(w.to(dev, torch.float32), bias.to(dev, torch.float32))
               for w, bias in body_layers(pre.teacher, pre.teacher_spec) + [pre.teacher["aux_head"]]]
    xi_all = None
    if integrated:   # the drift's Rademacher sketch over the m outputs, every step's at once
        gen = nets.generator(derived_seed(cfg.seed, "subsampled_sketch"), dev)
        xi_all = torch.randint(0, 2, (x_all.shape[0], teacher[-1][0].shape[0]), generator=gen,
                               device=dev).to(torch.float32).mul_(2).sub_(1)
    zt_all = x_all.new_empty((x_all.shape[0], teacher[-1][0].shape[0]))   # the teacher on all of them at once
    sketch_all = torch.empty_like(x_all) if integrated else None
    for a in range(0, x_all.shape[0], 4096):
        zt_all[a:a + 4096], sketch = teacher_pass(teacher, x_all[a:a + 4096], None if xi_all is None else xi_all[a:a + 4096])
        if integrated:
            sketch_all[a:a + 4096] = sketch
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
    # the first layer's weight gradient, and its v̂_B, come from the drift, not from the sample: the sampled v̂_B is
    # made only for the rest of the flat buffers (that weight is their first block)
    rest = slice(sizes[0] if integrated else 0, None)
    if integrated:
        drift, est_w1 = grads[0][0], per_layer(est, lambda n: None)[0][0]
        x2 = law[1] + law[0] ** 2   # E[x_j²] of every input coordinate
        grads[0] = (None, grads[0][1])
    for t in range(1, steps + 1):
        rows = slice((t - 1) * b, t * b)
        s1, masks, out, before = _grads_and_squares(theta, x_all[rows], zt_all[rows], grads, squares)
        if integrated:   # by integration by parts, from the bias gradient just computed
            first_layer_drift(theta, x_all[rows], s1, masks, before, xi_all[rows], sketch_all[rows], grads[0][1],
                              law, out=drift)
        torch.mul(sq[rest], -c_sq * b, out=est[rest]).addcmul_(g[rest], g[rest], value=a_g)   # v̂_B, in place
        if b < B:   # a single draw can go negative; at b = B the estimate is g² and this is Adam itself
            torch.maximum(est[rest], torch.mul(sq[rest], b / B, out=tmp[rest]), out=est[rest])
        if integrated:   # E[ḡ_B²] = μ²(1 − 1/B) + mean_i g_i² / B with μ the drift: no per-draw floor to bias it;
            # mean_i g_i² = b (e²)ᵀ(x²) taken as b Σ_i e_i² E[x²] (one coordinate moves e by O(1/√d))
            torch.mul(squares[0][1][:, None].expand_as(drift), x2 * b / B, out=est_w1).addcmul_(
                drift, drift, value=1.0 - 1.0 / B)
        m1.lerp_(g, 1.0 - beta1)
        v2.lerp_(est, 1.0 - beta2)
        # Adam's step m̂/(√v̂ + ε) with the bias corrections folded into scalars: m/(√v + ε√c2) · √c2/c1
        c1, c2 = 1.0 - beta1 ** t, math.sqrt(1.0 - beta2 ** t)
        flat.addcdiv_(m1, torch.sqrt(v2, out=tmp).add_(EPS * c2), value=-lr * c2 / c1)
    moved = dict(zip(names, theta))
    return {"params": {**{name: (w.clone(), bias.clone()) for name, (w, bias) in s0.items()},
                       **{n: (moved[n][0].clone(), moved[n][1].clone()) for n in trained}},
            "target": "function", "batch": b, "steps": steps, "first_layer": "integrated" if integrated else "sampled"}
