"""Batched run metrics, computed on the device for all members at once.

* linear CKA (Kornblith et al. 2019) between two representations of the same samples,
  ``||Y_c^T X_c||_F^2 / (||X_c^T X_c||_F ||Y_c^T Y_c||_F)`` with column-centred X, Y,
  accumulated over chunks in feature space (sums and Gram matrices) or, for very wide
  layers, in sample space on a fixed subset of samples (identical value for the same samples);
* head geometry: the head-overlap index tau = tr(C P_A C^T) / tr(C C^T), the cosines of the
  principal angles between row(C) and row(A), the extreme singular values of A, and the
  pseudo-inverse A^+ used by the oracle projected student (theory R1.1/R1.3);
* weight-space cosines per layer.
"""

from __future__ import annotations

import torch


class CKA:
    """Linear CKA between per-member representations X ``[S, n, dx]`` and Y ``[S, n, dy]`` fed in chunks."""

    def __init__(self):
        self.n = 0
        self.sx = self.sy = self.xx = self.yy = self.yx = None

    def update(self, x: torch.Tensor, y: torch.Tensor) -> None:
        x64, y64 = x.double(), y.double()
        xs, ys = x64.sum(1), y64.sum(1)
        xx = torch.bmm(x.transpose(1, 2), x).double()
        yy = torch.bmm(y.transpose(1, 2), y).double()
        yx = torch.bmm(y.transpose(1, 2), x).double()
        if self.n == 0:
            self.sx, self.sy, self.xx, self.yy, self.yx = xs, ys, xx, yy, yx
        else:
            self.sx += xs
            self.sy += ys
            self.xx += xx
            self.yy += yy
            self.yx += yx
        self.n += x.shape[1]

    def value(self) -> torch.Tensor:
        n = self.n
        mx, my = self.sx / n, self.sy / n
        cxx = self.xx - n * mx.unsqueeze(2) * mx.unsqueeze(1)
        cyy = self.yy - n * my.unsqueeze(2) * my.unsqueeze(1)
        cyx = self.yx - n * my.unsqueeze(2) * mx.unsqueeze(1)
        num = cyx.pow(2).sum((1, 2))
        den = cxx.pow(2).sum((1, 2)).sqrt() * cyy.pow(2).sum((1, 2)).sqrt()
        return num / den.clamp_min(1e-300)


def cka_sample_space(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Linear CKA from centred Gram matrices (``[S, n, n]``); for layers wider than the sample count."""
    x = x.double() - x.double().mean(1, keepdim=True)
    y = y.double() - y.double().mean(1, keepdim=True)
    kx = torch.bmm(x, x.transpose(1, 2))
    ky = torch.bmm(y, y.transpose(1, 2))
    num = (kx * ky).sum((1, 2))
    den = kx.pow(2).sum((1, 2)).sqrt() * ky.pow(2).sum((1, 2)).sqrt()
    return num / den.clamp_min(1e-300)


def _row_basis(mat: torch.Tensor):
    """SVD of ``[S, r, d]`` (float64): singular values, and an orthonormal basis of the row space
    as ``[S, d, k]`` with columns beyond each member's rank zeroed; also the rank mask."""
    u, sv, vh = torch.linalg.svd(mat, full_matrices=False)
    tol = sv[:, :1] * max(mat.shape[-2:]) * torch.finfo(sv.dtype).eps
    keep = sv > tol
    basis = vh.transpose(1, 2) * keep.unsqueeze(1)
    return u, sv, vh, keep, basis


def head_geometry(c: torch.Tensor, a: torch.Tensor) -> dict[str, torch.Tensor]:
    """Head metrics for class heads ``c [S, K, d]`` and aux heads ``a [S, m, d]`` (same m for all members).

    Returns ``tau [S]``, ``principal_cos [S, min(K, m, d)]`` (descending), ``sigma_min``/``sigma_max``
    of A ``[S]``, and ``pinv [S, d, m]`` (A^+, float64).
    """
    c64, a64 = c.double(), a.double()
    ua, sa, vha, keep_a, qa = _row_basis(a64)
    _, _, _, _, qc = _row_basis(c64)
    tau = torch.bmm(c64, qa).pow(2).sum((1, 2)) / c64.pow(2).sum((1, 2)).clamp_min(1e-300)
    cos = torch.linalg.svdvals(torch.bmm(qc.transpose(1, 2), qa))
    k = min(c.shape[1], a.shape[1], c.shape[2])
    inv = torch.where(keep_a, 1.0 / sa.clamp_min(1e-300), torch.zeros_like(sa))
    pinv = torch.bmm(vha.transpose(1, 2) * inv.unsqueeze(1), ua.transpose(1, 2))
    smin = sa[:, min(a.shape[1], a.shape[2]) - 1]  # the min(m, d)-th singular value (0 if rank-deficient)
    return {"tau": tau, "principal_cos": cos[:, :k].clamp(max=1.0), "sigma_min": smin, "sigma_max": sa[:, 0],
            "pinv": pinv}


def cosine(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-member cosine between flattened tensors ``[S, ...]``."""
    xf, yf = x.reshape(x.shape[0], -1).double(), y.reshape(y.shape[0], -1).double()
    return (xf * yf).sum(1) / (xf.norm(dim=1) * yf.norm(dim=1)).clamp_min(1e-300)
