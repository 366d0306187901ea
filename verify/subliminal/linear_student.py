"""The exact linearised student: the linear model of :mod:`.predict`, trained by the student's own optimiser.

The prediction makes two approximations. (1) *Linearisation*: the student's aux logits are linear in its
parameters around θ_S0,

    z_lin(x; δ) = (h₀(x) + J_h(x) δ_body) A₀ᵀ + a₀ + h₀(x) δAᵀ + δa,

driven to the target of predict's rule (``z + J Δ*``, or :func:`~.predict.linear_target`: the teacher
linearised around the shared body, or the teacher itself). (2) *Optimiser model*: Adam on that linear model is
a frozen diagonal preconditioner with momentum, in Kronecker-factored form (theory ``kronecker-response``,
``stochastic-response-mean``). This module keeps (1) and removes (2): it trains δ with ``torch.optim.Adam``
(the student's learning rate, steps, batch size and noise law) on ``mean (z_lin − target)²``, with the body's
forward-mode tangent at θ_S0 (exact for ReLU off the kinks). Student vs this measures the linearisation's error;
this vs the prediction measures the optimiser model's. It trains, so it costs about as much as the student
(a diagnostic, not a prediction within the cost budget); it reads only the pre-run view.
"""

from __future__ import annotations

import torch

from . import nets
from .config import derived_seed
from .engine import PreRunModels
from .predict import _noise, body_layers, linear_target, relu_forward, resolve_target, tangent, teacher_displacement


def linear_aux_logits(layers, head, body_delta, head_delta, acts, masks) -> torch.Tensor:
    """``z_lin = (h₀ + J_h δ_body) A₀ᵀ + a₀ + h₀ δAᵀ + δa`` at the point of ``acts``/``masks`` (first order in δ)."""
    (A, a), (dA, da) = head, head_delta
    h = acts[-1]
    return (h + tangent(layers, body_delta, acts, masks)) @ A.T + a + h @ dA.T + da


def linearised_student(pre: PreRunModels, data, *, target: str = "auto", device=None) -> dict:
    """``{"params": θ_S0 + δ_T, "target": kind, "loss_last": final epoch's mean aux loss of the linear model}``."""
    kind = resolve_target(pre, target, "linearised_student")
    cfg, spec = pre.config, pre.student_spec
    dev = torch.device(device) if device is not None else pre.student_init["aux_head"][0].device
    s0 = {k: (w.to(dev, torch.float32), b.to(dev, torch.float32)) for k, (w, b) in pre.student_init.items()}
    body = [lyr.name for lyr in spec.body]
    L0, head0 = body_layers(s0, spec), s0["aux_head"]
    delta_T = teacher_displacement(pre, kind, dev)
    flags = cfg.trainable_flags("student")
    delta = {n: (torch.zeros_like(s0[n][0]), torch.zeros_like(s0[n][1])) for n in body + ["aux_head"]}
    leaves = [t for n, pair in delta.items() if flags.get(n, True) for t in pair]
    for t in leaves:
        t.requires_grad_(True)
    opt = torch.optim.Adam(leaves, lr=cfg.student_lr, foreach=True)
    shape = tuple(data.image_shape)
    gen = nets.generator(derived_seed(cfg.seed, "linear_student_noise"), dev)
    B = cfg.noise_batch
    pool = _noise(cfg, cfg.noise_pool, gen, shape, dev, data.normalization) if cfg.noise_pool is not None else None
    steps, last = cfg.student_steps_per_epoch, torch.zeros((), device=dev, dtype=torch.float64)
    for epoch in range(cfg.student_epochs):
        for step in range(steps):
            x = _noise(cfg, B, gen, shape, dev, data.normalization) if pool is None else pool[step * B:(step + 1) * B]
            with torch.no_grad():
                acts, masks = relu_forward(L0, x)
                zt = (acts[-1] @ head0[0].T + head0[1] if kind == "reachable"
                      else linear_target(pre, kind, x, acts, masks, L0, head0, delta_T))
            # reachable: z_lin(δ) − z_lin(Δ*) = z_lin(δ − Δ*) − z₀, which avoids a cancellation
            d = {n: (dw - delta_T[n][0], db - delta_T[n][1]) for n, (dw, db) in delta.items()} if kind == "reachable" \
                else delta
            z = linear_aux_logits(L0, head0, [d[n] for n in body], d["aux_head"], acts, masks)
            loss = (z - zt).pow(2).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if epoch == cfg.student_epochs - 1:
                last += loss.detach().double()
    params = {k: (w.clone(), b.clone()) for k, (w, b) in s0.items()}
    for n, (dw, db) in delta.items():
        params[n] = (params[n][0] + dw.detach(), params[n][1] + db.detach())
    return {"params": params, "target": kind, "loss_last": float(last) / max(steps, 1)}
