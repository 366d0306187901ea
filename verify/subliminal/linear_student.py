"""The exact linearised student: the linear model of :mod:`.predict`, trained by the student's own optimiser.

The prediction makes two approximations. (1) *Linearisation*: the student's aux logits are linear in its
parameters around θ_S0,

    z_lin(x; δ) = (h₀(x) + J_h(x) δ_body) A₀ᵀ + a₀ + h₀(x) δAᵀ + δa,

driven to the target of predict's rule (``z + J Δ*``, or :func:`~.predict.linear_target`: the teacher
linearised around the shared body, or the teacher itself). (2) *Optimiser model*: Adam on that linear model is
a frozen diagonal preconditioner with momentum, in Kronecker-factored form (theory ``kronecker-response``,
``stochastic-response-mean``). This module keeps (1) and removes (2): it trains δ with ``torch.optim.Adam``
(the student's learning rate, steps, batch size and noise law) on ``mean (z_lin − target)²``, with the body's
forward-mode tangent at θ_S0 (exact for ReLU off the kinks) and the loss's gradient in closed form
(:func:`mse_gradients`: back-propagation at θ_S0, no autograd graph). Student vs this measures the linearisation's error;
this vs the prediction measures the optimiser model's. It trains, so it costs about as much as the student
(a diagnostic, not a prediction within the cost budget); it reads only the pre-run view.

Two options split the optimiser model's error further. ``optimiser="frozen"`` replaces Adam by the response's
own optimiser model on the exact linear model: momentum descent with the preconditioner ``D = 1/√v`` frozen at
Adam's second moment at θ_S0 (the training batch size, :data:`~.predict.MOMENT_BATCHES` batches) and one
step-size schedule for all layers, ``η_t = η (ê_t/ê_1)^{-1/2}`` with ``ê_t`` the bias-corrected β2-average of the
batch gradient energy ``Σ D g_t²`` (``theory.schedule_step``) -- the preconditioned response with the exact
Gauss–Newton matrix G in place of its Kronecker factors. ``blocks=[[layer, ...], ...]`` drops the curvature
between groups of layers: each group's gradient is taken with the other groups' δ at zero,
``g_k = G_kk δ_k + b_k`` (G block-diagonal over the groups, forcing exact), the coupling the Kronecker model
leaves out.
"""

from __future__ import annotations

import torch

from limen import theory

from . import nets
from .config import derived_seed
from .engine import PreRunModels
from .predict import (MOMENT_BATCHES, _noise, backward, body_layers, linear_target, relu_forward, resolve_target,
                      tangent, teacher_displacement)

OPTIMISERS = ("adam", "frozen")


def linear_aux_logits(layers, head, body_delta, head_delta, acts, masks) -> torch.Tensor:
    """``z_lin = (h₀ + J_h δ_body) A₀ᵀ + a₀ + h₀ δAᵀ + δa`` at the point of ``acts``/``masks`` (first order in δ)."""
    (A, a), (dA, da) = head, head_delta
    h = acts[-1]
    return (h + tangent(layers, body_delta, acts, masks)) @ A.T + a + h @ dA.T + da


def mse_gradients(layers, head, residual, acts, masks) -> list:
    """Gradients of ``mean (z_lin − target)²`` w.r.t. every body layer's and the aux head's ``(W, b)``, from its
    ``residual = z_lin − target`` at the point of ``acts``/``masks``: with ``r = 2 residual/(B m)``, the body's
    ``J_hᵀ (r A₀)`` (:func:`~.predict.backward`) and the head's ``(rᵀ h₀, Σ_x r)``."""
    r = residual * (2.0 / residual.numel())
    return [*backward(layers, head[0], r, acts, masks), (r.T @ acts[-1], r.sum(0))]


def noise_stream(cfg, data, dev):
    """``draw(n)``: the next ``n`` noise samples of the linear students' own stream (seeded from ``cfg.seed``, apart
    from the training run's), as training draws them."""
    gen = nets.generator(derived_seed(cfg.seed, "linear_student_noise"), dev)
    return lambda n: _noise(cfg, n, gen, tuple(data.image_shape), dev, data.normalization)


def _batches(cfg, data, dev):
    """``batch(step)``: the noise batch of every step, as training draws it (fresh, or slices of the fixed pool), from
    :func:`noise_stream`."""
    draw, B = noise_stream(cfg, data, dev), cfg.noise_batch
    pool = draw(cfg.noise_pool) if cfg.noise_pool is not None else None
    return lambda step: draw(B) if pool is None else pool[step * B:(step + 1) * B]


def _start(pre: PreRunModels, device):
    """Device, float32 initial parameters, body layer names, a zero displacement δ per body layer and aux head, and
    the layers the student trains."""
    dev = torch.device(device) if device is not None else pre.student_init["aux_head"][0].device
    s0 = {k: (w.to(dev, torch.float32), b.to(dev, torch.float32)) for k, (w, b) in pre.student_init.items()}
    body = [lyr.name for lyr in pre.student_spec.body]
    delta = {n: (torch.zeros_like(s0[n][0]), torch.zeros_like(s0[n][1])) for n in body + ["aux_head"]}
    flags = pre.config.trainable_flags("student")
    return dev, s0, body, delta, [n for n in delta if flags.get(n, True)]


def _moved(s0, delta) -> dict:
    """``θ_S0 + δ`` (every layer δ does not name stays at θ_S0)."""
    params = {n: (w.clone(), b.clone()) for n, (w, b) in s0.items()}
    for n, (dw, db) in delta.items():
        params[n] = (params[n][0] + dw.detach(), params[n][1] + db.detach())
    return params


def _groups(blocks, trained: list[str]) -> list[list[str]]:
    """The layer groups of ``blocks`` (default: one group of every trained layer), validated against ``trained``."""
    if blocks is None:
        return [list(trained)]
    groups = [[str(n) for n in g] for g in blocks]
    named = [n for g in groups for n in g]
    if any(not g for g in groups) or sorted(named) != sorted(trained):
        raise ValueError(f"blocks must split the trained layers {trained} into non-empty groups, each layer once; "
                         f"got {blocks!r}")
    return groups


@torch.no_grad()
def linearised_student(pre: PreRunModels, data, *, target: str = "auto", device=None, optimiser: str = "adam",
                       blocks=None) -> dict:
    """``{"params": θ_S0 + δ_T, "target": kind, "loss_last": final epoch's mean aux loss of the linear model}``;
    ``optimiser`` and ``blocks``: see the module docstring."""
    if optimiser not in OPTIMISERS:
        raise ValueError(f"optimiser must be one of {', '.join(OPTIMISERS)}, got {optimiser!r}")
    kind = resolve_target(pre, target, "linearised_student")
    cfg = pre.config
    dev, s0, body, delta, trained = _start(pre, device)
    L0, head0 = body_layers(s0, pre.student_spec), s0["aux_head"]
    delta_T = teacher_displacement(pre, kind, dev)
    groups = _groups(blocks, trained)
    leaves = [t for n in trained for t in delta[n]]
    opt = torch.optim.Adam(leaves, lr=cfg.student_lr, fused=True) if optimiser == "adam" else None
    batch = _batches(cfg, data, dev)
    steps, last = cfg.student_steps_per_epoch, torch.zeros((), device=dev, dtype=torch.float64)

    def residual(point, group=None):
        """``z_lin − target`` at ``point``, with only ``group``'s δ (default: every layer's). Reachable target:
        ``z_lin(δ) − z_lin(Δ*) = z_lin(δ − Δ*) − z₀``, which avoids a cancellation; outside the group it sees only
        the group's part of Δ* (as the Kronecker model), the others the exact forcing."""
        acts, masks, zt = point
        d = {n: ((dw - delta_T[n][0], db - delta_T[n][1]) if kind == "reachable" else (dw, db))
             if group is None or n in group else (torch.zeros_like(dw), torch.zeros_like(db))
             for n, (dw, db) in delta.items()}
        return linear_aux_logits(L0, head0, [d[n] for n in body], d["aux_head"], acts, masks) - zt

    def loss_and_grads(x, want_loss: bool):
        """The aux loss on ``x`` (when wanted) and its gradient, group by group (G block-diagonal over the groups)."""
        acts, masks = relu_forward(L0, x)
        zt = (acts[-1] @ head0[0].T + head0[1] if kind == "reachable"
              else linear_target(pre, kind, x, acts, masks, L0, head0, delta_T))
        point, grads, loss = (acts, masks, zt), {}, None
        for group in groups:
            res = residual(point, None if len(groups) == 1 else group)
            if want_loss and len(groups) == 1:
                loss = res.pow(2).mean()
            g = dict(zip(body + ["aux_head"], mse_gradients(L0, head0, res, acts, masks)))
            grads.update({n: g[n] for n in group})
        if want_loss and loss is None:
            loss = residual(point).pow(2).mean()
        return loss, [g for n in trained for g in grads[n]]

    if optimiser == "frozen":
        v = [torch.zeros_like(t) for t in leaves]
        for i in range(MOMENT_BATCHES):   # the batches training sees (fresh noise, or the pool's)
            for vi, gi in zip(v, loss_and_grads(batch(i % steps), False)[1]):
                vi += gi * gi / MOMENT_BATCHES
        precond = [torch.where(vi > 0, vi.rsqrt(), torch.zeros_like(vi)) for vi in v]   # no gradient: no move
        mom = [torch.zeros_like(t) for t in leaves]
        acc, energy_1 = torch.zeros((), device=dev, dtype=torch.float64), None
    for epoch in range(cfg.student_epochs):
        for step in range(steps):
            loss, grads = loss_and_grads(batch(step), epoch == cfg.student_epochs - 1)
            t = epoch * steps + step + 1   # Adam's step count
            if optimiser == "adam":
                for leaf, g in zip(leaves, grads):
                    leaf.grad = g
                opt.step()
            else:
                energy = sum((dm * g * g).sum() for dm, g in zip(precond, grads)).double()
                energy_1 = energy if energy_1 is None else energy_1   # tensors: no host sync per step
                acc, scale = theory.schedule_step(acc, torch.where(energy_1 > 0, energy / energy_1, 1.0), t)
                scale = scale.float()
                for leaf, mi, dm, g in zip(leaves, mom, precond, grads):
                    mi.mul_(theory.response.BETA1).add_(g, alpha=1.0 - theory.response.BETA1)
                    leaf.sub_(cfg.student_lr * scale * dm * mi / (1.0 - theory.response.BETA1 ** t))
            if epoch == cfg.student_epochs - 1:
                last += loss.double()
    return {"params": _moved(s0, delta), "target": kind, "loss_last": float(last) / max(steps, 1)}


def partial_aux_logits(layers, head, body_delta, head_delta, x, k: int) -> torch.Tensor:
    """Aux logits with the body at first order below layer ``k`` (``a_k⁰ + J_{a_k} δ_{<k}``, gates of layers < k
    fixed at θ_S0) and the layers from ``k`` on and the head exact at ``θ + δ`` (``k = 0``: the real network)."""
    acts, masks = relu_forward(layers[:k], x)
    h = acts[-1] if k == 0 else acts[-1] + tangent(layers[:k], body_delta[:k], acts, masks)
    for (w, b), (dw, db) in zip(layers[k:], body_delta[k:]):
        h = torch.relu(h @ (w + dw).T + b + db)
    (A, a), (dA, da) = head, head_delta
    return h @ (A + dA).T + a + da


def partially_linearised_student(pre: PreRunModels, data, nonlinear_from: str, *, device=None) -> dict:
    """The student with its body at first order *below* layer ``nonlinear_from`` and exact from there on:

        a_k(x; δ) = a_k⁰(x) + J_{a_k}(x) δ_{<k},   h = ReLU-MLP_{≥k}(a_k; θ_{≥k} + δ_{≥k}),   z = h (A₀ + δA)ᵀ + a₀ + δa,

    trained by Adam like :func:`linearised_student` (same optimiser settings and noise stream) to the teacher's aux
    logits ``z_T(x)`` on noise; returns ``{"params": θ_S0 + δ, "target": "function", "loss_last"}`` (evaluate
    through the real network).
    ``nonlinear_from`` = the first body layer is the real network (a replica of the student on another noise
    stream); the last one keeps only the last hidden layer's gates and the head's product exact. A diagnostic of
    *where* the student leaves first order: it costs a training run.
    """
    resolve_target(pre, "function", "partially_linearised_student")   # a pre-run view of a ReLU MLP body
    cfg = pre.config
    dev, s0, body, delta, trained = _start(pre, device)
    if nonlinear_from not in body:
        raise ValueError(f"nonlinear_from must name a body layer ({', '.join(body)}), got {nonlinear_from!r}")
    L0, (A0, a0), k = body_layers(s0, pre.student_spec), s0["aux_head"], body.index(nonlinear_from)
    leaves = [t.requires_grad_(True) for n in trained for t in delta[n]]
    opt = torch.optim.Adam(leaves, lr=cfg.student_lr, fused=True)
    batch = _batches(cfg, data, dev)
    steps, last = cfg.student_steps_per_epoch, torch.zeros((), device=dev, dtype=torch.float64)
    for epoch in range(cfg.student_epochs):
        for step in range(steps):
            x = batch(step)
            with torch.no_grad():
                zt = linear_target(pre, "function", x, None, None, L0, (A0, a0), None)
            z = partial_aux_logits(L0, (A0, a0), [delta[n] for n in body], delta["aux_head"], x, k)
            loss = (z - zt).pow(2).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if epoch == cfg.student_epochs - 1:
                last += loss.detach().double()
    return {"params": _moved(s0, delta), "target": "function", "loss_last": float(last) / max(steps, 1)}

