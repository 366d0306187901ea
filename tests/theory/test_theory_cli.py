"""``limen derive NAME --evaluate``: names, missing names and domains are checked; nan is an error."""

import numpy as np
import pytest
import sympy as sp

from limen.theory import cli
from limen.theory.results import Result, report
from limen.verify.cli import main as limen_main


def _derive(capsys, *argv):
    rc = limen_main(["derive", *argv])
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


@pytest.mark.parametrize("argv, message", [
    (["aux-perturbation-sigma-critical", "m=-5", "d=256"], "m=-5 is outside the domain: m must be an integer > 0"),
    (["width-bound", "D=2.5", "m=10"], "D=2.5 is outside the domain: D must be an integer > 0"),
    (["noise-budget-bound", "N=0", "n_in=64"], "N=0 is outside the domain"),
    (["random-projector-variance", "m=-5", "d=10"], "m=-5 is outside the domain"),  # m only through r = min(m, d)
    (["width-bound", "D=abc", "m=10"], "D='abc' is outside the domain"),
])
def test_values_outside_the_domain_are_an_error_not_nan(argv, message, capsys):
    rc, out, err = _derive(capsys, argv[0], "--evaluate", *argv[1:])
    assert rc == 2 and out == "" and message in err


def test_unknown_and_missing_names_list_the_accepted_ones(capsys):
    rc, out, err = _derive(capsys, "aux-perturbation-sigma-critical", "--evaluate", "zz=3")
    assert rc == 2 and "unknown name 'zz'; accepted: m, d, kind='worst', init_scale=None, rho=1.0" in err
    rc, out, err = _derive(capsys, "aux-perturbation-sigma-critical", "--evaluate", "m=3")
    assert rc == 2 and "missing d; accepted: m, d," in err


def test_a_nan_result_is_an_error():
    x = sp.Symbol("x")  # no assumptions: only the evaluation shows that x < 0 is outside the domain
    nan_result = Result("toy", "toy", (), "", True, build=lambda: (sp.sqrt(x), []), evaluator=lambda x: float(np.sqrt(x)),
                        checker=lambda rng: report("toy", {}, 0.0))
    assert cli.evaluate(nan_result, ["x=4"]) == 2.0
    with pytest.raises(ValueError, match="toy --evaluate: the result is nan for x=-1"):
        cli.evaluate(nan_result, ["x=-1"])


def test_inside_the_domain_evaluates(capsys):
    rc, out, _ = _derive(capsys, "aux-perturbation-sigma-critical", "--evaluate", "m=10", "d=256")
    assert rc == 0 and abs(float(out) - 0.0241747) < 1e-6
    rc, out, _ = _derive(capsys, "random-projector-mean", "--evaluate", "m=10.0", "d=20")
    assert rc == 0 and float(out) == 0.5
