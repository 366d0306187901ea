"""The subsampled-Adam student (verify.subliminal.surrogate): its gradients and per-sample squares against autograd
per sample, the first layer's integrated drift against the sampled gradient's expectation, Adam itself at b = B and
stride 1, the coarse steps against the fine ones, and what it refuses."""

import dataclasses

import pytest
import torch

from limen.verify.subliminal import INIT_CONDITIONS, RunConfig, train_group
from limen.verify.subliminal.engine import get_data
from limen.verify.subliminal.linear_student import partially_linearised_student
from limen.verify.subliminal.surrogate import (_grads_and_squares, first_layer_drift, subsampled_batch,
                                               subsampled_student, teacher_pass)

TINY = dict(data="digits", hidden=(12, 10), teacher_epochs=3, student_epochs=1, noise_steps=6, noise_batch=64,
            eval_noise_batches=1, eval_noise_batch=64)


@pytest.fixture(scope="module")
def runs():
    cfgs = [RunConfig(**TINY, seed=0, init=INIT_CONDITIONS[c]) for c in ("shared", "random-hidden")]
    out = [train_group([c], "cpu", return_models=True)[1][0] for c in cfgs]
    return out, get_data(cfgs[0], torch.device("cpu"))


def test_gradients_and_per_sample_squares_are_autograds():
    g = torch.Generator().manual_seed(0)
    sizes = [(7, 5), (6, 7), (3, 6)]   # two ReLU layers, then the head
    weights = [(torch.randn(o, i, generator=g, dtype=torch.float64), torch.randn(o, generator=g, dtype=torch.float64))
               for o, i in sizes]
    x = torch.randn(9, 5, generator=g, dtype=torch.float64)
    zt = torch.randn(9, 3, generator=g, dtype=torch.float64)

    def loss(flat, xs, zs):
        h = xs
        for i in range(0, len(flat) - 2, 2):
            h = torch.relu(h @ flat[i].T + flat[i + 1])
        return (h @ flat[-2].T + flat[-1] - zs).pow(2).mean()

    flat = [t for wb in weights for t in wb]
    batch = torch.func.grad(loss)(flat, x, zt)
    per_sample = torch.func.vmap(torch.func.grad(loss), in_dims=(None, 0, 0))(flat, x[:, None], zt[:, None])
    grads = [(torch.empty_like(w), torch.empty_like(b)) for w, b in weights]
    squares = [(torch.empty_like(w), torch.empty_like(b)) for w, b in weights]
    grads[1] = squares[1] = None   # a layer that does not train
    s1, _, _, before = _grads_and_squares(weights, x, zt, grads, squares)
    rest = lambda h1: loss([t for wb in weights[1:] for t in wb], h1, zt)  # noqa: E731 (the net above the first layer)
    assert torch.allclose(before, torch.func.grad(rest)(torch.relu(s1)), rtol=1e-12, atol=1e-12)
    for i, ((gw, gb), (sw, sb)) in ((i, gs) for i, gs in enumerate(zip(grads, squares)) if gs[0] is not None):
        assert torch.allclose(gw, batch[2 * i], rtol=1e-12, atol=1e-12)
        assert torch.allclose(gb, batch[2 * i + 1], rtol=1e-12, atol=1e-12)
        assert torch.allclose(9 * sw, (per_sample[2 * i] ** 2).mean(0), rtol=1e-12, atol=1e-12)   # 1/n of the mean
        assert torch.allclose(9 * sb, (per_sample[2 * i + 1] ** 2).mean(0), rtol=1e-12, atol=1e-12)


def test_at_the_training_batch_it_is_adam_on_the_real_network(runs):
    models, data = runs
    for m in models:
        pre = m.pre_run()
        full = subsampled_student(pre, data, fraction=1, stride=1, first_layer="sampled")
        assert full["batch"] == pre.config.noise_batch and full["steps"] == 6 and full["first_layer"] == "sampled"
        real = partially_linearised_student(pre, data, pre.student_spec.body[0].name)   # the real network, Adam
        for n, (w, b) in full["params"].items():
            assert torch.allclose(w, real["params"][n][0], atol=1e-5)
            assert torch.allclose(b, real["params"][n][1], atol=1e-5)
        assert not torch.equal(full["params"]["fc1"][0], pre.student_init["fc1"][0])


def test_small_batches_train_what_the_student_trains(runs):
    models, data = runs
    pre = models[1].pre_run()
    a, b = subsampled_student(pre, data), subsampled_student(pre, data)
    assert a["batch"] == 2 * subsampled_batch(64) == 8 and a["steps"] == 3 and a["first_layer"] == "integrated"
    fine = subsampled_student(pre, data, stride=1)
    assert fine["batch"] == subsampled_batch(64) == 4 and fine["steps"] == 6   # training's own time step
    coarse = subsampled_student(pre, data, stride=4)
    assert coarse["batch"] == 4 * subsampled_batch(64) == 16 and coarse["steps"] == 2   # ⌈6 / 4⌉ steps of 4 · ⌈64/20⌉
    assert subsampled_student(pre, data, fraction=2, stride=4)["batch"] == 64           # never above the training batch
    for n, (w, bias) in a["params"].items():
        assert torch.equal(w, b["params"][n][0]) and torch.isfinite(w).all() and torch.isfinite(bias).all()
    assert torch.equal(a["params"]["class_head"][0], pre.student_init["class_head"][0])   # no gradient there
    assert not torch.equal(a["params"]["fc1"][0], pre.student_init["fc1"][0])
    frozen = dataclasses.replace(pre, config=pre.config.replace(trainable="fc1:false,fc2:true,class_head:false,"
                                                                          "aux_head:true"))
    kept = subsampled_student(frozen, data)
    assert torch.equal(kept["params"]["fc1"][0], pre.student_init["fc1"][0]) and kept["first_layer"] == "sampled"


def test_batch_rule_and_refusals(runs):
    models, data = runs
    assert [subsampled_batch(B) for B in (1000, 500, 64, 3, 2)] == [50, 25, 4, 2, 2]
    assert subsampled_batch(1000, 1) == 1000
    with pytest.raises(TypeError, match="pre-run view"):
        subsampled_student(models[0], data)
    with pytest.raises(ValueError, match="fraction must be a positive integer"):
        subsampled_student(models[0].pre_run(), data, fraction=0)
    with pytest.raises(ValueError, match="stride must be a positive integer"):
        subsampled_student(models[0].pre_run(), data, stride=1.5)
    pooled = dataclasses.replace(models[0].pre_run(), config=models[0].config.replace(noise_pool=128))
    with pytest.raises(ValueError, match="fixed noise pool"):
        subsampled_student(pooled, data)
    with pytest.raises(ValueError, match="first_layer must be"):
        subsampled_student(models[0].pre_run(), data, first_layer="exact")
    perlin = dataclasses.replace(models[0].pre_run(), config=models[0].config.replace(noise="perlin"))
    with pytest.raises(ValueError, match="first_layer='sampled' or 'auto'"):
        subsampled_student(perlin, data, first_layer="integrated")
    assert subsampled_student(perlin, data)["first_layer"] == "sampled"   # auto: Perlin coordinates are not independent
    tiny = dataclasses.replace(models[0].pre_run(), config=models[0].config.replace(noise_batch=1))
    with pytest.raises(ValueError, match="noise_batch must be at least 2"):
        subsampled_student(tiny, data)


def test_coarse_steps_follow_the_fine_ones(runs):
    """At a small learning rate the displacement is first order in time: ⌈T/k⌉ steps of k·η with β^k move the
    network as T steps of η do (the same samples per unit of time, the training batch: only the noise differs)."""
    models, data = runs
    pre = models[1].pre_run()
    slow = dataclasses.replace(pre, config=pre.config.replace(student_lr=1e-5, student_epochs=4))
    fine = subsampled_student(slow, data, fraction=1, stride=1, first_layer="sampled")["params"]
    coarse = subsampled_student(slow, data, fraction=1, stride=2, first_layer="sampled")["params"]
    d = [torch.cat([(p[n][0] - pre.student_init[n][0]).reshape(-1) for n in ("fc1", "fc2", "aux_head")])
         for p in (fine, coarse)]
    assert torch.nn.functional.cosine_similarity(d[0], d[1], dim=0) > 0.9
    assert 0.8 < float(d[1].norm() / d[0].norm()) < 1.25


def _drift_case(n_in, hidden, x, law, seed=0):
    """A random student and teacher (ReLU body ``hidden``, m = 3), the first layer's sampled mean gradient on ``x`` and
    its integrated estimate, with and without the first layer's own gate term."""
    g = torch.Generator().manual_seed(seed)
    sizes = list(zip(list(hidden) + [3], [n_in] + list(hidden)))
    net = lambda: [(torch.randn(o, i, generator=g, dtype=torch.float64) / i ** 0.5,  # noqa: E731
                    0.3 * torch.randn(o, generator=g, dtype=torch.float64)) for o, i in sizes]
    student, teacher = net(), net()
    xi = torch.randint(0, 2, (x.shape[0], 3), generator=torch.Generator().manual_seed(1)).to(x.dtype) * 2 - 1
    zt, sketch = teacher_pass(teacher, x, xi)
    grads = [(torch.empty_like(w), torch.empty_like(b)) for w, b in student]
    squares = [(torch.empty_like(w), torch.empty_like(b)) for w, b in student]
    s1, masks, out, before = _grads_and_squares(student, x, zt, grads, squares)
    est = [first_layer_drift(student, x, s1, masks, before, xi, sketch, grads[0][1], law, width=wd)
           for wd in (0.1, 1e-6)]
    centre = law[0] * grads[0][1][:, None]   # E[e] cᵀ, from the bias gradient
    return grads[0][0], est, centre


@pytest.mark.parametrize("law_name", ["uniform", "normal"])
def test_first_layer_drift_is_the_sampled_gradients_expectation(law_name):
    """One hidden layer: the integration by parts is exact up to the gate kernel's width, so on 400 000 samples the
    integrated drift equals the sampled gradient's mean (itself within ~1 % here); without the gate term (a kernel
    too narrow to see any sample) it does not. The noise is off-centre, so the centre term is tested too."""
    g = torch.Generator().manual_seed(2)
    n, n_in = 400_000, 40
    if law_name == "uniform":
        lo, hi = -0.5, 1.5
        x = lo + (hi - lo) * torch.rand(n, n_in, generator=g, dtype=torch.float64)
        from limen import theory
        law = ((lo + hi) / 2, (hi - lo) ** 2 / 12, lambda v: theory.uniform_ibp_weight(v, lo, hi))
    else:
        x = 0.4 + 0.7 * torch.randn(n, n_in, generator=g, dtype=torch.float64)
        law = (0.4, 0.49, lambda v: 0.49)
    sampled, (drift, no_gates), centre = _drift_case(n_in, (16,), x, law)
    cos = lambda a, b: float((a * b).sum() / a.norm() / b.norm())  # noqa: E731
    assert cos(drift, sampled) > 0.995 and abs(float(drift.norm() / sampled.norm()) - 1) < 0.03
    sampled, drift, no_gates = sampled - centre, drift - centre, no_gates - centre   # E[e (x − c)ᵀ]
    assert cos(drift, sampled) > 0.998 and abs(float(drift.norm() / sampled.norm()) - 1) < 0.02
    assert cos(no_gates, sampled) < 0.95


def test_first_layer_squares_from_the_noise_law_at_high_input_dimension():
    """``(e²)ᵀ(x²) ≈ Σ_i e_i² E[x²]`` (the integrated first layer's v̂): each of d input coordinates moves ``e`` by
    O(1/√d). On a random 400-input ReLU net and U[-1, 1] noise the two agree to a few per cent."""
    g = torch.Generator().manual_seed(1)
    d, n = 400, 20000
    weights = [(torch.randn(o, i, generator=g, dtype=torch.float64) / i ** 0.5, torch.zeros(o, dtype=torch.float64))
               for o, i in [(32, d), (16, 32), (4, 16)]]
    x = torch.rand(n, d, generator=g, dtype=torch.float64) * 2 - 1
    zt = torch.randn(n, 4, generator=g, dtype=torch.float64)
    grads = [(None, torch.empty(32, dtype=torch.float64)), None, None]
    squares = [(torch.empty(32, d, dtype=torch.float64), torch.empty(32, dtype=torch.float64)), None, None]
    _grads_and_squares(weights, x, zt, grads, squares)
    s1 = x @ weights[0][0].T
    acts = torch.relu(s1)
    e = ((torch.relu(acts @ weights[1][0].T) @ weights[2][0].T - zt) * (2.0 / zt.numel()))
    e = ((e @ weights[2][0]) * (acts @ weights[1][0].T > 0)) @ weights[1][0] * (s1 > 0)
    exact = (e * e).T @ (x * x)
    assert torch.allclose(squares[0][1], (e * e).sum(0), rtol=1e-12)
    rel = (exact - squares[0][1][:, None] / 3.0).abs().sum() / exact.sum()
    assert rel < 0.05
