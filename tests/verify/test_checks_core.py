"""The check framework: intervals, verdict rules, registry, report folder, CLI exit codes."""

import json
import math

import numpy as np
import pytest

from limen.verify import checks
from limen.verify.checks import (
    CheckContext,
    CheckResult,
    Preset,
    Verdict,
    at_least,
    at_most,
    bootstrap_ci,
    exact,
    info,
    mean_ci,
    within,
    within_factor,
    worst,
)


def test_mean_ci_is_the_student_t_interval():
    v = [0.1, 0.2, 0.3, 0.4]
    m = mean_ci(v)
    half = 3.182446305284263 * np.std(v, ddof=1) / 2  # t_{0.975, 3}
    assert m.mean == pytest.approx(0.25)
    assert (m.lo, m.hi) == pytest.approx((0.25 - half, 0.25 + half))
    assert m.n == 4 and m.method == "t95"
    one = mean_ci([0.5])
    assert math.isinf(one.lo) and math.isinf(one.hi)


def test_within_is_an_equivalence_test():
    tight = mean_ci([0.50, 0.51, 0.49, 0.50])
    assert within("q", 0.5, tight, 0.05).verdict == Verdict.PASS
    assert within("q", 0.8, tight, 0.05).verdict == Verdict.FAIL
    # a wide interval cannot pass, however close its mean
    wide = mean_ci([0.2, 0.8, 0.5])
    assert within("q", 0.5, wide, 0.05).verdict == Verdict.INCONCLUSIVE
    # one seed: no interval, so no decision
    assert within("q", 0.5, mean_ci([0.5]), 0.05).verdict == Verdict.INCONCLUSIVE
    assert within("q", 0.0, exact(2e-7), 1e-6).verdict == Verdict.PASS
    assert within("q", 0.0, exact(2e-6), 1e-6).verdict == Verdict.FAIL
    assert within("q", 0.0, exact(float("nan")), 1e-6).verdict == Verdict.FAIL


def test_one_sided_rules_and_worst_case():
    w = worst([0.1, 0.3, 0.2])
    assert w.mean == 0.3 and w.n == 3
    assert at_most("bound", 0.3, w).verdict == Verdict.PASS
    assert at_most("bound", 0.25, w).verdict == Verdict.FAIL
    assert at_least("above chance", 0.1, mean_ci([0.5, 0.52, 0.48])).verdict == Verdict.PASS
    assert at_least("above chance", 0.1, mean_ci([0.05, 0.07, 0.06])).verdict == Verdict.FAIL
    assert at_least("above chance", 0.1, mean_ci([0.0, 0.3, 0.1])).verdict == Verdict.INCONCLUSIVE
    assert info("x", exact(1.0)).verdict == Verdict.INFO
    with pytest.raises(ValueError):
        worst([1.0], kind="mean")


def test_bootstrap_ci_covers_a_correlation():
    rng = np.random.default_rng(0)
    x = np.linspace(0, 1, 30)
    pairs = list(zip(x, x + 0.05 * rng.standard_normal(30)))
    m = bootstrap_ci(pairs, lambda s: np.corrcoef(*zip(*s))[0, 1])
    assert m.method == "bootstrap95" and m.lo <= m.mean <= m.hi and m.lo > 0.9


def _toy(ctx: CheckContext) -> CheckResult:
    return CheckResult("toy-check", "a toy", [within("a", 1.0, exact(1.0), 0.1),
                                             within("b", 1.0, exact(3.0), 0.1)],
                       config={"x": 1}, notes=["n"])


def test_registry_and_report_folder(tmp_path):
    checks.register(Preset("toy-check", "a toy", _toy, in_all=False))
    assert "toy-check" in checks.names() and "toy-check" not in checks.names(in_all=True)
    res = checks.run_preset("toy-check", tmp_path, data="digits", quick=True)
    assert res.verdict == Verdict.FAIL and res.counts()["PASS"] == 1
    summary = json.loads((tmp_path / "toy-check" / "summary.json").read_text())
    assert summary["verdict"] == "FAIL" and [r["verdict"] for r in summary["rows"]] == ["PASS", "FAIL"]
    assert summary["config"]["context"]["quick"] is True and summary["run_info"]["limen"]
    with pytest.raises(ValueError, match="unknown check"):
        checks.get("no-such-check")
    with pytest.raises(ValueError, match="already provided"):
        checks.register(Preset("linear-fixed-point", "x", _toy))


def test_cli_exit_codes(tmp_path, capsys):
    from limen.verify.cli import main

    checks.register(Preset("toy-check", "a toy", _toy, in_all=False))
    # a failed prediction is a result: exit 0
    assert main(["check", "toy-check", "--out", str(tmp_path)]) == 0
    assert "FAIL" in capsys.readouterr().out
    assert (tmp_path / "toy-check" / "summary.json").exists()
    # an unknown check is an error
    assert main(["check", "nope", "--out", str(tmp_path)]) == 2


def test_python_api_with_a_callable_and_with_a_theory_result(tmp_path):
    from limen import theory, verify
    from limen.verify.subliminal import RunConfig

    res = verify.check(lambda: 0.5, lambda seed: 0.5 + 0.001 * seed, seeds=4, tolerance=0.01)
    assert [r.verdict for r in res.rows] == ["PASS"]
    res = verify.check(0.0, lambda seed: 1.0 + 0.01 * seed, seeds=3, rule="at_most")
    assert res.rows[0].verdict == "FAIL"  # a bound that does not hold is a result, not an error

    runs = [RunConfig(m=m, hidden=(8, 8), teacher_epochs=1, student_epochs=1, noise_steps=3, noise_batch=50,
                      eval_noise_batches=1, eval_noise_batch=50) for m in (2, 8)]
    res = verify.check(theory.get("random-projector-mean"), runs, measure="check.transfer_fraction", seeds=2,
                       device="cpu", out=tmp_path, name="mine")
    assert [r.predicted for r in res.rows] == [0.25, 1.0]  # min(m, d)/d with d = 8, from the configs
    assert all(r.measured.n == 2 for r in res.rows) and "m = 2" in res.rows[0].quantity
    assert json.loads((tmp_path / "mine" / "summary.json").read_text())["rows"]
    with pytest.raises(ValueError, match="rule"):
        verify.check(0.0, lambda s: 0.0, rule="nearly")


def test_crossing_points_and_their_intervals():
    from limen.verify.checks.curves import crossing, crossing_ci

    assert crossing([1, 2, 4], [0.0, 0.4, 0.8], 0.5, direction="up") == pytest.approx(2 * 2 ** 0.25)  # log-x
    assert crossing([0, 1], [1.0, 0.0], 0.5) == pytest.approx(0.5)  # linear when x = 0 is on the grid
    assert math.isinf(crossing([1, 2], [0.0, 0.1], 0.5, direction="up"))  # never reached
    assert math.isnan(crossing([1, 2], [0.9, 1.0], 0.5, direction="up"))  # below the grid
    rng = np.random.default_rng(1)
    Y = np.linspace(0, 1, 6) + 0.02 * rng.standard_normal((6, 6))
    m = crossing_ci(np.arange(1, 7), Y, lambda c: 0.5, direction="up")
    assert m.lo <= m.mean <= m.hi and m.hi - m.lo < 1
    assert math.isinf(crossing_ci([1, 2, 3], Y[:3, :3], lambda c: 0.5, direction="up").hi)  # 3 seeds: no interval
    flat = np.zeros((5, 4))
    never = crossing_ci([1, 2, 4, 8], flat, lambda c: 0.5, direction="up")
    assert math.isinf(never.mean) and never.lo == 8  # beyond the grid
    assert within_factor("D", 2.0, never, 2.0).verdict == Verdict.FAIL  # grid end 8 > 2 * 2
    assert within_factor("D", 8.0, never, 2.0).verdict == Verdict.INCONCLUSIVE
