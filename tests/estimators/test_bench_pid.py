"""`limen bench pid --quick` runs end to end and reports every part (sizes too small to mean anything)."""

import json

import pytest

pytest.importorskip("torch")


def test_bench_pid_quick(tmp_path, capsys):
    from limen.verify.cli import main

    out = tmp_path / "bench.json"
    assert main(["bench", "pid", "--quick", "--skip-dit", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "batched sx_pid throughput" in text and "sample-based goal" in text
    rec = json.loads(out.read_text())
    assert {r["impl"] for r in rec["batched"]} >= {"numpy float64", "torch float64 cpu", "torch float32 cpu"}
    assert all(r["per_second"] > 0 for r in rec["batched"])
    s = rec["sample"]
    assert "skipped" in s or (s["max_abs_diff"] < 1e-3 and s["speedup"] > 0)


def test_bench_pid_dit_part():
    pytest.importorskip("dit")
    from limen.verify.bench.pid import bench_dit

    r = bench_dit((2, 2, 1, 2), repeats=2)
    assert r["max_abs_diff"] < 1e-10 and r["speedup"] > 1


def test_bench_pid_reports_progress_without_a_tty(tmp_path, capsys, monkeypatch):
    """It printed nothing for minutes when stderr was not a terminal; now a line per finished measurement
    (throttled by verify.progress to one a second: unthrottled here, so that every one shows)."""
    from limen.verify import progress
    from limen.verify.cli import main

    monkeypatch.setattr(progress, "MIN_GAP_S", 0.0)
    assert main(["bench", "pid", "--quick", "--skip-dit", "--out", str(tmp_path / "b.json")]) == 0
    err = capsys.readouterr().err
    assert "batched sx_pid 4x4x4x2, torch float32 cpu" in err and "dense_histogram_goal" in err
    assert len([line for line in err.splitlines() if "limen bench pid" in line]) >= 5
    assert main(["bench", "pid", "--quick", "--skip-dit", "--no-progress", "--out", str(tmp_path / "c.json")]) == 0
    assert capsys.readouterr().err == ""
