"""``limen bench predict``: one run's training and its prediction timed in the same process (structure, not speed)."""

import json

import pytest

from limen.verify.bench import predict as bench


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    from limen.verify.cli import main

    out = tmp_path_factory.mktemp("bench") / "bench_predict.json"
    assert main(["bench", "predict", "--quick", "--device", "cpu", "--repeats", "1", "--m", "4", "--out", str(out)]) == 0
    return json.loads(out.read_text())


def test_report_has_both_timings_and_the_ratio(report):
    assert report["train_run_s"] > report["train_student_s"] > 0
    assert report["predict_s"] > 0 and report["entk_s"] > 0
    assert report["ratio_to_student"] == pytest.approx(report["predict_s"] / report["train_student_s"])
    assert report["linearised_ratio_to_student"] == pytest.approx(report["linearised_s"] / report["train_student_s"])
    assert report["subsampled_ratio_to_student"] == pytest.approx(report["subsampled_s"] / report["train_student_s"])
    assert [t["bound"] for t in report["targets"]] == [f"≤ {bench.RATIO_TARGET}"] * 2
    assert report["config"]["m"] == 4 and report["run_info"]["torch"]


@pytest.mark.parametrize("argv, match", [(["--repeats", "0"], "--repeats"), (["--m", "0"], "--m")])
def test_bad_options_are_refused_before_work(argv, match, tmp_path, capsys):
    from limen.verify.cli import main

    assert main(["bench", "predict", "--quick", "--out", str(tmp_path / "x.json"), *argv]) == 2
    assert match in capsys.readouterr().err
