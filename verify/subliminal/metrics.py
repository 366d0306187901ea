"""Batched run metrics, computed on the device for all members at once.

* linear CKA (Kornblith et al. 2019) between two representations of the same samples,
  ``||Y_c^T X_c||_F^2 / (||X_c^T X_c||_F ||Y_c^T Y_c||_F)`` with column-centred X, Y,
  accumulated over chunks in feature space (sums and Gram matrices) or, for very wide
  layers, in sample space on a fixed subset of samples (identical value for the same samples);
* head geometry: the head-overlap index tau = tr(C P_A C^T) / tr(C C^T), the cosines of the
  principal angles between row(C) and row(A), the extreme singular values of A, and the
  pseudo-inverse A^+ used by the oracle projected student (theory R1.1/R1.3) -- all from
  Gram matrices with batched Cholesky/eigvalsh (float64), not per-matrix SVDs, for speed on GPUs;
* the oracle projected student's features h_S0 + A_S^+ (z_T - z_S0) (theory R1.1);
* weight-space cosines per layer.

These are limen's only implementations of tau, the principal cosines and the oracle student:
the engine calls them batched in its own dtype, :mod:`limen.verify.checks.measure` calls them
in float64 on one run, and the tests compare them with the float64 evaluators of
:mod:`limen.theory` (``head_overlap``, ``principal_angles``, ``feature_fixed_point``).
"""

from __future__ import annotations

import torch


class CKA:
    """Linear CKA between per-member representations X ``[S, n, dx]`` and Y ``[S, n, dy]`` fed in chunks.

    Sums are taken of the data shifted by the first chunk's mean (the "shifted data" algorithm),
    which keeps the centring exact to float precision even though ReLU features have large means;
    Gram matrices are formed in the features' dtype and accumulated in float64.
    """

    def __init__(self):
        self.n = 0
        self.cx = self.cy = None
        self.sx = self.sy = self.xx = self.yy = self.yx = None

    def update(self, x: torch.Tensor, y: torch.Tensor) -> None:
        if self.n == 0:
            self.cx, self.cy = x.mean(1, keepdim=True), y.mean(1, keepdim=True)
        x, y = x - self.cx, y - self.cy
        parts = (x.sum(1, dtype=torch.float64), y.sum(1, dtype=torch.float64),
                 torch.bmm(x.transpose(1, 2), x).double(), torch.bmm(y.transpose(1, 2), y).double(),
                 torch.bmm(y.transpose(1, 2), x).double())
        if self.n == 0:
            self.sx, self.sy, self.xx, self.yy, self.yx = parts
        else:
            for acc, part in zip((self.sx, self.sy, self.xx, self.yy, self.yx), parts):
                acc += part
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


def pinv_full_rank(a: torch.Tensor) -> torch.Tensor:
    """Pseudo-inverse ``A^+ [S, d, m]`` of heads ``a [S, m, d]`` (float64), batched with Cholesky.

    m <= d: A^+ = A^T (A A^T)^-1 (so P_A = A^+ A projects onto row(A)); m > d: A^+ = (A^T A)^-1 A^T
    (P_A = I). Members whose Gram matrix is singular (rank-deficient heads) fall back to an SVD.
    """
    m, d = a.shape[1], a.shape[2]
    if m <= d:
        chol, info = torch.linalg.cholesky_ex(torch.bmm(a, a.transpose(1, 2)))
        pinv = torch.cholesky_solve(a, chol).transpose(1, 2)
    else:
        chol, info = torch.linalg.cholesky_ex(torch.bmm(a.transpose(1, 2), a))
        pinv = torch.cholesky_solve(a.transpose(1, 2), chol)
    bad = (info != 0).nonzero().flatten().tolist()  # one host sync per call
    if bad:
        pinv[bad] = torch.linalg.pinv(a[bad])
    return pinv


def singular_extremes(a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(sigma_min, sigma_max)`` of ``a [S, m, d]``: sigma_min is the min(m, d)-th singular value.

    Eigenvalues of the smaller Gram matrix in float64. Batched Jacobi on CUDA is fast only up to
    32 x 32; larger Gram matrices are decomposed on the CPU once per distinct matrix (heads that
    several runs share, e.g. the A-sourced aux head of one seed, are decomposed once).
    """
    a = a.double()
    m, d = a.shape[1], a.shape[2]
    gram = torch.bmm(a, a.transpose(1, 2)) if m <= d else torch.bmm(a.transpose(1, 2), a)
    if gram.device.type == "cpu" or gram.shape[-1] <= 32:
        ev = torch.linalg.eigvalsh(gram)
    else:
        host = gram.cpu()
        uniq: dict[bytes, int] = {}
        firsts: list[int] = []
        index = []
        for i in range(host.shape[0]):
            key = host[i].numpy().tobytes()
            if key not in uniq:
                uniq[key] = len(firsts)
                firsts.append(i)
            index.append(uniq[key])
        ev = torch.linalg.eigvalsh(host[firsts])[index].to(gram.device)
    ev = ev.clamp_min(0.0)
    return ev[:, 0].sqrt(), ev[:, -1].sqrt()


def head_geometry(c: torch.Tensor, a: torch.Tensor) -> dict[str, torch.Tensor]:
    """Head metrics for class heads ``c [S, K, d]`` and aux heads ``a [S, m, d]`` (same m for all members).

    Returns ``tau [S]`` = tr(C P_A C^T) / tr(C C^T), ``principal_cos [S, min(K, m, d)]`` (cosines of the
    principal angles between row(C) and row(A), descending) and ``pinv [S, d, m]`` (A^+, float64).
    """
    c64, a64 = c.double(), a.double()
    kk, m, d = c.shape[1], a.shape[1], a.shape[2]
    k = min(kk, m, d)
    pinv = pinv_full_rank(a64)
    pc = torch.bmm(torch.bmm(c64, pinv), a64)     # C P_A  [S, K, d]
    m_cc = torch.bmm(pc, c64.transpose(1, 2))     # C P_A C^T
    g_cc = torch.bmm(c64, c64.transpose(1, 2))    # C C^T
    tau = m_cc.diagonal(dim1=1, dim2=2).sum(1) / g_cc.diagonal(dim1=1, dim2=2).sum(1).clamp_min(1e-300)
    if kk >= d:  # row(C) is all of R^d (C of full column rank): the angles are those of row(A) itself
        cos = torch.ones(c.shape[0], k, dtype=torch.float64, device=c.device)
    else:
        # squared cosines: eigenvalues of L^-1 (C P_A C^T) L^-T with L L^T = C C^T
        chol, _ = torch.linalg.cholesky_ex(g_cc)
        w = torch.linalg.solve_triangular(chol, m_cc, upper=False)
        w = torch.linalg.solve_triangular(chol, w.transpose(1, 2), upper=False)
        cos = torch.linalg.eigvalsh(0.5 * (w + w.transpose(1, 2))).flip(-1)[:, :k].clamp(0.0, 1.0).sqrt()
    return {"tau": tau, "principal_cos": cos, "pinv": pinv}


def oracle_features(h0: torch.Tensor, z_t: torch.Tensor, z0: torch.Tensor, pinv: torch.Tensor) -> torch.Tensor:
    """Features of the oracle projected student (theory R1.1): ``h_S0 + A_S^+ (z_T - z_S0)``.

    ``h0 [S, B, d]``: the initial student's last-hidden features; ``z_t``, ``z0`` ``[S, B, m]``: the
    teacher's and the initial student's aux logits (``A h + a``, biases included); ``pinv [S, d, m]``:
    ``A_S^+`` of the student's initial aux head (:func:`pinv_full_rank`). The oracle's class logits are
    ``C_S h + c_S``.
    """
    return h0 + torch.bmm(z_t - z0, pinv.transpose(1, 2))


def cosine(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-member cosine between flattened tensors ``[S, ...]``."""
    xf, yf = x.reshape(x.shape[0], -1).double(), y.reshape(y.shape[0], -1).double()
    return (xf * yf).sum(1) / (xf.norm(dim=1) * yf.norm(dim=1)).clamp_min(1e-300)
