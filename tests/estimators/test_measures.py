"""The measure registry: names in one place, a new measure as one class, every entry point uses it."""

import numpy as np
import pytest

from limen.estimators import Measure, atoms, gate, get_measure, goal, lattice, pid, redundancies
from limen.estimators import measures as registry
from limen.estimators.base import collection_min, node_collections, specific


@pytest.fixture
def scratch_registry(monkeypatch):
    monkeypatch.setattr(registry, "MEASURES", dict(registry.MEASURES))
    monkeypatch.setattr(registry, "_ALIASES", dict(registry._ALIASES))


def test_every_measure_file_is_registered_with_its_names():
    assert set(registry.MEASURES) == {"sx", "wb", "mmi", "pm"}
    for alias, key in [("I_SX", "sx"), ("isx", "sx"), ("i-min", "wb"), ("min", "wb"), ("IMMI", "mmi"), ("i_pm", "pm")]:
        assert get_measure(alias) is registry.MEASURES[key]
    with pytest.raises(ValueError, match=r"unknown vectorised measure 'broja'; choose 'mmi' \(I_mmi\), 'pm' "):
        get_measure("broja")
    # the dit adapter reads the same names: 'min' was unknown to it before
    assert pid(gate("and"), "min", backend="dit").measure == "PID_WB"


def test_a_new_measure_is_one_class(scratch_registry):
    @registry.register
    class MaxMI(Measure):  # not a redundancy measure: the largest I(T; S_a) of the collections
        name = "I_max"
        aliases = ("maxmi",)

        def redundancy(self, p, n, nodes):
            masks, pos = node_collections(n, nodes)
            return -collection_min(-specific(p, n, masks).sum(-1), pos, axis=-1)

    p = gate("and").float_pmf()
    L = lattice(2)
    red = redundancies(p, "maxmi")
    mi1 = redundancies(p, "mmi")[L.index(((0,),))]
    assert abs(red[L.index(((0,), (1,)))] - mi1) < 1e-15  # symmetric: max = min of equal values
    r = pid(gate("and"), "maxmi")
    assert r.measure == "I_max" and abs(sum(r.atoms.values()) - r.mi) < 1e-12
    gamma = np.arange(5.0)
    assert abs(goal(p, gamma, "maxmi") - (atoms(p, "maxmi") @ gamma[:4] + 4 * r.h_res)) < 1e-12
    with pytest.raises(ValueError, match="pointwise values exist for I\\^sx only"):
        pid(gate("and"), "maxmi", pointwise=True)
    with pytest.raises(ValueError, match="alias 'sx' of Clash is taken by I_sx"):
        @registry.register
        class Clash(Measure):
            name = "clash"
            aliases = ("sx",)


def test_pm_goal_gradients_and_backends():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(7)
    p = rng.dirichlet(np.ones(16), size=3).reshape(3, 2, 2, 2, 2)
    gamma = rng.normal(size=19)
    a = atoms(p, "pm", n_sources=3)
    h_res = pid(p[0], "pm").h_res
    assert abs(goal(p[0], gamma, "pm") - (a[0] @ gamma[:18] + gamma[18] * h_res)) < 1e-12
    np.testing.assert_allclose(goal(p, gamma, "pm", n_sources=3)[0], goal(p[0], gamma, "pm"), atol=1e-14)
    np.testing.assert_allclose(atoms(torch.tensor(p), "pm", n_sources=3).numpy(), a, atol=1e-12)
    base = torch.tensor(p[0], requires_grad=True)
    assert torch.autograd.gradcheck(lambda q: atoms(q, "pm", validate=False), (base,))
