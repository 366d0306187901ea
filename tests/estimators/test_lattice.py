"""Redundancy lattices: counts, orders, cover relation against dit, zeta/Möbius, inclusion–exclusion."""

import itertools

import numpy as np
import pytest

from limen.estimators.lattice import canonical_node, lattice

GAMMA3 = [  # the infomorphic γ order (get_achains, Priesemann-Group/Infomorphic_Networks), dit's node form
    ((0,), (1,), (2,)), ((0,), (1,)), ((0,), (2,)), ((1,), (2,)), ((0,), (1, 2)), ((1,), (0, 2)),
    ((2,), (0, 1)), ((0,),), ((1,),), ((2,),), ((0, 1), (0, 2), (1, 2)), ((0, 1), (0, 2)),
    ((0, 1), (1, 2)), ((0, 2), (1, 2)), ((0, 1),), ((0, 2),), ((1, 2),), ((0, 1, 2),),
]
CHILDREN3 = {  # lower covers by γ index, as listed in pwollstadt/IDTxl idtxl/lattices.py
    0: [], 1: [0], 2: [0], 3: [0], 4: [1, 2], 5: [1, 3], 6: [2, 3], 7: [4], 8: [5], 9: [6],
    10: [4, 5, 6], 11: [7, 10], 12: [8, 10], 13: [9, 10], 14: [11, 12], 15: [11, 13], 16: [12, 13],
    17: [14, 15, 16],
}


@pytest.mark.parametrize("n,count", [(2, 4), (3, 18), (4, 166), (5, 7579)])
def test_node_counts(n, count):
    L = lattice(n)
    assert len(L.nodes) == count == len(set(L.nodes))
    assert L.subsets == tuple(tuple(i for i in range(n) if m >> i & 1) for m in range(1, 2 ** n))
    assert L.union_coefficients.shape == (count, 2 ** n - 1)
    assert lattice(n) is L  # cached


def test_gamma_orders_and_children():
    assert lattice(2).nodes == (((0,),), ((1,),), ((0,), (1,)), ((0, 1),))
    L = lattice(3)
    assert list(L.nodes) == GAMMA3 == L.order("gamma") == L.order("graded")
    for i, ch in CHILDREN3.items():
        assert L.children(L.nodes[i]) == [GAMMA3[j] for j in ch]
    assert L.bottom == GAMMA3[0] and L.top == GAMMA3[17]
    assert L.order("sxpid")[:8] == [((0,),), ((1,),), ((2,),), ((0, 1),), ((0, 2),), ((1, 2),), ((0, 1, 2),),
                                    ((0,), (1,))]
    with pytest.raises(ValueError, match="only for n = 2, 3"):
        lattice(4).order("gamma")
    with pytest.raises(ValueError, match="unknown order"):
        L.order("nope")


@pytest.mark.parametrize("n", [2, 3, 4])
def test_matches_dit_lattice(n):
    from dit.pid.pid import _transform, sort_key
    from lattices.lattices import free_distributive_lattice

    dl = _transform(free_distributive_lattice([(i,) for i in range(n)]))  # what every dit PID builds
    L = lattice(n)
    dit_nodes = set(dl)
    assert set(L.nodes) == dit_nodes
    assert {(a, b) for a, b in dl._lattice.edges} == set(L.graph.edges)
    assert L.order("dit") == sorted(dl, key=sort_key(dl))


@pytest.mark.parametrize("n", [2, 3, 4])
def test_zeta_mobius(n):
    L = lattice(n)
    Z, M = L.zeta, L.mobius
    assert np.array_equal(M @ Z, np.eye(len(L), dtype=np.int64))
    for i, a in enumerate(L.nodes):
        for j, b in enumerate(L.nodes):
            leq = all(any(set(bb) <= set(aa) for bb in b) for aa in a)
            assert Z[i, j] == leq == L.leq(b, a)
    rows, cols, vals = L.mobius_terms
    dense = np.zeros_like(M)
    np.add.at(dense, (rows, cols), vals)
    assert np.array_equal(dense, M)


def test_zeta_mobius_n5_rows():
    L = lattice(5)
    rng = np.random.default_rng(0)
    Z = L.zeta
    r, c, v = L.mobius_terms
    for row in rng.choice(len(L), 200, replace=False):
        sel = r == row
        prod = (v[sel, None] * Z[c[sel]]).sum(axis=0)  # (mobius @ zeta)[row]
        assert prod[row] == 1 and np.count_nonzero(prod) == 1
        assert np.array_equal(np.flatnonzero(L.mobius[row]), np.sort(c[sel]))


@pytest.mark.parametrize("n", [2, 3, 4])
def test_union_coefficients_by_brute_force(n):
    """coef · (indicator of each joint marginal event) == indicator of the union, for all outcome pairs."""
    L = lattice(n)
    for s in itertools.product(range(2), repeat=n):
        for x in itertools.product(range(2), repeat=n):
            # event {S_a = s_a} evaluated at outcome x
            ind = np.array([all(x[i] == s[i] for i in sub) for sub in L.subsets], dtype=np.int64)
            union = np.array([any(all(x[i] == s[i] for i in a) for a in nd) for nd in L.nodes], dtype=np.int64)
            assert np.array_equal(L.union_coefficients @ ind, union)


def test_permutations_and_labels():
    L = lattice(3)
    x = np.arange(18.0)
    y = L.reorder(x, "default", "dit")
    assert [L.nodes[int(i)] for i in y] == L.order("dit")
    assert np.array_equal(L.reorder(y, "dit", "default"), x)
    assert L.label(((0,), (1, 2))) == "{1}{23}" and L.label(((0,), (1, 2)), "fcl") == "(F)(CL)"
    assert L.index([[2, 1], [0]]) == 4
    assert canonical_node([[1, 0], [2]]) == ((2,), (0, 1))
    with pytest.raises(ValueError, match="not an antichain"):
        L.index(((0,), (0, 1)))
    with pytest.raises(ValueError, match="out of range"):
        L.index(((3,),))
    for bad in (1, 6, 2.0, True):
        with pytest.raises(ValueError):
            lattice(bad)
