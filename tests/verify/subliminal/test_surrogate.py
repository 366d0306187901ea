"""The subsampled-Adam student (verify.subliminal.surrogate): its gradients and per-sample squares against autograd
per sample, Adam itself at b = B and stride 1, the coarse steps against the fine ones, and what it refuses."""

import dataclasses

import pytest
import torch

from limen.verify.subliminal import INIT_CONDITIONS, RunConfig, train_group
from limen.verify.subliminal.engine import get_data
from limen.verify.subliminal.linear_student import partially_linearised_student
from limen.verify.subliminal.surrogate import _grads_and_squares, subsampled_batch, subsampled_student

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
    _grads_and_squares(weights, x, zt, grads, squares)
    for i, ((gw, gb), (sw, sb)) in ((i, gs) for i, gs in enumerate(zip(grads, squares)) if gs[0] is not None):
        assert torch.allclose(gw, batch[2 * i], rtol=1e-12, atol=1e-12)
        assert torch.allclose(gb, batch[2 * i + 1], rtol=1e-12, atol=1e-12)
        assert torch.allclose(9 * sw, (per_sample[2 * i] ** 2).mean(0), rtol=1e-12, atol=1e-12)   # 1/n of the mean
        assert torch.allclose(9 * sb, (per_sample[2 * i + 1] ** 2).mean(0), rtol=1e-12, atol=1e-12)


def test_at_the_training_batch_it_is_adam_on_the_real_network(runs):
    models, data = runs
    for m in models:
        pre = m.pre_run()
        full = subsampled_student(pre, data, fraction=1, stride=1)
        assert full["batch"] == pre.config.noise_batch and full["steps"] == 6
        real = partially_linearised_student(pre, data, pre.student_spec.body[0].name)   # the real network, Adam
        for n, (w, b) in full["params"].items():
            assert torch.allclose(w, real["params"][n][0], atol=1e-5)
            assert torch.allclose(b, real["params"][n][1], atol=1e-5)
        assert not torch.equal(full["params"]["fc1"][0], pre.student_init["fc1"][0])


def test_small_batches_train_what_the_student_trains(runs):
    models, data = runs
    pre = models[1].pre_run()
    a, b = subsampled_student(pre, data), subsampled_student(pre, data)
    assert a["batch"] == subsampled_batch(64) == 4 and a["steps"] == 6
    coarse = subsampled_student(pre, data, stride=4)
    assert coarse["batch"] == 4 * subsampled_batch(64) == 16 and coarse["steps"] == 2   # ⌈6 / 4⌉ steps of 4 · ⌈64/20⌉
    assert subsampled_student(pre, data, fraction=2, stride=4)["batch"] == 64           # never above the training batch
    for n, (w, bias) in a["params"].items():
        assert torch.equal(w, b["params"][n][0]) and torch.isfinite(w).all() and torch.isfinite(bias).all()
    assert torch.equal(a["params"]["class_head"][0], pre.student_init["class_head"][0])   # no gradient there
    assert not torch.equal(a["params"]["fc1"][0], pre.student_init["fc1"][0])
    frozen = dataclasses.replace(pre, config=pre.config.replace(trainable="fc1:false,fc2:true,class_head:false,"
                                                                          "aux_head:true"))
    assert torch.equal(subsampled_student(frozen, data)["params"]["fc1"][0], pre.student_init["fc1"][0])


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
    tiny = dataclasses.replace(models[0].pre_run(), config=models[0].config.replace(noise_batch=1))
    with pytest.raises(ValueError, match="noise_batch must be at least 2"):
        subsampled_student(tiny, data)


def test_coarse_steps_follow_the_fine_ones(runs):
    """At a small learning rate the displacement is first order in time: ⌈T/k⌉ steps of k·η with β^k move the
    network as T steps of η do (the same samples per unit of time, the training batch: only the noise differs)."""
    models, data = runs
    pre = models[1].pre_run()
    slow = dataclasses.replace(pre, config=pre.config.replace(student_lr=1e-5, student_epochs=4))
    fine = subsampled_student(slow, data, fraction=1, stride=1)["params"]
    coarse = subsampled_student(slow, data, fraction=1, stride=2)["params"]
    d = [torch.cat([(p[n][0] - pre.student_init[n][0]).reshape(-1) for n in ("fc1", "fc2", "aux_head")])
         for p in (fine, coarse)]
    assert torch.nn.functional.cosine_similarity(d[0], d[1], dim=0) > 0.9
    assert 0.8 < float(d[1].norm() / d[0].norm()) < 1.25
