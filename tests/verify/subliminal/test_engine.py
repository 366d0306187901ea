"""The batched engine on CPU with tiny sizes: batching is exact, sources and heads behave as in the reference."""

import math

import pytest
import torch

from limen.verify.subliminal import RunConfig, plan_groups, teacher_key, train_group
from limen.verify.subliminal import nets
from limen.verify.subliminal.config import derived_seed


def _flat(metrics: dict, prefix=""):
    out = {}
    for k, v in metrics.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        elif isinstance(v, list):
            for i, x in enumerate(v):
                out[f"{prefix}{k}[{i}]"] = x
        else:
            out[prefix + k] = v
    return out


def _assert_metrics_close(a: dict, b: dict, rtol=1e-5, atol=1e-6):
    fa, fb = _flat(a), _flat(b)
    assert fa.keys() == fb.keys()
    for k in fa:
        if fa[k] is None or fb[k] is None:
            assert fa[k] is None and fb[k] is None, k
        else:
            assert math.isclose(fa[k], fb[k], rel_tol=rtol, abs_tol=atol), (k, fa[k], fb[k])


def test_ensemble_equals_separate_runs(fresh_cache, tiny):
    # different seeds, m (padded 3 -> 10), init sources, perturbations in one group
    group = [tiny(seed=0, m=3), tiny(seed=1, m=10, init="random,random,A,A"),
             tiny(seed=2, m=7, init="A,A,A,random", perturb=["student:aux_head,std=0.05"]),
             tiny(seed=0, m=10, init="A,A,random,A"),
             # same seed as member 1 (shared noise stream) but its own perturbed copy of the teacher
             tiny(seed=1, m=4, perturb=["teacher:fc2,std=0.05,timing=before_student_training"])]
    assert len(plan_groups(group, pad_ratio=10)) == 1
    from limen.verify.subliminal.engine import Sharing, teacher_key
    share = Sharing(group, [teacher_key(c) for c in group])
    assert share.seeds == [0, 1, 2] and len(share.slot_rep) == 4  # seed 0's two runs share teacher and noise
    together = train_group(group, "cpu", cache=fresh_cache)
    for cfg, rec in zip(group, together):
        from limen.verify.subliminal import TeacherCache
        alone = train_group([cfg], "cpu", cache=TeacherCache())[0]
        assert alone["key"] == rec["key"]
        _assert_metrics_close(rec["metrics"], alone["metrics"])
        assert rec["run_info"]["group_size"] == 5 and alone["run_info"]["group_size"] == 1


def test_shared_and_random_layers_and_frozen_class_head(fresh_cache, tiny):
    cfg = tiny(seed=5, m=6, init="random,A,A,random")
    (rec,), (mod,) = train_group([cfg], "cpu", cache=fresh_cache, return_models=True)
    t0, s0, s1, t1 = mod.teacher_init, mod.student_init, mod.student, mod.teacher
    for layer in ("fc2", "class_head"):           # A layers: bit-identical initial weights
        assert torch.equal(t0[layer][0], s0[layer][0]) and torch.equal(t0[layer][1], s0[layer][1])
    for layer in ("fc1", "aux_head"):              # random layers: independent draws
        assert not torch.equal(t0[layer][0], s0[layer][0])
    # the student's class head receives no gradient: unchanged by distillation
    assert torch.equal(s0["class_head"][0], s1["class_head"][0]) and torch.equal(s0["class_head"][1], s1["class_head"][1])
    # the teacher's aux head never trains; its class head and hidden layers do
    assert torch.equal(t0["aux_head"][0], t1["aux_head"][0])
    assert not torch.equal(t0["fc1"][0], t1["fc1"][0])
    assert rec["metrics"]["cos"]["student_init_final"]["class_head.weight"] == pytest.approx(1.0)
    assert s0["aux_head"][0].shape == (6, 32)


def test_initialisation_matches_pytorch_defaults_under_the_reference_seeds():
    """Random layers: nn.Linear construction under manual_seed(derived_seed(seed, role, 'model_random_init'));
    A layers: reset_parameters under manual_seed(derived_seed(seed, 'init_source', 'A', layer))."""
    cfg = RunConfig(seed=2, hidden=(16, 8), m=4, init="random,A,random,random")
    from limen.verify.subliminal.engine import specs
    _, spec = specs(cfg)
    params, _ = nets.init_member(spec, 2, "student", cfg.sources("student"), "cpu")
    torch.manual_seed(derived_seed(2, "student", "model_random_init"))
    mods = [torch.nn.Linear(64, 16), torch.nn.Linear(16, 8), torch.nn.Linear(8, 10), torch.nn.Linear(8, 4)]
    for name, mod in zip(("fc1", "class_head", "aux_head"), (mods[0], mods[2], mods[3])):
        assert torch.equal(params[name][0], mod.weight.data) and torch.equal(params[name][1], mod.bias.data)
    torch.manual_seed(derived_seed(2, "init_source", "A", "fc2"))
    fc2 = torch.nn.Linear(16, 8)
    assert torch.equal(params["fc2"][0], fc2.weight.data)


def test_teacher_cache_hits_and_misses(fresh_cache, tiny):
    ms = [tiny(seed=0, m=m) for m in (2, 5, 9)]
    recs = train_group(ms, "cpu", cache=fresh_cache)
    assert fresh_cache.misses == 1 and len(fresh_cache) == 1        # one teacher for the whole m-sweep
    assert [r["timings"]["teacher_cached"] for r in recs] == [False] * 3
    # the teacher does not depend on m nor on the student's settings ...
    assert len({teacher_key(c) for c in ms + [tiny(seed=0, init="random,random,A,A", m=4)]}) == 1
    again = train_group([tiny(seed=0, m=4, init="random,random,A,A")], "cpu", cache=fresh_cache)
    assert fresh_cache.misses == 1 and fresh_cache.hits >= 1 and again[0]["timings"]["teacher_cached"]
    # ... but on everything it is trained with
    for change in ({"seed": 1}, {"teacher_epochs": 2}, {"teacher_init": "random,A,A,A"}, {"teacher_lr": 2e-3},
                   {"teacher_trainable": "class_head:false"}, {"hidden": (32, 16)}, {"batch_size": 512},
                   {"perturb": ["teacher:fc1,std=0.1,timing=after_teacher_training"]}):
        assert teacher_key(tiny(**change)) != teacher_key(tiny()), change
    # aux-head-only teacher perturbations and teacher aux sources do not change the trained teacher
    assert teacher_key(tiny(teacher_init="A,A,A,random")) == teacher_key(tiny())
    # cached teacher == freshly trained teacher, bit for bit
    from limen.verify.subliminal import TeacherCache
    fresh = train_group([tiny(seed=0, m=4, init="random,random,A,A")], "cpu", cache=TeacherCache())
    assert fresh[0]["metrics"] == again[0]["metrics"]
    for r in recs:
        assert r["metrics"]["teacher_final_acc"] == recs[0]["metrics"]["teacher_final_acc"]


def test_random_teacher_aux_head_regenerated_per_m(fresh_cache, tiny):
    cfgs = [tiny(seed=3, m=m, teacher_init="A,A,A,random", init="A,A,A,random") for m in (3, 8)]
    _, mods = train_group(cfgs, "cpu", cache=fresh_cache, return_models=True)
    assert fresh_cache.misses == 1
    for c, mod in zip(cfgs, mods):
        torch.manual_seed(derived_seed(3, "teacher", "model_random_init"))
        layers = [torch.nn.Linear(64, 32), torch.nn.Linear(32, 32), torch.nn.Linear(32, 10), torch.nn.Linear(32, c.m)]
        assert torch.equal(mod.teacher["aux_head"][0], layers[-1].weight.data)


def test_oracle_equals_teacher_when_aux_head_spans_the_features(fresh_cache, tiny):
    # m >= d: P_A = I, so the oracle student's features are the teacher's; with the teacher's class head
    # frozen the student's class head equals the teacher's, and the oracle predicts exactly as the teacher.
    cfg = tiny(hidden=(16, 8), m=12, teacher_trainable="class_head:false")
    rec = train_group([cfg], "cpu", cache=fresh_cache)[0]["metrics"]
    assert rec["tau"] == pytest.approx(1.0)
    assert rec["oracle_acc"] == pytest.approx(rec["teacher_final_acc"], abs=1 / 360 + 1e-9)
    assert rec["principal_cos"] == pytest.approx([1.0] * 8)


def test_metric_values_are_sane(fresh_cache, tiny):
    rec = train_group([tiny(m=10)], "cpu", cache=fresh_cache)[0]["metrics"]
    for k in ("student_final_acc", "teacher_final_acc", "agreement", "oracle_acc", "cka_test", "cka_noise", "tau"):
        assert 0.0 <= rec[k] <= 1.0 + 1e-9, k
    # all-A student starts as the teacher's initial network
    assert rec["student_init_acc"] == rec["teacher_init_acc"]
    assert rec["cos"]["init_teacher_student"]["fc1.weight"] == pytest.approx(1.0)
    assert rec["aux_sigma_min"] > 0 and rec["aux_sigma_max"] >= rec["aux_sigma_min"]
    assert len(rec["principal_cos"]) == 10
    from limen.verify.subliminal.metrics import CKA, cka_sample_space
    x, y = torch.randn(2, 50, 7), torch.randn(2, 50, 5)
    acc = CKA()
    acc.update(x[:, :20], y[:, :20])
    acc.update(x[:, 20:], y[:, 20:])
    assert torch.allclose(acc.value(), cka_sample_space(x, y), atol=1e-10)
    assert torch.allclose(cka_sample_space(x, x), torch.ones(2, dtype=torch.float64))


def test_perturbation_changes_only_what_it_targets(fresh_cache, tiny):
    base = tiny(seed=1)
    pert = tiny(seed=1, perturb=["student:aux_head,std=0.5,include_bias=false"])
    (_, (m0,)) = train_group([base], "cpu", cache=fresh_cache, return_models=True)
    (_, (m1,)) = train_group([pert], "cpu", cache=fresh_cache, return_models=True)
    w0, b0 = m0.student_init["aux_head"]
    w1, b1 = m1.student_init["aux_head"]
    gen = torch.Generator().manual_seed(derived_seed(1, "perturb", 0, "before_student_training", "student", "aux_head"))
    assert torch.allclose(w1, w0 + 0.5 * torch.randn(w0.shape, generator=gen))
    assert torch.equal(b0, b1) and torch.equal(m0.student_init["fc1"][0], m1.student_init["fc1"][0])


@pytest.mark.parametrize("kw", [{"noise": "normal"}, {"noise": "perlin", "perlin_res": 3},
                                {"noise_pool": 150, "student_epochs": 2}, {"normalize_noise": True}])
def test_noise_modes(kw, fresh_cache, tiny):
    cfgs = [tiny(seed=s, **kw) for s in (0, 1)]
    recs = train_group(cfgs, "cpu", cache=fresh_cache)
    alone = train_group(cfgs[1:], "cpu", cache=fresh_cache)
    _assert_metrics_close(recs[1]["metrics"], alone[0]["metrics"])
    assert math.isfinite(recs[0]["metrics"]["student_final_aux_mse"])


def test_perlin_noise_is_bounded_and_smooth():
    from limen.verify.subliminal.noise import draw
    gens = [torch.Generator().manual_seed(0), torch.Generator().manual_seed(1)]
    x = draw("perlin", gens, 5, (1, 28, 28), "cpu", perlin_res=4)
    assert x.shape == (2, 5, 1, 28, 28)
    assert x.abs().amax() <= 1.0 + 1e-6 and torch.allclose(x.abs().flatten(2).amax(-1), torch.ones(2, 5))
    assert (x[..., 1:, :] - x[..., :-1, :]).abs().mean() < 0.3  # neighbouring pixels correlate
    assert not torch.equal(x[0], x[1])


def test_cnn_student_batches_exactly(fresh_cache, tiny):
    spec = [{"type": "conv2d", "out": 4, "kernel": 3, "padding": 1, "pool": "max", "pool_kernel": 2},
            {"type": "linear", "out": 16}]
    cfgs = [tiny(seed=s, student_arch="cnn", student_hidden=(16,), student_cnn_spec=spec,
                 init={"conv1": "random", "fc1": "random"}, m=m) for s, m in ((0, 4), (1, 6))]
    recs = train_group(cfgs, "cpu", cache=fresh_cache)
    alone = train_group(cfgs[1:], "cpu", cache=fresh_cache)
    _assert_metrics_close(recs[1]["metrics"], alone[0]["metrics"])
    assert "conv1.weight" not in recs[0]["metrics"]["cos"]["final_teacher_student"]


def test_groups_split_by_shape_and_padding(tiny):
    cfgs = [tiny(seed=s, m=m) for s in range(2) for m in (1, 2, 300)] + [tiny(hidden=(16, 16))]
    groups = plan_groups(cfgs)
    assert sorted(len(g) for g in groups) == [1, 2, 4]
    for g in groups:
        assert len({(c.hidden) for c in g}) == 1
    assert sum(len(g) for g in plan_groups(cfgs, max_group=1)) == 7
    with pytest.raises(ValueError, match="share shapes"):
        train_group([tiny(), tiny(hidden=(16, 16))], "cpu")


def test_training_loops_do_not_sync_per_step():
    import inspect
    from limen.verify.subliminal import engine, evaluate, noise, teachers, training
    for module in (engine, teachers, training, noise, evaluate):
        assert ".item()" not in inspect.getsource(module), module.__name__


@pytest.mark.parametrize("k, m, d", [(10, 3, 20), (10, 20, 20), (4, 30, 20), (10, 8, 64)])
def test_engine_head_metrics_and_oracle_are_theorys_quantities(k, m, d):
    """The engine's τ, principal cosines and oracle student (limen's only implementations) against the float64
    evaluators of limen.theory (head_overlap, principal_angles, feature_fixed_point)."""
    import numpy as np

    from limen import theory
    from limen.verify.subliminal.metrics import head_geometry, oracle_features, pinv_full_rank
    g = torch.Generator().manual_seed(7 * k + m)
    bound = 1 / d ** 0.5  # PyTorch's head initialisation U(±1/√d)
    C, A, At = ((torch.rand(3, r, d, generator=g, dtype=torch.float64) * 2 - 1) * bound for r in (k, m, m))
    a, at = ((torch.rand(3, m, generator=g, dtype=torch.float64) * 2 - 1) * bound for _ in range(2))
    h0, ht = (torch.randn(3, 50, d, generator=g, dtype=torch.float64) for _ in range(2))
    geo = head_geometry(C, A)
    z_t, z0 = ht @ At.transpose(1, 2) + at[:, None], h0 @ A.transpose(1, 2) + a[:, None]
    h_or = oracle_features(h0, z_t, z0, pinv_full_rank(A))
    for i in range(3):
        Ci, Ai = C[i].numpy(), A[i].numpy()
        assert float(geo["tau"][i]) == pytest.approx(theory.head_overlap(Ci, Ai), abs=1e-12)
        angles = np.sort(np.cos(theory.principal_angles(Ci, Ai)))[::-1][:min(k, m, d)]
        assert geo["principal_cos"][i].numpy() == pytest.approx(angles, abs=1e-9)
        ref = theory.feature_fixed_point(h0[i].numpy(), ht[i].numpy(), Ai, At[i].numpy(), a[i].numpy(), at[i].numpy())
        assert h_or[i].numpy() == pytest.approx(ref, abs=1e-10)


@pytest.mark.parametrize("k, m, d", [(10, 3, 20), (10, 20, 20), (10, 30, 20), (5, 4, 3), (3, 10, 50), (12, 2, 6)])
def test_head_geometry_matches_svd(k, m, d):
    from limen.verify.subliminal.metrics import head_geometry, singular_extremes
    g = torch.Generator().manual_seed(k * 100 + m)
    c = torch.randn(3, k, d, dtype=torch.float64, generator=g)
    a = torch.randn(3, m, d, dtype=torch.float64, generator=g)
    out = head_geometry(c, a)
    proj = torch.linalg.pinv(a) @ a
    tau = torch.einsum("skd,sde,ske->s", c, proj, c) / c.pow(2).sum((1, 2))
    qc = torch.linalg.svd(c, full_matrices=False)[2][:, :min(k, d)].transpose(1, 2)
    sv = torch.linalg.svdvals(a)
    qa = torch.linalg.svd(a, full_matrices=False)[2][:, :min(m, d)].transpose(1, 2)
    cos = torch.linalg.svdvals(qc.transpose(1, 2) @ qa)[:, :min(k, m, d)]
    assert torch.allclose(out["tau"], tau, atol=1e-10)
    assert torch.allclose(out["principal_cos"], cos, atol=1e-10)
    assert torch.allclose(out["pinv"], torch.linalg.pinv(a), atol=1e-9)
    smin, smax = singular_extremes(a)
    assert torch.allclose(smin, sv[:, min(m, d) - 1], atol=1e-10) and torch.allclose(smax, sv[:, 0], atol=1e-10)


def test_frozen_layers_and_class_truncation(fresh_cache, tiny):
    cfg = tiny(n_classes=4, trainable="fc1:false", teacher_trainable="class_head:false", m=3)
    (rec,), (mod,) = train_group([cfg], "cpu", cache=fresh_cache, return_models=True)
    assert torch.equal(mod.student_init["fc1"][0], mod.student["fc1"][0])          # frozen student layer
    assert not torch.equal(mod.student_init["fc2"][0], mod.student["fc2"][0])
    assert torch.equal(mod.teacher_init["class_head"][0], mod.teacher["class_head"][0])  # frozen teacher head
    assert mod.teacher["class_head"][0].shape == (4, 32) and len(rec["metrics"]["principal_cos"]) == 3


def test_cnn_teacher_and_wide_layers(fresh_cache, tiny):
    spec = [{"type": "conv2d", "out": 3, "kernel": 3, "padding": 1}, {"type": "linear", "out": 8}]
    cfg = tiny(arch="cnn", cnn_spec=spec, hidden=(8,), student_arch="mlp", student_hidden=(8,),
               init={"fc1": "random"}, teacher_init={"conv1": "random"}, m=4)
    rec = train_group([cfg], "cpu", cache=fresh_cache)[0]["metrics"]
    assert rec["cos"]["init_teacher_student"]["class_head.weight"] == pytest.approx(1.0)
    # a layer wider than cka_max_features switches CKA to sample space on cka_samples test inputs
    wide = tiny(hidden=(16, 300), m=5)
    a = train_group([wide], "cpu", cache=fresh_cache)[0]["metrics"]
    b = train_group([wide], "cpu", cache=fresh_cache, cka_max_features=100, cka_samples=360)[0]["metrics"]
    assert b["cka_n_test"] == 360 and a["cka_test"] == pytest.approx(b["cka_test"], abs=1e-6)
    assert a["cka_noise"] == pytest.approx(b["cka_noise"], abs=1e-6)  # all 128 eval-noise samples either way
