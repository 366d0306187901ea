"""The registry of symbolic results and the :class:`Result` object every derivation returns.

A result couples four things a reader needs to trust a formula:

* ``expr`` -- the sympy statement (an ``Eq``, a relational, or an expression), built
  lazily and cached, because sympy is slow to import and to simplify;
* ``assumptions`` -- every assumption the derivation uses, in words;
* ``evaluate(**numbers)`` -- a numpy (float64) evaluator for concrete inputs;
* ``check(rng)`` -- a verification of the identity on random concrete matrices, which
  returns a :class:`CheckReport` (it never raises on a failed identity, so a caller
  can print the report; tests assert ``report.passed``).

``steps()`` gives the derivation as a list of (text, sympy object) pairs, so
``limen derive NAME --derivation`` and ``docs/theory.md`` show how the result follows.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

# modules whose import registers results (kept in reading order: the CLI lists in this order)
_MODULES = ("linear", "heads", "compat", "bounds", "kernel", "response", "subsampled")


@dataclass
class CheckReport:
    """Outcome of :meth:`Result.check`: the largest error seen against its tolerance."""

    name: str
    passed: bool
    max_error: float
    tolerance: float
    details: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        verdict = "PASS" if self.passed else "FAIL"
        lines = [f"{self.name}: {verdict}  (max error {self.max_error:.3g}, tolerance {self.tolerance:.3g})"]
        for key, value in self.details.items():
            shown = f"{value:.6g}" if isinstance(value, float) else str(value)
            lines.append(f"  {key}: {shown}")
        return "\n".join(lines)


def z_score(samples, predicted, axis: int = 0):
    """|sample mean − predicted| in standard errors along ``axis`` (Monte-Carlo checks).

    The standard error is floored at 1e-12, so a statistic that is deterministic up to
    rounding (e.g. P_A = I for m ≥ d) gives z ≈ 0 when it equals the prediction.
    """
    s = np.asarray(samples, dtype=np.float64)
    sem = s.std(axis=axis, ddof=1) / np.sqrt(s.shape[axis])
    return np.abs(s.mean(axis=axis) - predicted) / np.maximum(sem, 1e-12)


def report(name: str, errors: dict[str, float], tolerance: float, **details: Any) -> CheckReport:
    """Build a :class:`CheckReport` from named errors (each must be <= tolerance)."""
    worst = max(errors.values()) if errors else 0.0
    return CheckReport(name, bool(np.isfinite(worst) and worst <= tolerance), float(worst), tolerance,
                       {**{f"error[{k}]": float(v) for k, v in errors.items()}, **details})


@dataclass
class Result:
    """One derived statement of :mod:`limen.theory` (see the module docstring).

    ``exact`` says whether the statement is an identity of the model it is derived in,
    under its ``assumptions`` (True), or itself an approximation (False). ``approximation``
    says what is approximate -- in the statement, or when it is applied to the trained
    ReLU networks of the experiments. ``predicts`` says what it predicts for them.
    """

    name: str
    title: str
    assumptions: tuple[str, ...]
    predicts: str
    exact: bool
    build: Callable[[], tuple[Any, list[tuple[str, Any]]]]
    evaluator: Callable[..., Any]
    checker: Callable[[np.random.Generator], CheckReport]
    approximation: str = ""
    section: str = ""
    _cache: tuple[Any, list[tuple[str, Any]]] | None = field(default=None, repr=False)

    def _built(self) -> tuple[Any, list[tuple[str, Any]]]:
        if self._cache is None:
            self._cache = self.build()
        return self._cache

    @property
    def expr(self) -> Any:
        """The sympy statement of the result (built on first access, then cached)."""
        return self._built()[0]

    def steps(self) -> list[tuple[str, Any]]:
        """The derivation: (explanation, sympy object or None) pairs, in order."""
        return list(self._built()[1])

    def latex(self) -> str:
        """LaTeX of :attr:`expr` (sympy's printer)."""
        import sympy as sp

        return sp.latex(self.expr)

    def evaluate(self, **numbers: Any) -> Any:
        """Evaluate with concrete numbers/arrays (float64 numpy); keywords as documented per result."""
        return self.evaluator(**numbers)

    def check(self, rng: np.random.Generator | int | None = None) -> CheckReport:
        """Verify the identity on random concrete inputs drawn from ``rng`` (a Generator or a seed)."""
        if not isinstance(rng, np.random.Generator):
            rng = np.random.default_rng(rng)
        return self.checker(rng)

    def describe(self) -> str:
        return f"{self.name} -- {self.title} [{'exact' if self.exact else 'approximate'}]"


_REGISTRY: dict[str, Result] = {}
_loaded = False


def register(result: Result) -> Result:
    if result.name in _REGISTRY:
        raise ValueError(f"result {result.name!r} registered twice")
    _REGISTRY[result.name] = result
    return result


def _load() -> None:
    global _loaded
    if not _loaded:
        _loaded = True
        for mod in _MODULES:
            importlib.import_module(f"{__package__}.{mod}")


def list_results() -> list[str]:
    """Names of every registered result, in reading order."""
    _load()
    return list(_REGISTRY)


def get(name: str) -> Result:
    """The result called ``name`` (see :func:`list_results`)."""
    _load()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown result {name!r}; known: {', '.join(_REGISTRY)}") from None


def eq(lhs, rhs):
    """``sympy.Eq`` that names a matrix-valued left side: a string becomes a MatrixSymbol of rhs's shape.

    (``Eq(Symbol, MatrixExpr)`` would evaluate to ``False``.)
    """
    import sympy as sp

    if isinstance(lhs, str):
        lhs = sp.MatrixSymbol(lhs, *rhs.shape) if isinstance(rhs, sp.MatrixExpr) else sp.Symbol(lhs)
    return sp.Eq(lhs, rhs, evaluate=False)
