"""JSON-lines records: keys, atomic append, a killed write, a corrupt line."""

import dataclasses
import json

import pytest

from limen.verify.records import ResultStore, config_key


@dataclasses.dataclass(frozen=True)
class Cfg:
    m: int
    lr: float
    layers: tuple = ("fc1", "fc2")


def test_config_key_is_stable_and_distinguishes_fields():
    assert config_key(Cfg(3, 1e-3)) == config_key(Cfg(3, 1e-3))
    assert config_key(Cfg(3, 1e-3)) != config_key(Cfg(4, 1e-3))
    assert config_key({"b": 1, "a": 2}) == config_key({"a": 2, "b": 1})


def test_append_and_resume_skips_finished(tmp_path):
    store = ResultStore(tmp_path / "runs.jsonl")
    store.append({"key": "a", "metrics": {"acc": 0.5}})
    store.extend([{"key": "b"}, {"key": "c"}])
    assert store.done_keys() == {"a", "b", "c"}
    assert [r["key"] for r in store.records()] == ["a", "b", "c"]


def test_truncated_last_line_is_skipped_then_repaired(tmp_path):
    path = tmp_path / "runs.jsonl"
    path.write_text(json.dumps({"key": "a"}) + "\n" + '{"key": "b", "met')  # killed mid-write
    store = ResultStore(path)
    assert store.done_keys() == {"a"} and store.skipped_lines == 1
    store.append({"key": "b"})
    lines = path.read_text().splitlines()
    assert [json.loads(x)["key"] for x in lines] == ["a", "b"]


def test_numpy_values_serialise(tmp_path):
    import numpy as np

    store = ResultStore(tmp_path / "r.jsonl")
    store.append({"key": "x", "v": np.float64(0.25), "arr": np.arange(3)})
    assert store.records()[0]["arr"] == [0, 1, 2]


def test_a_corrupt_line_names_the_file_and_the_line(tmp_path):
    path = tmp_path / "records.jsonl"
    path.write_text(json.dumps({"key": "a"}) + "\n" + "not json\n" + json.dumps({"key": "c"}) + "\n")
    with pytest.raises(ValueError, match=r"records\.jsonl, line 2: not a JSON record .*repair or delete that line"):
        ResultStore(path).records()
    path.write_text("[1, 2]\n")
    with pytest.raises(ValueError, match="line 1: a record must be a JSON object"):
        ResultStore(path).records()


def test_run_info_says_whether_the_checkout_had_uncommitted_changes():
    from limen.verify.runinfo import run_info

    info = run_info()
    assert "git_commit" in info and info.get("git_dirty") in (True, False, None)
