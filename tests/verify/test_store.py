"""The SQLite results store: rows keyed by (config, code version), leases, legacy import, exports."""

import json
import multiprocessing
import os
import subprocess
import sys
import time

import pytest

from limen.verify.records import ResultStore
from limen.verify.store import Store, check_out, load_records


def _run(key, version="v1", acc=0.5, **extra):
    return {"key": key, "version": version, "producer": "test",
            "record": {"key": key, "config": {"m": len(key), "hidden": [4, 4]}, "seed": 0,
                       "metrics": {"acc": acc}, "run_info": {"device": "cpu"}, **extra}}


def test_runs_are_unique_per_key_and_version_and_the_first_result_stands(tmp_path):
    with Store(tmp_path) as s:
        s.put([_run("a"), _run("b")])
        s.put([_run("a", acc=0.9), _run("a", version="v2", acc=0.7)])
        assert s.versions(["a", "b", "c"]) == {"a": ["v2", "v1"], "b": ["v1"]}
        assert s.record("a", "v1")["metrics"]["acc"] == 0.5
        rec = s.record("a", "v2")
        assert rec["metrics"]["acc"] == 0.7 and rec["code_version"] == "v2" and rec["producer"] == "test"
        assert s.record("c", "v1") is None
        assert [r["code_version"] for r in s.latest()] == ["v2", "v1"]  # newest row of each key, first-stored order


def test_measurements_are_stored_apart_per_run_version_and_measurement_version(tmp_path):
    with Store(tmp_path) as s:
        s.put([_run("a")], [{"key": "a", "run_version": "v1", "name": "check", "version": "m1", "value": {"f": 1}}])
        s.put([], [{"key": "a", "run_version": "v1", "name": "check", "version": "m2", "value": {"f": 2}}])
        assert s.measured(["a"]) == {("a", "v1", "check"): {"m1", "m2"}}
        assert s.record("a", "v1", {"check": "m1"})["check"] == {"f": 1}
        assert s.record("a", "v1")["check"] == {"f": 2} and s.record("a", "v1")["measure_versions"] == {"check": "m2"}
        assert "check" not in s.record("a", "v1", {"check": "m3"})


def test_leases_split_work_and_a_dead_holder_loses_them(tmp_path):
    a, b = Store(tmp_path, lease_s=60), Store(tmp_path, lease_s=60)
    try:
        assert a.claim(["x", "y"]) == {"x", "y"}
        assert b.claim(["x", "y", "z"]) == {"z"}           # held items are not given twice
        assert b.holders(["x", "y", "z"]) == {"x": a.owner, "y": a.owner}
        a.release(["x"])
        assert b.claim(["x"]) == {"x"}
        # a holder on this host whose process has ended: its lease is void at once
        dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                              text=True, check=True).stdout.strip()
        with a._tx() as db:
            db.execute("UPDATE claims SET owner = ? WHERE item = 'y'", (f"{os.uname().nodename}:{dead}:0",))
        assert b.holders(["y"]) == {} and b.claim(["y"]) == {"y"}
    finally:
        a.close()
        b.close()


def test_void_leases_are_purged_and_held_ones_kept(tmp_path):
    """A process killed between claiming and releasing leaves its leases behind: purge_void removes those of
    ended processes and expired ones, and keeps what a live process holds."""
    a, b = Store(tmp_path, lease_s=60), Store(tmp_path, lease_s=60)
    try:
        assert a.claim(["x", "y", "z"]) == {"x", "y", "z"}
        dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                              text=True, check=True).stdout.strip()
        with a._tx() as db:
            db.execute("UPDATE claims SET owner = ? WHERE item = 'y'", (f"{os.uname().nodename}:{dead}:0",))
            db.execute("UPDATE claims SET expires = ? WHERE item = 'z'", (time.time() - 1.0,))
        assert b.purge_void() == 2
        assert b.holders(["x", "y", "z"]) == {"x": a.owner}
        assert [i for (i,) in a._db.execute("SELECT item FROM claims")] == ["x"]
        assert b.purge_void() == 0
    finally:
        a.close()
        b.close()


def test_a_lease_that_is_not_renewed_expires_and_a_heartbeat_renews_it(tmp_path):
    a, b = Store(tmp_path, lease_s=0.4), Store(tmp_path, lease_s=0.4)
    try:
        assert a.claim(["x"]) == {"x"}                      # claiming starts a's heartbeat
        time.sleep(1.0)
        assert b.claim(["x"]) == set()                      # renewed every lease/4 s
        a.stop_heartbeat()
        time.sleep(0.6)
        assert b.claim(["x"]) == {"x"}                      # expired
    finally:
        a.close()
        b.close()


def test_old_records_jsonl_folders_are_imported_as_stale_legacy_rows(tmp_path):
    (tmp_path / "check-a").mkdir()
    ResultStore(tmp_path / "records.jsonl").extend([{"key": "r", "config": {"m": 1}, "metrics": {"acc": 0.1}}])
    ResultStore(tmp_path / "check-a" / "records.jsonl").extend(
        [{"key": "c", "config": {"m": 2}, "metrics": {"acc": 0.2}, "check": {"f": 0.3}}])
    with Store(tmp_path) as s:
        assert s.versions(["r", "c"]) == {"r": ["legacy"], "c": ["legacy"]}
        rec = s.record("c", "legacy")
        assert rec["stale"] is True and rec["check"] == {"f": 0.3} and rec["measure_versions"] == {"check": "legacy"}
        assert [r["key"] for r in s.latest("check-a")] == ["c"]


def test_a_corrupt_line_of_an_old_records_file_is_named_with_its_file_and_line(tmp_path):
    path = tmp_path / "records.jsonl"
    path.write_text(json.dumps({"key": "a", "metrics": {}}) + "\n" + '{"key": "b", oops}\n' + "{}\n")
    with pytest.raises(ValueError, match=r"records\.jsonl, line 2: not a JSON record"):
        Store(tmp_path)
    path.write_text(json.dumps({"key": "a", "metrics": {}}) + "\n" + json.dumps({"key": "b", "metrics": {}}) + "\n")
    with Store(tmp_path) as s:  # repaired: the next open imports it (nothing was lost by the failed one)
        assert set(s.versions(["a", "b"])) == {"a", "b"}


def _open_and_put(folder, go, key):
    go.wait()
    with Store(folder) as s:
        s.put([_run(key)])


def test_processes_opening_one_new_store_at_once_all_get_in(tmp_path):
    # switching a new file to WAL is refused at once while another process does the same
    ctx = multiprocessing.get_context("fork")
    for r in range(12):
        go = ctx.Event()
        procs = [ctx.Process(target=_open_and_put, args=(tmp_path / str(r), go, f"k{i}")) for i in range(4)]
        for p in procs:
            p.start()
        go.set()
        for p in procs:
            p.join(timeout=120)
        assert [p.exitcode for p in procs] == [0] * 4
        with Store(tmp_path / str(r)) as s:
            assert sorted(s.versions(f"k{i}" for i in range(4))) == [f"k{i}" for i in range(4)]


def test_output_paths_are_checked_before_any_work(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(ValueError, match="is a file, not a folder"):
        check_out(f)
    with pytest.raises(ValueError, match="its part .* is"):
        check_out(f / "sub")
    assert check_out(tmp_path / "new" / "folder") == tmp_path / "new" / "folder"
    assert not (tmp_path / "new").exists()


def test_load_records_round_trips_through_the_database_jsonl_and_parquet(tmp_path):
    pd = pytest.importorskip("pandas")
    with Store(tmp_path) as s:
        s.put([_run("a"), _run("bb", acc=0.25)],
              [{"key": "a", "run_version": "v1", "name": "check", "version": "m1", "value": {"f": 0.5, "xs": [1, 2]}}])
        jsonl = s.export_jsonl(tmp_path / "out.jsonl")
    db = load_records(tmp_path)
    assert list(db["key"]) == ["a", "bb"] and list(db["config.m"]) == [1, 2]
    assert list(db["metrics.acc"]) == [0.5, 0.25] and db["check.xs"][0] == [1, 2]
    assert db["config.hidden"][0] == [4, 4] and list(db["code_version"]) == ["v1", "v1"]
    pd.testing.assert_frame_equal(db, load_records(jsonl))
    pytest.importorskip("pyarrow")
    with Store(tmp_path) as s:
        pq = s.export_parquet(tmp_path / "out.parquet")
    back = load_records(pq)
    assert list(back.columns) == list(db.columns)
    assert back["check.xs"][0] == [1, 2] and back["config.hidden"][1] == [4, 4]
    assert list(back["metrics.acc"]) == list(db["metrics.acc"])
