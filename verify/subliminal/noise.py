"""Distillation noise: uniform U[-1, 1] (reference default), normal N(0, 1), Perlin.

Two random-number schemes, both giving every member its own stream, so that a member's
noise never depends on which other runs share its batch (ensemble == separate runs):

* ``generator`` (CPU always; CUDA without Triton): each member draws from its own
  ``torch.Generator`` seeded ``derived_seed(seed, "student_training_noise")``, one call per
  member per step -- exactly as the reference draws ``torch.rand(B, 1, 28, 28)`` from the
  global RNG after seeding it with that seed. A CPU run draws the reference's CPU noise.
* ``philox`` (CUDA with Triton, for the per-step training noise): one kernel per step fills
  every member's batch from counter-based Philox-4x32 streams keyed by
  ``(derived_seed(seed, "student_training_noise") mod 2^32) + step * 2^32`` with counters
  0..B*n-1 (``tl.rand``/``tl.randn``). One launch instead of S, same statistics, deterministic,
  independent of the group; the values differ from the ``generator`` scheme.

:class:`TrainingNoise` hides which of these (or a fixed noise pool) a group's distillation uses.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch

from .config import derived_seed

try:  # optional: the fused per-member Philox noise kernel on CUDA
    import triton
    import triton.language as tl
except ImportError:  # pragma: no cover - CPU-only installs
    triton = None

NOISE_RNG_GENERATOR = "generator"
NOISE_RNG_PHILOX = "philox"


_PHILOX_OK: dict[str, bool] = {}


def philox_available(device) -> bool:
    """Triton is importable, ``device`` is CUDA, and the kernel compiled and ran once on it."""
    dev = torch.device(device)
    if triton is None or dev.type != "cuda":
        return False
    key = str(dev)
    if key not in _PHILOX_OK:
        try:
            x = draw_philox("uniform", philox_keys([1, 2], dev), 0, 3, (5,))
            _PHILOX_OK[key] = bool(torch.isfinite(x).all()) and float(x.abs().max()) <= 1.0
        except Exception as exc:  # noqa: BLE001 - any compile/launch failure: use the generator scheme
            import warnings
            warnings.warn(f"fused Philox noise unavailable on {dev} ({exc!r}); using per-member generators")
            _PHILOX_OK[key] = False
    return _PHILOX_OK[key]


if triton is not None:
    @triton.jit
    def _philox_kernel(out_ptr, keys_ptr, n, NORMAL: tl.constexpr, BLOCK: tl.constexpr):
        member = tl.program_id(1)
        offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
        mask = offs < n
        key = tl.load(keys_ptr + member)
        if NORMAL:
            r = tl.randn(key, offs)
        else:
            r = tl.rand(key, offs)
        tl.store(out_ptr + member.to(tl.int64) * n + offs, r, mask=mask)


def philox_keys(seeds: list[int], device) -> torch.Tensor:
    """Per-member base keys (low 32 bits of each stream seed) as an int64 device tensor."""
    return torch.tensor([s & 0xFFFFFFFF for s in seeds], dtype=torch.int64, device=device)


def draw_philox(kind: str, keys: torch.Tensor, step: int, batch: int, shape: tuple[int, ...],
                normalization: tuple[float, float] | None = None) -> torch.Tensor:
    """One training-noise batch per member from the Philox streams: ``[S, batch, *shape]``."""
    if kind not in ("uniform", "normal"):
        raise ValueError(f"philox noise supports uniform and normal, not {kind!r}")
    s = keys.shape[0]
    n = batch * math.prod(shape)
    out = torch.empty((s, batch, *shape), device=keys.device)
    step_keys = keys + (int(step) << 32)
    block = 4096
    _philox_kernel[(triton.cdiv(n, block), s)](out, step_keys, n, NORMAL=kind == "normal", BLOCK=block)
    return _scale(out, kind, normalization)


def _scale(out: torch.Tensor, kind: str, normalization: tuple[float, float] | None) -> torch.Tensor:
    """In place: U[0,1) -> U[-1,1) for uniform noise, then (x - mean) / std if ``normalization``."""
    if kind == "uniform":
        out.mul_(2.0).sub_(1.0)
    if normalization is not None:
        mean, std = normalization
        out.sub_(mean).div_(std)
    return out


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
    return _scale(out, kind, normalization)


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


def generators(seeds: Sequence[int], stream: str, device) -> list[torch.Generator]:
    gens = []
    for sd in seeds:
        g = torch.Generator(device=device)
        g.manual_seed(derived_seed(sd, stream))
        gens.append(g)
    return gens


class TrainingNoise:
    """The distillation inputs of a group's distinct noise streams (one per seed), batch by batch.

    Three schemes behind one call, :meth:`batch` ``(epoch, step) -> [U, noise_batch, *shape]``:
    fresh noise every step from per-stream generators (``generator``: the reference's streams) or
    from the fused Philox kernel (``philox``: CUDA, uniform/normal noise), or a fixed pool of
    ``noise_pool`` samples per stream (streams ``student_noise_pool``), reshuffled every epoch
    (``student_noise_shuffle``). ``scheme`` is what a record's ``run_info["noise_rng"]`` says.
    """

    def __init__(self, cfg, seeds: Sequence[int], shape: tuple[int, ...], device, rng: str,
                 normalization: tuple[float, float] | None = None):
        self.kind, self.batch_size, self.shape, self.device = cfg.noise, cfg.noise_batch, tuple(shape), device
        self.steps, self.pool_size = cfg.student_steps_per_epoch, cfg.noise_pool
        self._kw = dict(perlin_res=cfg.perlin_res, normalization=normalization)
        philox = self.pool_size is None and rng == NOISE_RNG_PHILOX and self.kind in ("uniform", "normal")
        self.scheme = NOISE_RNG_PHILOX if philox else NOISE_RNG_GENERATOR
        self._perm = None
        if philox:
            self._keys = philox_keys([derived_seed(sd, "student_training_noise") for sd in seeds], device)
        elif self.pool_size is None:
            self._gens = generators(seeds, "student_training_noise", device)
        else:
            gens = generators(seeds, "student_noise_pool", device)
            self._pool = torch.cat([draw(self.kind, gens, min(self.batch_size, self.pool_size - a), self.shape, device,
                                         **self._kw) for a in range(0, self.pool_size, self.batch_size)], dim=1)
            self._shuffle = generators(seeds, "student_noise_shuffle", device)

    def batch(self, epoch: int, step: int) -> torch.Tensor:
        """The noise batch of ``step`` in ``epoch``, per stream (steps in order; a pool reshuffles at step 0)."""
        if self.scheme == NOISE_RNG_PHILOX:
            return draw_philox(self.kind, self._keys, epoch * self.steps + step, self.batch_size, self.shape,
                               self._kw["normalization"])
        if self.pool_size is None:
            return draw(self.kind, self._gens, self.batch_size, self.shape, self.device, **self._kw)
        if step == 0:
            self._perm = torch.stack([torch.randperm(self.pool_size, generator=g, device=self.device)
                                      for g in self._shuffle])
        idx = self._perm[:, step * self.batch_size:(step + 1) * self.batch_size]
        return torch.gather(self._pool, 1, idx.view(len(self._shuffle), -1, *([1] * len(self.shape))).expand(
            -1, -1, *self.shape))
