"""``limen check``: --json on stdout (nothing else there), progress and errors on stderr, --seeds checked."""

import json

import pytest

from limen.verify.checks import registry
from limen.verify.checks.core import CheckResult, Row, Verdict, exact, mean_ci, within
from limen.verify.cli import main as limen_main


def _result(name):
    return CheckResult(name, f"{name} title", [within("x", 1.0, mean_ci([0.9, 1.1, 1.0]), 0.5),
                                               Row("y", None, exact(2.0), "—", Verdict.INFO)],
                       notes=["a note"], plots=["p.png"], elapsed_s=0.5)


@pytest.fixture
def fake_checks(monkeypatch):
    """Two checks: ``good`` returns a result, ``broken`` raises; records the options each run got."""
    calls = []

    def run_preset(name, out, **options):
        calls.append((name, options))
        if name == "broken":
            raise RuntimeError("no data")
        return _result(name)

    monkeypatch.setattr(registry, "run_preset", run_preset)
    monkeypatch.setattr(registry, "names", lambda in_all=False: ["good", "broken"])
    monkeypatch.setattr(registry, "get", lambda name: None)
    return calls


def test_json_is_the_only_thing_on_stdout(fake_checks, tmp_path, capsys):
    assert limen_main(["check", "all", "--json", "--out", str(tmp_path)]) == 1
    captured = capsys.readouterr()
    doc = json.loads(captured.out)
    good, broken = doc["checks"]
    assert good["name"] == "good" and good["verdict"] == "PASS" and good["counts"]["PASS"] == 1
    row = good["rows"][0]
    assert row["predicted"] == 1.0 and row["measured"] == pytest.approx(1.0) and row["verdict"] == "PASS"
    assert row["interval"][0] < 1.0 < row["interval"][1] and row["tolerance"] == "± 0.5" and row["n"] == 3
    assert good["report"] == str(tmp_path / "good") and good["summary"] == str(tmp_path / "good" / "summary.json")
    assert good["plots"] == [str(tmp_path / "good" / "p.png")] and good["notes"] == ["a note"]
    assert broken == {"name": "broken", "verdict": "ERROR", "error": "RuntimeError: no data",
                      "report": str(tmp_path / "broken")} and doc["errors"] == ["broken"]
    assert "ERROR in broken" in captured.err and "1 check(s) could not run" in captured.err


def test_tables_on_stdout_errors_on_stderr(fake_checks, tmp_path, capsys):
    assert limen_main(["check", "all", "--out", str(tmp_path)]) == 1
    captured = capsys.readouterr()
    assert "good title" in captured.out and "overview" in captured.out
    assert "ERROR in broken" not in captured.out and "ERROR in broken" in captured.err


def test_progress_is_on_without_a_terminal_and_off_with_no_progress(fake_checks, tmp_path, capsys):
    limen_main(["check", "good", "--out", str(tmp_path)])
    limen_main(["check", "good", "--out", str(tmp_path), "--no-progress"])
    assert [opts["progress"] for _, opts in fake_checks] == [True, False]


def test_a_real_check_reports_progress_lines_and_json(tmp_path, capsys):
    assert limen_main(["check", "linear-fixed-point", "--quick", "--seeds", "1", "--json", "--out",
                       str(tmp_path)]) == 0
    captured = capsys.readouterr()
    (check,) = json.loads(captured.out)["checks"]
    assert check["name"] == "linear-fixed-point" and check["verdict"] == "PASS"
    assert (tmp_path / "linear-fixed-point" / "summary.json").exists()
    assert "linear students: 8/8" in captured.err  # stderr is not a terminal here: plain lines


@pytest.mark.parametrize("seeds", ["-2", "0", "2,3", "x"])
def test_bad_seeds_are_refused_naming_the_option(seeds, capsys):
    with pytest.raises(SystemExit) as exc:
        limen_main(["check", "linear-fixed-point", "--seeds", seeds])
    assert exc.value.code == 2 and "argument --seeds" in capsys.readouterr().err
