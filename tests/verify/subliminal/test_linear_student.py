"""The exact linearised student (verify.subliminal.linear_student): its model is the network's first-order
expansion (against torch.func.jvp), its targets are predict's, and it trains only what the student trains."""

import dataclasses

import pytest
import torch

from limen.verify.subliminal import INIT_CONDITIONS, RunConfig, nets, train_group
from limen.verify.subliminal import predict as P
from limen.verify.subliminal.engine import get_data
from limen.verify.subliminal.linear_student import linear_aux_logits, linearised_student

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
