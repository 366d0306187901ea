"""``pid(d, measure=..., backend=...)``: one decomposition as a :class:`PIDResult`."""

from __future__ import annotations

import numpy as np

from ._arrays import is_torch
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


def _float_result(dec, d: Distribution, measure: str, backend: str, pointwise: bool) -> PIDResult:
    L = lattice(d.n_sources)
    f = lambda a: NodeMap(L, [float(x) for x in np.asarray(a, dtype=np.float64)])
    res = PIDResult(n=d.n_sources, measure=measure, backend=backend, atoms=f(dec.atoms),
                    redundancies=f(dec.redundancies), mi=float(dec.mi), h_target=float(dec.h_target),
                    h_res=float(dec.h_res), atoms_plus=f(dec.atoms_plus), atoms_minus=f(dec.atoms_minus))
    if pointwise:
        _attach_pointwise(res, dec, d, lambda v: NodeMap(L, [float(x) for x in v]))
    return res


def _attach_pointwise(res, dec, d, mk):
    res.pointwise, res.pointwise_plus, res.pointwise_minus, res.pointwise_red = {}, {}, {}, {}
    for idx in d.support_indices():
        key = tuple(a[i] for a, i in zip(d.alphabets, idx))
        res.pointwise[key] = mk(dec.pw_atoms[idx])
        res.pointwise_plus[key] = mk(dec.pw_atoms_plus[idx])
        res.pointwise_minus[key] = mk(dec.pw_atoms_minus[idx])
        res.pointwise_red[key] = mk(dec.pw_red[idx])


def pid(d, measure: str = "sx", *, backend: str | None = None, pointwise: bool = False, n_sources=None,
        device=None, **kwargs) -> PIDResult:
    """Partial information decomposition of one distribution.

    ``d``: a :class:`Distribution`, a dense pmf ``(|S1|, ..., |Sn|, |T|)`` or a dit Distribution.
    ``measure``: ``"sx"`` (I^sx, default), ``"wb"`` (I_min), ``"mmi"``; with ``backend="dit"`` any
    dit measure (``"broja"``, ``"ccs"``, ``"dep"``, ...). ``backend``: ``"numpy"`` (float64),
    ``"torch"`` (float64 on ``device``), ``"sympy"`` (exact; I^sx only; the default for an exact
    Distribution) or ``"dit"``. ``pointwise=True`` adds per-realisation atoms (I^sx; dit SX/PM).
    """
    from .measures import canonical_measure

    d = as_distribution(d, n_sources)
    if backend is None:
        backend = "sympy" if d.exact and str(measure).lower() in ("sx", "isx", "i_sx") else "numpy"
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose from {BACKENDS}")
    if backend == "dit":
        from .dit_backend import dit_pid

        return dit_pid(d, measure, pointwise=pointwise, **kwargs)
    kind = canonical_measure(measure)
    name = {"sx": "I_sx", "wb": "I_min (WB)", "mmi": "I_mmi"}[kind]
    if kwargs:
        raise ValueError(f"unexpected arguments {sorted(kwargs)}")
    if backend == "sympy":
        if kind != "sx":
            raise ValueError("the exact (sympy) backend implements I^sx only; use backend='numpy' for "
                             f"{measure!r}")
        from .symbolic import sx_decomposition_exact

        dec = sx_decomposition_exact(d, pointwise=pointwise)
        L = lattice(d.n_sources)
        m = lambda a: NodeMap(L, list(a))
        res = PIDResult(n=d.n_sources, measure=name, backend="sympy", atoms=m(dec.atoms),
                        redundancies=m(dec.redundancies), mi=dec.mi, h_target=dec.h_target, h_res=dec.h_res,
                        atoms_plus=m(dec.atoms_plus), atoms_minus=m(dec.atoms_minus))
        if pointwise:
            _attach_pointwise(res, dec, d, m)
        return res
    p = d.float_pmf()
    if backend == "torch":
        import torch

        p = torch.as_tensor(p, dtype=torch.float64, device=device)
    if kind == "sx":
        from .sx import sx_decomposition

        dec = sx_decomposition(p, d.n_sources, pointwise=pointwise)
        if is_torch(dec.atoms):
            for k, v in dec.as_dict().items():
                if is_torch(v):
                    setattr(dec, k, v.detach().cpu().numpy())
        return _float_result(dec, d, name, backend, pointwise)
    if pointwise:
        raise ValueError(f"pointwise values exist for I^sx only (not {measure!r})")
    from .measures import redundancies
    from .sx import apply_mobius

    red = redundancies(p, kind, d.n_sources)
    at = apply_mobius(red, lattice(d.n_sources))
    if is_torch(red):
        red, at = red.detach().cpu().numpy(), at.detach().cpu().numpy()
    L = lattice(d.n_sources)
    pt = d.float_pmf().sum(axis=tuple(range(d.n_sources)))
    h_t = float(-(pt[pt > 0] * np.log2(pt[pt > 0])).sum())
    # I(T;S) is the redundancy of the top node for every measure (self-redundancy of all sources)
    mi = float(red[L.index(L.top)])
    return PIDResult(n=d.n_sources, measure=name, backend=backend, atoms=NodeMap(L, [float(x) for x in at]),
                     redundancies=NodeMap(L, [float(x) for x in red]), mi=mi, h_target=h_t, h_res=h_t - mi)
