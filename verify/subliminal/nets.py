"""Stacked split-head networks: S same-shape members held as ``[S, ...]`` tensors.

A network is a list of :class:`Layer` specs (the body: ``linear`` and ``conv2d``
layers) followed by two linear heads on the last hidden vector, ``class_head`` (K)
and ``aux_head`` (m). Parameters live in a dict ``{name: (weight, bias)}`` whose
tensors carry a leading member dimension S. The forward pass is a loop over
layers with ``baddbmm`` (linear) or a grouped convolution (conv2d, ``groups=S``),
so every member computes exactly its own network.

Initialisation follows the reference code (Priesemann-Group/subliminal_learning,
``src/subliminal_core.py``): PyTorch-default ``reset_parameters`` (kaiming-uniform
a=sqrt(5) weights, U(+-1/sqrt(fan_in)) biases)
drawn in layer order from one generator seeded ``derived_seed(seed, role,
"model_random_init")``, then every layer whose source is ``A``/``B`` re-drawn from
its own generator ``derived_seed(seed, "init_source", source, layer)`` -- so an
``A`` layer is bit-identical between teacher and student.
"""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Iterable

import torch
import torch.nn.functional as F

from .config import derived_seed

Params = dict[str, tuple[torch.Tensor, torch.Tensor]]


@dataclasses.dataclass(frozen=True)
class Layer:
    name: str
    kind: str                      # "linear" | "conv2d"
    weight_shape: tuple[int, ...]  # per member
    activation: str = "relu"
    stride: int = 1
    padding: int = 0
    pool: str | None = None
    pool_kernel: int | None = None
    in_shape: tuple[int, ...] = ()   # per-sample input shape (C, H, W) for conv, (F,) for linear
    out_shape: tuple[int, ...] = ()  # per-sample output shape after activation/pool

    @property
    def n_params(self) -> int:
        return int(math.prod(self.weight_shape)) + self.weight_shape[0]


@dataclasses.dataclass(frozen=True)
class NetSpec:
    """Shapes of one split-head network (no parameters)."""

    body: tuple[Layer, ...]
    n_classes: int
    m: int
    input_shape: tuple[int, ...]

    @property
    def feat_dim(self) -> int:
        return int(math.prod(self.body[-1].out_shape))

    @property
    def heads(self) -> tuple[Layer, Layer]:
        d = self.feat_dim
        return (Layer("class_head", "linear", (self.n_classes, d), "none", in_shape=(d,), out_shape=(self.n_classes,)),
                Layer("aux_head", "linear", (self.m, d), "none", in_shape=(d,), out_shape=(self.m,)))

    @property
    def layers(self) -> tuple[Layer, ...]:
        return self.body + self.heads

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(lyr.name for lyr in self.layers)

    def body_params(self) -> int:
        return sum(lyr.n_params for lyr in self.body) + (self.n_classes + 1) * self.feat_dim


def build_spec(arch: str, hidden: tuple[int, ...], cnn_spec: str | None, input_shape: tuple[int, ...],
               n_classes: int, m: int) -> NetSpec:
    """Shapes of an MLP (``hidden`` widths) or a CNN (canonical JSON ``cnn_spec``) on ``input_shape`` (C, H, W)."""
    layers: list[Layer] = []
    if arch == "mlp":
        width = int(math.prod(input_shape))
        for i, h in enumerate(hidden):
            layers.append(Layer(f"fc{i + 1}", "linear", (h, width), "relu", in_shape=(width,), out_shape=(h,)))
            width = h
        return NetSpec(tuple(layers), n_classes, m, tuple(input_shape))
    shape = tuple(input_shape)
    for d in json.loads(cnn_spec):
        if d["type"] == "conv2d":
            if len(shape) != 3:
                raise ValueError(f"cnn layer {d['name']}: conv2d needs a (C, H, W) input, got {shape}")
            c, h, w = shape
            k, st, pad = d["kernel"], d["stride"], d["padding"]
            ho, wo = (h + 2 * pad - k) // st + 1, (w + 2 * pad - k) // st + 1
            if ho < 1 or wo < 1:
                raise ValueError(f"cnn layer {d['name']}: kernel {k} does not fit the {h}x{w} input")
            if d["pool"] in ("max", "avg"):
                ho, wo = ho // d["pool_kernel"], wo // d["pool_kernel"]
                if ho < 1 or wo < 1:
                    raise ValueError(f"cnn layer {d['name']}: pool {d['pool_kernel']} shrinks the map to nothing")
            elif d["pool"] == "adaptive_avg":
                ho = wo = d["pool_kernel"]
            layers.append(Layer(d["name"], "conv2d", (d["out"], c, k, k), d["activation"], st, pad, d["pool"],
                                d["pool_kernel"], in_shape=shape, out_shape=(d["out"], ho, wo)))
            shape = (d["out"], ho, wo)
        else:
            width = int(math.prod(shape))
            layers.append(Layer(d["name"], "linear", (d["out"], width), d["activation"], in_shape=(width,),
                                out_shape=(d["out"],)))
            shape = (d["out"],)
    return NetSpec(tuple(layers), n_classes, m, tuple(input_shape))


# ----------------------------------------------------------------------------- initialisation

def _reset(shape: tuple[int, ...], gen: torch.Generator, device) -> tuple[torch.Tensor, torch.Tensor]:
    """``nn.Linear``/``nn.Conv2d`` ``reset_parameters`` with an explicit generator (same draws, same order)."""
    w = torch.empty(shape, device=device)
    torch.nn.init.kaiming_uniform_(w, a=math.sqrt(5), generator=gen)
    fan_in = int(math.prod(shape[1:]))
    bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
    b = torch.empty(shape[0], device=device)
    torch.nn.init.uniform_(b, -bound, bound, generator=gen)
    return w, b


def generator(seed: int, device) -> torch.Generator:
    g = torch.Generator(device=device)
    g.manual_seed(int(seed))
    return g


class SourceCache:
    """Memo of ``A``/``B`` layers by (seed, source, layer, shape) within one batched pass."""

    def __init__(self, device):
        self.device = device
        self._memo: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}

    def get(self, seed: int, source: str, layer: str, shape: tuple[int, ...]):
        key = (seed, source, layer, shape)
        if key not in self._memo:
            gen = generator(derived_seed(seed, "init_source", source, layer), self.device)
            self._memo[key] = _reset(shape, gen, self.device)
        return self._memo[key]


def init_member(spec: NetSpec, seed: int, role: str, sources: dict[str, str], device,
                cache: SourceCache | None = None, skip: Iterable[str] = ()) -> tuple[Params, torch.Tensor | None]:
    """Initial parameters of one member (reference order and seeding).

    Returns the params and, for the aux head, the generator state just before the aux head's
    random draw (``None`` when the aux head is not drawn from the random stream) so that a
    cached teacher can regenerate its aux head for any m without replaying the body.
    Layers named in ``skip`` are not returned (their random draws still happen when needed).
    """
    cache = cache or SourceCache(device)
    layers = spec.layers
    last_random = max((i for i, lyr in enumerate(layers) if sources[lyr.name] == "random"), default=-1)
    gen = generator(derived_seed(seed, role, "model_random_init"), device) if last_random >= 0 else None
    params: Params = {}
    aux_state = None
    skip = set(skip)
    for i, lyr in enumerate(layers):
        src = sources[lyr.name]
        if lyr.name in skip and i == len(layers) - 1:  # the aux head of a cached teacher: keep the stream state
            if i <= last_random:
                aux_state = gen.get_state()
            continue
        if i <= last_random:
            if lyr.name == "aux_head":
                aux_state = gen.get_state()
            wb = _reset(lyr.weight_shape, gen, device)
            if src == "random" and lyr.name not in skip:
                params[lyr.name] = wb
        if src in ("A", "B") and lyr.name not in skip:
            w, b = cache.get(seed, src, lyr.name, lyr.weight_shape)
            params[lyr.name] = (w.clone(), b.clone())
    return params, aux_state


def aux_head_from_state(spec: NetSpec, seed: int, source: str, state: torch.Tensor | None, device,
                        cache: SourceCache | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """A member's aux head (shape ``spec.m``) from its source: an A/B seed or the saved random-stream state."""
    shape = spec.heads[1].weight_shape
    if source in ("A", "B"):
        cache = cache or SourceCache(device)
        w, b = cache.get(seed, source, "aux_head", shape)
        return w.clone(), b.clone()
    gen = torch.Generator(device=device)
    gen.set_state(state)
    return _reset(shape, gen, device)


def stack(members: list[Params], names: Iterable[str], pad_aux_to: int | None = None) -> Params:
    """Stack per-member params into ``[S, ...]`` tensors (aux head zero-padded to ``pad_aux_to`` rows)."""
    out: Params = {}
    for name in names:
        ws = [p[name][0] for p in members]
        bs = [p[name][1] for p in members]
        if name == "aux_head" and pad_aux_to is not None:
            ws = [F.pad(w, (0, 0, 0, pad_aux_to - w.shape[0])) for w in ws]
            bs = [F.pad(b, (0, pad_aux_to - b.shape[0])) for b in bs]
        out[name] = (torch.stack(ws), torch.stack(bs))
    return out


# ----------------------------------------------------------------------------- forward

def _act(x: torch.Tensor, name: str) -> torch.Tensor:
    if name == "relu":
        return torch.relu(x)
    if name == "gelu":
        return F.gelu(x)
    if name == "tanh":
        return torch.tanh(x)
    if name == "sigmoid":
        return torch.sigmoid(x)
    return x


def linear(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-member affine map: ``x [S, B, in]`` (or shared ``[B, in]``), ``w [S, out, in]`` -> ``[S, B, out]``."""
    if x.dim() == 2:  # shared input: one GEMM against all members' weights
        s, o, i = w.shape
        y = (x @ w.reshape(s * o, i).T).view(x.shape[0], s, o).transpose(0, 1)
        return y + b.unsqueeze(1)
    return torch.baddbmm(b.unsqueeze(1), x, w.transpose(1, 2))


def _conv(x: torch.Tensor, lyr: Layer, w: torch.Tensor, b: torch.Tensor, s: int, shared: bool) -> torch.Tensor:
    """x: ``[B, S*C, H, W]`` (or shared ``[B, C, H, W]`` for the first layer) -> ``[B, S*C', H', W']``."""
    wf = w.reshape(s * w.shape[1], *w.shape[2:])
    y = F.conv2d(x, wf, b.reshape(-1), stride=lyr.stride, padding=lyr.padding, groups=1 if shared else s)
    y = _act(y, lyr.activation)
    if lyr.pool == "max":
        y = F.max_pool2d(y, lyr.pool_kernel)
    elif lyr.pool == "avg":
        y = F.avg_pool2d(y, lyr.pool_kernel)
    elif lyr.pool == "adaptive_avg":
        y = F.adaptive_avg_pool2d(y, lyr.pool_kernel)
    return y


def body(spec: NetSpec, params: Params, x: torch.Tensor, shared: bool = False) -> torch.Tensor:
    """Last hidden features ``[S, B, d]`` of every member.

    ``x``: per-member inputs ``[S, B, ...]`` (images ``C, H, W`` or flat), or with ``shared=True``
    one input batch ``[B, ...]`` seen by every member (evaluation on the test set).
    """
    s = next(iter(params.values()))[0].shape[0]
    h = x
    conv_layout = False  # h is [B, S*C, H, W]
    for lyr in spec.body:
        w, b = params[lyr.name]
        if lyr.kind == "conv2d":
            if not conv_layout:
                if shared:
                    h = h.reshape(h.shape[0], *lyr.in_shape)
                else:
                    h = h.reshape(s, -1, *lyr.in_shape).transpose(0, 1).reshape(-1, s * lyr.in_shape[0], *lyr.in_shape[1:])
            h = _conv(h, lyr, w, b, s, shared and not conv_layout)
            conv_layout, shared = True, False
        else:
            if conv_layout:
                h = h.reshape(h.shape[0], s, -1).transpose(0, 1)
                conv_layout = False
            elif shared:
                h = h.reshape(h.shape[0], -1)
            else:
                h = h.reshape(s, h.shape[1], -1)
            h = _act(linear(h, w, b), lyr.activation)
            shared = False
    if conv_layout:
        h = h.reshape(h.shape[0], s, -1).transpose(0, 1)
    return h


def head(params: Params, name: str, h: torch.Tensor) -> torch.Tensor:
    w, b = params[name]
    return linear(h, w, b)


def forward(spec: NetSpec, params: Params, x: torch.Tensor, shared: bool = False):
    """``(h, class_logits, aux_logits)`` for every member."""
    h = body(spec, params, x, shared)
    return h, head(params, "class_head", h), head(params, "aux_head", h)
