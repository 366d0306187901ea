"""`limen bench subliminal` in its tiniest form on CPU: the report's structure, not the speed."""

import json

import pytest

from limen.verify.bench import subliminal as bench
from limen.verify.cli import main as limen_main


#: the quick protocol shrunk further for this test (--quick reads config.quick_overrides, patched below)
TINY = {"hidden": (64, 64), "teacher_epochs": 1, "student_epochs": 1, "noise_steps": 10, "noise_batch": 200}


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    from limen.verify.subliminal import config

    out = tmp_path_factory.mktemp("bench") / "bench.json"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(config, "quick_overrides", lambda data: dict(TINY))
        rc = limen_main(["bench", "subliminal", "--quick", "--device", "cpu", "--runs", "2", "--baseline-runs", "1",
                         "--m-values", "3,10", "--out", str(out)])
    assert rc == 0
    return json.loads(out.read_text())


def test_report_structure(report):
    assert report["benchmark"] == "subliminal" and report["quick"] is True
    assert report["run_info"]["device"] == "cpu" and "torch" in report["run_info"]
    assert report["data"]["name"] == "digits" and report["protocol"]["hidden"] == [64, 64]
    assert report["protocol"]["noise_steps"] == TINY["noise_steps"]  # --quick is the shared quick protocol
    b = report["baseline"]
    assert b["runs"] == 1 and b["seconds"] > 0 and b["runs_per_s"] == pytest.approx(1 / b["seconds"])
    own, cached = report["engine"]["own_teachers"], report["engine"]["cached_teachers"]
    assert own["runs"] == 2 and own["teachers"] == 2 and own["m_values"] == [10]
    assert cached["runs"] == 2 and cached["teachers"] == 1 and cached["m_values"] == [3, 10]
    for mode in (own, cached):
        assert mode["seconds"] > 0 and mode["runs_per_s"] == pytest.approx(mode["runs"] / mode["seconds"])
        assert 0 <= mode["mean_teacher_acc"] <= 1 and 0 <= mode["mean_student_acc"] <= 1
        phases = mode["engine_phase_seconds"]
        assert phases is None or set(phases) == {"teacher", "student", "eval"}
    assert report["speedup"]["own_teachers"] == pytest.approx(own["runs_per_s"] / b["runs_per_s"])


def test_both_implementations_report_accuracies_for_the_same_seeds(report):
    a = report["accuracy"]
    assert a["seeds"] == [0]
    for key in ("baseline_teacher", "engine_teacher", "baseline_student", "engine_student"):
        assert len(a[key]) == 1 and 0 <= a[key][0] <= 1


def test_targets_are_not_applied_to_the_reduced_protocol(report):
    (t,) = report["targets"]  # CPU: the >= 5x target only
    assert t["bound"] == ">= 5" and t["verdict"] == "n/a" and "quick" in t["note"]
    assert report["passed"] is None
    g = report["grid_estimate"]
    assert g["applies"] is False and g["runs"] == 16260 and "extrapolation" in g["method"]
    assert g["seconds"] == pytest.approx(sum(r["seconds"] for r in g["rows"]))


def test_target_verdicts():
    own = {"runs": 120, "runs_per_s": 60.0}
    cached = {"runs_per_s": 100.0}
    rows = bench.targets("cuda", False, own, cached, 800.0, 300.0)
    assert [r["verdict"] for r in rows] == ["pass", "fail", "pass", "pass"]
    rows = bench.targets("cuda", False, {"runs": 50, "runs_per_s": 60.0}, cached, 800.0, 900.0)
    assert rows[0]["verdict"] == "n/a" and rows[3]["verdict"] == "fail"
    assert [r["verdict"] for r in bench.targets("cpu", False, own, cached, 4.0, 0)] == ["fail"]


def test_grid_rows_match_the_study_and_unit_costs_invert_the_model():
    rows = bench.grid_rows()
    assert sum(r["runs"] for r in rows) == 16260
    default = next(r for r in rows if r["sweep"].startswith("fig5"))
    assert (default["macs"], default["steps"], default["teachers"]) == (1.0, 1.0, 0)
    fig4 = next(r for r in rows if r["sweep"] == "fig4 m x noise steps")
    assert fig4["steps"] == pytest.approx(3493 / 20 / 60)  # figure 4's 20 noise-step values sum to 3,493
    g = bench.grid_estimate(1.0, 0.0, 0.0)
    assert g["seconds"] == pytest.approx(sum(r["teachers"] * r["teacher"] for r in rows))
    cost = lambda m: (100 + m) / 110  # noqa: E731
    t_t, t_s = 0.5, 0.02
    own = {"teachers": 10, "runs": 10, "m_list": [10] * 10, "seconds": 10 * t_t + 10 * t_s}
    cached = {"teachers": 2, "m_list": [3, 250] * 2, "seconds": 2 * t_t + 2 * (cost(3) + cost(250)) * t_s}
    assert bench._unit_costs(own, cached, cost)[:3] == pytest.approx((t_t, t_s, 0.0))
    own["engine_phase_seconds"] = {"teacher": 10 * t_t, "student": 8 * t_s, "eval": 2 * t_s}
    *unit, how = bench._unit_costs(own, cached, cost)
    assert unit == pytest.approx((t_t, 0.8 * t_s, 0.2 * t_s)) and how == "engine phase timers"


def test_baseline_initialisation_matches_the_engine():
    """Both implementations draw the reference's initial weights: A layers shared, random ones per role."""
    import torch

    from limen.verify.bench.subliminal_baseline import _build
    from limen.verify.subliminal import RunConfig, TeacherCache, train_group

    cfg = RunConfig(seed=5, data="digits", m=3, hidden=(16, 12), init="fc1:random", teacher_epochs=1,
                    student_epochs=1, noise_steps=1, noise_batch=8, eval_noise_batches=1, eval_noise_batch=8)
    teacher, student = _build("teacher", cfg, 64, 10), _build("student", cfg, 64, 10)
    _, (models,) = train_group([cfg], "cpu", return_models=True, cache=TeacherCache())
    for name in ("fc1", "fc2", "class_head", "aux_head"):
        for role, net in (("teacher_init", teacher), ("student_init", student)):
            w, b = models.params(role)[name]
            assert torch.equal(w, getattr(net, name).weight.detach()), (role, name)
            assert torch.equal(b, getattr(net, name).bias.detach()), (role, name)
        same = torch.equal(teacher.get_submodule(name).weight, student.get_submodule(name).weight)
        assert same == (name != "fc1"), name


def test_baseline_rejects_what_it_does_not_implement():
    from limen.verify.bench.subliminal_baseline import run_baseline
    from limen.verify.data import load_dataset
    from limen.verify.subliminal import RunConfig

    ds = load_dataset("digits")
    with pytest.raises(ValueError, match="not normal noise"):
        run_baseline(ds, RunConfig(noise="normal"))
    with pytest.raises(ValueError, match="dataset is digits"):
        run_baseline(ds, RunConfig(data="fashion-mnist"))


def test_run_flops_match_a_hand_count_of_the_default_protocol():
    from limen.verify.subliminal import RunConfig

    f = bench.run_flops(RunConfig(), 784, 60000, 10)
    body = 784 * 256 + 256 * 256
    # teacher: 5 epochs x 60000 images x (3 x (body + 256·10) − 784·256) multiply-adds, 2 FLOP each
    assert f["teacher"] == 2 * 5 * 60000 * (3 * (body + 2560) - 784 * 256)
    # student: 5 x 60 steps x 1000 noise images x (teacher forward + student training), aux width m = 10
    assert f["student"] == 2 * 300 * 1000 * (4 * (body + 2560) - 784 * 256)


def test_arithmetic_ceiling_is_flops_over_rate():
    c = bench.arithmetic_ceiling({"teacher": 6e11, "student": 4e11}, 1e11, 6, 20.0,
                                 {"own_teachers": 12.5, "cached_teachers": 8.0})
    assert c["floor_seconds_per_run"] == pytest.approx({"own_teachers": 10.0, "cached_teachers": 5.0})
    assert c["max_speedup"] == pytest.approx({"own_teachers": 2.0, "cached_teachers": 4.0})
    assert c["engine_fraction"] == pytest.approx({"own_teachers": 0.8, "cached_teachers": 0.625})


def test_report_has_the_ceiling_measured_in_the_same_run(report):
    c = report["arithmetic_ceiling"]
    assert c["matmul_flop_per_s"] > 1e8 and c["students_per_teacher"] == 2
    assert c["max_speedup"]["own_teachers"] == pytest.approx(
        report["baseline"]["seconds"] / c["floor_seconds_per_run"]["own_teachers"])
