"""I^sx: published gate vectors, invariants, numpy/torch/sympy agreement, batching, gradients."""

import itertools
from math import log2

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from limen.estimators import (Distribution, gate, goal_weights, lattice, pid, sx_decomposition,
                              sx_decomposition_exact, sx_goal, sx_pid, sx_redundancies)

TOL = 1e-12

# Published I^sx vectors (Makkeh, Gutknecht, Wibral 2021, arXiv 2002.03356; the gate tests of Abzinger/SxPID
# testing/test_gates.py and pwollstadt/IDTxl test/test_estimators_multivariate_pid.py; dit 2.3 PID_SX agrees).
# Two sources: (shared {1}{2}, unique {1}, unique {2}, synergy {12}, I(T;S1,S2))
TWO_SOURCE = {
    "xor": (log2(2 / 3), log2(3 / 2), log2(3 / 2), log2(4 / 3), 1.0),
    "and": (0.5 * log2(32 / 27), 0.25 * log2(27 / 16), 0.25 * log2(27 / 16), 0.75 * log2(4 / 3), 0.811278124459133),
    "copy": (log2(4 / 3), log2(3 / 2), log2(3 / 2), log2(4 / 3), 2.0),
    "rdn": (1.0, 0.0, 0.0, 0.0, 1.0),
    "unq": (log2(4 / 3), log2(3 / 2), -log2(4 / 3), log2(4 / 3), 1.0),
    "sum": (0.5 * log2(8 / 9), log2(3 / 2), log2(3 / 2), log2(4 / 3), 1.5),
    "reduced-or": (0.5 * log2(4 / 3) - 0.5, 0.5 * log2(4 / 3) + 0.25 * log2(3), 0.5 * log2(4 / 3) + 0.25 * log2(3),
                   0.5 * log2(9 / 8), 1.0),
    "pwunq": (0.0, 0.5, 0.5, 0.0, 1.0),
    "rnderr": (0.556715, 0.443285, -0.367993, 0.367993, 1.0),  # published to 6 decimals
}

# PARITY3 closed forms (SxPID's node order, Abzinger/SxPID testing/test_gates.py) mapped to gamma order
P3 = {"i": log2(5 / 4), "ij": log2(9 / 8), "123": log2(32 / 27), "i_j": log2(7 / 8), "i_jk": log2(32 / 35),
      "ij_ik": log2(16 / 15), "1_2_3": log2(8 / 7), "12_13_23": log2(875 / 1024)}
PARITY3 = ([P3["1_2_3"]] + [P3["i_j"]] * 3 + [P3["i_jk"]] * 3 + [P3["i"]] * 3 + [P3["12_13_23"]]
           + [P3["ij_ik"]] * 3 + [P3["ij"]] * 3 + [P3["123"]])
TRIRND = [1.0] + [0.0] * 17
XORCOPY = [0.0] + [log2(4 / 3)] * 3 + [log2(9 / 8)] * 3 + [0.0] * 3 + [log2(32 / 27)] + [0.0] * 7


def to_gamma2(v):  # (shd, u1, u2, syn) -> lattice(2) order (u1, u2, shd, syn)
    return np.array([v[1], v[2], v[0], v[3]])


def random_pmf(rng, shape, zeros=0.0):
    p = rng.dirichlet(np.ones(int(np.prod(shape)))).reshape(shape)
    if zeros:
        p[rng.random(shape) < zeros] = 0
        if p.sum() == 0:
            p.flat[0] = 1
        p /= p.sum()
    return p


@pytest.mark.parametrize("name", list(TWO_SOURCE))
def test_two_source_gates(name):
    *atoms, mi = TWO_SOURCE[name]
    tol = 1e-6 if name == "rnderr" else TOL
    d = gate(name)
    got = sx_pid(d.float_pmf())
    np.testing.assert_allclose(got, to_gamma2(atoms), atol=tol, rtol=0)
    r = pid(d)
    assert abs(r.mi - mi) < 1e-12 and abs(sum(r.atoms.values()) - mi) < 1e-12
    assert abs(r.h_res - (r.h_target - mi)) < 1e-15


def test_rnderr_exact_values_to_1e12():
    """The published RndErr values have 6 decimals; the exact values agree with them and with numpy."""
    r = pid(gate("rnderr", exact=True))
    exact = np.array([float(v) for v in r.atoms.values()])
    np.testing.assert_allclose(exact, to_gamma2(TWO_SOURCE["rnderr"][:4]), atol=1e-6)
    np.testing.assert_allclose(sx_pid(gate("rnderr").float_pmf()), exact, atol=TOL, rtol=0)


@pytest.mark.parametrize("name,expected", [("parity3", PARITY3), ("trirnd", TRIRND), ("xorcopy", XORCOPY)])
def test_three_source_gates(name, expected):
    got = sx_pid(gate(name).float_pmf())
    np.testing.assert_allclose(got, expected, atol=TOL, rtol=0)


def test_parity3_rounded_table_values():
    got = sx_pid(gate("parity3").float_pmf())
    table = [0.192645] + [-0.192645] * 3 + [-0.129283] * 3 + [0.321928] * 3 + [-0.226861] + [0.093109] * 3 \
        + [0.169925] * 3 + [0.245112]
    np.testing.assert_allclose(got, table, atol=1e-6)


def test_pointwise_and():
    dec = sx_decomposition(gate("and").float_pmf(), pointwise=True)
    # (u1, u2, syn, shd) per realisation, as in Abzinger/SxPID testing/test_gates.py
    expected = {(0, 0, 0): (0, 0, 0, log2(4 / 3)), (0, 1, 0): (log2(3 / 2), log2(3 / 4), log2(4 / 3), log2(8 / 9)),
                (1, 0, 0): (log2(3 / 4), log2(3 / 2), log2(4 / 3), log2(8 / 9)),
                (1, 1, 1): (log2(3 / 2), log2(3 / 2), log2(4 / 3), log2(4 / 3))}
    for cell, (u1, u2, syn, shd) in expected.items():
        np.testing.assert_allclose(dec.pw_atoms[cell], [u1, u2, shd, syn], atol=TOL)
    # IDTxl's pointwise shared values
    assert abs(dec.pw_atoms[0, 0, 0, 2] - 0.415037) < 1e-6 and abs(dec.pw_atoms[0, 1, 0, 2] + 0.169925) < 1e-6
    # unsupported cells are zero and masked
    assert not dec.mask[0, 0, 1] and np.all(dec.pw_atoms[0, 0, 1] == 0)
    # average of pointwise = average atoms
    p = gate("and").float_pmf()
    np.testing.assert_allclose(np.einsum("abt,abtk->k", p, dec.pw_atoms), dec.atoms, atol=TOL)


@pytest.mark.parametrize("name", ["xor", "copy", "rdn", "unq"])
def test_pointwise_equals_average_for_symmetric_gates(name):
    d = gate(name)
    dec = sx_decomposition(d.float_pmf(), pointwise=True)
    for idx in d.support_indices():
        np.testing.assert_allclose(dec.pw_atoms[idx], dec.atoms, atol=TOL)


def test_xor_exact_shared_is_log2_two_thirds():
    import sympy

    r = pid(gate("xor", exact=True))
    assert r.backend == "sympy"
    assert sympy.simplify(r.atoms[((0,), (1,))] - sympy.log(sympy.Rational(2, 3), 2)) == 0
    assert sympy.simplify(r.atoms[((0, 1),)] - sympy.log(sympy.Rational(4, 3), 2)) == 0
    assert r.mi == 1
    r = pid(gate("and", exact=True))
    assert sympy.simplify(r.atoms["{1}{2}"] - sympy.log(sympy.Rational(32, 27), 2) / 2) == 0


# ----------------------------------------------------------------------------- invariants
pmf_shapes = st.sampled_from([(2, 2, 2), (2, 3, 2), (3, 3, 3), (2, 2, 2, 2), (3, 2, 2, 3), (2, 2, 2, 2, 2)])


@settings(max_examples=40, deadline=None)
@given(shape=pmf_shapes, seed=st.integers(0, 2 ** 31 - 1), zeros=st.sampled_from([0.0, 0.3, 0.6]))
def test_invariants(shape, seed, zeros):
    rng = np.random.default_rng(seed)
    p = random_pmf(rng, shape, zeros)
    n = len(shape) - 1
    L = lattice(n)
    dec = sx_decomposition(p, pointwise=True)
    # atoms sum to I(T;S); redundancy = zeta @ atoms; H_res
    ps, pt = p.sum(-1, keepdims=True), p.sum(axis=tuple(range(n)), keepdims=True)
    m = p > 0
    mi = float((p[m] * np.log2((p / (ps * pt))[m])).sum())
    assert abs(dec.atoms.sum() - mi) < 1e-12 and abs(dec.mi - mi) < 1e-12
    np.testing.assert_allclose(L.zeta @ dec.atoms, dec.redundancies, atol=1e-12)
    np.testing.assert_allclose(dec.atoms, dec.atoms_plus - dec.atoms_minus, atol=1e-12)
    # self-redundancy of a single source = I(T;S_i)
    for i in range(n):
        axes = tuple(j for j in range(n) if j != i)
        q = p.sum(axis=axes)
        qs, qt = q.sum(-1, keepdims=True), q.sum(0, keepdims=True)
        mm = q > 0
        mi_i = float((q[mm] * np.log2((q / (qs * qt))[mm])).sum())
        assert abs(dec.redundancies[L.index(((i,),))] - mi_i) < 1e-12
    # pointwise informative/misinformative atoms are non-negative (Theorem IV.3)
    assert dec.pw_atoms_plus.min() > -1e-12 and dec.pw_atoms_minus.min() > -1e-12
    # pointwise averages to the average
    axes = "abcdefg"[: n + 1]
    np.testing.assert_allclose(np.einsum(f"{axes},{axes}k->k", p, dec.pw_atoms), dec.atoms, atol=1e-12)


@settings(max_examples=20, deadline=None)
@given(shape=pmf_shapes, seed=st.integers(0, 2 ** 31 - 1), perm_seed=st.integers(0, 100))
def test_source_permutation(shape, seed, perm_seed):
    rng = np.random.default_rng(seed)
    p = random_pmf(rng, shape, 0.2)
    n = len(shape) - 1
    perm = np.random.default_rng(perm_seed).permutation(n)
    q = np.transpose(p, list(perm) + [n])  # new source j = old source perm[j]
    L = lattice(n)
    a, b = sx_pid(p), sx_pid(q)
    for i, nd in enumerate(L.nodes):
        mapped = tuple(tuple(int(perm[j]) for j in el) for el in nd)
        assert abs(b[i] - a[L.index(mapped)]) < 1e-12


def test_numpy_torch_sympy_agree():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(5)
    for shape in [(2, 3, 2), (2, 2, 2, 3)]:
        from fractions import Fraction

        w = rng.integers(0, 5, size=shape)
        w.flat[0] += 1
        exact = np.vectorize(lambda k: Fraction(int(k), int(w.sum())), otypes=[object])(w)
        d = Distribution(exact)
        ex = sx_decomposition_exact(d, pointwise=True)
        nu = sx_decomposition(d.float_pmf(), pointwise=True)
        to = sx_decomposition(torch.tensor(d.float_pmf(), dtype=torch.float64), pointwise=True)
        for name in ["atoms", "redundancies", "atoms_plus", "atoms_minus", "pw_atoms", "pw_atoms_plus",
                     "pw_atoms_minus"]:
            e = np.array(getattr(ex, name), dtype=np.float64)
            np.testing.assert_allclose(getattr(nu, name), e, atol=1e-12, err_msg=name)
            np.testing.assert_allclose(getattr(to, name).numpy(), e, atol=1e-12, err_msg=name)
        assert abs(float(ex.h_res) - nu.h_res) < 1e-12


def test_batched_equals_loop_and_orders():
    rng = np.random.default_rng(1)
    p = rng.dirichlet(np.ones(24), size=(3, 4)).reshape(3, 4, 2, 3, 2, 2)
    p[0, 0] = 0
    p[0, 0, 0, 0, 0, 0] = 1.0
    a = sx_pid(p, n_sources=3)
    assert a.shape == (3, 4, 18)
    for i, j in itertools.product(range(3), range(4)):
        np.testing.assert_allclose(a[i, j], sx_pid(p[i, j]), atol=1e-14)
    L = lattice(3)
    np.testing.assert_allclose(sx_pid(p, n_sources=3, order="dit"), L.reorder(a, "default", "dit"))
    r = sx_redundancies(p, n_sources=3, nodes=[L.top, L.bottom])
    np.testing.assert_allclose(r, sx_redundancies(p, n_sources=3)[..., [17, 0]], atol=1e-14)


def test_chunked_numpy_path(monkeypatch):
    import limen.estimators.base as base
    import limen.estimators.sx as sx

    rng = np.random.default_rng(2)
    p = rng.dirichlet(np.ones(16), size=50).reshape(50, 2, 2, 2, 2)
    full = sx.sx_decomposition(p, n_sources=3)
    monkeypatch.setattr(base, "_NUMPY_CHUNK_ELEMS", 16 * 18 * 7)
    part = sx.sx_decomposition(p, n_sources=3)
    np.testing.assert_allclose(part.atoms, full.atoms, atol=1e-14)
    np.testing.assert_allclose(part.h_res, full.h_res, atol=1e-14)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2 ** 31 - 1), n=st.sampled_from([2, 3]))
def test_goal_fast_path(seed, n):
    rng = np.random.default_rng(seed)
    p = rng.dirichlet(np.ones(2 ** (n + 1)), size=4).reshape(4, *([2] * (n + 1)))
    L = lattice(n)
    gamma = np.where(rng.random(L.n_nodes + 1) < 0.3, rng.normal(size=L.n_nodes + 1), 0.0)
    dec = sx_decomposition(p, n_sources=n)
    want = dec.atoms @ gamma[:-1] + gamma[-1] * dec.h_res
    np.testing.assert_allclose(sx_goal(p, gamma, n_sources=n), want, atol=1e-12)
    w, w_h = goal_weights(gamma, n)
    np.testing.assert_allclose((dec.redundancies @ w + w_h * dec.h_target), want, atol=1e-12)
    # heuristic goal (gamma = 1 on {F}{C}) needs 2 redundancies
    g = np.zeros(L.n_nodes + 1)
    g[L.index(((0,), (1,)))] = 1
    w, _ = goal_weights(g, n)
    assert np.count_nonzero(w) == (2 if n == 3 else 1)


def test_n4_sum_and_parity4():
    d = gate("parity4")
    a = sx_pid(d.float_pmf())
    assert a.shape == (166,) and abs(a.sum() - 1) < 1e-12
    rng = np.random.default_rng(0)
    p = random_pmf(rng, (2, 2, 3, 2, 2), 0.3)
    dec = sx_decomposition(p)
    assert abs(dec.atoms.sum() - dec.mi) < 1e-12


def test_n5_runs():
    rng = np.random.default_rng(0)
    p = random_pmf(rng, (2,) * 6, 0.2)
    dec = sx_decomposition(p, pointwise=False)
    assert dec.atoms.shape == (7579,)
    assert abs(dec.atoms.sum() - dec.mi) < 1e-10


# ----------------------------------------------------------------------------- torch
def test_torch_gradcheck_and_dtypes():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    for shape, n in [((2, 2, 2), 2), ((2, 2, 3, 2), 3), ((2, 2, 2, 2, 2), 3)]:
        base = torch.tensor(rng.dirichlet(np.ones(int(np.prod(shape)))).reshape(shape), dtype=torch.float64,
                            requires_grad=True)
        assert torch.autograd.gradcheck(lambda q: sx_pid(q, n_sources=n, validate=False), (base,))
        gamma = torch.tensor(rng.normal(size=lattice(n).n_nodes + 1))
        assert torch.autograd.gradcheck(lambda q: sx_goal(q, gamma, n_sources=n, validate=False), (base,))
        if base.ndim == n + 1:
            assert torch.autograd.gradcheck(
                lambda q: sx_decomposition(q, n_sources=n, validate=False, pointwise=True).pw_atoms_plus, (base,),
                fast_mode=True)
    # float32 agrees with float64 to float32 accuracy
    p = rng.dirichlet(np.ones(32), size=8).reshape(8, 2, 2, 2, 4)
    a64 = sx_pid(p, n_sources=3)
    a32 = sx_pid(torch.tensor(p, dtype=torch.float32), n_sources=3)
    assert a32.dtype == torch.float32
    np.testing.assert_allclose(a32.numpy(), a64, atol=2e-5)


def test_torch_zero_cells_masked_gradients_finite():
    torch = pytest.importorskip("torch")
    p = torch.tensor(gate("and").float_pmf(), requires_grad=True)  # half the cells are zero
    a = sx_pid(p)
    a.sum().backward()
    assert torch.isfinite(p.grad).all()
    # parity3: zero cells whose union events are empty too
    q = torch.tensor(gate("parity3").float_pmf(), requires_grad=True)
    dec = sx_decomposition(q, pointwise=True)
    (dec.atoms.sum() + dec.pw_atoms.sum() + dec.h_res).backward()
    assert torch.isfinite(q.grad).all()
    np.testing.assert_allclose(dec.atoms.detach().numpy(), PARITY3, atol=TOL)


def test_torch_gradient_on_support_matches_finite_differences():
    """Along directions that keep the support (mass moved between occupied cells) the gradient is exact."""
    torch = pytest.importorskip("torch")
    p0 = gate("and").float_pmf()
    p = torch.tensor(p0, requires_grad=True)
    g = torch.zeros(4, dtype=torch.float64)
    g[2] = 1
    val = sx_pid(p) @ g
    val.backward()
    d = np.zeros_like(p0)
    d[0, 0, 0], d[1, 1, 1] = 1, -1
    h = 1e-6
    fd = (sx_pid(p0 + h * d)[2] - sx_pid(p0 - h * d)[2]) / (2 * h)
    assert abs(float((p.grad.numpy() * d).sum()) - fd) < 1e-7


@pytest.mark.gpu
def test_cuda_matches_cpu():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.ones(128), size=64).reshape(64, 4, 4, 4, 2)
    a = sx_pid(torch.tensor(p, device="cuda"), n_sources=3)
    np.testing.assert_allclose(a.cpu().numpy(), sx_pid(p, n_sources=3), atol=1e-12)


@pytest.mark.parametrize("measure", ["wb", "mmi"])
def test_goal_and_gradients_other_measures(measure):
    torch = pytest.importorskip("torch")
    from limen.estimators import atoms, goal, redundancies

    rng = np.random.default_rng(7)
    p = rng.dirichlet(np.ones(16), size=3).reshape(3, 2, 2, 2, 2)
    gamma = rng.normal(size=19)
    a = atoms(p, measure, n_sources=3)
    h_t = -(lambda q: (q * np.log2(q)).sum(-1))(p.sum(axis=(1, 2, 3)))
    h_res = h_t - redundancies(p, measure, n_sources=3)[:, 17]
    np.testing.assert_allclose(goal(p, gamma, measure, n_sources=3), a @ gamma[:18] + gamma[18] * h_res, atol=1e-12)
    np.testing.assert_allclose(a.sum(-1), sx_decomposition(p, n_sources=3).mi, atol=1e-12)
    base = torch.tensor(p[0], requires_grad=True)
    assert torch.autograd.gradcheck(lambda q: atoms(q, measure, validate=False), (base,))
    np.testing.assert_allclose(atoms(torch.tensor(p), measure, n_sources=3).numpy(), a, atol=1e-12)


@pytest.mark.parametrize("measure", ["sx", "wb", "mmi"])
def test_goal_rejects_non_finite_gamma(measure):
    """A NaN or inf weight used to return NaN (sx_goal) instead of saying which weight is bad."""
    from limen.estimators import goal

    p = gate("parity3").float_pmf()
    for bad in (np.nan, np.inf):
        gamma = np.zeros(19)
        gamma[4] = bad
        with pytest.raises(ValueError, match=r"gamma contains NaN or inf \(entries \[4\]\)"):
            goal(p, gamma, measure)
    with pytest.raises(ValueError, match="gamma must be a numeric vector"):
        sx_goal(p, ["a"] * 19)
