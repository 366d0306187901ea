"""run_sweep (records, resume), named sweeps, the CLI."""

import json

import pytest

import limen.verify.subliminal as sub
from limen.verify.cli import main as limen_main
from limen.verify.records import ResultStore, config_key
from limen.verify.store import Store
from limen.verify.versions import subliminal_version
from limen.verify.subliminal import SWEEPS, plan_groups, run_sweep, summarize
from limen.verify.subliminal.run import MEASURED_GROUP


def _essence(records):
    return [(r["key"], r["config"], r["seed"], r["metrics"]) for r in records]


def test_resume_after_interrupt_gives_the_same_records(tmp_path, tiny, monkeypatch):
    cfgs = [tiny(seed=s, m=m, hidden=(h, 8)) for s in (0, 1) for m in (2, 4) for h in (8, 12)]
    assert len(plan_groups(cfgs)) == 2
    full = run_sweep(cfgs, tmp_path / "full", device="cpu", progress=False)
    assert len(full) == len(cfgs) and [r["key"] for r in full] == [config_key(c) for c in cfgs]

    real = sub.train_group
    calls = {"n": 0}

    def dies_on_second_group(group, *a, **kw):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt("killed")
        return real(group, *a, **kw)

    monkeypatch.setattr(sub, "train_group", dies_on_second_group)
    with pytest.raises(KeyboardInterrupt):
        run_sweep(cfgs, tmp_path / "cut", device="cpu", progress=False)
    with Store(tmp_path / "cut") as store:
        assert 0 < len(store.latest()) < len(cfgs)
        assert store.holders(f"{config_key(c)}:{subliminal_version()}" for c in cfgs) == {}  # leases given back
    monkeypatch.setattr(sub, "train_group", real)
    resumed = run_sweep(cfgs, tmp_path / "cut", device="cpu", progress=False)
    assert _essence(resumed) == _essence(full)
    recs = ResultStore(tmp_path / "cut" / "records.jsonl").records()  # the export
    assert len(recs) == len(cfgs) and {r["key"] for r in recs} == {config_key(c) for c in cfgs}  # no duplicates
    # a third call trains nothing
    monkeypatch.setattr(sub, "train_group", lambda *a, **k: pytest.fail("nothing left to train"))
    assert _essence(run_sweep(cfgs, tmp_path / "cut", device="cpu", progress=False)) == _essence(full)


def test_measured_runs_are_stored_a_few_at_a_time(tmp_path, tiny):
    # all ten fit one group; measured, they go in groups of MEASURED_GROUP, so a failure loses at most one group
    cfgs = [tiny(seed=s) for s in range(10)]
    assert len(plan_groups(cfgs)) == 1
    calls = {"n": 0}

    def fails_on_the_ninth(models, data):
        calls["n"] += 1
        if calls["n"] == MEASURED_GROUP + 1:
            raise RuntimeError("measurement failed")
        return {"n": calls["n"]}

    with pytest.raises(RuntimeError, match="measurement failed"):
        run_sweep(cfgs, tmp_path, device="cpu", progress=False, measures=[("count", fails_on_the_ninth)])
    with Store(tmp_path) as store:
        assert len(store.latest()) == MEASURED_GROUP


def test_records_have_the_documented_fields(tmp_path, tiny):
    (rec,) = run_sweep([tiny()], tmp_path, device="cpu", progress=False)
    assert set(rec) == {"key", "config", "seed", "metrics", "timings", "run_info", "code_version", "producer"}
    assert rec["producer"] == "subliminal" and len(rec["code_version"]) == 12
    assert rec["run_info"]["torch"] and rec["run_info"]["device"] == "cpu" and rec["run_info"]["allow_tf32"] is False
    for k in ("teacher_init_acc", "teacher_final_acc", "student_init_acc", "student_final_acc", "teacher_init_ce",
              "student_final_ce", "student_init_aux_mse", "student_final_aux_mse", "agreement", "cka_test",
              "cka_noise", "tau", "principal_cos", "aux_sigma_min", "oracle_acc", "cos"):
        assert k in rec["metrics"], k
    json.dumps(rec, allow_nan=False)
    rows = summarize([rec, rec])  # one run asked for twice is counted once
    assert rows[0]["n"] == 1 and rows[0]["student_final_acc"]["mean"] == rec["metrics"]["student_final_acc"]


@pytest.mark.parametrize("name", sorted(SWEEPS))
def test_named_sweeps_build_valid_configs(name):
    data = "emnist-balanced" if name == "emnist-classes" else "digits"
    cfgs = SWEEPS[name](seeds=2, data=data, quick=True)
    keys = {config_key(c) for c in cfgs}
    assert cfgs and (len(keys) == len(cfgs) or name == "study")  # the study grid repeats some runs across figures
    assert sum(len(g) for g in plan_groups(cfgs)) == len(cfgs)


def test_study_grid_size():
    full = SWEEPS["study"](seeds=20, data="mnist")
    assert len(full) == 16260
    assert len(SWEEPS["init-controls"](seeds=20)) == 720


def test_cli_runs_a_quick_sweep_and_resumes(tmp_path, capsys):
    out = tmp_path / "r"
    args = ["run", "subliminal", "--sweep", "init-controls", "--quick", "--seeds", "1", "--out", str(out),
            "--device", "cpu", "--hidden", "16,16", "--set", "teacher_epochs=1", "--set", "student_epochs=1",
            "--noise-steps", "3", "--noise-batch", "32", "--set", "eval_noise_batches=1", "--no-progress"]
    assert limen_main(args) == 0
    text = capsys.readouterr().out
    assert "student_final_acc" in text and (out / "summary.md").exists() and (out / "summary.json").exists()
    n = len(ResultStore(out / "records.jsonl").records())
    assert n == 18
    assert limen_main(args) == 0
    assert len(ResultStore(out / "records.jsonl").records()) == n


def test_cli_rejects_bad_options(capsys):
    assert limen_main(["run", "subliminal", "--m", "0", "--dry-run"]) == 2
    assert "m must be an integer" in capsys.readouterr().err
    assert limen_main(["run", "subliminal", "--set", "colour=red", "--dry-run"]) == 2
    assert limen_main(["run", "subliminal", "--sweep", "nope"]) == 2
    assert limen_main(["run", "subliminal", "--list"]) == 0


def test_summary_counts_a_config_asked_for_twice_once():
    """run_sweep returns one record per requested config, duplicates included; the summary must not count them twice."""
    from limen.verify.subliminal.run import summarize

    rec = {"key": "k1", "config": {"m": 3, "seed": 0}, "metrics": {"student_final_acc": 0.5}}
    other = {"key": "k2", "config": {"m": 3, "seed": 1}, "metrics": {"student_final_acc": 0.7}}
    rows = summarize([rec, rec, other], by=["m"], metrics=("student_final_acc",))
    assert rows[0]["n"] == 2 and rows[0]["student_final_acc"]["mean"] == 0.6
