"""Distillation noise: uniform U[-1, 1] (reference default), normal N(0, 1), Perlin.

Every member draws from its **own** generator on the run's device, one call per member
per step, exactly as the reference draws ``torch.rand(B, 1, 28, 28)`` from the device's
global RNG after seeding it with ``derived_seed(seed, "student_training_noise")``. So a
member's noise does not depend on which other runs share its batch (ensemble == separate
runs), and a CPU run draws the same uniform/normal noise as the reference on the CPU.
"""

from __future__ import annotations

import math

import torch


def draw(kind: str, gens: list[torch.Generator], batch: int, shape: tuple[int, ...], device,
         perlin_res: int = 4, normalization: tuple[float, float] | None = None) -> torch.Tensor:
    """One noise batch per member: ``[S, batch, *shape]``.

    ``normalization=(mean, std)`` applies ``(x - mean) / std`` (the reference's ``--normalize-noise``).
    """
    s = len(gens)
    if kind == "perlin":
        out = perlin(gens, batch, shape, perlin_res, device)
    else:
        out = torch.empty((s, batch, *shape), device=device)
        for i, g in enumerate(gens):
            if kind == "uniform":
                out[i].uniform_(0.0, 1.0, generator=g)  # == torch.rand
            elif kind == "normal":
                out[i].normal_(generator=g)             # == torch.randn
            else:
                raise ValueError(f"unknown noise {kind!r}")
        if kind == "uniform":
            out.mul_(2.0).sub_(1.0)
    if normalization is not None:
        mean, std = normalization
        out.sub_(mean).div_(std)
    return out


def _fade(t: torch.Tensor) -> torch.Tensor:
    return t * t * t * (t * (t * 6 - 15) + 10)  # 6t^5 - 15t^4 + 10t^3


def perlin(gens: list[torch.Generator], batch: int, shape: tuple[int, ...], res: int, device) -> torch.Tensor:
    """2-D Perlin gradient noise, one independent field per sample and channel.

    Random unit gradients (uniform angle) on a ``(res+1) x (res+1)`` lattice spanning the image,
    quintic fade ``6t^5 - 15t^4 + 10t^3``, bilinear blending of the four corner dot products;
    each field is scaled by its own max |value| into [-1, 1] (reference ``sample_perlin_noise``).
    Pixel ``i`` of ``H`` sits at lattice coordinate ``i * res / H``.
    """
    s = len(gens)
    if len(shape) == 3:
        c, h, w = shape
    elif len(shape) == 1:
        c, h, w = 1, 1, shape[0]
    else:
        raise ValueError(f"perlin noise needs an image shape (C, H, W), got {shape}")
    angles = torch.empty((s, batch, c, res + 1, res + 1), device=device)
    for i, g in enumerate(gens):
        angles[i].uniform_(0.0, 1.0, generator=g)
    angles.mul_(2 * math.pi)
    gx, gy = torch.cos(angles), torch.sin(angles)
    ys = torch.arange(h, device=device, dtype=torch.float32) * (res / h)
    xs = torch.arange(w, device=device, dtype=torch.float32) * (res / w)
    y0, x0 = ys.floor().long(), xs.floor().long()
    fy, fx = (ys - y0)[:, None], (xs - x0)[None, :]  # [H,1], [1,W]

    def corner(dy: int, dx: int) -> torch.Tensor:
        yi, xi = (y0 + dy)[:, None], (x0 + dx)[None, :]
        gxc = gx[..., yi, xi]  # [S,B,C,H,W]
        gyc = gy[..., yi, xi]
        return gxc * (fx - dx) + gyc * (fy - dy)

    n00, n01, n10, n11 = corner(0, 0), corner(0, 1), corner(1, 0), corner(1, 1)
    u, v = _fade(fx), _fade(fy)
    top = n00 + u * (n01 - n00)
    bot = n10 + u * (n11 - n10)
    field = top + v * (bot - top)
    scale = field.abs().amax(dim=(-2, -1), keepdim=True).clamp_min(1e-12)
    field = field / scale
    return field.reshape(s, batch, *shape)
