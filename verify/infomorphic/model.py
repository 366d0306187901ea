"""Infomorphic networks: trivariate/bivariate PID neurons, the output layer, the baselines.

The network has one hidden layer and an output layer of ``n_classes`` bivariate
neurons, as in Schneider et al., *What should a neuron aim for?* (ICLR 2025,
arXiv 2412.02482, Fig. 2) and its public code (Priesemann-Group/Infomorphic_Networks,
``paper_trivariate/base_model.py``, ``im_net/activation_functions.py``). Kinds (:data:`KINDS`):

``trivariate``
    hidden neurons with F = linear map of the image, C = linear map of the one-hot
    label (zero input at evaluation), L = linear map of the layer's own previous
    ±1 output (no self-connections; dense, or ≤ ``max_connections`` random partners),
    ``passes`` recurrent passes (the first with L-input 0); activation
    θ = σ(F·[(1−α_C−α_L) + α_C·σ(β_C F C) + α_L·σ(β_L F L)]).
``bivariate-fc`` / ``bivariate-fl``
    hidden neurons with F and either the label context C (one pass) or the lateral
    input L (``passes`` passes); activation θ = σ(F·[k1 + (1−k1)·2σ(k2·F·X)]), k1 = 0.9.
``backprop``
    the ``trivariate`` architecture trained end to end by backprop: binary
    stochastic ±1 outputs in the forward pass, the sigmoid's derivative in the
    backward pass (straight-through); cross-entropy with the output θ used as logits,
    as in the study's ``global_backprop`` baseline.
``random-projection``
    frozen random hidden layer (PyTorch's default init) with a Heaviside activation
    (y = sign F, or 1[F > 0] with ``binary="01"``); only the output layer learns.
``readout``
    no hidden layer: the output neurons read the image directly.

Output neurons: F = linear map of the hidden ±1 output (or the image), C = one-hot
label through fixed identity weights plus a trainable bias; θ = σ(F·[k1 + (1−k1)·2σ(k2 F C)])
with k1 = 1, i.e. θ = σ(F) (the context only enters the goal).

Hidden ±1 outputs are detached before the output layer, so every infomorphic layer
learns from its own local goal only. PID sources are binned per neuron (fixed range
[−R, R] for trivariate neurons; per-batch max-abs normalisation to [−1, 1] for
bivariate ones), with the soft target [1 − θ, θ].

Two options reproduce choices of the public code that limen does not make by default:
``binary="01"`` gives the backprop and random-projection hidden layers {0, 1} outputs
instead of ±1, and ``theta_clip=ε`` clamps every bivariate θ into [ε, 1 − ε] (the code
uses 1e−6, which also zeroes the gradient outside).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from limen.estimators.sample import sx_sample_atoms, sx_sample_goal

__all__ = ["KINDS", "InfomorphicNet", "fixed_bins", "adaptive_bins", "lateral_mask", "flip_and_argmax", "one_hot"]

KINDS = ("trivariate", "bivariate-fc", "bivariate-fl", "backprop", "random-projection", "readout")


def fixed_bins(v: torch.Tensor, n_bins: int, half_range: float) -> torch.Tensor:
    """Bin index in ``[0, n_bins)`` on the fixed range ``[−R, R]`` (values outside are clamped)."""
    width = 2.0 * half_range / n_bins
    return ((v.detach() + half_range) / width).floor().clamp_(0, n_bins - 1).long()


def adaptive_bins(v: torch.Tensor, n_bins: int) -> torch.Tensor:
    """Bins after dividing each neuron's values by their max-abs over the batch (dim 0)."""
    v = v.detach()
    m = v.abs().amax(dim=0, keepdim=True)
    u = torch.where(m > 0, v / torch.where(m > 0, m, torch.ones_like(m)), torch.zeros_like(v))
    return ((u + 1.0) * (n_bins / 2.0)).floor().clamp_(0, n_bins - 1).long()


def lateral_mask(n: int, max_connections: int | None, generator: torch.Generator | None = None) -> torch.Tensor:
    """(n, n) 0/1 mask, row i = presynaptic partners of neuron i: all others, or a random subset."""
    if max_connections is None or max_connections >= n - 1:
        return 1.0 - torch.eye(n)
    scores = torch.rand(n, n, generator=generator)
    scores.fill_diagonal_(-1.0)  # never choose self
    top = scores.topk(max_connections, dim=1).indices
    mask = torch.zeros(n, n)
    mask.scatter_(1, top, 1.0)
    return mask


def one_hot(y: torch.Tensor, n_classes: int, dtype=torch.float32) -> torch.Tensor:
    """One-hot rows without ``F.one_hot``'s range check (a host sync; not allowed in CUDA graphs)."""
    return (y.unsqueeze(1) == torch.arange(n_classes, device=y.device)).to(dtype)


def flip_and_argmax(theta: torch.Tensor) -> torch.Tensor:
    """The study's read-out: flip neurons whose mean θ is ≥ 0.5 (θ → 1 − θ), then argmax."""
    flip = theta.mean(0) >= 0.5
    return torch.where(flip, 1.0 - theta, theta).argmax(1)


#: values of the two binary codes of the baselines' hidden outputs: (off, on)
BINARY_CODES = {"pm1": (-1.0, 1.0), "01": (0.0, 1.0)}


class _BinaryST(torch.autograd.Function):
    """Binary sample (``low`` or 1) with P(1) = σ(a); backward: d/da of E[sample] = (1 − low)·σ'(a) (straight-through)."""

    @staticmethod
    def forward(ctx, a, low):
        s = torch.sigmoid(a)
        ctx.save_for_backward(s)
        ctx.scale = 1.0 - low
        return torch.where(torch.rand_like(a) < s, 1.0, low).to(a.dtype)

    @staticmethod
    def backward(ctx, grad):
        (s,) = ctx.saved_tensors
        return grad * ctx.scale * s * (1.0 - s), None


def _graetz(f: torch.Tensor, x: torch.Tensor, k1: float, k2: float, clip: float = 0.0) -> torch.Tensor:
    """Bivariate activation θ = σ(F·[k1 + (1 − k1)·2σ(k2·F·X)]) (X: context or lateral input), clamped to [clip, 1 − clip]."""
    theta = torch.sigmoid(f * (k1 + (1 - k1) * 2 * torch.sigmoid(k2 * f * x)))
    return theta.clamp(clip, 1.0 - clip) if clip > 0 else theta


def _sample_pm1(theta: torch.Tensor) -> torch.Tensor:
    return torch.where(torch.rand_like(theta) < theta, 1.0, -1.0).to(theta.dtype)


class InfomorphicNet(nn.Module):
    """One hidden layer (of kind ``kind``) and an output layer of bivariate neurons."""

    def __init__(self, kind: str, d_in: int, n_hidden: int, n_classes: int, *, n_bins: int = 20,
                 half_range: float = 20.0, alpha_c: float = 0.1, alpha_l: float = 0.1, beta_c: float = 2.0,
                 beta_l: float = 2.0, k1_hidden: float = 0.9, k1_output: float = 1.0, k2: float = 2.0,
                 passes: int = 2, max_connections: int | None = None, binary: str = "pm1",
                 theta_clip: float = 0.0):
        super().__init__()
        if kind not in KINDS:
            raise ValueError(f"unknown model kind {kind!r}; choose one of {', '.join(KINDS)}")
        if binary not in BINARY_CODES:
            raise ValueError(f"binary must be one of {', '.join(BINARY_CODES)}, got {binary!r}")
        if not 0 <= theta_clip < 0.5:
            raise ValueError(f"theta_clip must lie in [0, 0.5), got {theta_clip!r}")
        self.binary_low = BINARY_CODES[binary][0]
        self.theta_clip = float(theta_clip)
        self.kind, self.n_hidden, self.n_classes = kind, n_hidden, n_classes
        self.n_bins, self.half_range, self.passes = n_bins, half_range, passes
        self.alpha_c, self.alpha_l, self.beta_c, self.beta_l = alpha_c, alpha_l, beta_c, beta_l
        self.k1_hidden, self.k1_output, self.k2 = k1_hidden, k1_output, k2
        h_out = d_in
        if kind != "readout":
            self.hf = nn.Linear(d_in, n_hidden)
            h_out = n_hidden
        if kind in ("trivariate", "backprop", "bivariate-fc"):
            self.hc = nn.Linear(n_classes, n_hidden)
        if kind in ("trivariate", "backprop", "bivariate-fl"):
            self.hl = nn.Linear(n_hidden, n_hidden)
            self.register_buffer("lat_mask", lateral_mask(n_hidden, max_connections))
            with torch.no_grad():
                self.hl.weight.mul_(self.lat_mask)
        if kind == "random-projection":
            self.hf.requires_grad_(False)
        self.of = nn.Linear(h_out, n_classes)
        # context weights of the output layer: the fixed identity, so C_out = onehot + bias
        bound = 1.0 / math.sqrt(n_classes)  # nn.Linear's default bias init
        self.oc_bias = nn.Parameter(torch.empty(n_classes).uniform_(-bound, bound))

    # ----------------------------------------------------------------- layers
    @property
    def hidden_kind(self) -> str | None:
        """Neuron type of the hidden layer for goals/atoms (None: no PID-trained hidden layer)."""
        return {"trivariate": "trivariate", "backprop": "trivariate", "bivariate-fc": "bivariate-fc",
                "bivariate-fl": "bivariate-fl"}.get(self.kind)

    def hidden_parameters(self):
        return [p for n, p in self.named_parameters() if n.startswith("h") and p.requires_grad]

    def output_parameters(self):
        return [p for n, p in self.named_parameters() if not n.startswith("h")]

    def _lateral(self, y: torch.Tensor) -> torch.Tensor:
        return y @ (self.hl.weight * self.lat_mask).T + self.hl.bias

    def hidden(self, x: torch.Tensor, ctx: torch.Tensor):
        """Hidden binary output and, for PID neurons, ``(sources (B, N, n_src), θ (B, N))`` of the last pass."""
        kind = self.kind
        if kind == "readout":
            return x, None
        f = self.hf(x)
        if kind == "random-projection":
            return torch.where(f > 0, 1.0, self.binary_low).to(f.dtype), None
        if kind == "bivariate-fc":
            c = self.hc(ctx)
            theta = _graetz(f, c, self.k1_hidden, self.k2, self.theta_clip)
            return _sample_pm1(theta.detach()), (torch.stack([f, c], -1), theta)
        y = torch.zeros_like(f)
        if kind == "bivariate-fl":
            for _ in range(self.passes):
                lat = self._lateral(y)
                theta = _graetz(f, lat, self.k1_hidden, self.k2, self.theta_clip)
                y = _sample_pm1(theta.detach())
            return y, (torch.stack([f, lat], -1), theta)
        c = self.hc(ctx)
        base = 1.0 - self.alpha_c - self.alpha_l
        cterm = self.alpha_c * torch.sigmoid(self.beta_c * f * c)
        for _ in range(self.passes):
            lat = self._lateral(y)
            a = f * (base + cterm + self.alpha_l * torch.sigmoid(self.beta_l * f * lat))
            if kind == "backprop":
                y = _BinaryST.apply(a, self.binary_low)  # gradients flow through both passes
                theta = torch.sigmoid(a)
            else:
                theta = torch.sigmoid(a)
                y = _sample_pm1(theta.detach())
        return y, (torch.stack([f, c, lat], -1), theta)

    def output(self, h: torch.Tensor, ctx: torch.Tensor):
        """Output θ (B, n_classes) and its PID sources (B, n_classes, 2)."""
        f = self.of(h)
        c = ctx + self.oc_bias
        return _graetz(f, c, self.k1_output, self.k2, self.theta_clip), torch.stack([f, c], -1)

    # ----------------------------------------------------------------- PID
    def _pid_inputs(self, sources: torch.Tensor, theta: torch.Tensor, fixed: bool):
        """(bins (N, B, n_src), p_target (N, B, 2)) from sources (B, N, n_src) and θ (B, N)."""
        if fixed:
            bins = fixed_bins(sources, self.n_bins, self.half_range)
        else:
            bins = adaptive_bins(sources, self.n_bins)
        p = torch.stack([1.0 - theta, theta], -1)
        return bins.transpose(0, 1), p.transpose(0, 1)

    def hidden_pid_inputs(self, pid):
        sources, theta = pid
        return self._pid_inputs(sources, theta, fixed=self.hidden_kind == "trivariate")

    def output_pid_inputs(self, theta, sources):
        return self._pid_inputs(sources, theta, fixed=False)

    def forward(self, x: torch.Tensor, ctx: torch.Tensor):
        """θ of the output layer (B, n_classes); ``ctx`` is the one-hot label or zeros."""
        h, _ = self.hidden(x, ctx)
        theta, _ = self.output(h.detach() if self.kind != "backprop" else h, ctx)
        return theta

    def local_losses(self, x: torch.Tensor, ctx: torch.Tensor, gamma_hidden, gamma_output, goal_fn=None):
        """Layer losses ``−Σ_neurons G`` (hidden, output) and the output θ; hidden output is detached.

        ``goal_fn(bins, p_target, gamma, n_bins, validate=False)`` computes the goals; default
        the sample-based :func:`~limen.estimators.sample.sx_sample_goal` (the benchmark swaps in
        the dense-histogram baseline).
        """
        goal_fn = sx_sample_goal if goal_fn is None else goal_fn
        h, pid = self.hidden(x, ctx)
        loss_h = None
        if pid is not None and gamma_hidden is not None:
            bins, p = self.hidden_pid_inputs(pid)
            loss_h = -goal_fn(bins, p, gamma_hidden, self.n_bins, validate=False).sum()
        theta, src = self.output(h.detach(), ctx)
        bins, p = self.output_pid_inputs(theta, src)
        loss_o = -goal_fn(bins, p, gamma_output, self.n_bins, validate=False).sum()
        return loss_h, loss_o, theta

    @torch.no_grad()
    def atoms(self, x: torch.Tensor, ctx: torch.Tensor):
        """Per-neuron PID atoms + H_res of the hidden layer (or None) and of the output layer."""
        h, pid = self.hidden(x, ctx)
        hidden_atoms = None
        if pid is not None:
            bins, p = self.hidden_pid_inputs(pid)
            hidden_atoms = sx_sample_atoms(bins, p.double(), self.n_bins, validate=False)
        theta, src = self.output(h, ctx)
        bins, p = self.output_pid_inputs(theta, src)
        out_atoms = sx_sample_atoms(bins, p.double(), self.n_bins, validate=False)
        return hidden_atoms, out_atoms


    @torch.no_grad()
    def context_collapsed(self, ctx: torch.Tensor):
        """Per neuron, whether its context source falls into one bin on the whole batch: ``(hidden, output)``.

        The label context C = W_C·onehot(label) + b takes one value per class. When all of them
        share a bin, C is constant in the neuron's PID: the union event of every antichain with
        the singleton {C} is certain, so those redundancies and the atoms {C}, {F}{C}, {C}{L},
        {F}{C}{L}, {C}{FL} … are exactly 0 for any θ, and so are their gradients. A neuron with
        the heuristic goal (γ = 1 on {F}{C} only) then gets no learning signal at all.
        ``hidden`` is None for kinds without a context source (bivariate-fl, baselines).
        """
        hidden = None
        if self.kind in ("trivariate", "backprop", "bivariate-fc"):
            c = self.hc(ctx)
            bins = fixed_bins(c, self.n_bins, self.half_range) if self.hidden_kind == "trivariate" \
                else adaptive_bins(c, self.n_bins)
            hidden = (bins == bins[:1]).all(0)
        out = adaptive_bins(ctx + self.oc_bias, self.n_bins)
        return hidden, (out == out[:1]).all(0)
