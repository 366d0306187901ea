"""The exact linearised student (verify.subliminal.linear_student): its model is the network's first-order
expansion (against torch.func.jvp), its targets are predict's, and it trains only what the student trains."""

import dataclasses

import pytest
import torch

from limen.verify.subliminal import INIT_CONDITIONS, RunConfig, nets, train_group
from limen.verify.subliminal import predict as P
from limen.verify.subliminal.engine import get_data
from limen.verify.subliminal.linear_student import (linear_aux_logits, linearised_student, mse_gradients,
                                                     partial_aux_logits, partially_linearised_student)

TINY = dict(data="digits", hidden=(12, 10), teacher_epochs=3, student_epochs=1, noise_steps=6, noise_batch=64,
            eval_noise_batches=1, eval_noise_batch=64)


@pytest.fixture(scope="module")
def runs():
    torch.manual_seed(0)
    cfgs = [RunConfig(**TINY, seed=0, init=INIT_CONDITIONS[c]) for c in ("shared", "random-aux-head", "random-hidden")]
    out = [train_group([c], "cpu", return_models=True)[1][0] for c in cfgs]
    return out, get_data(cfgs[0], torch.device("cpu"))


def _aux(spec, params, x):
    p = {k: (w.unsqueeze(0), b.unsqueeze(0)) for k, (w, b) in params.items()}
    return nets.head(p, "aux_head", nets.body(spec, p, x, shared=True))[0]


def _jvp(spec, params, delta, x):
    """``(z(θ), J(θ) δ)`` of the network's aux logits by autograd's double-backward JVP."""
    names = list(delta)

    def f(*flat):
        moved = {n: (flat[2 * i], flat[2 * i + 1]) for i, n in enumerate(names)}
        return _aux(spec, {**params, **moved}, x)

    flat_p = tuple(t for n in names for t in params[n])
    flat_d = tuple(t for n in names for t in delta[n])
    return torch.autograd.functional.jvp(f, flat_p, flat_d)


def test_linear_model_is_the_first_order_expansion(runs):
    models, data = runs
    m = models[0]
    s0, spec = m.student_init, m.student_spec
    g = torch.Generator().manual_seed(1)
    delta = {n: (torch.randn(w.shape, generator=g), torch.randn(b.shape, generator=g))
             for n, (w, b) in s0.items() if n != "class_head"}
    x = torch.rand(50, 64, generator=g) * 2 - 1
    acts, masks = P.relu_forward(P.body_layers(s0, spec), x)
    body = [lyr.name for lyr in spec.body]
    got = linear_aux_logits(P.body_layers(s0, spec), s0["aux_head"], [delta[n] for n in body], delta["aux_head"],
                            acts, masks)
    z0, jv = _jvp(spec, s0, delta, x)
    assert torch.allclose(got, z0 + jv, atol=1e-4)


def test_mse_gradients_are_autograds_gradients_of_the_linear_models_loss(runs):
    models, _ = runs
    s0, spec = models[0].student_init, models[0].student_spec
    g = torch.Generator().manual_seed(3)
    names = [lyr.name for lyr in spec.body] + ["aux_head"]
    delta = {n: (torch.randn(s0[n][0].shape, generator=g, dtype=torch.float64, requires_grad=True),
                 torch.randn(s0[n][1].shape, generator=g, dtype=torch.float64, requires_grad=True)) for n in names}
    L0 = [(w.double(), b.double()) for w, b in P.body_layers(s0, spec)]
    head = tuple(t.double() for t in s0["aux_head"])
    x = torch.rand(30, 64, generator=g, dtype=torch.float64) * 2 - 1
    target = torch.randn(30, head[0].shape[0], generator=g, dtype=torch.float64)
    acts, masks = P.relu_forward(L0, x)
    res = linear_aux_logits(L0, head, [delta[n] for n in names[:-1]], delta["aux_head"], acts, masks) - target
    want = torch.autograd.grad(res.pow(2).mean(), [t for n in names for t in delta[n]])
    got = [t for pair in mse_gradients(L0, head, res.detach(), acts, masks) for t in pair]
    assert len(got) == len(want)
    for a, b in zip(got, want):
        assert torch.allclose(a, b, rtol=1e-12, atol=1e-15)


def test_reachable_target_is_the_student_moved_by_the_teachers_displacement(runs):
    models, data = runs
    pre = models[0].pre_run()
    spec = pre.student_spec
    dT = P.teacher_displacement(pre, "reachable", torch.device("cpu"))
    x = torch.rand(40, 64, generator=torch.Generator().manual_seed(2)) * 2 - 1
    L0 = P.body_layers(pre.student_init, spec)
    acts, masks = P.relu_forward(L0, x)
    body = [lyr.name for lyr in spec.body]
    got = linear_aux_logits(L0, pre.student_init["aux_head"], [dT[n] for n in body], dT["aux_head"], acts, masks)
    z0, jv = _jvp(spec, pre.student_init, dT, x)
    assert torch.allclose(got, z0 + jv, atol=1e-4)
    fn = P.linear_target(pre, "function", x, acts, masks, L0, pre.student_init["aux_head"], None)
    assert torch.allclose(fn, _aux(pre.teacher_spec, pre.teacher, x), atol=1e-5)
    with pytest.raises(ValueError, match="mismatched-head and function"):
        P.linear_target(pre, "reachable", x, acts, masks, L0, pre.student_init["aux_head"], dT)


def test_a_student_at_its_target_does_not_move(runs):
    models, data = runs
    pre = models[0].pre_run()
    at_teacher = dataclasses.replace(pre, student_init={k: (w.clone(), b.clone()) for k, (w, b) in pre.teacher.items()})
    out = linearised_student(at_teacher, data)
    for n, (w, b) in out["params"].items():
        assert torch.equal(w, pre.teacher[n][0]) and torch.equal(b, pre.teacher[n][1])
    assert out["loss_last"] == 0.0


def test_it_trains_what_the_student_trains_and_reads_no_student(runs):
    models, data = runs
    with pytest.raises(TypeError, match="pre-run view"):
        linearised_student(models[0], data)
    for m in models:
        pre = m.pre_run()
        a, b = linearised_student(pre, data), linearised_student(pre, data)
        assert a["target"] == P.target_kind(pre)
        for n, (w, bias) in a["params"].items():
            assert torch.equal(w, b["params"][n][0]) and torch.isfinite(w).all() and torch.isfinite(bias).all()
        assert torch.equal(a["params"]["class_head"][0], m.student_init["class_head"][0])
        assert not torch.equal(a["params"]["fc1"][0], m.student_init["fc1"][0])
    still = dataclasses.replace(models[0].pre_run(), config=models[0].config.replace(student_epochs=0))
    for n, (w, _) in linearised_student(still, data)["params"].items():
        assert torch.equal(w, models[0].student_init[n][0])
    with pytest.raises(ValueError, match="teacher's initial body"):
        linearised_student(models[2].pre_run(), data, target="reachable")
    with pytest.raises(ValueError, match="target must be"):
        linearised_student(models[0].pre_run(), data, target="nope")


def _dense_reference(pre, data, kind, groups):
    """The frozen-preconditioner response on the pool's one batch from the dense Jacobian (float64, theory):
    G = (2/(Bm)) JᵀJ over the batch, zeroed between groups; the reachable target per group, else the exact forcing."""
    import numpy as np
    from limen import theory
    from limen.verify.subliminal.config import derived_seed
    cfg, spec = pre.config, pre.student_spec
    s0 = {k: (w.double(), b.double()) for k, (w, b) in pre.student_init.items()}
    names = [lyr.name for lyr in spec.body] + ["aux_head"]
    gen = nets.generator(derived_seed(cfg.seed, "linear_student_noise"), torch.device("cpu"))
    x = P._noise(cfg, cfg.noise_pool, gen, tuple(data.image_shape), torch.device("cpu"), data.normalization).double()
    L0 = P.body_layers(s0, spec)
    acts, masks = P.relu_forward(L0, x)
    shapes = [t.shape for n in names for t in s0[n]]
    sizes = [int(np.prod(sh)) for sh in shapes]

    def lin(flat):
        parts = torch.split(flat, sizes)
        d = {n: (parts[2 * i].reshape(shapes[2 * i]), parts[2 * i + 1].reshape(shapes[2 * i + 1])) for i, n in enumerate(names)}
        return linear_aux_logits(L0, s0["aux_head"], [d[n] for n in names[:-1]], d["aux_head"], acts, masks)

    P_ = sum(sizes)
    J = torch.autograd.functional.jacobian(lin, torch.zeros(P_, dtype=torch.float64)).reshape(-1, P_).numpy()
    z0 = lin(torch.zeros(P_, dtype=torch.float64)).reshape(-1).numpy()
    G = 2.0 / J.shape[0] * J.T @ J
    owner = np.repeat([i // 2 for i in range(len(shapes))], sizes)   # layer index of every coordinate
    group_of = {n: k for k, g in enumerate(groups) for n in g}
    same = np.array([group_of[names[i]] for i in owner])
    G = np.where(same[:, None] == same[None, :], G, 0.0)
    if kind == "reachable":
        dT = P.teacher_displacement(pre, kind, torch.device("cpu"))
        target = torch.cat([t.double().reshape(-1) for n in names for t in dT[n]]).numpy()
        grad = lambda d: G @ (d - target)   # noqa: E731
    else:
        zt = P.linear_target(pre, kind, x, acts, masks, L0, s0["aux_head"], None).reshape(-1).numpy()
        b = 2.0 / J.shape[0] * J.T @ (z0 - zt)
        grad = lambda d: G @ d + b   # noqa: E731
    g0 = grad(np.zeros(P_))
    D = np.where(g0 != 0, 1.0 / np.where(g0 != 0, np.abs(g0), 1.0), 0.0)   # v = g0² on the one batch
    steps = cfg.student_epochs * cfg.student_steps_per_epoch
    flat = theory.simulate_response(G, D, np.zeros(P_), steps, cfg.student_lr, theory.response.BETA1, schedule=True,
                                    grads=lambda t, d: grad(d))
    parts = np.split(flat, np.cumsum(sizes)[:-1])
    return {n: (parts[2 * i].reshape(shapes[2 * i]), parts[2 * i + 1].reshape(shapes[2 * i + 1])) for i, n in enumerate(names)}


@pytest.mark.parametrize("which,blocks", [(0, None), (0, [["fc1"], ["fc2", "aux_head"]]), (2, None),
                                          (2, [["fc1"], ["fc2"], ["aux_head"]])])
def test_frozen_optimiser_is_the_preconditioned_response_with_the_exact_gauss_newton(runs, which, blocks):
    """On one fixed batch (noise_pool = batch) ``optimiser="frozen"`` is theory's frozen-preconditioner momentum
    descent with the self-consistent schedule on the dense G -- block-diagonal over ``blocks`` when given."""
    models, data = runs
    base = models[which].pre_run()
    cfg = base.config.replace(noise_pool=base.config.noise_batch, student_epochs=8)
    pre = dataclasses.replace(base, config=cfg)
    kind = P.target_kind(pre)
    groups = blocks or [["fc1", "fc2", "aux_head"]]
    got = linearised_student(pre, data, optimiser="frozen", blocks=blocks)["params"]
    want = _dense_reference(pre, data, kind, groups)
    # float32 training against the float64 reference, layer by layer. The preconditioner 1/|g0| amplifies float32
    # rounding on coordinates whose initial gradient is near zero (up to ~1e-3 of a layer's move here); a wrong
    # model -- the coupled G for a block-diagonal one, or the reverse -- is off by 0.1-1.
    for n, (dw, db) in want.items():
        moved = torch.cat([(got[n][0].double() - pre.student_init[n][0].double()).reshape(-1),
                           got[n][1].double() - pre.student_init[n][1].double()])
        ref = torch.cat([torch.as_tensor(dw).reshape(-1), torch.as_tensor(db)])
        assert ref.norm() > 0 and (moved - ref).norm() <= 5e-3 * ref.norm(), (n, float((moved - ref).norm() / ref.norm()))
    if blocks is not None:   # and the coupled model is another one
        coupled = _dense_reference(pre, data, kind, [["fc1", "fc2", "aux_head"]])["fc1"][0]
        moved = got["fc1"][0].double() - pre.student_init["fc1"][0].double()
        assert (moved - torch.as_tensor(coupled)).norm() > 0.05 * moved.norm()


def test_blocks_and_optimiser_are_validated(runs):
    models, data = runs
    pre = models[0].pre_run()
    with pytest.raises(ValueError, match="optimiser must be one of"):
        linearised_student(pre, data, optimiser="sgd")
    for bad in ([["fc1"], ["fc2"]], [["fc1", "fc2", "aux_head"], []], [["fc1", "fc1"], ["fc2", "aux_head"]]):
        with pytest.raises(ValueError, match="blocks must split the trained layers"):
            linearised_student(pre, data, blocks=bad)
    one = linearised_student(pre, data, blocks=[["fc1", "fc2", "aux_head"]])
    for n, (w, _) in linearised_student(pre, data)["params"].items():
        assert torch.equal(w, one["params"][n][0])


def test_partial_model_is_exact_from_its_layer_on_and_first_order_below(runs):
    """k = 0 is the real network; δ below k = 0 is the real network; otherwise it agrees with the real network to
    first order in δ_{<k} (the error shrinks as ε², float64)."""
    models, _ = runs
    s0, spec = models[0].student_init, models[0].student_spec
    g = torch.Generator().manual_seed(4)
    names = [lyr.name for lyr in spec.body]
    p64 = {n: (w.double(), b.double()) for n, (w, b) in s0.items()}
    L0, head = P.body_layers(p64, spec), p64["aux_head"]
    delta = {n: (torch.randn(p64[n][0].shape, generator=g, dtype=torch.float64),
                 torch.randn(p64[n][1].shape, generator=g, dtype=torch.float64)) for n in names + ["aux_head"]}
    x = torch.rand(40, 64, generator=g, dtype=torch.float64) * 2 - 1

    def real(eps_below, k):
        moved = {n: (p64[n][0] + (eps_below if i < k else 1.0) * delta[n][0],
                     p64[n][1] + (eps_below if i < k else 1.0) * delta[n][1])
                 for i, n in enumerate(names + ["aux_head"])}
        return _aux(spec, {**p64, **moved}, x)

    def model(eps_below, k):
        d = [(eps_below * dw, eps_below * db) if i < k else (dw, db) for i, (dw, db) in
             enumerate(delta[n] for n in names)]
        return partial_aux_logits(L0, head, d, delta["aux_head"], x, k)

    assert torch.allclose(model(1.0, 0), real(1.0, 0), rtol=1e-12, atol=1e-12)
    k = len(names) - 1
    assert torch.allclose(model(0.0, k), real(0.0, k), rtol=1e-12, atol=1e-12)
    errs = [float((model(e, k) - real(e, k)).abs().max()) for e in (1e-3, 1e-4)]
    assert 0 < errs[1] < errs[0] / 30   # O(ε²): a first-order model, not the real one


def test_partially_linearised_student_trains_and_validates(runs):
    models, data = runs
    pre = models[1].pre_run()   # random aux head
    a, b = partially_linearised_student(pre, data, "fc2"), partially_linearised_student(pre, data, "fc2")
    for n, (w, bias) in a["params"].items():
        assert torch.equal(w, b["params"][n][0]) and torch.isfinite(w).all() and torch.isfinite(bias).all()
    assert torch.equal(a["params"]["class_head"][0], pre.student_init["class_head"][0])   # no gradient there
    assert not torch.equal(a["params"]["fc1"][0], pre.student_init["fc1"][0])
    at_teacher = dataclasses.replace(models[0].pre_run(),
                                     student_init={k: (w.clone(), b.clone()) for k, (w, b) in models[0].teacher.items()})
    out = partially_linearised_student(at_teacher, data, "fc2")
    assert out["loss_last"] == 0.0
    for n, (w, _) in out["params"].items():
        assert torch.equal(w, models[0].teacher[n][0])
    with pytest.raises(ValueError, match="nonlinear_from must name a body layer"):
        partially_linearised_student(pre, data, "aux_head")
    with pytest.raises(TypeError, match="pre-run view"):
        partially_linearised_student(models[1], data, "fc2")
