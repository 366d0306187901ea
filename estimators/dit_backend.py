"""dit as a reference: run any of dit's ``PID_*`` measures and return a :class:`PIDResult`.

``pid(d, measure=..., backend="dit")`` lands here. ``measure`` is the dit class name with or
without the ``PID_`` prefix, case-insensitive (``"sx"``, ``"wb"``, ``"mmi"``, ``"broja"``, ``"ccs"``,
``"dep"``, ``"gk"``, ``"pm"``, ``"skar_nw"``, ...) or any alias of a limen measure that dit also
has (``"imin"`` is WB; :mod:`limen.estimators.measures`). dit is slow
(``PID_SX`` on a 2×2×2→2 pmf takes about 1.6 s) and some measures only compute unique information
(BROJA, dep, RA, SKAR: NaN atoms for 3 sources): use it as a test oracle. dit seeds some optimisers
from the global numpy state, so the global seed is set (``seed=0``) before each measure, and
measures that take a generator (BROJA's scipy optimiser, which otherwise draws fresh entropy)
get ``rng=np.random.default_rng(seed)``: results are reproducible.
"""

from __future__ import annotations

import inspect

import numpy as np

from .base import entropy
from .distribution import Distribution
from .lattice import lattice
from .result import NodeMap, PIDResult

__all__ = ["dit_measures", "dit_pid_class", "dit_pid"]


def dit_measures() -> list[str]:
    """Names of dit's PID measures (class names without ``PID_``)."""
    import dit.pid

    return sorted(name[4:] for name in dir(dit.pid) if name.startswith("PID_"))


def dit_pid_class(measure: str):
    import dit.pid

    from .measures import get_measure

    key = str(measure)
    key = key[4:] if key.upper().startswith("PID_") else key
    try:
        key = get_measure(key).dit or key
    except ValueError:  # not a limen measure: a dit name
        pass
    for name in dit_measures():
        if name.lower() == key.lower():
            return getattr(dit.pid, "PID_" + name)
    raise ValueError(f"dit has no PID measure {measure!r}; available: {', '.join(dit_measures())}")


def dit_pid(d: Distribution, measure: str = "sx", *, pointwise: bool = False, seed: int | None = 0, **kwargs
            ) -> PIDResult:
    """Decompose ``d`` with dit's measure and wrap the values in a :class:`PIDResult`."""
    from dit.pid.pid import BasePointwisePID

    cls = dit_pid_class(measure)
    n = d.n_sources
    L = lattice(n)
    dd = d.to_dit()
    if seed is not None:
        np.random.seed(seed)
        if "rng" in inspect.signature(cls._measure).parameters and "rng" not in kwargs:
            kwargs["rng"] = np.random.default_rng(seed)  # BROJA's optimiser ignores the global seed
    is_pw = issubclass(cls, BasePointwisePID)
    if pointwise and not is_pw:
        raise ValueError(f"dit's {cls.__name__} has no pointwise mode (only SX and PM do)")
    extra = {"pointwise": True} if pointwise else {}
    p = cls(dd, sources=[[i] for i in range(n)], target=[n], **extra, **kwargs)
    atoms = [float(p.get_pi(nd)) for nd in L.nodes]
    reds = []
    for nd in L.nodes:
        try:
            reds.append(float(p.get_red(nd)))
        except Exception:  # pragma: no cover - some incomplete measures lack redundancies
            reds.append(float("nan"))
    h_t = float(entropy(d.float_pmf().sum(axis=tuple(range(n)))))
    mi = float(p._total)
    res = PIDResult(n=n, measure=cls.__name__, backend="dit", atoms=NodeMap(L, atoms), redundancies=NodeMap(L, reds),
                    mi=mi, h_target=h_t, h_res=h_t - mi)
    if pointwise:
        labels = lambda idx: tuple(a[i] for a, i in zip(d.alphabets, idx))
        outs = [tuple(o) for o in dd.outcomes]
        pw = {nd: p.get_pw_pi(nd) for nd in L.nodes}
        res.pointwise = {labels(o): NodeMap(L, [float(pw[nd][o]) for nd in L.nodes]) for o in outs}
        try:
            pwp = {nd: p.get_pw_pi_plus(nd) for nd in L.nodes}
            pwm = {nd: p.get_pw_pi_minus(nd) for nd in L.nodes}
        except Exception:  # pragma: no cover - measure without parts
            pwp = pwm = None
        if pwp is not None:
            res.pointwise_plus = {labels(o): NodeMap(L, [float(pwp[nd][o]) for nd in L.nodes]) for o in outs}
            res.pointwise_minus = {labels(o): NodeMap(L, [float(pwm[nd][o]) for nd in L.nodes]) for o in outs}
            probs = {tuple(o): float(q) for o, q in zip(dd.outcomes, dd.pmf)}
            res.atoms_plus = NodeMap(L, [sum(probs[o] * pwp[nd][o] for o in outs) for nd in L.nodes])
            res.atoms_minus = NodeMap(L, [sum(probs[o] * pwm[nd][o] for o in outs) for nd in L.nodes])
    return res
