"""Samples: NaN and non-discrete data refused, the binning rule, the memory limit, CLI messages."""

import json
import time

import numpy as np
import pytest

from limen.estimators import Distribution, memory_limit, pid
from limen.estimators.binning import bin_column


def run_cli(argv, capsys):
    from limen.verify.cli import main

    rc = main(argv)
    out = capsys.readouterr()
    return rc, out.out, out.err


def _csv(path, columns, names):
    lines = [",".join(names)] + [",".join(repr(float(v)) if isinstance(v, float) else str(v) for v in row)
                                 for row in zip(*columns)]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_nan_samples_are_refused():
    """A NaN is unequal to itself: each one used to become its own symbol (0.5 bit from a useless column)."""
    s = np.array([[0, np.nan], [1, np.nan], [0, 1.0], [1, 1.0]] * 3)
    with pytest.raises(ValueError, match=r"source 2 has 6 NaN or infinite sample\(s\) \(the first is sample 0"):
        Distribution.from_samples(s, [0, 1, 0, 1] * 3)
    with pytest.raises(ValueError, match="the target has 1 NaN or infinite"):
        Distribution.from_samples([np.array([0, 1] * 3), np.array([0, 0, 1, 1, 0, 1])],
                                  np.array([0, 1, np.inf, 1, 0, 1]))
    with pytest.raises(ValueError, match="NaN or infinite sample"):  # strings read from a CSV
        Distribution.from_samples([["0", "nan"], ["1", "1"]] * 3, ["0", "1"] * 3)


def test_continuous_samples_are_refused_and_binning_works():
    rng = np.random.default_rng(0)
    x, t = rng.random((2000, 2)), rng.integers(0, 2, 2000)
    t0 = time.perf_counter()
    with pytest.raises(ValueError, match=r"source 1 does not look discrete: 2000 distinct values in 2000 samples.*"
                                         r"bins=N \(limen pid: --bins N\)"):
        Distribution.from_samples(x, t)
    assert time.perf_counter() - t0 < 5
    d = Distribution.from_samples(x, t, bins=8)
    assert d.shape == (8, 8, 2) and d.alphabets[0] == tuple(range(8))
    assert pid(d).mi < 0.05  # noise: the bias of 128 cells, not H(T) = 1 bit
    # a discrete column with at most N values is kept; a non-numeric one with more cannot be binned
    np.testing.assert_array_equal(bin_column(np.array([3, 5, 3]), 4, "c"), [3, 5, 3])
    with pytest.raises(ValueError, match="c is not numeric and has more than 2 distinct values"):
        bin_column(np.array(["a", "b", "c"]), 2, "c")
    with pytest.raises(ValueError, match="bins must be an integer >= 2"):
        Distribution.from_samples(x, t, bins=1)
    with pytest.raises(ValueError, match="names must name the 2 sources and the target"):
        Distribution.from_samples(x, t, bins=8, names=["a", "b"])


def test_binning_rule_equal_width():
    x = np.array([0.0, 0.1, 0.49, 0.5, 0.99, 1.0, 0.25])
    np.testing.assert_array_equal(bin_column(x, 2, "x"), [0, 0, 0, 1, 1, 1, 0])
    np.testing.assert_array_equal(bin_column(x, 4, "x"), [0, 0, 1, 2, 3, 3, 1])
    np.testing.assert_array_equal(bin_column(np.array(["1", "1.0", "01", "2e0"]), 2, "x"), [0, 0, 0, 1])


def test_dense_pmf_beyond_the_memory_limit_is_refused_before_allocating():
    rng = np.random.default_rng(1)
    x = np.stack([rng.permutation(np.repeat(np.arange(200), 20)) for _ in range(5)], 1)   # each seen 20 times
    t0 = time.perf_counter()
    with pytest.raises(ValueError, match=r"a dense pmf of shape \(200, 200, 200, 200, 200\) .* needs about 2.6 TB "
                                         r"of memory, more than the limit of 4.0 GB"):
        Distribution.from_samples(x[:, :4], x[:, 4])
    assert time.perf_counter() - t0 < 5
    d = Distribution.from_pmf(np.full((4, 4, 4, 4), 1 / 256))
    with memory_limit(1e5):
        with pytest.raises(ValueError, match=r"the I_sx decomposition of a pmf of shape \(4, 4, 4, 4\) needs about "
                                             r"\d+\.\d kB of memory, more than the limit of 100.0 kB"):
            pid(d)
        with pytest.raises(ValueError, match=r"a decomposition of a pmf of shape \(4, 4, 4, 4\) .* needs about"):
            from limen.estimators import wb_pid

            wb_pid(d.pmf)
    assert abs(pid(d).mi) < 1e-12
    with pytest.raises(ValueError, match="memory limit must be a positive number"):
        with memory_limit(-1):
            pass


def test_cli_continuous_csv(tmp_path, capsys):
    rng = np.random.default_rng(0)
    f = _csv(tmp_path / "noise.csv", [rng.random(2000), rng.random(2000), rng.integers(0, 2, 2000)], ["a", "b", "t"])
    rc, _, err = run_cli(["pid", str(f)], capsys)
    assert rc == 2 and "column 'a' does not look discrete" in err and "--bins N" in err
    rc, out, _ = run_cli(["pid", str(f), "--bins", "8", "--json"], capsys)
    assert rc == 0 and json.loads(out)["mi"] < 0.05
    # 3 continuous sources x 300: refused at once (used to end in a MemoryError after 37 s and 5.5 GB)
    f = _csv(tmp_path / "noise3.csv", [rng.random(300) for _ in range(4)], ["a", "b", "c", "t"])
    t0 = time.perf_counter()
    rc, _, err = run_cli(["pid", str(f)], capsys)
    assert rc == 2 and "does not look discrete" in err and time.perf_counter() - t0 < 10
    # a legitimate pmf above a lowered memory limit: the figure is reported
    f = _csv(tmp_path / "d.csv", [rng.integers(0, 4, 400) for _ in range(4)], ["a", "b", "c", "t"])
    rc, _, err = run_cli(["pid", str(f), "--max-memory", "0.0001"], capsys)
    assert rc == 2 and "needs about" in err and "more than the limit of 100.0 kB" in err
    rc, out, _ = run_cli(["pid", str(f), "--json"], capsys)
    assert rc == 0 and json.loads(out)["n_sources"] == 3
    f.write_text("a,b,t\n0,nan,1\n1,1,0\n0,1,1\n1,0,0\n")
    rc, _, err = run_cli(["pid", str(f)], capsys)
    assert rc == 2 and "column 'b' has 1 NaN or infinite sample(s)" in err


def test_cli_unclear_messages(tmp_path, capsys):
    for argv, msg in ((["--digits", "-3"], "argument --digits: must be a whole number of decimals from 0 to 16"),
                      (["--digits", "x"], "argument --digits"), (["--bins", "1"], "argument --bins: must be"),
                      (["--max-memory", "nan"], "argument --max-memory: must be a positive number")):
        with pytest.raises(SystemExit) as exc:
            run_cli(["pid", "--gate", "xor"] + argv, capsys)
        assert exc.value.code == 2 and msg in capsys.readouterr().err
    rc, out, _ = run_cli(["pid", "--gate", "xor", "--digits", "0"], capsys)
    assert rc == 0 and any(line.split()[:3] == ["{1}{2}", "-1", "-1"] for line in out.splitlines() if line)
    c = tmp_path / "dup.csv"
    c.write_text("a,a,t\n0,0,0\n0,1,1\n1,0,1\n1,1,0\n")
    rc, _, err = run_cli(["pid", str(c)], capsys)
    assert rc == 2 and "the header names 'a' more than once" in err
