"""The pre-run student prediction (verify.subliminal.predict): exact tangent/backward passes against autograd,
the target rule, what a prediction may read, and its shape on a tiny trained run."""

import dataclasses

import pytest
import torch

from limen.verify.subliminal import INIT_CONDITIONS, RunConfig, nets, train_group
from limen.verify.subliminal import predict as P
from limen.verify.subliminal.engine import PreRunModels, get_data

TINY = dict(data="digits", hidden=(12, 10), teacher_epochs=3, student_epochs=1, noise_steps=6, noise_batch=64,
            eval_noise_batches=1, eval_noise_batch=64)


def _mlp(rng, sizes, dtype=torch.float64):
    g = torch.Generator().manual_seed(rng)
    return [(torch.randn(o, i, generator=g, dtype=dtype), torch.randn(o, generator=g, dtype=dtype))
            for i, o in zip(sizes[:-1], sizes[1:])]


def _body(layers, x):
    h = x
    for w, b in layers:
        h = torch.relu(h @ w.T + b)
    return h


def test_tangent_is_the_jacobian_vector_product():
    layers = _mlp(0, (5, 7, 4))
    deltas = _mlp(1, (5, 7, 4))
    x = torch.randn(9, 5, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    acts, masks = P.relu_forward(layers, x)
    flat = [t for wb in layers for t in wb]
    tang = [t for wb in deltas for t in wb]
    f = lambda *ps: _body([(ps[i], ps[i + 1]) for i in range(0, len(ps), 2)], x)  # noqa: E731
    _, jv = torch.autograd.functional.jvp(f, tuple(flat), tuple(tang))
    assert torch.allclose(P.tangent(layers, deltas, acts, masks), jv, atol=1e-12)


def test_backward_is_the_gradient():
    layers = _mlp(3, (5, 7, 4))
    A = torch.randn(3, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    x = torch.randn(9, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    r = torch.randn(9, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(6))
    acts, masks = P.relu_forward(layers, x)
    got = P.backward(layers, A, r, acts, masks)
    params = [t.clone().requires_grad_(True) for wb in layers for t in wb]
    z = _body([(params[i], params[i + 1]) for i in range(0, len(params), 2)], x) @ A.T
    grads = torch.autograd.grad((z * r).sum(), params)
    for (gw, gb), (ew, eb) in zip(got, zip(grads[::2], grads[1::2])):
        assert torch.allclose(gw, ew, atol=1e-12) and torch.allclose(gb, eb, atol=1e-12)


def test_input_moment_of_uniform_noise_with_normalisation():
    import numpy as np

    cfg = RunConfig(**TINY, normalize_noise=True)
    got = P._input_moment(cfg, 3, (0.2, 0.5))
    x = np.random.default_rng(0).uniform(-1, 1, (400_000, 3))
    xt = np.hstack([(x - 0.2) / 0.5, np.ones((x.shape[0], 1))])
    assert np.allclose(got, xt.T @ xt / x.shape[0], atol=2e-2)
    assert P._input_moment(RunConfig(**TINY, noise="perlin"), 3, (0.0, 1.0)) is None


@pytest.mark.parametrize("cond, kind", [("shared", "reachable"), ("random-class-head", "reachable"),
                                        ("random-aux-head", "mismatched-head"), ("random-fc1", "function"),
                                        ("random-fc2", "function"), ("random-hidden", "function")])
def test_target_rule(cond, kind):
    cfg = RunConfig(**TINY, init=INIT_CONDITIONS[cond])
    spec_t = nets.build_spec(*cfg.arch_of("teacher"), (1, 8, 8), 10, cfg.m)
    spec_s = nets.build_spec(*cfg.arch_of("student"), (1, 8, 8), 10, cfg.m)
    pre = PreRunModels(cfg, spec_t, spec_s, {}, {}, {})
    assert P.target_kind(pre) == kind


@pytest.fixture(scope="module")
def runs():
    torch.manual_seed(0)
    cfgs = [RunConfig(**TINY, seed=0, init=INIT_CONDITIONS[c]) for c in ("shared", "random-aux-head", "random-hidden")]
    cfgs.append(RunConfig(**TINY, seed=0, trainable="aux_head:false", teacher_trainable="class_head:false"))
    out = []
    for c in cfgs:
        _, models = train_group([c], "cpu", return_models=True)
        out.append(models[0])
    return out, get_data(cfgs[0], torch.device("cpu"))


def test_a_prediction_gets_no_trained_student(runs):
    models, data = runs
    pre = models[0].pre_run()
    assert not hasattr(pre, "student")
    with pytest.raises(TypeError, match="pre-run view"):
        P.predict(models[0], data)


def test_prediction_moves_only_trained_layers_and_is_deterministic(runs):
    models, data = runs
    for m in models:
        pre = m.pre_run()
        a, b = P.predict(pre, data), P.predict(pre, data)
        for name, (w, bias) in a["params"].items():
            assert torch.equal(w, b["params"][name][0]) and torch.isfinite(w).all() and torch.isfinite(bias).all()
        assert torch.equal(a["params"]["class_head"][0], m.student_init["class_head"][0])  # never trained
        flags = m.config.trainable_flags("student")
        for name in a["displacement"]:
            assert flags.get(name, True)
        if not flags["aux_head"]:
            assert torch.equal(a["params"]["aux_head"][0], m.student_init["aux_head"][0])
        assert sum(a["displacement"].values()) > 0


def test_shared_prediction_moves_toward_the_teacher(runs):
    models, data = runs
    m = models[0]
    pred = P.predict(m.pre_run(), data)["params"]
    d_pred = torch.cat([(pred[n][0] - m.student_init[n][0]).flatten() for n in ("fc1", "fc2")])
    d_teacher = torch.cat([(m.teacher[n][0] - m.student_init[n][0]).flatten() for n in ("fc1", "fc2")])
    assert float(d_pred @ d_teacher) > 0


def test_no_student_steps_predicts_the_initial_student(runs):
    models, data = runs
    m = models[0]
    pre = dataclasses.replace(m.pre_run(), config=m.config.replace(student_epochs=0))
    pred = P.predict(pre, data)["params"]
    for name, (w, b) in m.student_init.items():
        assert torch.allclose(pred[name][0], w) and torch.allclose(pred[name][1], b)


def test_bad_requests_are_refused(runs):
    models, data = runs
    with pytest.raises(ValueError, match="target must be one of"):
        P.predict(models[0].pre_run(), data, target="nope")
    with pytest.raises(ValueError, match="teacher's initial body"):
        P.predict(models[2].pre_run(), data, target="reachable")
    cnn = RunConfig(**TINY, student_arch="cnn", student_hidden=(10,),
                    student_cnn_spec=[{"type": "conv2d", "out": 2, "kernel": 3, "padding": 1},
                                      {"type": "linear", "out": None}], init={"conv1": "random", "fc1": "random"})
    spec_s = nets.build_spec(*cnn.arch_of("student"), (1, 8, 8), 10, cnn.m)
    pre = dataclasses.replace(models[0].pre_run(), config=cnn, student_spec=spec_s)
    with pytest.raises(ValueError, match="ReLU MLP bodies"):
        P.predict(pre, data)


def test_linearisation_points_along_the_way_to_the_teacher(runs):
    models, data = runs
    pre = models[0].pre_run()
    base = P.predict(pre, data)["params"]
    same = P.predict(pre, data, path=(0.0,))["params"]
    moved = P.predict(pre, data, path=(0.0, 0.5, 1.0))["params"]
    assert torch.equal(base["fc1"][0], same["fc1"][0]) and not torch.equal(base["fc1"][0], moved["fc1"][0])
    with pytest.raises(ValueError, match="path must be"):
        P.predict(pre, data, path=(0.0, 1.5))
    # points matter only when the teacher is reachable; elsewhere the prediction ignores them
    far = models[2].pre_run()
    assert torch.equal(P.predict(far, data)["params"]["fc1"][0], P.predict(far, data, path=(0.5,))["params"]["fc1"][0])


def test_a_unit_without_gradient_does_not_move(runs):
    """A first-layer unit that is never active on the noise gets no gradient, so Adam (m = v = 0) leaves its
    weights, and the second layer's weights that read it, where they are."""
    models, data = runs
    pre = models[0].pre_run()
    s0 = {k: (w.clone(), b.clone()) for k, (w, b) in pre.student_init.items()}
    s0["fc1"][1][0] = -1e3  # unit 0 of fc1: pre-activation < 0 on every U[−1, 1] input
    dead = dataclasses.replace(pre, student_init=s0)
    out = P.predict(dead, data)["params"]
    assert torch.equal(out["fc1"][0][0], s0["fc1"][0][0]) and out["fc1"][1][0] == s0["fc1"][1][0]
    assert torch.equal(out["fc2"][0][:, 0], s0["fc2"][0][:, 0])
    assert not torch.equal(out["fc1"][0][1], s0["fc1"][0][1])


def test_a_layer_without_gradient_does_not_move(runs):
    models, data = runs
    pre = models[0].pre_run()
    s0 = {k: (w.clone(), b.clone()) for k, (w, b) in pre.student_init.items()}
    s0["fc1"][1][:] = -1e3  # every fc1 unit is off on every input: fc1 gets no gradient, fc2 only through its bias
    out = P.predict(dataclasses.replace(pre, student_init=s0), data)["params"]
    assert torch.equal(out["fc1"][0], s0["fc1"][0]) and torch.equal(out["fc2"][0], s0["fc2"][0])
    assert all(torch.isfinite(w).all() and torch.isfinite(b).all() for w, b in out.values())


def test_noise_law_of_each_noise():
    cfg = RunConfig(**TINY)
    centre, var, w = P.noise_law(cfg, (0.5, 2.0))   # normalisation off: U[-1, 1]
    assert (centre, var, float(w(torch.tensor(0.0)))) == (0.0, 1.0 / 3.0, 0.5)
    centre, var, w = P.noise_law(cfg.replace(normalize_noise=True), (0.5, 2.0))   # (x - 0.5) / 2 ~ U[-0.75, 0.25]
    assert (centre, var) == (-0.25, 1.0 / 12.0) and float(w(torch.tensor(0.25))) == 0.0
    centre, var, w = P.noise_law(cfg.replace(noise="normal", normalize_noise=True), (0.5, 2.0))
    assert (centre, var, w(None)) == (-0.25, 0.25, 0.25)
    assert P.noise_law(cfg.replace(noise="perlin"), (0.5, 2.0)) is None
