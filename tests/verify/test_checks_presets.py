"""Every ``limen check`` preset in its smallest form on CPU: report folder, exact checks, resume.

The presets run once (module fixture) through ``limen check all --quick`` with the quick
sizes shrunk further (16-16 MLP, a few student steps), which keeps the design of each
check but not its statistical power: tests assert structure and the *exact* claims
(linear fixed point, the margin bound on the oracle fixed point), not the verdicts of
the statistical ones.
"""

import json

import pytest
import torch

from limen.verify import checks
from limen.verify.checks import predict_student, protocol

TINY = {"hidden": (16, 16), "student_epochs": 1, "noise_steps": 8, "noise_batch": 200,
        "eval_noise_batches": 1, "eval_noise_batch": 200}
ENGINE_PRESETS = ["transfer-fraction", "oracle-student", "predict-student", "init-controls", "aux-perturbation",
                  "class-perturbation", "width-transition", "margin-bound"]


@pytest.fixture(scope="module")
def reports(tmp_path_factory):
    from limen.verify.cli import main

    out = tmp_path_factory.mktemp("reports")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matrices: one thread is fastest and immune to a busy machine
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(protocol, "QUICK", TINY)
        mp.setitem(protocol.DIGITS_TEACHER_EPOCHS, "quick", 5)
        mp.setattr(predict_student, "FROZEN_QUICK_SEEDS", 1)   # full size only by default: exercise it on seed 0
        try:
            rc = main(["check", "all", "--quick", "--seeds", "2", "--device", "cpu", "--out", str(out),
                       "--no-progress"])
        finally:
            torch.set_num_threads(threads)
    assert rc == 0
    return out


def _summary(reports, name):
    return json.loads((reports / name / "summary.json").read_text())


def test_all_runs_every_builtin_preset(reports):
    assert set(checks.names(in_all=True)) >= {"linear-fixed-point", *ENGINE_PRESETS}
    for name in ["linear-fixed-point", *ENGINE_PRESETS]:
        s = _summary(reports, name)
        assert s["preset"] == name and s["rows"], name
        assert s["verdict"] in ("PASS", "FAIL", "INCONCLUSIVE")
        for row in s["rows"]:
            assert {"quantity", "predicted", "measured", "tolerance", "verdict"} <= set(row)
            assert row["verdict"] in ("PASS", "FAIL", "INCONCLUSIVE", "INFO")
        assert s["plots"] and all((reports / name / p).stat().st_size > 1000 for p in s["plots"])
        assert s["run_info"]["torch"] and s["config"]["context"]["quick"] is True
        assert (reports / name / "records.jsonl").exists()


def test_linear_fixed_point_passes_exactly(reports):
    s = _summary(reports, "linear-fixed-point")
    judged = [r for r in s["rows"] if r["verdict"] != "INFO"]
    assert len(judged) == 12 and all(r["verdict"] == "PASS" for r in judged)
    assert all(r["measured"]["mean"] < 1e-9 for r in judged)


def test_margin_bound_holds_on_the_oracle_fixed_point(reports):
    s = _summary(reports, "margin-bound")
    oracle = [r for r in s["rows"] if "oracle fixed point" in r["quantity"]]
    assert len(oracle) == 3 and all(r["verdict"] == "PASS" for r in oracle)


def test_engine_presets_keep_per_run_records(reports):
    for name in ENGINE_PRESETS:
        recs = [json.loads(line) for line in (reports / name / "records.jsonl").read_text().splitlines()]
        assert recs and all({"key", "config", "metrics", "run_info"} <= set(r) for r in recs)
    # oracle-student reuses init-controls' runs (same configs, same report root)
    a = {json.loads(x)["key"] for x in (reports / "init-controls" / "records.jsonl").read_text().splitlines()}
    b = {json.loads(x)["key"] for x in (reports / "oracle-student" / "records.jsonl").read_text().splitlines()}
    assert a == b
    # the measured theory quantities are stored with the runs that need them
    rec = json.loads((reports / "margin-bound" / "records.jsonl").read_text().splitlines()[0])
    assert {"transfer_fraction", "remaining_gap", "bound_violation_frac"} <= set(rec["check"])


def test_rerun_resumes_without_training(reports, monkeypatch):
    import limen.verify.subliminal as sub

    def boom(*a, **k):
        raise AssertionError("a finished run was trained again")

    monkeypatch.setattr(sub, "train_group", boom)
    monkeypatch.setattr(sub, "run_sweep", boom)
    monkeypatch.setattr(protocol, "QUICK", TINY)
    monkeypatch.setitem(protocol.DIGITS_TEACHER_EPOCHS, "quick", 5)
    res = checks.run_preset("width-transition", reports, quick=True, seeds=2, device="cpu")
    assert res.rows and res.preset == "width-transition"


def test_class_perturbation_predicts_from_the_unperturbed_runs(reports):
    """σ* and acc(σ) come from theory on each seed's σ = 0 run; at σ = 0 prediction = measurement."""
    s = _summary(reports, "class-perturbation")
    recs = [json.loads(x) for x in (reports / "class-perturbation" / "records.jsonl").read_text().splitlines()]
    pred = [r for r in recs if "class_head_prediction" in r]
    assert len(pred) == 2 and all(r["config"]["perturb"][0]["std"] == 0.0 for r in pred)
    for r in pred:  # the clean accuracy is the σ = 0 run's own accuracy, and the curve starts there
        p = r["class_head_prediction"]
        assert p["clean_accuracy"] == pytest.approx(r["metrics"]["student_final_acc"], abs=1e-12)
        assert p["predicted_accuracy"][0] == pytest.approx(p["clean_accuracy"], abs=1e-12)
        assert p["sigmas"] == s["series"]["sigma"]
    assert s["series"]["predicted"][0] == pytest.approx(s["series"]["mean"][0], abs=1e-12)
    assert any("class_perturbation_sigma_critical" in n for n in s["notes"])
    assert not any("aux_perturbation_sigma_critical" in n for n in s["notes"])


def test_predict_student_structure(reports):
    s = _summary(reports, "predict-student")
    quantities = [r["quantity"] for r in s["rows"]]
    assert "all runs: mean |student − linear response| accuracy" in quantities
    assert any(q.startswith("failure bound holds") for q in quantities)
    pooled = next(r for r in s["rows"] if r["quantity"] == "all runs: mean |student − linear response| accuracy")
    assert pooled["verdict"] in ("PASS", "FAIL", "INCONCLUSIVE") and pooled["measured"]["n"] == len(s["series"]["runs"])
    conds = {r["condition"] for r in s["series"]["runs"]}
    assert conds == {"shared", "random-fc1", "random-fc2", "random-hidden", "random-class-head", "random-aux-head"}
    for run in s["series"]["runs"]:
        assert 0 <= run["linear_response"] <= 1 and 0 <= run["entk"] <= 1
        assert run["target"] == {"shared": "reachable", "random-class-head": "reachable",
                                 "random-aux-head": "mismatched-head"}.get(run["condition"], "function")
        assert run["guaranteed_acc"] <= 1 and (run["target"] != "function" or run["guaranteed_acc"] == 0)
        assert run["guaranteed_acc"] <= run["linear_response"]   # certified examples are ones the prediction gets right
        if run["condition"] == "random-class-head":   # outside the bound's scope: no claim
            assert run["guaranteed_acc"] == 0
    # the error decomposition: student vs the exact linearised student, and it vs the response, run by run
    rows = {r["quantity"]: r for r in s["rows"]}
    holds = next(r for q, r in rows.items() if q.startswith("failure bound holds"))
    assert holds["measured"]["mean"] == pytest.approx(min(r["student"] - r["guaranteed_acc"] for r in s["series"]["runs"]),
                                                       abs=1e-12)
    lin = rows["all runs: mean |student − exact linearised student| accuracy"]["measured"]
    opt = rows["all runs: mean |exact linearised student − linear response| accuracy"]["measured"]
    runs = [r for r in s["series"]["runs"] if r["linearised"] is not None]
    assert runs and all(0 <= r["linearised"] <= 1 for r in runs) and {r["seed"] for r in runs} <= {0, 1}
    assert lin["mean"] == pytest.approx(sum(abs(r["student"] - r["linearised"]) for r in runs) / len(runs), abs=1e-12)
    assert opt["mean"] == pytest.approx(sum(abs(r["linearised"] - r["linear_response"]) for r in runs) / len(runs),
                                        abs=1e-12)
    # and the optimiser model's error split: Adam's adaptivity (linearised − frozen) and the curvature (frozen − response)
    fro = [r for r in s["series"]["runs"] if r["frozen_exact_g"] is not None]
    assert fro and {r["seed"] for r in fro} == {0} and all(0 <= r["frozen_exact_g"] <= 1 for r in fro)
    assert all(r["last_layer_exact"] is not None and 0 <= r["last_layer_exact"] <= 1 for r in fro)
    pairs = {"all runs: mean |student − frozen-Adam model with the exact G| accuracy": ("student", "frozen_exact_g"),
             "all runs: mean |exact linearised student − frozen-Adam model with the exact G| accuracy":
                 ("linearised", "frozen_exact_g"),
             "all runs: mean |frozen-Adam model with the exact G − linear response| accuracy":
                 ("frozen_exact_g", "linear_response"),
             "all runs: mean |student − last-layer-exact student| accuracy": ("student", "last_layer_exact")}
    for q, (a, b) in pairs.items():
        assert rows[q]["measured"]["mean"] == pytest.approx(sum(abs(r[a] - r[b]) for r in fro) / len(fro), abs=1e-12), q
    # the prediction: the response on reachable targets, the subsampled-Adam student on every other run
    every = s["series"]["runs"]
    for r in every:
        assert 0 <= r["subsampled"] <= 1
        assert r["prediction"] == (r["linear_response"] if r["target"] == "reachable" else r["subsampled"])
    for q, k in (("all runs: mean |student − prediction| accuracy", "prediction"),
                 ("all runs: mean |student − subsampled-Adam student| accuracy", "subsampled")):
        assert rows[q]["measured"]["mean"] == pytest.approx(sum(abs(r["student"] - r[k]) for r in every) / len(every),
                                                            abs=1e-12), q
    assert rows["all runs: mean |student − prediction| accuracy"]["verdict"] in ("PASS", "FAIL", "INCONCLUSIVE")
    per_run = [r for q, r in rows.items() if q.startswith("random-fc1, m = ") and "predicted accuracy" in q]
    assert per_run and all("subsampled-Adam student" in r["detail"] for r in per_run)


def _records(reports, name):
    return [json.loads(x) for x in (reports / name / "records.jsonl").read_text().splitlines()]


def test_other_checks_report_predict_students_prediction(reports):
    """init-controls, oracle-student and aux-perturbation show predict-student's prediction of their own runs,
    chosen by the target kind the config alone gives (the one the response measured), beside the response."""
    from limen.verify.subliminal import RunConfig

    from limen.verify.checks.student_prediction import FIELD, SUB_FIELD

    for name in ("predict-student", "aux-perturbation", "init-controls"):
        for r in _records(reports, name):
            kind = predict_student.target_of(RunConfig(**r["config"]))
            assert kind == r[FIELD]["target"], name
            assert (SUB_FIELD in r) or kind == "reachable", name   # the subsampled student wherever it predicts
    recs = _records(reports, "oracle-student")
    rows = {r["quantity"]: r for r in _summary(reports, "oracle-student")["rows"]}
    err = [abs(r["metrics"]["student_final_acc"] - predict_student.predicted(r)) for r in recs]
    got = rows["all runs: mean |student − prediction| accuracy"]["measured"]
    assert got["n"] == len(recs) and got["mean"] == pytest.approx(sum(err) / len(err), abs=1e-12)
    assert "all runs: mean |student − linear response| accuracy" in rows
    s = _summary(reports, "aux-perturbation")
    by_sigma: dict = {}
    for r in _records(reports, "aux-perturbation"):
        std = r["config"]["perturb"][0]["std"]
        by_sigma.setdefault(std, []).append(predict_student.predicted(r))
        if std > 0:
            assert predict_student.predicted(r) == r[SUB_FIELD]["acc"]
    assert s["series"]["prediction"] == pytest.approx([sum(v) / len(v) for _, v in sorted(by_sigma.items())], abs=1e-12)
    quantities = [r["quantity"] for r in s["rows"]]
    assert "accuracy: measured − prediction, mean over the σ grid (paired per seed)" in quantities
    assert "accuracy: measured − linear response, mean over the σ grid (paired per seed)" in quantities
    init = [r["quantity"] for r in _summary(reports, "init-controls")["rows"]]
    assert any(q.startswith("random-fc1: student − prediction (subsampled-Adam student)") for q in init)
    assert any(q.startswith("shared: student − prediction (linear response)") for q in init)
