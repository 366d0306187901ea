"""Predicting the distilled student before it trains (theory ``preconditioned-response`` / ``kronecker-response``).

From what exists before the student's training -- its initial network, the trained teacher (and its initial
parameters), the noise law and the optimiser settings -- this module computes the student's parameters after
``T`` Adam steps in the linear-response model and evaluates them through the real network:

1. **Target.** Where the student starts from the teacher's initial body, the teacher's change is reachable in
   the student's own parameters: the aux loss is linearised as ``J(x)(δ − Δ*)`` with ``Δ* = θ_T − θ_S0`` when
   the heads also agree (``reachable``). When the student's aux head is another one (random, or perturbed), the
   head's target is the teacher's head and the body's is the teacher's change seen through the two heads'
   cross factor, ``A_SS⁺ A_ST ΔW_T`` per layer (``mismatched-head``, theory ``cross-head-target``). Otherwise (a
   body layer drawn at random) the student must fit the teacher's function ``z_T`` itself (``function``: the
   linearised / eNTK student; its aux head first absorbs what it can represent, block Gauss–Seidel).
   ``target="function"`` forces the eNTK baseline on any run.
2. **Kronecker factors** of every trained layer's aux Gauss–Newton block on the noise, ``A = (2/m) E Σ_j e_j e_jᵀ``
   (output side, estimated with random output combinations) and ``S = E ã ãᵀ`` (input side; the first layer's is
   the noise law's exact second moment for uniform and normal noise).
3. **Adam's preconditioner**: the second moment of the batch gradient at the training batch size at θ_S0,
   fitted per layer by ``√v ≈ p qᵀ``; the step schedule is Adam's own (``theory.mode_response``), one per
   layer, since each layer's second moment decays with its own gradient energy. Units or inputs that get no
   gradient on the noise do not move (Adam gives them none).
4. ``theory.kronecker_response`` gives every layer's displacement; the predicted student is ``θ_S0 + Δθ``.

Only MLP bodies (``arch="mlp"``) are supported. A prediction receives the run's pre-run view
(:class:`~limen.verify.subliminal.engine.PreRunModels`, ``RunModels.pre_run()``): it has no trained student, so a
prediction cannot read the outcome it predicts (a ``RunModels`` is refused).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from . import nets
from .config import RunConfig, derived_seed
from .engine import PreRunModels, RunModels
from .noise import draw

TARGETS = ("auto", "reachable", "mismatched-head", "function")
FACTOR_SAMPLES = 8192   # noise samples for the Kronecker factors
GRID = 2048             # λ values the mode recursion runs on (theory.mode_response(grid=...))
MOMENT_BATCHES = 4      # training-size batches for Adam's second moment


def target_kind(pre: PreRunModels) -> str:
    """``reachable`` / ``mismatched-head`` / ``function`` by the rule of the module docstring."""
    c = pre.config
    src_s, src_t = c.sources("student"), c.sources("teacher")
    body = [lyr.name for lyr in pre.student_spec.body]
    same_shapes = [lyr.weight_shape for lyr in pre.student_spec.body] == [lyr.weight_shape for lyr in pre.teacher_spec.body]
    shared_body = (same_shapes and body == [lyr.name for lyr in pre.teacher_spec.body]
                   and all(src_s[n] == src_t[n] != "random" for n in body))
    if not shared_body:
        return "function"
    same_head = src_s["aux_head"] == src_t["aux_head"] != "random" and not perturbed(c, "aux_head")
    return "reachable" if same_head else "mismatched-head"


def perturbed(cfg: RunConfig, layer: str) -> bool:
    """Whether the run perturbs ``layer`` of a network (any perturbation with σ > 0 naming it, or ``all``)."""
    return any(p.std > 0 and ("all" in p.layers or layer in p.layers) for p in cfg.perturb)


def _mlp_check(pre: PreRunModels) -> None:
    for role, spec in (("student", pre.student_spec), ("teacher", pre.teacher_spec)):
        if any(lyr.kind != "linear" or lyr.activation != "relu" for lyr in spec.body):
            raise ValueError(f"the linear-response prediction supports ReLU MLP bodies; this {role} is not one "
                             f"(arch={pre.config.arch_of(role)[0]!r})")


def _one(p: nets.Params) -> nets.Params:
    return {k: (w.unsqueeze(0), b.unsqueeze(0)) for k, (w, b) in p.items()}


def body_layers(params: nets.Params, spec: nets.NetSpec) -> list:
    """The body's ``(W, b)`` pairs in layer order."""
    return [params[lyr.name] for lyr in spec.body]


def relu_forward(layers, x):
    """A ReLU MLP body on flat inputs ``x``: every layer's input ``a_l`` (and the output last) and ReLU mask ``d_l``."""
    acts, masks = [x], []
    h = x
    for w, b in layers:
        s = h @ w.T + b
        masks.append(s > 0)
        h = torch.relu(s)
        acts.append(h)
    return acts, masks


def aux_forward(layers, x):
    """The aux logits of a ReLU MLP ``layers = [(W, b), ..., aux head]`` on flat inputs ``x``, and its body's ReLU
    masks."""
    acts, masks = relu_forward(layers[:-1], x)
    return acts[-1] @ layers[-1][0].T + layers[-1][1], masks


def tangent(layers, deltas, acts, masks):
    """``J_h Δ`` of the body at the point of ``acts``/``masks`` (forward-mode, exact for ReLU off the kinks)."""
    t = None
    for (w, _), (dw, db), a, d in zip(layers, deltas, acts[:-1], masks):
        s = a @ dw.T + db
        if t is not None:
            s = s + t @ w.T
        t = s * d
    return t


def backward(layers, A, r, acts, masks):
    """Gradients of ``Σ_x ⟨r(x), A h(x)⟩`` w.r.t. every body layer's ``(W, b)`` at the point of ``acts``/``masks``."""
    grads = []
    e = (r @ A) * masks[-1]
    for i in range(len(layers) - 1, -1, -1):
        grads.append((e.T @ acts[i], e.sum(0)))
        if i:
            e = (e @ layers[i][0]) * masks[i - 1]
    return grads[::-1]


def teacher_displacement(pre: PreRunModels, kind: str, device) -> dict | None:
    """``θ_T − θ_S0`` per body layer and aux head for the parameter targets (``None`` for ``function``)."""
    if kind == "function":
        return None
    s0, t1 = pre.student_init, pre.teacher
    f = lambda t: t.to(device, torch.float32)  # noqa: E731
    return {n: (f(t1[n][0]) - f(s0[n][0]), f(t1[n][1]) - f(s0[n][1]))
            for n in [lyr.name for lyr in pre.student_spec.body] + ["aux_head"]}


def linear_target(pre: PreRunModels, kind: str, x, acts, masks, layers, head, delta_T) -> torch.Tensor:
    """The aux logits the linear model is driven to, at the linearisation point of ``acts``/``masks``, for the
    targets that are not the student's own parameters: the teacher linearised around the shared initial body,
    ``(h + J_h ΔW_T) A_Tᵀ + a_T`` (``mismatched-head``), or the teacher's own logits ``z_T(x)`` (``function``).
    The ``reachable`` residual is ``J (δ − Δ*)``, which callers form directly (no cancellation)."""
    t1 = {k: (w.to(x.device, x.dtype), b.to(x.device, x.dtype)) for k, (w, b) in pre.teacher.items()}
    if kind == "mismatched-head":
        At, at = t1["aux_head"]
        return (acts[-1] + tangent(layers, [delta_T[lyr.name] for lyr in pre.student_spec.body], acts, masks)) @ At.T + at
    if kind == "function":
        return aux_forward(body_layers(t1, pre.teacher_spec) + [t1["aux_head"]], x)[0]
    raise ValueError(f"linear_target is for the mismatched-head and function targets, got {kind!r}")


def resolve_target(pre: PreRunModels, target: str, caller: str) -> str:
    """The target kind of a request on a run's pre-run view (``target="auto"``: :func:`target_kind`), after refusing
    a trained ``RunModels``, an unknown target, a body that is not a ReLU MLP and a parameter target for a student
    whose body was not the teacher's initial one."""
    if isinstance(pre, RunModels) or not isinstance(pre, PreRunModels):
        raise TypeError(f"{caller} takes a run's pre-run view (RunModels.pre_run()), not its trained networks")
    if target not in TARGETS:
        raise ValueError(f"target must be one of {', '.join(TARGETS)}, got {target!r}")
    _mlp_check(pre)
    kind = target_kind(pre) if target == "auto" else target
    if kind != "function" and target_kind(pre) == "function":
        raise ValueError(f"target {kind!r} needs a student that starts from the teacher's initial body")
    return kind


def _noise(cfg: RunConfig, n: int, gen, shape, device, normalization):
    norm = tuple(normalization) if cfg.normalize_noise else None
    return draw(cfg.noise, [gen], n, shape, device, cfg.perlin_res, norm)[0].reshape(n, -1)


def noise_law(cfg: RunConfig, normalization) -> tuple | None:
    """``(centre, variance, weight)`` of one coordinate of the run's noise after its optional normalisation, with
    ``weight(x)`` the integration-by-parts weight of theory ``noise-integration-by-parts``: U[lo, hi] ->
    ``(x − lo)(hi − x)/2``, N(c, s²) -> ``s²``; ``None`` for noise whose coordinates are not independent (Perlin)."""
    from limen import theory

    mean, std = tuple(normalization) if cfg.normalize_noise else (0.0, 1.0)
    if cfg.noise == "uniform":
        lo, hi = (-1.0 - mean) / std, (1.0 - mean) / std
        return (lo + hi) / 2, (hi - lo) ** 2 / 12, lambda x: theory.uniform_ibp_weight(x, lo, hi)
    if cfg.noise == "normal":
        var = 1.0 / std ** 2
        return -mean / std, var, lambda x: var
    return None


def _input_moment(cfg: RunConfig, n_in: int, normalization) -> np.ndarray | None:
    """Exact ``E[x̃ x̃ᵀ] = var I + c cᵀ`` (bias appended) of uniform / normal noise (:func:`noise_law`)."""
    law = noise_law(cfg, normalization)
    if law is None:
        return None
    centre, var, _ = law
    out = np.empty((n_in + 1, n_in + 1))
    out[:n_in, :n_in] = var * np.eye(n_in) + centre * centre
    out[:n_in, n_in] = out[n_in, :n_in] = centre
    out[n_in, n_in] = 1.0
    return out


def predict(pre: PreRunModels, data, *, target: str = "auto", device=None, factor_samples: int = FACTOR_SAMPLES,
            moment_batches: int = MOMENT_BATCHES, path: tuple[float, ...] = (0.0,)) -> dict:
    """The predicted student: ``{"params": {layer: (W, b)}, "target": kind, "displacement": {layer: ‖ΔW‖}}``.

    ``data`` gives the image shape and the normalisation applied to the noise (``normalize_noise``).
    """
    from limen import theory

    kind = resolve_target(pre, target, "predict")
    cfg = pre.config
    dev = torch.device(device) if device is not None else pre.student_init["aux_head"][0].device
    cast = lambda p: {k: (w.to(dev, torch.float32), b.to(dev, torch.float32)) for k, (w, b) in p.items()}  # noqa: E731
    s0, t1 = cast(pre.student_init), cast(pre.teacher)
    spec = pre.student_spec
    body = [lyr.name for lyr in spec.body]
    flags = cfg.trainable_flags("student")
    trained = [n for n in body + ["aux_head"] if flags.get(n, True)]
    m, B = cfg.m, cfg.noise_batch
    shape = tuple(data.image_shape)
    n_in = int(math.prod(shape))
    gen = nets.generator(derived_seed(cfg.seed, "predict_noise"), dev)
    L0 = body_layers(s0, spec)
    A0, a0 = s0["aux_head"]
    At = t1["aux_head"][0]
    delta_T = teacher_displacement(pre, kind, dev)

    def residual(x, acts, masks, L, A, a):
        """The linear model's aux residual at the linearisation point of ``acts`` (times 2/(B m): the gradient)."""
        if kind == "reachable":  # exactly −J Δ*, without the cancellation of z − (z + J Δ*)
            dA, da = delta_T["aux_head"]
            return -(tangent(L, [delta_T[n] for n in body], acts, masks) @ A.T + acts[-1] @ dA.T + da)
        return acts[-1] @ A.T + a - linear_target(pre, kind, x, acts, masks, L, (A, a), delta_T)

    # linearisation points: θ_S0, or (reachable target) points θ_S0 + sΔ* on the way to the teacher, averaged
    points = tuple(path) if kind == "reachable" else (0.0,)
    if not points or any(not 0.0 <= p <= 1.0 for p in points):
        raise ValueError(f"path must be linearisation points in [0, 1], got {path!r}")
    at_point = lambda sp: ([(w + sp * delta_T[n][0], b + sp * delta_T[n][1]) for n, (w, b) in zip(body, L0)]  # noqa: E731
                           if sp else L0,
                           (A0 + sp * delta_T["aux_head"][0], a0 + sp * delta_T["aux_head"][1]) if sp else (A0, a0))
    # Adam's second moment of the batch gradient at the training batch size, and the mean gradient
    v = {n: [torch.zeros_like(t, dtype=torch.float64) for t in s0[n]] for n in trained}
    grad0 = {n: [torch.zeros_like(t, dtype=torch.float64) for t in s0[n]] for n in trained}
    n_avg = moment_batches * len(points)
    for sp in points:
        L, (A, a) = at_point(sp)
        for _ in range(moment_batches):
            x = _noise(cfg, B, gen, shape, dev, data.normalization)
            acts, masks = relu_forward(L, x)
            r = residual(x, acts, masks, L, A, a) * (2.0 / (B * m))
            g = dict(zip(body, backward(L, A, r, acts, masks)))
            g["aux_head"] = (r.T @ acts[-1], r.sum(0))
            for n in trained:
                for vi, gi, mi in zip(v[n], g[n], grad0[n]):
                    vi += gi.double() ** 2 / n_avg
                    mi += gi.double() / n_avg
    # Kronecker factors of every trained layer's Gauss–Newton block on the noise
    exact_first = _input_moment(cfg, n_in, data.normalization)
    sampled = [n for n in body + ["aux_head"] if n in trained and not (n == body[0] and exact_first is not None)]
    A_f = {lyr.name: torch.zeros(lyr.weight_shape[0], lyr.weight_shape[0], dtype=torch.float64, device=dev)
           for lyr in spec.body}
    S_f = {n: torch.zeros(s0[n][0].shape[1] + 1, s0[n][0].shape[1] + 1, dtype=torch.float64, device=dev)
           for n in sampled}
    # a student head other than the teacher's sees the teacher's body change only through the cross factor
    cross = ({lyr.name: torch.zeros_like(A_f[lyr.name]) for lyr in spec.body} if kind == "mismatched-head" else None)
    chunk = min(factor_samples, 2048)
    for sp in points:
        L, (A, _) = at_point(sp)
        for a_ in range(0, factor_samples, chunk):
            x = _noise(cfg, min(chunk, factor_samples - a_), gen, shape, dev, data.normalization)
            acts, masks = relu_forward(L, x)
            omega = torch.randn(x.shape[0], m, device=dev, generator=gen)  # E[ω ωᵀ] = I: Σ_j e_j e_jᵀ in one pass
            e = (omega @ A) * masks[-1]
            et = (omega @ At) * masks[-1] if cross is not None else None  # the same outputs through the teacher's head
            for i in range(len(L) - 1, -1, -1):
                A_f[body[i]] += (e.T @ e).double() / len(points)
                if et is not None:
                    cross[body[i]] += (e.T @ et).double()
                if i:
                    e = (e @ L[i][0]) * masks[i - 1]
                    if et is not None:
                        et = (et @ L[i][0]) * masks[i - 1]
            for i, n in enumerate(body + ["aux_head"]):
                if n in S_f:
                    ai = torch.cat([acts[i], torch.ones(x.shape[0], 1, device=dev)], 1)
                    S_f[n] += (ai.T @ ai).double() / len(points)
    head_target = None
    if kind == "function" and "aux_head" in trained:
        # the aux head's block is exact and fast: it absorbs what it can represent first (block Gauss–Seidel), and
        # the body is driven by what it leaves, r1 = r0 + ΔÃ* h̃ with ΔÃ* the head's own least-squares fit
        S_aux = S_f["aux_head"] / factor_samples
        g_aux = torch.cat([grad0["aux_head"][0], grad0["aux_head"][1][:, None]], 1)  # (2/m) E[r0 h̃ᵀ]
        head_target = -(m / 2.0) * g_aux @ torch.linalg.pinv(S_aux, hermitian=True)
        for _ in range(moment_batches):
            x = _noise(cfg, B, gen, shape, dev, data.normalization)
            acts, masks = relu_forward(L0, x)
            ht = torch.cat([acts[-1], torch.ones(x.shape[0], 1, device=dev)], 1).double()
            dr = (ht @ head_target.T * (2.0 / (B * m))).float()
            for n, gs in zip(body, backward(L0, A0, dr, acts, masks)):
                if n in trained:
                    for mi, gi in zip(grad0[n], gs):
                        mi += gi.double() / moment_batches
    layers, names, active = [], [], []
    for n in trained:
        A = (A_f[n] / factor_samples * (2.0 / m)).cpu().numpy() if n != "aux_head" else (2.0 / m) * np.eye(m)
        S = (S_f[n] / factor_samples).cpu().numpy() if n in S_f else exact_first
        root_v = torch.cat([v[n][0], v[n][1][:, None]], 1).sqrt().cpu().numpy()
        # a unit (row) or input (column) with no gradient on the noise gets none from Adam either (m = v = 0):
        # it stays where it is, and the response is solved on the layer's active block
        rows, cols = root_v.sum(1) > 0, root_v.sum(0) > 0
        names.append(n)
        active.append((rows, cols))
        if not rows.any():
            layers.append(None)   # no gradient at all: the layer does not move
            continue
        p, q = theory.kronecker_diagonal(root_v[rows][:, cols])
        entry = {"A": A, "S": S, "p": p, "q": q}
        if kind == "reachable" or (kind == "mismatched-head" and n == "aux_head"):
            entry["target"] = torch.cat([delta_T[n][0], delta_T[n][1][:, None]], 1).double().cpu().numpy()
        elif kind == "mismatched-head":
            # the body's linear fixed point through the student's head: (A_SS)⁺ A_ST ΔW_T (the input factor cancels)
            dW = torch.cat([delta_T[n][0], delta_T[n][1][:, None]], 1).double().cpu().numpy()
            entry["target"] = theory.kronecker_cross_target(A_f[n].cpu().numpy(), cross[n].cpu().numpy(), dW)
        elif n == "aux_head":
            entry["target"] = head_target.cpu().numpy()
        else:
            entry["gradient"] = torch.cat([grad0[n][0], grad0[n][1][:, None]], 1).cpu().numpy()
        sub = {"A": np.ix_(rows, rows), "S": np.ix_(cols, cols), "target": np.ix_(rows, cols),
               "gradient": np.ix_(rows, cols)}
        layers.append({k: (val[sub[k]] if k in sub else val) for k, val in entry.items()})
    steps = cfg.student_epochs * cfg.student_steps_per_epoch
    moves = []
    for (rows, cols), entry in zip(active, layers):
        full = np.zeros((rows.size, cols.size))
        if entry is not None:
            # each layer's Adam scale follows its own gradient energy: one self-consistent step schedule per layer
            full[np.ix_(rows, cols)] = theory.kronecker_response([entry], steps, cfg.student_lr, theory.response.BETA1,
                                                                 schedule=True, grid=GRID)[0]
        moves.append(full)
    params = {k: (w.clone(), b.clone()) for k, (w, b) in s0.items()}
    for n, dw in zip(names, moves):
        dw = torch.as_tensor(dw, dtype=torch.float32, device=dev)
        params[n] = (params[n][0] + dw[:, :-1], params[n][1] + dw[:, -1])
    return {"params": params, "target": kind,
            "displacement": {n: float(np.linalg.norm(dw)) for n, dw in zip(names, moves)}}


@torch.no_grad()
def class_logits(spec: nets.NetSpec, params: nets.Params, x: torch.Tensor, chunk: int = 4096) -> torch.Tensor:
    """Class logits of one network on inputs ``x`` (float32, on x's device)."""
    dev = x.device
    p = _one({k: (w.to(dev), b.to(dev)) for k, (w, b) in params.items()})
    return torch.cat([nets.head(p, "class_head", nets.body(spec, p, x[a:a + chunk], shared=True))[0]
                      for a in range(0, x.shape[0], chunk)])
