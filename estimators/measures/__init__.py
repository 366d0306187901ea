r"""The redundancy measures, one module each, and the entry points that take a measure by name.

Every module in this folder whose name does not start with ``_`` is imported here; each defines
one :class:`~limen.estimators.base.Measure` subclass decorated with :func:`register` (its names and
its redundancy I_∩(α)). So a new measure is one new file (see ``docs/estimators.md``):

    isx.py    I^sx, shared exclusion (Makkeh, Gutknecht, Wibral 2021)
    imin.py   I_min (Williams & Beer 2010)
    immi.py   I_mmi, minimum mutual information (Barrett 2015)
    ipm.py    I^±, pointwise specificity and ambiguity (Finn & Lizier 2018)

Each file's ``aliases`` are the only list of its names (``measure_names()`` prints them).

The entry points below take ``measure`` as any alias (case-insensitive, ``-`` read as ``_``) or a
:class:`Measure`; arrays are numpy (computed in float64) or torch (dtype, device and autograd kept).
"""

from __future__ import annotations

import importlib
import pkgutil

import numpy as np

from .._arrays import ops
from ..base import Measure, apply_mobius, chunked, goal_weights, order_out, prepare_pmf, target_entropy
from ..lattice import lattice

__all__ = ["MEASURES", "register", "get_measure", "measure_names", "redundancies", "atoms", "goal"]

#: key (first alias) -> the registered measure
MEASURES: dict[str, Measure] = {}
_ALIASES: dict[str, Measure] = {}


def register(cls):
    """Class decorator: make a :class:`Measure` subclass known under its ``aliases``."""
    m = cls()
    if not m.name or not m.aliases:
        raise ValueError(f"{cls.__name__} needs a name and at least one alias")
    for a in m.aliases:
        a = _normal(a)
        if a in _ALIASES and type(_ALIASES[a]) is not cls:
            raise ValueError(f"measure alias {a!r} of {cls.__name__} is taken by {_ALIASES[a].name}")
        _ALIASES[a] = m
    MEASURES[_normal(m.key)] = m
    return cls


def _normal(name) -> str:
    return str(name).strip().lower().replace("-", "_")


def measure_names() -> str:
    """``"'mmi' (I_mmi), 'sx' (I_sx), ..."``: the registered measures, for messages and help."""
    return ", ".join(f"{k!r} ({m.name})" for k, m in sorted(MEASURES.items()))


def get_measure(measure) -> Measure:
    """The registered measure for an alias (or the :class:`Measure` itself)."""
    if isinstance(measure, Measure):
        return measure
    m = _ALIASES.get(_normal(measure))
    if m is None:
        raise ValueError(f"unknown vectorised measure {measure!r}; choose {measure_names()} "
                         "(other measures: backend='dit'; limen pid --backend dit)")
    return m


def redundancies(pmf, measure="sx", n_sources=None, *, nodes=None, order="default", validate=True,
                 normalize=False, tol=None):
    """Redundancies of ``measure``, ``(..., n_nodes)`` (or ``(..., len(nodes))`` for the given nodes)."""
    m = get_measure(measure)
    p, n = prepare_pmf(pmf, n_sources, validate=validate, normalize=normalize, tol=tol)
    L = lattice(n)
    idx = tuple(range(L.n_nodes)) if nodes is None else tuple(L.index(nd) for nd in nodes)
    red = chunked(p, n, lambda q: m.redundancy(q, n, idx), n_red=len(idx))
    return red if nodes is not None else order_out(red, L, order)


def atoms(pmf, measure="sx", n_sources=None, *, order="default", validate=True, normalize=False, tol=None):
    """Atoms ``(..., n_atoms)`` of ``measure`` by Möbius inversion of its redundancies."""
    p, n = prepare_pmf(pmf, n_sources, validate=validate, normalize=normalize, tol=tol)
    L = lattice(n)
    return order_out(apply_mobius(redundancies(p, measure, n, validate=False), L), L, order)


def goal(pmf, gamma, measure="sx", n_sources=None, *, order="default", validate=True, normalize=False, tol=None):
    """Goal ``γ·atoms + γ_res·H_res`` per pmf, shape ``(...)``, by the fast path
    ``w·I + γ_res·H(T)`` with ``w = Mᵀγ − γ_res e_top`` (:func:`~limen.estimators.base.goal_weights`):
    only the redundancies with non-zero weight (and the marginals they need) are computed."""
    m = get_measure(measure)
    p, n = prepare_pmf(pmf, n_sources, validate=validate, normalize=normalize, tol=tol)
    w, w_h = goal_weights(gamma, n, order=order)
    idx = tuple(int(i) for i in np.flatnonzero(w != 0))
    h_t = target_entropy(p, n)
    if not idx:
        return w_h * h_t
    red = chunked(p, n, lambda q: m.redundancy(q, n, idx), n_red=len(idx))
    return red @ ops(red).const(w[list(idx)], red) + w_h * h_t


for _info in pkgutil.iter_modules(__path__):
    if not _info.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_info.name}")
