"""Distribution constructors, input validation (ValueError with a message), PIDResult, `limen pid`."""

import json
from fractions import Fraction

import numpy as np
import pytest

from limen.estimators import Distribution, gate, gate_names, pid, sx_pid, wb_pid


def test_from_outcomes_issue_example():
    d = Distribution.from_outcomes(["000", "011", "101", "110"], sources=2)
    assert d.n_sources == 2 and d.shape == (2, 2, 2) and not d.exact
    r = pid(d, measure="sx")
    assert abs(r.atoms[((0,), (1,))] - np.log2(2 / 3)) < 1e-12
    assert "{1}{2}" in r.table() and json.dumps(r.to_dict())
    assert r.atoms[[[1], [0]]] == r.atoms["{1}{2}"] == r[((0,), (1,))]


def test_constructors_agree():
    d1 = gate("and")
    d2 = Distribution.from_pmf(d1.float_pmf())
    s = np.array([[0, 0], [0, 1], [1, 0], [1, 1]] * 3)
    d3 = Distribution.from_samples(s, s[:, 0] & s[:, 1])
    d4 = Distribution.from_samples([s[:, 0], s[:, 1]], s[:, 0] & s[:, 1], exact=True)  # columns
    d6 = Distribution.from_samples(s.tolist(), (s[:, 0] & s[:, 1]).tolist())  # nested lists are rows
    d5 = Distribution.from_dit(d1.to_dit())
    for d in (d2, d3, d4, d5, d6):
        np.testing.assert_allclose(d.float_pmf(), d1.float_pmf())
    assert d4.exact and d4.pmf[0, 0, 0] == Fraction(1, 4)
    # grouped sources and joint target
    d = Distribution.from_outcomes([(0, 0, 1, 0), (1, 1, 0, 1)], sources=[[0, 1], [2]], target=[3])
    assert d.shape == (2, 2, 2) and d.alphabets[0] == ((0, 0), (1, 1))
    d = Distribution.from_outcomes(["0000", "1111"], sources=2)
    assert d.shape == (2, 2, 2) and d.alphabets[-1] == (("0", "0"), ("1", "1"))


def test_exact_inputs():
    d = Distribution.from_outcomes(["000", "111"], ["1/2", "1/2"])
    assert d.exact and pid(d).backend == "sympy"
    d = Distribution.from_outcomes(["000", "111"], [0.5, 0.5], exact=True)
    assert d.exact
    with pytest.raises(ValueError, match="sums to 3/4"):
        Distribution.from_outcomes(["000", "111"], ["1/2", "1/4"])
    d = Distribution.from_outcomes(["000", "111"], ["1/2", "1/4"], normalize=True)
    assert d.pmf[1, 1, 1] == Fraction(1, 3)
    with pytest.raises(ValueError, match="I\\^sx only"):
        pid(gate("and", exact=True), measure="wb", backend="sympy")


@pytest.mark.parametrize("bad,match", [
    (np.array([[[0.5, np.nan], [0.25, 0.25]]] * 2) / 2, "NaN or infinite"),
    (np.array([[[0.5, np.inf], [0.25, 0.25]]] * 2) / 2, "NaN or infinite"),
    (np.array([[[0.75, -0.25], [0.25, 0.25]]] * 2) / 2, "negative"),
    (np.full((2, 2, 2), 0.2), "does not sum to 1"),
    (np.full((8,), 0.125), "number of sources must be in"),
    (np.full((2, 2), 0.25), "number of sources must be in"),
    (np.zeros((2, 0, 2)), "non-empty"),
    (np.full((2,) * 7, 1 / 128), "number of sources must be in"),
    (["a", "b"], "numeric"),
])
def test_bad_pmfs_raise(bad, match):
    with pytest.raises(ValueError, match=match):
        sx_pid(bad)
    if match != "numeric":
        with pytest.raises(ValueError, match=match):
            Distribution(bad)


def test_normalize_and_tolerance():
    p = gate("and").float_pmf() * 1.1
    with pytest.raises(ValueError, match="normalize=True"):
        sx_pid(p)
    np.testing.assert_allclose(sx_pid(p, normalize=True), sx_pid(p / 1.1), atol=1e-14)
    np.testing.assert_allclose(sx_pid(p, tol=0.2), sx_pid(p, tol=0.2))
    with pytest.raises(ValueError, match="all zero"):
        sx_pid(np.zeros((2, 2, 2)), normalize=True)
    with pytest.raises(ValueError, match="n_sources must be an integer"):
        sx_pid(p, n_sources=2.0)
    with pytest.raises(ValueError, match="at least 4 dimensions"):
        wb_pid(gate("and").float_pmf(), n_sources=3)


def test_torch_validation():
    torch = pytest.importorskip("torch")
    p = torch.tensor(gate("and").float_pmf())
    with pytest.raises(ValueError, match="negative"):
        sx_pid(p - 0.1)
    with pytest.raises(ValueError, match="does not sum"):
        sx_pid(p * 2)
    with pytest.raises(ValueError, match="does not sum"):  # per pmf of the batch
        sx_pid(torch.stack([p, p * 2]), n_sources=2)
    assert sx_pid(p * 2, normalize=True).shape == (4,)


def test_bad_samples_and_outcomes():
    with pytest.raises(ValueError, match="3 source samples but 2 target"):
        Distribution.from_samples(np.zeros((3, 2)), [0, 1])
    with pytest.raises(ValueError, match="one length"):
        Distribution.from_samples([np.array([0, 1, 0]), np.array([1, 1])], [0, 1, 0])
    with pytest.raises(ValueError, match="shape \\(N, n_sources\\)"):
        Distribution.from_samples(np.zeros(3), [0, 1, 0])
    with pytest.raises(ValueError, match="number of sources"):
        Distribution.from_samples(np.zeros((3, 1)), [0, 1, 0])
    with pytest.raises(ValueError, match="same number of variables"):
        Distribution.from_outcomes(["000", "01"])
    with pytest.raises(ValueError, match="2 outcomes but 3 probabilities"):
        Distribution.from_outcomes(["000", "011"], [0.5, 0.25, 0.25])
    with pytest.raises(ValueError, match="distinct variable indices"):
        Distribution.from_outcomes(["000", "011"], sources=[[0], [0]])
    with pytest.raises(ValueError, match="unknown gate"):
        gate("nand")


def test_result_orders_and_dict():
    r = pid(gate("parity3"))
    assert r.table(order="dit").splitlines()[3].startswith("{123}")
    d = r.to_dict()
    assert d["n_sources"] == 3 and len(d["atoms"]) == 18 and abs(d["mi"] - 1) < 1e-12
    np.testing.assert_allclose(r.array(order="sxpid")[0], np.log2(5 / 4), atol=1e-12)
    rw = pid(gate("parity3"), measure="wb", backend="torch")
    assert abs(sum(rw.atoms.values()) - 1) < 1e-12
    for name in gate_names():
        g = gate(name)
        assert abs(sum(pid(g).atoms.values()) - pid(g).mi) < 1e-12


# ----------------------------------------------------------------------------- CLI
def run_cli(argv, capsys):
    from limen.verify.cli import main

    rc = main(argv)
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_cli_gates(capsys):
    rc, out, _ = run_cli(["pid", "--gate", "xor"], capsys)
    assert rc == 0 and "-0.584963" in out and "{1}{2}" in out
    rc, out, _ = run_cli(["pid", "--gate", "and", "--json"], capsys)
    assert rc == 0 and abs(json.loads(out)["atoms"]["{1}{2}"] - 0.122556) < 1e-6
    rc, out, _ = run_cli(["pid", "--gate", "xor", "--exact", "--pointwise"], capsys)
    assert rc == 0 and "log(3)" in out and "pointwise" in out
    rc, out, _ = run_cli(["pid", "--gate", "and", "--measure", "wb", "--backend", "dit"], capsys)
    assert rc == 0 and "PID_WB" in out and "+0.500000" in out
    rc, out, _ = run_cli(["pid", "--list-gates"], capsys)
    assert "parity3" in out
    rc, _, err = run_cli(["pid", "--gate", "nand"], capsys)
    assert rc == 2 and "unknown gate" in err
    rc, _, err = run_cli(["pid"], capsys)
    assert rc == 2 and "either a FILE" in err


def test_cli_files(tmp_path, capsys):
    f = tmp_path / "a.json"
    f.write_text(json.dumps({"outcomes": ["000", "010", "100", "111"], "probs": ["1/4"] * 4, "sources": 2}))
    rc, out, _ = run_cli(["pid", str(f), "--json"], capsys)
    assert rc == 0 and json.loads(out)["backend"] == "sympy"
    f.write_text(json.dumps({"pmf": gate("xor").float_pmf().tolist()}))
    rc, out, _ = run_cli(["pid", str(f)], capsys)
    assert rc == 0 and "-0.584963" in out
    f.write_text(json.dumps({"samples": {"sources": [[0, 0], [0, 1], [1, 0], [1, 1]], "target": [0, 1, 1, 0]}}))
    rc, out, _ = run_cli(["pid", str(f), "--json"], capsys)
    assert rc == 0 and abs(json.loads(out)["atoms"]["{12}"] - np.log2(4 / 3)) < 1e-12
    c = tmp_path / "s.csv"
    c.write_text("y,a,b\n0,0,0\n1,0,1\n1,1,0\n0,1,1\n")
    rc, out, _ = run_cli(["pid", str(c), "--target", "y", "--json"], capsys)
    assert rc == 0 and abs(json.loads(out)["atoms"]["{1}{2}"] - np.log2(2 / 3)) < 1e-12
    c.write_text("a,b,t,p\n0,0,0,0.5\n1,1,1,0.6\n")
    rc, _, err = run_cli(["pid", str(c)], capsys)
    assert rc == 2 and "does not sum to 1" in err
    rc, out, _ = run_cli(["pid", str(c), "--normalize"], capsys)
    assert rc == 0
    f.write_text("{not json")
    rc, _, err = run_cli(["pid", str(f)], capsys)
    assert rc == 2 and "not valid JSON" in err
    f.write_text(json.dumps({"samples": {"sources": [[0, 0], [0, 1]], "target": [0]}}))
    rc, _, err = run_cli(["pid", str(f)], capsys)
    assert rc == 2 and "2 source samples but 1 target" in err
    np.save(tmp_path / "p.npy", gate("parity3").float_pmf())
    rc, out, _ = run_cli(["pid", str(tmp_path / "p.npy"), "--order", "sxpid"], capsys)
    assert rc == 0 and out.splitlines()[3].startswith("{1} ")
    rc, _, err = run_cli(["pid", str(tmp_path / "missing.json")], capsys)
    assert rc == 2 and "no such file" in err


def test_float32_tolerance_is_the_same_for_numpy_and_torch():
    """float32 pmfs normalised in float32 were rejected as numpy (tolerance 1e-9) but accepted as torch."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    for _ in range(100):
        p = rng.random((3, 3, 3, 2)).astype(np.float32)
        p /= p.sum()
        np.testing.assert_allclose(sx_pid(p), sx_pid(torch.tensor(p)).double().numpy(), atol=2e-5)
        Distribution(p)
    off = (p * np.float32(1.001)).astype(np.float32)  # a real error of 1e-3 fails in both
    for q in (off, torch.tensor(off)):
        with pytest.raises(ValueError, match="does not sum to 1"):
            sx_pid(q)
    with pytest.raises(ValueError, match="does not sum to 1"):
        Distribution(off)
    # float64 and integer input keep the float64 tolerance
    with pytest.raises(ValueError, match="tolerance 1e-09"):
        sx_pid(p.astype(np.float64) * (1 + 1e-7))


@pytest.mark.parametrize("tol", [float("nan"), -1e-3, float("inf"), "1e-3", True])
def test_bad_tolerance_is_refused(tol):
    """tol=nan silently disabled the normalisation check."""
    with pytest.raises(ValueError, match="tol must be a finite number >= 0"):
        sx_pid(np.full((2, 2, 2), 0.2), tol=tol)
    with pytest.raises(ValueError, match="tol must be a finite number >= 0"):
        Distribution(np.full((2, 2, 2), 0.125), tol=tol)
