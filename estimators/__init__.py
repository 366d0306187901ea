"""Exact partial information decomposition (PID) estimators.

This package is a leaf: it never imports :mod:`limen.verify`. Importing it is light: numpy only;
torch, sympy and dit are imported when a function needs them.

Main API (see ``docs/estimators.md``)::

    from limen.estimators import Distribution, pid, sx_pid, lattice
    d = Distribution.from_outcomes(["000", "011", "101", "110"], sources=2)
    r = pid(d, measure="sx")            # PIDResult; r.table(), r.to_dict(), r.atoms[((0,), (1,))]
    atoms = sx_pid(pmf, n_sources=3)    # numpy or torch (..., |S1|, |S2|, |S3|, |T|) -> (..., 18)

Modules: ``lattice`` (redundancy lattices), ``base`` (what every measure shares: pmf checks,
marginals, entropies, Möbius inversion, goal weights, memory limit), ``measures`` (one file per
measure — ``isx``, ``imin``, ``immi`` — and ``redundancies``/``atoms``/``goal`` by name), ``sx``
(the full I^sx decomposition), ``symbolic`` (exact sympy), ``dit_backend`` (dit references),
``distribution`` (Distribution + validation), ``binning`` (discretising samples), ``result``
(PIDResult), ``gates`` (named test distributions), ``sample`` (sample-based goal for learning),
``cli`` (``limen pid``).
"""

from __future__ import annotations

import importlib

# eager (numpy only): the function ``lattice`` must shadow the submodule of the same name
from .lattice import RedundancyLattice, canonical_node, lattice

_EXPORTS = {
    "lattice": "lattice", "RedundancyLattice": "lattice", "canonical_node": "lattice",
    "Distribution": "distribution",
    "pid": "api", "as_distribution": "api",
    "PIDResult": "result", "NodeMap": "result",
    "sx_pid": "sx", "sx_redundancies": "sx", "sx_decomposition": "sx", "sx_goal": "sx", "SxDecomposition": "sx",
    "goal_weights": "base", "apply_mobius": "base", "specific_information": "base", "memory_limit": "base",
    "Measure": "base", "Decomposition": "base",
    "wb_pid": "measures.imin", "wb_redundancies": "measures.imin",
    "mmi_pid": "measures.immi", "mmi_redundancies": "measures.immi",
    "redundancies": "measures", "atoms": "measures", "goal": "measures", "register": "measures",
    "get_measure": "measures",
    "sx_pid_exact": "symbolic", "sx_decomposition_exact": "symbolic",
    "dit_pid": "dit_backend", "dit_measures": "dit_backend",
    "gate": "gates", "gate_names": "gates",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        mod = importlib.import_module(f".{_EXPORTS[name]}", __name__)
        return getattr(mod, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + __all__)
