"""The road: concurrent processes on one store, SIGKILL at any point, code versions, measurements.

Trainings are counted where they happen (``train_group`` wrapped, in-process or in the
driver processes of ``road_driver.py``), not inferred from the store's lines.
"""

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

import limen.verify.subliminal as sub
from limen.verify import versions
from limen.verify.cli import main as limen_main
from limen.verify.records import config_key
from limen.verify.road import Measure
from limen.verify.store import Store
from limen.verify.subliminal import SWEEPS, RunConfig, run_sweep

from stored import stored_records  # tests/verify/stored.py

DRIVER = Path(__file__).with_name("road_driver.py")
SWEEP = ["run", "subliminal", "--sweep", "init-controls", "--quick", "--seeds", "1", "--device", "cpu",
         "--hidden", "16,16", "--set", "teacher_epochs=1", "--set", "student_epochs=1", "--noise-steps", "6",
         "--noise-batch", "64", "--set", "eval_noise_batches=1", "--set", "eval_noise_batch=64", "--no-progress",
         "--max-group", "2"]
N_RUNS = 18  # init-controls --quick at one seed: 6 conditions x 3 m


def _keys():
    cfgs = SWEEPS["init-controls"](seeds=1, data="digits", quick=True, hidden=(16, 16), teacher_epochs=1,
                                   student_epochs=1, noise_steps=6, noise_batch=64, eval_noise_batches=1,
                                   eval_noise_batch=64)
    return {config_key(c) for c in cfgs}


def _start(folder: Path, out: Path, n: int) -> list[subprocess.Popen]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen([sys.executable, str(DRIVER), str(folder), *SWEEP, "--out", str(out)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
             for _ in range(n)]
    deadline = time.monotonic() + 180
    while len(list(folder.glob("ready-*"))) < n:
        assert all(p.poll() is None for p in procs), [p.communicate() for p in procs]
        assert time.monotonic() < deadline, "drivers did not start within 180 s"
        time.sleep(0.05)
    (folder / "go").touch()
    return procs


def _trained(folder: Path) -> list[tuple[str, str]]:
    path = folder / "trained.log"
    return [tuple(line.split()) for line in path.read_text().splitlines()] if path.exists() else []


def _rows(out: Path) -> dict[str, dict]:
    """key -> record of the runs committed so far (read while the writers run)."""
    return {r["key"]: r for r in stored_records(out)}


def test_two_processes_on_one_store_train_every_run_once(tmp_path):
    procs = _start(tmp_path, tmp_path / "out", 2)
    outs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    trained = _trained(tmp_path)
    keys = [k for _, k in trained]
    assert sorted(keys) == sorted(_keys()) and len(keys) == N_RUNS  # every run trained once, by one of them
    assert len({pid for pid, _ in trained}) == 2                     # and the work was split
    for _, stderr in outs:
        assert f"{N_RUNS} records in" in stderr                       # each reports all runs
    with Store(tmp_path / "out") as s:
        assert len(s.latest()) == N_RUNS and s.holders(k + ":" + versions.subliminal_version() for k in keys) == {}
    lines = (tmp_path / "out" / "records.jsonl").read_text().splitlines()
    assert len(lines) == N_RUNS


def _kill_and_finish(tmp_path: Path, after: int, victim: int, delay: float) -> None:
    out = tmp_path / "out"
    procs = _start(tmp_path, out, 2)
    deadline = time.monotonic() + 300
    while len(_rows(out)) < after and all(p.poll() is None for p in procs):
        assert time.monotonic() < deadline
        time.sleep(0.01)
    time.sleep(delay)
    before = _rows(out)
    os.killpg(procs[victim].pid, signal.SIGKILL)
    procs[victim].wait(timeout=60)
    survivor = procs[1 - victim]
    stdout, stderr = survivor.communicate(timeout=600)
    assert survivor.returncode == 0, stderr
    assert f"{N_RUNS} records in" in stderr
    after_rows = _rows(out)
    assert set(after_rows) == _keys()                               # nothing lost, nothing missing
    assert all(after_rows[k] == v for k, v in before.items())       # finished runs kept as they were
    for rec in after_rows.values():                                  # no partial record
        assert {"key", "config", "metrics", "timings", "run_info"} <= set(rec) and len(rec["metrics"]) > 20
    db = sqlite3.connect(out / "results.db")
    try:
        assert db.execute("SELECT count(*) FROM runs").fetchone()[0] == N_RUNS
        assert db.execute("SELECT count(*) FROM claims").fetchone()[0] == 0
    finally:
        db.close()
    trained = _trained(tmp_path)
    twice = {k for _, k in trained if [x for _, x in trained].count(k) > 1}
    killed = str(procs[victim].pid)
    assert all(any(pid == killed and k == key for pid, k in trained) for key in twice)  # only the victim's in-flight runs
    assert len(twice) <= 2                                          # at most its group in flight (--max-group 2)


def test_sigkill_of_one_process_loses_no_finished_run_and_leaves_no_partial_one(tmp_path):
    _kill_and_finish(tmp_path, after=3, victim=1, delay=0.05)


@pytest.mark.slow
@pytest.mark.parametrize("point", range(6))
def test_sigkill_at_random_points_of_either_process(tmp_path, point):
    rng = random.Random(point)
    _kill_and_finish(tmp_path, after=rng.randrange(0, N_RUNS - 4), victim=point % 2, delay=rng.uniform(0, 0.3))


# ----------------------------------------------------------------------------- in one process

TINY = dict(data="digits", hidden=(16, 16), teacher_epochs=1, student_epochs=1, noise_steps=3, noise_batch=32,
            eval_noise_batches=1, eval_noise_batch=32)


@pytest.fixture
def counted(monkeypatch):
    """Configs trained by ``train_group`` in this process (the engine's entry point the road calls)."""
    real, seen = sub.train_group, []

    def wrapper(group, *a, **kw):
        seen.extend(config_key(c) for c in group)
        return real(group, *a, **kw)

    monkeypatch.setattr(sub, "train_group", wrapper)
    return seen


def test_a_changed_code_version_is_reported_and_not_reused_unless_asked(tmp_path, counted, monkeypatch, capsys):
    cfgs = [RunConfig(seed=s, m=3, **TINY) for s in range(2)]
    first = run_sweep(cfgs, tmp_path, device="cpu", progress=False)
    assert len(counted) == 2
    monkeypatch.setattr(versions, "SCHEMA", versions.SCHEMA + 1)  # as after a change of the engine's code
    versions.source_version.cache_clear()
    try:
        capsys.readouterr()
        kept = run_sweep(cfgs, tmp_path, device="cpu", progress=False, reuse_stale=True)
        assert len(counted) == 2 and "reusing 2 run(s) stored by another version" in capsys.readouterr().err
        assert all(r["stale"] is True and r["code_version"] == first[0]["code_version"] for r in kept)
        assert [r["metrics"] for r in kept] == [r["metrics"] for r in first]
        again = run_sweep(cfgs, tmp_path, device="cpu", progress=False)
        err = capsys.readouterr().err
        assert "2 of 2 run(s)" in err and "another version of the code" in err and "--reuse-stale" in err
        assert len(counted) == 4 and not any(r.get("stale") for r in again)
        assert {r["code_version"] for r in again} == {versions.subliminal_version()} != {first[0]["code_version"]}
        with Store(tmp_path) as s:
            assert all(len(v) == 2 for v in s.versions(config_key(c) for c in cfgs).values())  # old rows kept
    finally:
        monkeypatch.undo()
        versions.source_version.cache_clear()


def _tau_again(models, data, scale=1.0):
    """A measurement: the student's initial class-head energy (needs no trained student)."""
    c = models.student_init["class_head"][0]
    return {"energy": scale * float((c.double() ** 2).sum()), "has_student": hasattr(models, "student")}


def test_measurements_from_kept_networks_need_no_training_and_new_versions_remeasure(tmp_path, counted, capsys):
    cfgs = [RunConfig(seed=s, m=4, **TINY) for s in range(2)]
    run_sweep(cfgs, tmp_path, device="cpu", progress=False, keep_models=True)
    assert len(counted) == 2 and len(list((tmp_path / "models").glob("*.pt"))) == 2
    m1 = Measure("energy", _tau_again, prediction=True)
    recs = run_sweep(cfgs, tmp_path, device="cpu", progress=False, measures=[m1, "check"])
    assert len(counted) == 2 and "from their kept networks" in capsys.readouterr().err  # measured, not trained
    assert all(r["energy"]["has_student"] is False for r in recs)  # a prediction sees the pre-run view only
    assert all("transfer_fraction" in r["check"] for r in recs)
    m2 = Measure("energy", _tau_again, params={"scale": 2.0}, prediction=True)  # a new version of it
    assert m2.version != m1.version
    recs2 = run_sweep(cfgs, tmp_path, device="cpu", progress=False, measures=[m2])
    assert len(counted) == 2 and [r["energy"]["energy"] for r in recs2] == [2 * r["energy"]["energy"] for r in recs]
    assert run_sweep(cfgs, tmp_path, device="cpu", progress=False, measures=[m1]) == \
        run_sweep(cfgs, tmp_path, device="cpu", progress=False, measures=[m1])  # both versions kept
    with Store(tmp_path) as s:
        assert {v for (_, _, name), vs in s.measured(config_key(c) for c in cfgs).items() if name == "energy"
                for v in vs} == {m1.version, m2.version}


def test_a_measurement_without_kept_networks_trains_the_run_again(tmp_path, counted, capsys):
    cfgs = [RunConfig(seed=0, m=4, **TINY)]
    first = run_sweep(cfgs, tmp_path, device="cpu", progress=False)
    recs = run_sweep(cfgs, tmp_path, device="cpu", progress=False, measures=["check"])
    assert len(counted) == 2 and "training 1 finished run(s) again to measure them" in capsys.readouterr().err
    assert recs[0]["metrics"] == first[0]["metrics"] and "check" in recs[0]


def test_output_paths_that_are_files_stop_the_cli_before_any_work(tmp_path, counted, capsys):
    f = tmp_path / "file"
    f.write_text("keep me")
    assert limen_main(["run", "subliminal", "--seeds", "1", "--out", str(f), "--device", "cpu"]) == 2
    assert "is a file, not a folder" in capsys.readouterr().err
    assert limen_main(["check", "linear-fixed-point", "--quick", "--out", str(f)]) == 2
    assert "is a file, not a folder" in capsys.readouterr().err
    assert limen_main(["check", "all", "--quick", "--out", str(f / "sub")]) == 2
    assert counted == [] and f.read_text() == "keep me"
