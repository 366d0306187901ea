"""``limen run subliminal``: --seeds, --set (also on sweeps), --list, --json, the summary plot."""

import argparse
import json

import pytest

from limen.verify.cli import main as limen_main
from limen.verify.records import ResultStore
from limen.verify.subliminal import cli
from limen.verify.subliminal.plots import axes_of

TINY = ["--device", "cpu", "--hidden", "16,16", "--set", "teacher_epochs=1", "--set", "student_epochs=1",
        "--noise-steps", "3", "--noise-batch", "32", "--set", "eval_noise_batches=1"]


def _args(*argv):
    p = argparse.ArgumentParser()
    cli.add_arguments(p)
    return p.parse_args(list(argv))


def _usage_error(argv, capsys) -> str:
    with pytest.raises(SystemExit) as exc:
        limen_main(["run", "subliminal", *argv, "--dry-run"])
    assert exc.value.code == 2
    return capsys.readouterr().err


@pytest.mark.parametrize("seeds, message", [
    ("1,1", "seed 1 is given 2 times"),
    ("-2", "seed count -2 is not >= 1"),
    ("0", "seed count 0 is not >= 1"),
    ("2,-1", "seed -1 is negative"),
    ("x", "'x' is not a seed count"),
    ("5-3", "range '5-3' is empty"),
])
def test_bad_seeds_are_refused_before_any_work(seeds, message, capsys):
    err = _usage_error(["--seeds", seeds], capsys)
    assert "argument --seeds" in err and message in err and "invalid literal" not in err


@pytest.mark.parametrize("seeds, expected", [("3", [0, 1, 2]), ("4,7", [4, 7]), ("7,", [7]), ("2-4", [2, 3, 4])])
def test_seed_forms(seeds, expected):
    configs, name, _ = cli.build_configs(_args("--seeds", seeds))
    assert name == "single" and [c.seed for c in configs] == expected


def test_set_names_the_key_and_lists_the_allowed_ones(capsys):
    assert limen_main(["run", "subliminal", "--set", "nonsense=3", "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "--set nonsense=3: unknown key 'nonsense'" in err and "student_epochs" in err and "noise_pool" in err
    assert limen_main(["run", "subliminal", "--set", "m=abc", "--dry-run"]) == 2
    assert "--set m=abc: expected an integer" in capsys.readouterr().err
    assert limen_main(["run", "subliminal", "--set", "frozen=class", "--dry-run"]) == 2
    assert "frozen is an option of --sweep width" in capsys.readouterr().err
    assert limen_main(["run", "subliminal", "--sweep", "width", "--set", "nope=1", "--dry-run"]) == 2
    assert "options of --sweep width: frozen, m" in capsys.readouterr().err
    assert limen_main(["run", "subliminal", "--set", "seed=4", "--dry-run"]) == 2
    assert "--seeds" in capsys.readouterr().err


def test_set_converts_by_the_field_type():
    (c,) = cli.build_configs(_args("--set", "student_lr=0.01", "--set", "noise_pool=none",
                                   "--set", "student_hidden=32,16", "--set", "normalize_noise=true"))[0]
    assert (c.student_lr, c.noise_pool, c.student_hidden, c.normalize_noise) == (0.01, None, (32, 16), True)


def test_set_on_a_sweep_overrides_every_run_also_the_swept_field():
    configs, _, notes = cli.build_configs(_args("--sweep", "init-controls", "--quick", "--seeds", "2",
                                                "--set", "m=5", "--set", "teacher_epochs=2"))
    assert {c.m for c in configs} == {5} and {c.teacher_epochs for c in configs} == {2}
    assert len(configs) == 6 * 2 == len(set(configs))  # six conditions x two seeds, each once
    assert any("m=5 replaces the values the sweep init-controls varies (3, 10, 50)" in n for n in notes)
    assert any("36 planned runs, 12 distinct" in n for n in notes)


def test_set_of_a_sweep_option_goes_to_the_sweep():
    configs, _, notes = cli.build_configs(_args("--sweep", "width", "--quick", "--seeds", "1",
                                                "--set", "frozen=class", "--m", "5"))
    assert {c.m for c in configs} == {5} and not notes
    assert all("class_head:false" in c.trainable and "aux_head:true" in c.trainable for c in configs)
    assert len({c.hidden for c in configs}) == 6


def test_list_gives_whole_descriptions(capsys):
    assert limen_main(["run", "subliminal", "--list"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "on 28x28 data it is the paper's spec." in text and "``" not in text
    assert limen_main(["run", "subliminal", "--list", "--json"]) == 0
    assert "(not in the reference)" in json.loads(capsys.readouterr().out)["noise-pool"]


def test_json_summary_on_stdout_notes_and_progress_on_stderr_and_a_plot(tmp_path, capsys):
    out = tmp_path / "r"
    argv = ["run", "subliminal", "--sweep", "init-controls", "--quick", "--seeds", "1", "--out", str(out), *TINY]
    assert limen_main([*argv, "--json"]) == 0
    captured = capsys.readouterr()
    doc = json.loads(captured.out)  # stdout is exactly one JSON object
    assert doc["sweep"] == "init-controls" and doc["n_records"] == 18 == len(ResultStore(doc["records"]).records())
    assert len(doc["summary"]) == 18 and {"init", "m", "n", "student_final_acc"} <= set(doc["summary"][0])
    assert doc["summary"] == json.loads((out / "summary.json").read_text())
    assert doc["plots"] == [str(out / "summary.png")] and (out / "summary.png").stat().st_size > 10_000
    assert "subliminal init-controls: 18/18" in captured.err  # progress lines without a terminal
    assert "18 records in" in captured.err
    assert limen_main([*argv, "--no-progress"]) == 0  # resumed: nothing trained, the table on stdout
    captured = capsys.readouterr()
    assert captured.out.startswith("| init | m | n |") and "subliminal init-controls:" not in captured.err


def _row(**fields):
    return {**fields, "n": 2, "student_final_acc": {"mean": 0.5, "ci95": 0.1}}


def test_plot_axis_is_the_swept_variable():
    width = [_row(hidden=[256, d], student_hidden=[256, d]) for d in (2, 5, 10)]
    assert axes_of(width, ["hidden", "student_hidden"]) == ("hidden[1]", [2.0, 5.0, 10.0], ["", "", ""])
    perturb = [_row(perturb=[{"layers": ["aux_head"], "std": s}]) for s in (0.0, 0.1)]
    assert axes_of(perturb, ["perturb"]) == ("perturb σ (aux_head)", [0.0, 0.1], ["", ""])
    grid = [_row(init=i, m=m) for i in ("fc1:A,fc2:A", "fc1:random,fc2:A") for m in (3, 10, 50)]
    label, x, series = axes_of(grid, ["init", "m"])
    assert (label, x) == ("m", [3.0, 10.0, 50.0] * 2) and series == ["init=A,A"] * 3 + ["init=random,A"] * 3
    depth = [_row(student_hidden=h) for h in ([256], [256, 256, 256])]
    assert axes_of(depth, ["student_hidden"])[:2] == ("condition", None)
