"""Infomorphic networks: local losses vs the reference estimator, locality, evaluation, configs, CLI."""

import json
import math

import numpy as np
import pytest
import torch

from limen.estimators.lattice import lattice
from limen.estimators.sx import sx_decomposition
from limen.verify.checks.core import CheckContext, Verdict
from limen.verify.infomorphic.compare import STUDY_ORDER, pairwise, relation_rows, summary_of
from limen.verify.infomorphic.goals import GOALS, atom_names, parse_goal
from limen.verify.infomorphic.model import InfomorphicNet, adaptive_bins, fixed_bins, flip_and_argmax, lateral_mask
from limen.verify.infomorphic.train import InfomorphicConfig, evaluate, preset, train_run


def _reference_goal(bins_nbs, theta_bn, gamma, n_bins):
    """−Σ_neurons (γ·atoms + γ_res·H_res) from an independently built numpy histogram."""
    B, N, n = bins_nbs.shape
    total = 0.0
    for j in range(N):
        hist = np.zeros((n_bins,) * n + (2,))
        for b in range(B):
            cell = tuple(int(v) for v in bins_nbs[b, j])
            hist[cell + (0,)] += (1 - theta_bn[b, j]) / B
            hist[cell + (1,)] += theta_bn[b, j] / B
        d = sx_decomposition(hist, n_sources=n)
        total += float(np.concatenate([d.atoms, [d.h_res]]) @ gamma)
    return -total


def _binned(v, n_bins, fixed, half_range=20.0):
    """Independent binning: fixed range [-R, R] or per-neuron max-abs to [-1, 1]."""
    v = np.asarray(v, dtype=np.float64)
    if fixed:
        u = (v + half_range) / (2 * half_range)
    else:
        m = np.abs(v).max(axis=0, keepdims=True)
        u = (np.where(m > 0, v / np.where(m > 0, m, 1), 0) + 1) / 2
    return np.clip(np.floor(u * n_bins), 0, n_bins - 1).astype(int)


@pytest.mark.parametrize("kind, goal", [("trivariate", "optimised"), ("trivariate", "heuristic"),
                                        ("bivariate-fc", "optimised"), ("bivariate-fl", "heuristic")])
def test_layer_losses_equal_reference_estimator(kind, goal):
    torch.manual_seed(0)
    n_hidden, B, d_in, n_bins = 5, 64, 12, 20
    net = InfomorphicNet(kind, d_in, n_hidden, 4, n_bins=n_bins).double()
    with torch.no_grad():  # spread the sources over several bins
        net.hf.weight.mul_(8.0)
    x = torch.randn(B, d_in, dtype=torch.float64)
    y = torch.randint(0, 4, (B,))
    ctx = torch.nn.functional.one_hot(y, 4).double()
    g_h, g_o = parse_goal(goal, kind), parse_goal(GOALS["output"]["default"], "output")
    torch.manual_seed(1)
    loss_h, loss_o, theta_o = net.local_losses(x, ctx, g_h, g_o)
    torch.manual_seed(1)
    h, (src, theta) = net.hidden(x, ctx)  # the same random draws
    fixed = kind == "trivariate"
    bins = np.stack([_binned(src[..., i].detach().numpy(), n_bins, fixed) for i in range(src.shape[-1])], -1)
    ref_h = _reference_goal(bins, theta.detach().numpy(), g_h, n_bins)
    assert float(loss_h.detach()) == pytest.approx(ref_h, abs=1e-9)
    # output layer: F = linear map of the hidden ±1 output, C = label + bias, adaptive bins
    f_o = (h @ net.of.weight.T + net.of.bias).detach().numpy()
    c_o = (ctx + net.oc_bias).detach().numpy()
    bins_o = np.stack([_binned(f_o, n_bins, False), _binned(c_o, n_bins, False)], -1)
    ref_o = _reference_goal(bins_o, theta_o.detach().numpy(), g_o, n_bins)
    assert float(loss_o.detach()) == pytest.approx(ref_o, abs=1e-9)


def test_no_gradient_crosses_layers():
    torch.manual_seed(0)
    net = InfomorphicNet("trivariate", 10, 6, 3)
    x, y = torch.randn(32, 10), torch.randint(0, 3, (32,))
    ctx = torch.nn.functional.one_hot(y, 3).float()
    g_h, g_o = parse_goal("optimised", "trivariate"), parse_goal((-0.2, 0.1, 1, 0.1, 0), "output")
    loss_h, loss_o, _ = net.local_losses(x, ctx, g_h, g_o)
    loss_o.backward(retain_graph=True)
    assert all(p.grad is None for p in net.hidden_parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in net.output_parameters())
    net.zero_grad(set_to_none=True)
    loss_h.backward()
    assert all(p.grad is None for p in net.output_parameters())
    assert net.hf.weight.grad.abs().sum() > 0 and net.hl.weight.grad.abs().sum() > 0
    h, _ = net.hidden(x, ctx)
    assert not h.requires_grad  # hidden outputs are detached ±1 samples
    assert set(torch.unique(h).tolist()) <= {-1.0, 1.0}
    # lateral weights: no self-connections, and masked weights get no gradient
    assert torch.all(net.hl.weight.grad.diagonal() == 0)


def test_backprop_baseline_does_cross_layers():
    torch.manual_seed(0)
    net = InfomorphicNet("backprop", 10, 6, 3)
    x, y = torch.randn(32, 10), torch.randint(0, 3, (32,))
    theta = net(x, torch.nn.functional.one_hot(y, 3).float())
    torch.nn.functional.cross_entropy(theta, y).backward()
    assert net.hf.weight.grad.abs().sum() > 0  # straight-through gradient reaches the hidden layer


def test_flip_rule_and_argmax():
    theta = torch.tensor([[0.9, 0.2, 0.6], [0.8, 0.1, 0.7], [0.95, 0.3, 0.1]])
    # neuron 0 has mean ≥ 0.5 -> flipped to [0.1, 0.2, 0.05]; neuron 2 mean 0.467 stays
    assert flip_and_argmax(theta).tolist() == [2, 2, 1]
    exactly_half = torch.tensor([[0.7, 0.4], [0.3, 0.45]])
    assert flip_and_argmax(exactly_half).tolist() == [1, 0]  # mean 0.5 counts as ≥ 0.5: flipped


def test_evaluation_uses_zero_label_context():
    net = InfomorphicNet("trivariate", 6, 4, 3)
    seen = []
    orig = net.forward

    def spy(x, ctx):
        seen.append(ctx.clone())
        return orig(x, ctx)

    net.forward = spy
    x, y = torch.randn(20, 6), torch.randint(0, 3, (20,))
    acc = float(evaluate(net, x, y, chunk=8))
    assert 0.0 <= acc <= 1.0
    assert len(seen) == 3 and all(torch.count_nonzero(c) == 0 for c in seen)


def test_binning():
    v = torch.tensor([[-30.0, -20.0, -0.5, 0.0, 19.99, 25.0]]).T
    assert fixed_bins(v, 20, 20.0).squeeze(1).tolist() == [0, 0, 9, 10, 19, 19]
    w = torch.tensor([[-2.0, 0.0], [1.0, 0.0], [0.5, 0.0]])  # second neuron constant 0
    b = adaptive_bins(w, 20)
    assert b[:, 0].tolist() == [0, 15, 12] and b[:, 1].tolist() == [10, 10, 10]
    m = lateral_mask(50, 7)
    assert torch.all(m.sum(1) == 7) and torch.all(m.diagonal() == 0)
    assert torch.equal(lateral_mask(5, None), 1 - torch.eye(5))


def test_goal_names_and_parsing():
    names = atom_names("trivariate")
    assert len(names) == 19 and names[1] == "{F}{C}" and names[11] == "{FC}{FL}" and names[17] == "{FCL}"
    assert names[6] == "{L}{FC}" and names[18] == "H_res"
    assert atom_names("output") == ["{F}", "{C}", "{F}{C}", "{FC}", "H_res"]
    assert len(lattice(3).nodes) == 18
    h = parse_goal("heuristic")
    assert h[1] == 1 and h.sum() == 1
    assert np.array_equal(parse_goal("{F}{C}=1"), h)
    assert np.array_equal(parse_goal("(C)(F)=1"), h)
    assert np.array_equal(parse_goal("1=1"), h)
    assert np.array_equal(parse_goal(list(h)), h)
    sp = parse_goal("optimized-sparse")
    assert np.array_equal(parse_goal("{F}{C}{L}=0.33,{F}{C}=1,{F}{L}=-1,{FC}{FL}=-1"), sp)
    assert np.array_equal(parse_goal("(FC)(FL)=-1, (L)(F)=-1, (F)(C)=1, 0=0.33"), sp)
    assert parse_goal("{L}{FC}=2,H_res=0.5")[[6, 18]].tolist() == [2.0, 0.5]
    assert parse_goal("optimised", "bivariate-fl")[0] == pytest.approx(0.8051)
    for bad, match in [("{F}{X}=1", "sources"), ("{F}{C}=1,1=2", "twice"), ("25=1", "out of range"),
                       ("nonsense", "unknown goal"), ("{F}{C}=abc", "not a number"), ([1, 2], "19 entries"),
                       ("{FC}{F}=1", "not an atom")]:
        with pytest.raises(ValueError, match=match):
            parse_goal(bad)


def test_config_validation():
    with pytest.raises(ValueError, match="kind"):
        InfomorphicConfig(kind="nope")
    with pytest.raises(ValueError, match="epochs"):
        InfomorphicConfig(epochs=-1)
    with pytest.raises(ValueError, match="epochs must be an integer >= 1"):
        InfomorphicConfig(epochs=0)  # a run trains: no record of an untrained net
    from limen.verify.records import config_key

    assert config_key(InfomorphicConfig(theta_clip=0)) == config_key(InfomorphicConfig())  # 0 and 0.0: one key
    with pytest.raises(ValueError, match="n_hidden"):
        InfomorphicConfig(n_hidden=0)
    with pytest.raises(ValueError, match="alpha"):
        InfomorphicConfig(alpha_c=0.7, alpha_l=0.5)
    with pytest.raises(ValueError, match="lateral"):
        InfomorphicConfig(lateral="ring")
    with pytest.raises(ValueError, match="unknown goal"):
        InfomorphicConfig(goal="best")
    with pytest.raises(ValueError, match="5 entries"):
        InfomorphicConfig(output_goal=(1, 2, 3))
    with pytest.raises(ValueError, match="unknown model"):
        preset("transformer")
    with pytest.raises(ValueError, match="lr_hidden"):
        preset("optimised", lr_hidden=0.0)
    cfg = preset("heuristic", goal=np.eye(19)[1])  # γ arrays become JSON-ready tuples
    assert isinstance(cfg.goal, tuple) and cfg.goal[1] == 1.0
    assert preset("optimized").model == "optimised" and preset("backprop").gamma_hidden() is None


@pytest.fixture(scope="module")
def digits():
    from limen.verify.data import load_dataset

    return load_dataset("digits")


@pytest.mark.parametrize("model", ["optimised", "backprop", "readout", "random-projection", "bivariate-fc",
                                   "bivariate-fl"])
def test_tiny_runs_record_everything(model, digits, tmp_path):
    cfg = preset(model, n_hidden=6, epochs=2, batch_size=512, seed=3)
    rec = train_run(cfg, device="cpu", data=digits, out=tmp_path)
    m = rec["metrics"]
    assert len(m["history"]) == 3 and m["steps"] == 2 * math.ceil(1150 / 512)
    assert 0 <= m["test_acc"] <= 1 and 0 <= m["val_acc"] <= 1
    assert np.asarray(m["atoms_output"]).shape == (10, 5)
    if model in ("readout", "random-projection"):
        assert m["atoms_hidden"] is None and m["atoms_file"] is None
    else:
        n_atoms = 19 if model in ("optimised", "backprop") else 5
        assert np.asarray(m["atoms_hidden"]).shape == (6, n_atoms)
        with np.load(tmp_path / m["atoms_file"]) as z:
            assert z["atoms"].shape == (3, 6, n_atoms) and len(z["names"]) == n_atoms
    assert all(np.all(np.isfinite(h["atoms_output"])) for h in m["history"])
    json.dumps(rec)  # JSON-ready
    again = train_run(cfg, device="cpu", data=digits)  # deterministic given the seed
    assert again["metrics"]["test_acc"] == m["test_acc"] and again["key"] == rec["key"]


def _records(model, accs, epochs=100, val=None, steps_per_epoch=47):
    """Fake run records: one per seed with test accuracy ``acc``; ``val(epoch, seed)`` the validation curve."""
    out = []
    for seed, a in enumerate(accs):
        hist = [{"epoch": e, "val_acc": a if val is None else val(e, seed)} for e in range(epochs + 1)]
        out.append({"config": {"model": model, "seed": seed, "epochs": epochs},
                    "metrics": {"test_acc": a, "test_acc_passes": [a - 0.002, a, a + 0.002], "history": hist,
                                "steps": epochs * steps_per_epoch,
                                "atoms_hidden": None, "context_collapsed_hidden": None}})
    return out


MODELS = [a for a, _, _ in STUDY_ORDER] + ["random-projection"]


def _study_like(backprop, readout, epochs=100, val=None, steps_per_epoch=47):
    accs = {"backprop": backprop, "optimised": [0.952, 0.95, 0.951], "heuristic": [0.93, 0.932, 0.931],
            "readout": readout, "random-projection": [0.80, 0.81, 0.79]}
    return [r for m, a in accs.items() for r in _records(m, a, epochs, val, steps_per_epoch)]


def test_summary_rules():
    s = summary_of(_study_like([0.95, 0.951, 0.949], [0.92, 0.93, 0.91]), MODELS)
    assert s["headroom"]["room"] and s["headroom"]["diff"] == pytest.approx(0.03)
    assert [o["verdict"] for o in s["ordering"]] == ["holds", "holds", "inconclusive", "holds"]
    assert all(o["reason"] is None for o in s["ordering"]) and s["ordering_holds"] is None
    assert s["models"]["optimised"]["study_mnist_n100_pct"] == 95.2
    assert s["models"]["optimised"]["eval_passes"] == 3
    assert s["models"]["optimised"]["eval_sd"] == pytest.approx(0.002)
    worse = summary_of(_records("backprop", [0.90, 0.901, 0.899]) + _records("optimised", [0.95, 0.951, 0.949]),
                       ["backprop", "optimised"])
    assert worse["ordering"][0]["verdict"] == "fails" and worse["ordering_holds"] is False
    d = pairwise([1.0, 2.0, 3.0], [0.0, 1.0, 2.0])
    assert d["diff"] == pytest.approx(1.0) and d["lo"] < 1.0 < d["hi"]


def test_welch_interval_matches_scipy():
    from scipy import stats

    from limen.verify.stats import welch_interval

    a, b = [0.91, 0.93, 0.92, 0.95], [0.90, 0.89, 0.93]
    diff, half, df = welch_interval(a, b)
    ci = stats.ttest_ind(a, b, equal_var=False).confidence_interval(0.95)
    assert (diff - half, diff + half) == pytest.approx((ci.low, ci.high), rel=1e-12)
    assert np.isnan(welch_interval([1.0], [2.0, 3.0])[1]) and welch_interval([1.0, 1.0], [2.0, 2.0])[1] == 0.0


def test_digits_like_data_gives_no_verdict_above_the_readout():
    """No room above the readout (backprop ≈ readout, as on the digits): 'heuristic > readout' is INFO."""
    flat = lambda e, seed: 0.94  # noqa: E731  converged: a plateau
    recs = _study_like([0.935, 0.94, 0.93], [0.943, 0.94, 0.945], epochs=500, val=flat, steps_per_epoch=2)
    s = summary_of(recs, MODELS)
    assert not s["headroom"]["room"]
    by = {o["relation"]: o for o in s["ordering"]}
    assert by["heuristic > readout"]["verdict"] == "not judged"
    assert "no room above the readout" in by["heuristic > readout"]["reason"]
    assert by["optimised > heuristic"]["verdict"] == "holds"  # 1000 steps but at a plateau: judged
    assert s["ordering_holds"] is None
    rows = relation_rows(s["ordering"])
    assert rows[2].verdict == Verdict.INFO and rows[2].detail.startswith("not judged")
    # without backprop runs the room cannot be measured either
    s2 = summary_of([r for r in recs if r["config"]["model"] != "backprop"], MODELS)
    assert "no backprop runs" in {o["relation"]: o for o in s2["ordering"]}["heuristic > readout"]["reason"]


def test_separable_margin_gives_a_verdict_above_the_readout():
    """Backprop well above the readout (room): 'heuristic > readout' is judged, here it fails."""
    s = summary_of(_study_like([0.96, 0.961, 0.959], [0.94, 0.941, 0.942]), MODELS)
    assert s["headroom"]["room"]
    rel = {o["relation"]: o for o in s["ordering"]}["heuristic > readout"]
    assert rel["reason"] is None and rel["verdict"] == "fails"
    assert relation_rows(s["ordering"])[2].verdict == Verdict.FAIL


def test_short_runs_are_judged_only_at_a_measured_plateau():
    rising = lambda e, seed: 0.5 + 0.01 * e + 0.001 * seed  # noqa: E731  still learning
    flat = lambda e, seed: 0.9 + 0.0005 * (seed - 1) * (e % 2)  # noqa: E731  plateau (alternating noise)
    room = ([0.96, 0.961, 0.959], [0.92, 0.93, 0.91])
    s = summary_of(_study_like(*room, epochs=10, val=rising), MODELS)
    assert all(o["verdict"] == "not judged" and "shorter than the study's 100 epochs" in o["reason"]
               for o in s["ordering"])
    assert not s["models"]["heuristic"]["plateau"]["plateau"]
    assert s["models"]["heuristic"]["plateau"]["change"] == pytest.approx(0.02)  # last 2 epochs vs the 2 before
    # the length counts optimisation steps: 500 digits epochs (2 steps each) are short of 100 × 47
    s = summary_of(_study_like(*room, epochs=500, val=rising, steps_per_epoch=2), MODELS)
    assert all("(1000 steps)" in o["reason"] for o in s["ordering"])
    s = summary_of(_study_like(*room, epochs=100, val=rising), MODELS)  # MNIST-size, 100 epochs: judged
    assert all(o["reason"] is None for o in s["ordering"])
    s = summary_of(_study_like(*room, epochs=10, val=flat), MODELS)
    assert s["models"]["heuristic"]["plateau"]["plateau"]
    assert [o["verdict"] for o in s["ordering"]] == ["holds", "holds", "inconclusive", "holds"]
    s = summary_of(_study_like(*room, epochs=1, val=flat), MODELS)  # one epoch cannot show a plateau
    assert "too few epochs" in s["models"]["optimised"]["plateau"]["reason"]
    s = summary_of(_study_like(*room), MODELS, smoke=True)
    assert all(o["verdict"] == "not judged" and o["reason"].startswith("smoke run") for o in s["ordering"])


def test_compare_models_resumes(digits, tmp_path, monkeypatch):
    from limen.verify.infomorphic import compare, train

    calls = []
    orig = train.train_run

    def counting(cfg, **kw):
        calls.append(cfg.model)
        return orig(cfg, **kw)

    monkeypatch.setattr(train, "train_run", counting)
    res = compare.compare_models("digits", n_hidden=4, seeds=2, epochs=1, device="cpu",
                                 models=("readout", "random-projection"), out=tmp_path, batch_size=512)
    assert len(res["records"]) == 4 and len(calls) == 4
    s = res["summary"]
    assert set(s["models"]) == {"readout", "random-projection"} and s["models"]["readout"]["n"] == 2
    assert s["ordering"][0]["relation"] == "readout > random-projection"
    res2 = compare.compare_models("digits", n_hidden=4, seeds=2, epochs=1, device="cpu",
                                  models=("readout", "random-projection"), out=tmp_path, batch_size=512)
    assert len(calls) == 4 and res2["summary"]["models"] == s["models"]


def test_cli_runs_resumes_and_plots(tmp_path, capsys):
    from limen.verify.cli import main

    args = ["run", "infomorphic", "--models", "heuristic,readout", "--n-hidden", "4", "--epochs", "1",
            "--batch-size", "512", "--out", str(tmp_path), "--device", "cpu"]
    assert main(args) == 0
    lines = (tmp_path / "records.jsonl").read_text().splitlines()
    assert len(lines) == 2
    assert (tmp_path / "accuracy_vs_n.png").exists() and (tmp_path / "atoms.png").exists()
    assert main(args + ["--no-plot"]) == 0  # resume: nothing retrained
    assert len((tmp_path / "records.jsonl").read_text().splitlines()) == 2
    assert main(["run", "infomorphic", "--list-goals"]) == 0
    assert "{FC}{FL}" in capsys.readouterr().out
    assert main(["run", "infomorphic", "--models", "nope", "--out", str(tmp_path)]) == 2


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)])
def test_local_learning_beats_chance(digits, device):
    """~85 local-learning steps lift digits accuracy well above chance (0.10); on CUDA from graph replays.

    (3 epochs of 16 neurons stay near chance on CPU and on an H200 alike, so shorter runs prove nothing.)
    """
    cfg = preset("optimised", n_hidden=32, epochs=15, batch_size=256)
    rec = train_run(cfg, device=device, data=digits)
    assert rec["metrics"]["cuda_graphs"] == (device == "cuda")
    assert np.isfinite(rec["metrics"]["history"][-1]["loss_hidden"])
    assert rec["metrics"]["history"][-1]["test_acc"] > 0.25


@pytest.mark.parametrize("quick", [True, False])
def test_check_preset_rows(tmp_path, monkeypatch, quick):
    from limen.verify.infomorphic import check

    epochs = check.QUICK_EPOCHS["digits"] if quick else check.DEFAULT_EPOCHS["digits"]
    accs = {"backprop": [0.96, 0.962], "optimised": [0.951, 0.955], "heuristic": [0.93, 0.931],
            "readout": [0.92, 0.921], "random-projection": [0.80, 0.81]}
    records = [r for m, a in accs.items() for r in _records(m, a, epochs=epochs)]

    def fake(data, **kw):
        assert kw["n_hidden"] == 100 and kw["seeds"] == 2 and kw["epochs"] == epochs and kw["smoke"] == quick
        return {"records": records, "summary": summary_of(records, list(accs), margin=check.MARGIN,
                                                          smoke=kw["smoke"])}

    monkeypatch.setattr(check, "compare_models", fake)
    res = check.PRESET.run(CheckContext(out=tmp_path, quick=quick, seeds=2))
    verdicts = [r.verdict for r in res.rows[:4]]
    if quick:  # a smoke run makes no claim
        assert set(r.verdict for r in res.rows) == {Verdict.INFO} and res.verdict == Verdict.INFO
        assert "smoke run" in res.title and res.notes[0].startswith("SMOKE RUN")
    else:
        assert verdicts == [Verdict.PASS] * 4 and res.verdict == Verdict.PASS
    assert res.rows[4].quantity.startswith("room above the readout") and res.rows[4].verdict == Verdict.INFO
    assert res.rows[6].predicted == "MNIST 0.952" and "evaluation passes" in res.rows[6].detail
    json.dumps(res.to_dict(), default=str)


def test_goal_search_local(digits, tmp_path):
    pytest.importorskip("optuna")
    from limen.verify.infomorphic.search import goal_search

    res = goal_search(2, data="digits", n_hidden=4, epochs=1, device="cpu", out=tmp_path, batch_size=512)
    assert res["n_trials"] == 2 and len(res["trials"]) == 2 and len(res["best_gamma"]) == 19
    assert res["best_gamma"][18] == 0.0 and all(-1 <= g <= 1 for g in res["best_gamma"])
    assert res["best_val_acc"] == max(t["val_acc"] for t in res["trials"])
    assert len((tmp_path / "search.jsonl").read_text().splitlines()) == 2


def test_inputs_are_standardised_with_the_data_sets_own_training_statistics():
    from limen.verify.data import MNIST_MEAN, MNIST_STD, load_dataset
    from limen.verify.infomorphic.train import input_normalization, input_statistics, prepare_data

    raw = load_dataset("digits", normalize="none")  # pixels / 16, exact in float32
    pix = raw.x_train.numpy().astype(np.float64)
    mean, std = pix.mean(), pix.std(ddof=1)  # every pixel of the whole training set (1437 images)
    assert input_statistics(raw.x_train) == pytest.approx((mean, std), rel=1e-13)
    assert input_normalization(raw, "train") == pytest.approx((mean, std), rel=1e-13)
    assert abs(mean - MNIST_MEAN) > 0.1 and abs(std - MNIST_STD) > 0.05  # far from MNIST's constants
    # however the set was loaded (MNIST constants, own statistics), the run's inputs are the same
    p0 = prepare_data(raw, 0.2, seed=1)
    for normalize in ("mnist", "dataset", (0.3, 2.0)):
        ds = load_dataset("digits", normalize=normalize)
        assert input_normalization(ds, "train") == pytest.approx((mean, std), rel=1e-6)
        p = prepare_data(ds, 0.2, seed=1)
        assert torch.allclose(p.x_train, p0.x_train, atol=1e-5) and torch.allclose(p.x_test, p0.x_test, atol=1e-5)
    whole = torch.cat([p0.x_train, p0.x_val]).double()
    assert float(whole.mean()) == pytest.approx(0.0, abs=1e-6) and float(whole.std()) == pytest.approx(1.0, abs=1e-6)
    expected = (raw.x_test.reshape(len(raw.x_test), -1).double() - mean) / std
    assert torch.allclose(p0.x_test.double(), expected, atol=1e-6)
    # the MNIST constants on request
    pm = prepare_data(raw, 0.2, seed=1, normalize="mnist")
    assert pm.normalization == (MNIST_MEAN, MNIST_STD)
    assert torch.allclose(pm.x_test.double(), (raw.x_test.reshape(len(raw.x_test), -1).double() - MNIST_MEAN)
                          / MNIST_STD, atol=1e-6)
    with pytest.raises(ValueError, match="normalize"):
        preset("optimised", normalize="imagenet")


def test_record_carries_normalisation_and_evaluation_passes(digits):
    rec = train_run(preset("heuristic", n_hidden=6, epochs=1, batch_size=512, eval_passes=4), device="cpu",
                    data=digits)
    m = rec["metrics"]
    assert m["normalization"]["mode"] == "train" and m["normalization"]["mean"] == pytest.approx(0.3055, abs=1e-4)
    assert len(m["test_acc_passes"]) == 4 and len(m["val_acc_passes"]) == 4
    assert m["test_acc"] == pytest.approx(np.mean(m["test_acc_passes"])) == m["history"][-1]["test_acc"]
    assert len(set(m["test_acc_passes"])) > 1  # the hidden layer samples: passes differ
    ro = train_run(preset("readout", epochs=1, batch_size=512, eval_passes=3), device="cpu", data=digits)
    assert len(set(ro["metrics"]["test_acc_passes"])) == 1  # no sampling in the readout
    with pytest.raises(ValueError, match="eval_passes"):
        preset("optimised", eval_passes=0)


def test_flip_rule_per_evaluation_block():
    class Fixed(torch.nn.Module):
        n_classes = 2

        def forward(self, x, ctx):
            return x

    theta = torch.tensor([[0.9, 0.2], [0.8, 0.3], [0.1, 0.6], [0.2, 0.7]])
    y = torch.tensor([1, 1, 0, 0])
    # whole set: neuron 0 (mean 0.5) is flipped, neuron 1 (mean 0.45) is not
    assert flip_and_argmax(theta).tolist() == [1, 1, 0, 0]
    assert float(evaluate(Fixed(), theta, y)) == 1.0
    # blocks of 2: the first flips neuron 0 (mean 0.85), the second neuron 1 (mean 0.65)
    blocks = torch.cat([flip_and_argmax(theta[:2]), flip_and_argmax(theta[2:])])
    assert blocks.tolist() == [1, 1, 1, 1]
    assert float(evaluate(Fixed(), theta, y, flip_batch=2)) == 0.5
    assert float(evaluate(Fixed(), theta, y, flip_batch=4)) == 1.0  # one block = the whole set


def test_public_code_variants_binary_01_and_theta_clip():
    torch.manual_seed(0)
    x, y = torch.randn(64, 10), torch.randint(0, 3, (64,))
    ctx = torch.nn.functional.one_hot(y, 3).float()
    rp = InfomorphicNet("random-projection", 10, 6, 3, binary="01")
    h, _ = rp.hidden(x, ctx)
    assert set(torch.unique(h).tolist()) == {0.0, 1.0}
    bp = InfomorphicNet("backprop", 10, 6, 3, binary="01")
    h, _ = bp.hidden(x, ctx)
    assert set(torch.unique(h).tolist()) <= {0.0, 1.0}
    # straight-through gradient of E[sample]: σ'(a) for {0,1}, 2σ'(a) for ±1
    from limen.verify.infomorphic.model import _BinaryST

    a = torch.tensor([0.3, -1.2], requires_grad=True)
    for low, scale in ((0.0, 1.0), (-1.0, 2.0)):
        a.grad = None
        _BinaryST.apply(a, low).sum().backward()
        s = torch.sigmoid(a.detach())
        assert torch.allclose(a.grad, scale * s * (1 - s))
    net = InfomorphicNet("trivariate", 10, 6, 3, theta_clip=0.01)
    with torch.no_grad():
        net.of.weight.mul_(1e3)  # saturate the output layer
    h = torch.cat([torch.ones(32, 6), -torch.ones(32, 6)])  # F of opposite signs: both ends saturate
    theta = net.output(h, ctx)[0].detach()
    assert (float(theta.min()), float(theta.max())) == pytest.approx((0.01, 0.99))
    net.theta_clip = 0.0
    theta = net.output(h, ctx)[0].detach()
    assert float(theta.min()) < 1e-6 and float(theta.max()) > 1 - 1e-6
    with pytest.raises(ValueError, match="binary"):
        preset("backprop", binary="bipolar")
    with pytest.raises(ValueError, match="theta_clip"):
        preset("backprop", theta_clip=0.5)


def test_context_collapsed_to_one_bin_is_flagged_and_teaches_nothing(digits, tmp_path):
    from limen.estimators.sample import sx_sample_atoms, sx_sample_goal

    torch.manual_seed(0)
    net = InfomorphicNet("trivariate", 12, 4, 3).double()
    with torch.no_grad():
        net.hf.weight.mul_(8.0)
        net.hc.weight[:2].mul_(1e-3)  # neurons 0, 1: every label context inside one bin of width 2
        net.hc.bias[:2] = 0.5
        net.hc.weight[2:] = torch.tensor([[-9.0, 0.0, 9.0]] * 2, dtype=torch.float64)  # 3 bins
    x = torch.randn(96, 12, dtype=torch.float64)
    y = torch.arange(96) % 3
    ctx = torch.nn.functional.one_hot(y, 3).double()
    hidden, output = net.context_collapsed(ctx)
    assert hidden.tolist() == [True, True, False, False] and output.shape == (3,)
    # a collapsed neuron: every atom with the singleton {C} is 0, so the heuristic goal and its gradient vanish
    _, (src, theta) = net.hidden(x, ctx)
    bins, p = net.hidden_pid_inputs((src, theta))
    atoms = sx_sample_atoms(bins, p.detach(), 20)
    names = atom_names("trivariate")
    with_c = [i for i, n in enumerate(names[:18]) if "{C}" in n]
    assert {names[i] for i in with_c} >= {"{F}{C}", "{C}", "{F}{C}{L}", "{C}{L}", "{C}{FL}"}
    assert torch.all(atoms[:2, with_c].abs() < 1e-12) and atoms[2:, 1].abs().max() > 1e-3
    p = p.detach().requires_grad_(True)
    sx_sample_goal(bins, p, parse_goal("heuristic"), 20).sum().backward()
    assert torch.all(p.grad[:2].abs() < 1e-12) and p.grad[2:].abs().max() > 1e-6
    # records: per-neuron flags, their share per layer at every measured epoch, and in the atom file
    rec = train_run(preset("heuristic", n_hidden=6, epochs=2, batch_size=512), device="cpu", data=digits,
                    out=tmp_path)
    m = rec["metrics"]
    assert len(m["context_collapsed_hidden"]) == 6 and len(m["context_collapsed_output"]) == 10
    assert m["history"][-1]["context_collapsed_share"]["hidden"] == pytest.approx(np.mean(m["context_collapsed_hidden"]))
    with np.load(tmp_path / m["atoms_file"]) as z:
        assert z["context_collapsed"].shape == (3, 6)
    assert train_run(preset("readout", epochs=1, batch_size=512), device="cpu",
                     data=digits)["metrics"]["context_collapsed_hidden"] is None


def test_atoms_plot_splits_collapsed_neurons(tmp_path):
    from limen.verify.infomorphic.plot import mean_atoms

    names = atom_names("trivariate")
    atoms = np.zeros((4, 19))
    atoms[2:, 1] = 0.2
    rec = {"config": {"model": "heuristic", "n_hidden": 4},
           "metrics": {"atoms_hidden": atoms.tolist(), "atom_names_hidden": names,
                       "context_collapsed_hidden": [True, True, False, False]}}
    assert mean_atoms([rec], tmp_path / "a.png") == "a.png" and (tmp_path / "a.png").stat().st_size > 0


def test_cli_validates_before_any_work(tmp_path, capsys):
    from limen.verify.cli import main

    base = ["run", "infomorphic", "--models", "readout", "--n-hidden", "4", "--batch-size", "512", "--device", "cpu"]
    assert main(base + ["--epochs", "0", "--out", str(tmp_path / "e0")]) == 2  # was: a record, then a TypeError
    assert "--epochs must be at least 1" in capsys.readouterr().err
    assert not (tmp_path / "e0").exists()
    f = tmp_path / "a-file"
    f.write_text("keep me\n")
    assert main(base + ["--epochs", "1", "--out", str(f)]) == 2
    assert "is an existing file" in capsys.readouterr().err and f.read_text() == "keep me\n"
    assert main(base + ["--epochs", "1", "--eval-passes", "0", "--out", str(tmp_path / "p0")]) == 2
    assert "--eval-passes" in capsys.readouterr().err


def test_cli_tables_on_stdout_progress_on_stderr_and_json(tmp_path, capsys):
    from limen.verify.cli import main

    args = ["run", "infomorphic", "--models", "heuristic,readout", "--n-hidden", "4", "--epochs", "1",
            "--batch-size", "512", "--out", str(tmp_path), "--device", "cpu", "--no-plot", "--eval-passes", "2"]
    assert main(args) == 0
    out, err = capsys.readouterr()
    assert "test accuracy (%)" in out and "heuristic" in out and "infomorphic: 2 runs" not in out
    assert "infomorphic: 2 runs" in err and "records:" in err
    assert main(args + ["--json"]) == 0  # resumed: the same records, summary as JSON on stdout
    out, err = capsys.readouterr()
    summary = json.loads(out, parse_constant=lambda c: pytest.fail(f"not strict JSON: {c}"))
    assert summary["table"][0]["test_acc_pct"]["ci_lo"] is None  # one seed: no interval (null, not -Infinity)
    assert [r["model"] for r in summary["table"]] == ["heuristic", "readout"]
    assert summary["table"][0]["eval_passes"] == 2 and summary["records"].endswith("records.jsonl")
    assert "test accuracy (%)" in err
    assert json.loads((tmp_path / "summary.json").read_text())["table"] == summary["table"]
