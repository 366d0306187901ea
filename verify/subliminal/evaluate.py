"""Metrics of a trained group, for all members at once (the ``metrics`` of each record).

:func:`evaluate` reads a finished :class:`~limen.verify.subliminal.engine.GroupPass` and returns
per-member tensors: head geometry (τ, principal cosines, extreme singular values), test-set
accuracies, cross-entropies, agreement, logit error and the oracle projected student, linear
CKA on the test set and on held-out noise, aux MSE on held-out noise, and weight cosines.
The formulas live in :mod:`.metrics`; this module only feeds them the group's networks.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from . import nets
from .metrics import CKA, cka_sample_space, cosine, head_geometry, oracle_features, singular_extremes
from .noise import draw, generators
from .training import eval_chunk, widths


@torch.no_grad()
def evaluate(g, cka_max_features: int = 4096, cka_samples: int = 2048) -> dict[str, Any]:
    """Every evaluation metric of the group pass ``g`` (1-D ``[S]`` tensors, ``principal_cos`` 2-D, ``cos`` a dict).

    CKA uses the whole test set (feature space) unless a representation is wider than
    ``cka_max_features``; then the first ``cka_samples`` samples (sample space).
    """
    met, pinv = _head_metrics(g)
    feat_space = max(g.spec_s.feat_dim, g.spec_t.feat_dim) <= cka_max_features
    met.update(_test_metrics(g, pinv.float(), feat_space, cka_samples))
    met.update(_noise_metrics(g, feat_space, cka_samples))
    met["cos"] = _weight_cosines(g)
    return met


def _head_metrics(g) -> tuple[dict, torch.Tensor]:
    """τ of the student's initial / final and the teacher's heads, principal cosines, σ extremes; and A_S⁺.

    Computed per distinct m (float64); members of equal m go through one batched call.
    """
    s, dev, ms = len(g.group), g.dev, g.ms
    d_s = g.spec_s.feat_dim
    pinv = torch.zeros(s, d_s, max(ms), device=dev, dtype=torch.float64)
    n_cos = min(g.spec_s.n_classes, max(ms), d_s)
    tau0 = torch.zeros(s, device=dev, dtype=torch.float64)
    tau1, tau_t = torch.zeros_like(tau0), torch.zeros_like(tau0)
    pcos = torch.full((s, n_cos), float("nan"), device=dev, dtype=torch.float64)
    met: dict[str, torch.Tensor] = {k: torch.zeros_like(tau0)
                                    for k in ("aux_sigma_min", "aux_sigma_max", "teacher_aux_sigma_min")}
    for m in sorted(set(ms)):
        idx = torch.tensor([i for i, mi in enumerate(ms) if mi == m], device=dev)
        g0 = head_geometry(g.sp0["class_head"][0][idx], g.sp0["aux_head"][0][idx, :m])
        g1 = head_geometry(g.sp0["class_head"][0][idx], g.sp["aux_head"][0][idx, :m])
        gt = head_geometry(g.tp["class_head"][0][idx], g.tp["aux_head"][0][idx, :m])
        pinv[idx, :, :m] = g0["pinv"]
        tau0[idx], tau1[idx], tau_t[idx] = g0["tau"], g1["tau"], gt["tau"]
        pcos[idx, :g0["principal_cos"].shape[1]] = g0["principal_cos"]
        # singular values of the student's initial and the teacher's aux heads in one call (shared heads once)
        a_s, a_t = g.sp0["aux_head"][0][idx, :m], g.tp["aux_head"][0][idx, :m]
        if a_s.shape == a_t.shape:
            smin, smax = singular_extremes(torch.cat([a_s, a_t]))
            smin_t, smin, smax = smin[idx.shape[0]:], smin[:idx.shape[0]], smax[:idx.shape[0]]
        else:
            (smin, smax), (smin_t, _) = singular_extremes(a_s), singular_extremes(a_t)
        met["aux_sigma_min"][idx], met["aux_sigma_max"][idx], met["teacher_aux_sigma_min"][idx] = smin, smax, smin_t
    met.update({"tau": tau0, "tau_final": tau1, "tau_teacher": tau_t,
                "principal_cos": pcos})  # [S, n_cos], NaN past each member's min(K, m, d); trimmed per record
    return met, pinv


class _Sample:
    """The first ``n`` samples of teacher / initial / final student features, for sample-space CKA."""

    def __init__(self, n: int):
        self.n, self.parts = n, {"t": [], "s0": [], "s1": []}

    def add(self, seen: int, ht, h0, h1) -> None:
        if seen < self.n:
            for k, h in zip(("t", "s0", "s1"), (ht, h0, h1)):
                self.parts[k].append(h[:, :self.n - seen])

    def cka(self) -> tuple[torch.Tensor, torch.Tensor, int]:
        ht, h0, h1 = (torch.cat(self.parts[k], 1) for k in ("t", "s0", "s1"))
        return cka_sample_space(ht, h0), cka_sample_space(ht, h1), ht.shape[1]


def _test_metrics(g, pinv32: torch.Tensor, feat_space: bool, cka_samples: int) -> dict:
    """Accuracies, CE, agreement, logit error, the oracle projected student and CKA on the test set."""
    s, dev, share = len(g.group), g.dev, g.share
    x, y = g.data.x_test, g.data.y_test
    n = x.shape[0]
    chunk = eval_chunk(s, widths(g.spec_t) + 2 * widths(g.spec_s))
    z = lambda: torch.zeros(s, device=dev, dtype=torch.float64)  # noqa: E731
    acc0, acc1, ce0, ce1, agr0, agr1, lmse, oracle, oracle_agr = (z() for _ in range(9))
    ck0, ck1, sample = CKA(), CKA(), _Sample(cka_samples)
    for a in range(0, n, chunk):
        xb, yb = x[a:a + chunk], y[a:a + chunk]
        h_slots = nets.body(g.spec_t, g.tbody, xb, shared=True)  # teachers shared by several runs: once
        ht = share.slots_to_members(h_slots)
        yt = share.slots_to_members(nets.head(g.tbody, "class_head", h_slots))
        zt = nets.head(g.tp, "aux_head", ht)
        h0, y0, z0 = nets.forward(g.spec_s, g.sp0, xb, shared=True)
        h1 = nets.body(g.spec_s, g.sp, xb, shared=True)
        y1 = nets.head(g.sp, "class_head", h1)
        ye = yb.expand(s, -1)
        pt, p0, p1 = yt.argmax(-1), y0.argmax(-1), y1.argmax(-1)
        acc0 += (p0 == yb).sum(1)
        acc1 += (p1 == yb).sum(1)
        ce0 += F.cross_entropy(y0.transpose(1, 2), ye, reduction="none").double().sum(1)
        ce1 += F.cross_entropy(y1.transpose(1, 2), ye, reduction="none").double().sum(1)
        agr0 += (p0 == pt).sum(1)
        agr1 += (p1 == pt).sum(1)
        lmse += (y1 - yt).double().pow(2).mean(2).sum(1)
        po = nets.head(g.sp0, "class_head", oracle_features(h0, zt, z0, pinv32)).argmax(-1)
        oracle += (po == yb).sum(1)
        oracle_agr += (po == p1).sum(1)
        if feat_space:
            ck0.update(ht, h0)
            ck1.update(ht, h1)
        else:
            sample.add(a, ht, h0, h1)
    met = {"student_init_acc": acc0 / n, "student_final_acc": acc1 / n, "student_init_ce": ce0 / n,
           "student_final_ce": ce1 / n, "agreement_init": agr0 / n, "agreement": agr1 / n,
           "class_logit_mse": lmse / n, "oracle_acc": oracle / n, "oracle_agreement": oracle_agr / n}
    if feat_space:
        met["cka_test_init"], met["cka_test"], used = ck0.value(), ck1.value(), n
    else:
        met["cka_test_init"], met["cka_test"], used = sample.cka()
    met["cka_n_test"] = torch.full((s,), float(used), device=dev)
    return met


def _noise_metrics(g, feat_space: bool, cka_samples: int) -> dict:
    """Aux-logit MSE (initial / final student vs teacher) and CKA on held-out noise (streams ``eval_noise``)."""
    s, dev, share, cfg0 = len(g.group), g.dev, g.share, g.group[0]
    chunk = eval_chunk(s, widths(g.spec_t) + 2 * widths(g.spec_s))
    gens = generators(share.seeds, "eval_noise", dev)
    norm = tuple(g.data.normalization) if cfg0.normalize_noise else None
    mse0 = torch.zeros(s, device=dev, dtype=torch.float64)
    mse1 = torch.zeros_like(mse0)
    ck0, ck1, sample = CKA(), CKA(), _Sample(cka_samples)
    seen = 0
    for _ in range(cfg0.eval_noise_batches):
        xb = draw(cfg0.noise, gens, cfg0.eval_noise_batch, tuple(g.data.image_shape), dev, cfg0.perlin_res, norm)
        for a in range(0, xb.shape[1], chunk):
            xu = xb[:, a:a + chunk]
            ht = share.teacher_features(g.spec_t, g.tbody, xu)
            zt = nets.head(g.tp, "aux_head", ht)
            xc = share.per_member(xu)
            h0, _, z0 = nets.forward(g.spec_s, g.sp0, xc)
            h1, _, z1 = nets.forward(g.spec_s, g.sp, xc)
            mse0 += ((z0 - zt) * g.mask).double().pow(2).sum((1, 2))
            mse1 += ((z1 - zt) * g.mask).double().pow(2).sum((1, 2))
            if feat_space:
                ck0.update(ht, h0)
                ck1.update(ht, h1)
            else:
                sample.add(seen, ht, h0, h1)
            seen += xc.shape[1]
    n_noise = cfg0.eval_noise_batches * cfg0.eval_noise_batch
    met = {"student_init_aux_mse": mse0 / (n_noise * g.mvec.double()),
           "student_final_aux_mse": mse1 / (n_noise * g.mvec.double())}
    if feat_space:
        met["cka_noise_init"], met["cka_noise"] = ck0.value(), ck1.value()
    else:
        met["cka_noise_init"], met["cka_noise"], _ = sample.cka()
    return met


def _weight_cosines(g) -> dict[str, dict[str, torch.Tensor]]:
    """Weight-space cosines per layer with equal names and shapes (aux heads on their own rows:
    padded rows are zero in both and add nothing)."""
    pairs = {"init_teacher_student": (g.tp0, g.sp0), "final_teacher_student": (g.tp, g.sp),
             "teacher_init_final": (g.tp0, g.tp), "student_init_final": (g.sp0, g.sp)}
    cos: dict[str, dict[str, torch.Tensor]] = {}
    for comp, (pa, pb) in pairs.items():
        out = {}
        for name in pa:
            if name in pb and pa[name][0].shape == pb[name][0].shape:
                out[f"{name}.weight"] = cosine(pa[name][0], pb[name][0])
                out[f"{name}.bias"] = cosine(pa[name][1], pb[name][1])
        cos[comp] = out
    return cos
