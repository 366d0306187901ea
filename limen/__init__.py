"""limen: make subliminal-learning and infomorphic-PID results checkable.

Subpackages (each lives in its own top-level folder of the repository):

* :mod:`limen.theory` -- sympy derivations with numpy evaluators (no torch);
* :mod:`limen.estimators` -- exact partial information decomposition;
* :mod:`limen.verify` -- torch experiments, theory-vs-measurement checks and the CLI.
"""

__version__ = "0.1.0"
