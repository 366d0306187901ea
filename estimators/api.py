"""``pid(d, measure=..., backend=...)``: one decomposition as a :class:`PIDResult`."""

from __future__ import annotations

import numpy as np

from ._arrays import is_torch
from .base import check_memory, working_bytes
from .distribution import Distribution
from .lattice import lattice
from .result import NodeMap, PIDResult

__all__ = ["pid", "BACKENDS", "as_distribution"]

BACKENDS = ("numpy", "torch", "sympy", "dit")


def as_distribution(d, n_sources=None) -> Distribution:
    """A Distribution from a Distribution, a dense pmf (numpy/torch/nested lists) or a dit Distribution."""
    if isinstance(d, Distribution):
        return d
    if type(d).__module__.split(".")[0] == "dit":
        return Distribution.from_dit(d)
    return Distribution(d, n_sources)


def _attach_pointwise(res, dec, d, mk):
    res.pointwise, res.pointwise_plus, res.pointwise_minus, res.pointwise_red = {}, {}, {}, {}
    for idx in d.support_indices():
        key = tuple(a[i] for a, i in zip(d.alphabets, idx))
        res.pointwise[key] = mk(dec.pw_atoms[idx])
        res.pointwise_plus[key] = mk(dec.pw_atoms_plus[idx])
        res.pointwise_minus[key] = mk(dec.pw_atoms_minus[idx])
        res.pointwise_red[key] = mk(dec.pw_red[idx])


def _result(dec, d: Distribution, name: str, backend: str, pointwise: bool, value) -> PIDResult:
    """A PIDResult from a decomposition; ``value`` maps an entry to what the result holds."""
    L = lattice(d.n_sources)
    m = lambda a: NodeMap(L, [value(x) for x in a])
    parts = getattr(dec, "atoms_plus", None) is not None
    res = PIDResult(n=d.n_sources, measure=name, backend=backend, atoms=m(dec.atoms),
                    redundancies=m(dec.redundancies), mi=value(dec.mi), h_target=value(dec.h_target),
                    h_res=value(dec.h_res), atoms_plus=m(dec.atoms_plus) if parts else None,
                    atoms_minus=m(dec.atoms_minus) if parts else None)
    if pointwise:
        _attach_pointwise(res, dec, d, m)
    return res


def pid(d, measure: str = "sx", *, backend: str | None = None, pointwise: bool = False, n_sources=None,
        device=None, **kwargs) -> PIDResult:
    """Partial information decomposition of one distribution.

    ``d``: a :class:`Distribution`, a dense pmf ``(|S1|, ..., |Sn|, |T|)`` or a dit Distribution.
    ``measure``: any registered measure (``"sx"`` = I^sx, default; ``"wb"`` = I_min; ``"mmi"``;
    see :mod:`limen.estimators.measures`); with ``backend="dit"`` any dit measure (``"broja"``,
    ``"ccs"``, ``"dep"``, ...). ``backend``: ``"numpy"`` (float64), ``"torch"`` (float64 on
    ``device``), ``"sympy"`` (exact; I^sx only; the default for an exact Distribution) or
    ``"dit"``. ``pointwise=True`` adds per-realisation atoms (I^sx; dit SX/PM).
    """
    from .measures import get_measure

    d = as_distribution(d, n_sources)
    if backend not in (None,) + BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose from {BACKENDS}")
    if backend == "dit":
        from .dit_backend import dit_pid

        return dit_pid(d, measure, pointwise=pointwise, **kwargs)
    if kwargs:
        raise ValueError(f"unexpected arguments {sorted(kwargs)}")
    m = get_measure(measure)
    if backend is None:
        backend = "sympy" if d.exact and m.exact else "numpy"
    if backend == "sympy":
        return _result(m.decompose_exact(d, pointwise=pointwise), d, m.name, "sympy", pointwise, lambda x: x)
    n = d.n_sources
    check_memory(working_bytes(d.pmf.size, n, lattice(n).n_nodes, pointwise=pointwise),
                 f"the {m.name} decomposition of a pmf of shape {d.shape}")
    p = d.float_pmf()
    if backend == "torch":
        import torch

        p = torch.as_tensor(p, dtype=torch.float64, device=device)
    dec = m.decompose(p, n, pointwise=pointwise)
    if is_torch(dec.atoms):
        for k, v in dec.as_dict().items():
            if is_torch(v):
                setattr(dec, k, v.detach().cpu().numpy())
    return _result(dec, d, m.name, backend, pointwise, lambda x: float(np.float64(x)))
