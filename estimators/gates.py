"""Named test distributions (the gates of the PID literature), exact, as :class:`Distribution`.

``gate(name)`` returns float probabilities, ``gate(name, exact=True)`` sympy Rationals. Sources are
the first variables, the target the last; the reference I^sx values are in ``docs/estimators.md``
and the tests (published with I^sx, Makkeh, Gutknecht, Wibral 2021, arXiv 2002.03356, and in the
gate tests of github.com/Abzinger/SxPID and github.com/pwollstadt/IDTxl).

=============  =======  =============================================================
name           sources  definition
=============  =======  =============================================================
xor            2        T = S1 ⊕ S2, uniform inputs
and            2        T = S1 ∧ S2
or             2        T = S1 ∨ S2
copy           2        T = (S1, S2)
rdn            2        S1 = S2 = T, one fair bit
unq            2        T = S1 (S2 independent)
sum            2        T = S1 + S2
reduced-or     2        000: 1/2, 011: 1/4, 101: 1/4
pwunq          2        011, 101, 022, 202 (pointwise unique)
rnderr         2        000: 3/8, 111: 3/8, 010: 1/8, 101: 1/8
parity3        3        T = S1 ⊕ S2 ⊕ S3
trirnd         3        S1 = S2 = S3 = T, one fair bit
xorcopy        3        S3 = S1 ⊕ S2, T = (S1, S2, S3)
parity4        4        T = S1 ⊕ S2 ⊕ S3 ⊕ S4
=============  =======  =============================================================
"""

from __future__ import annotations

import itertools
from fractions import Fraction as F

from .distribution import Distribution

__all__ = ["GATES", "gate", "gate_names"]


def _uniform(rows):
    return [tuple(r) for r in rows], [F(1, len(rows))] * len(rows)


def _bits(k):
    return list(itertools.product(range(2), repeat=k))


GATES: dict[str, tuple[int, callable, str]] = {
    "xor": (2, lambda: _uniform([(a, b, a ^ b) for a, b in _bits(2)]), "T = S1 xor S2"),
    "and": (2, lambda: _uniform([(a, b, a & b) for a, b in _bits(2)]), "T = S1 and S2"),
    "or": (2, lambda: _uniform([(a, b, a | b) for a, b in _bits(2)]), "T = S1 or S2"),
    "copy": (2, lambda: _uniform([(a, b, f"{a}{b}") for a, b in _bits(2)]), "T = (S1, S2)"),
    "rdn": (2, lambda: _uniform([(0, 0, 0), (1, 1, 1)]), "S1 = S2 = T, one fair bit"),
    "unq": (2, lambda: _uniform([(a, b, a) for a, b in _bits(2)]), "T = S1, S2 independent"),
    "sum": (2, lambda: _uniform([(a, b, a + b) for a, b in _bits(2)]), "T = S1 + S2"),
    "reduced-or": (2, lambda: ([(0, 0, 0), (0, 1, 1), (1, 0, 1)], [F(1, 2), F(1, 4), F(1, 4)]),
                   "000: 1/2, 011: 1/4, 101: 1/4"),
    "pwunq": (2, lambda: _uniform([(0, 1, 1), (1, 0, 1), (0, 2, 2), (2, 0, 2)]), "pointwise unique"),
    "rnderr": (2, lambda: ([(0, 0, 0), (1, 1, 1), (0, 1, 0), (1, 0, 1)], [F(3, 8), F(3, 8), F(1, 8), F(1, 8)]),
               "redundant bit with a 1/4 error on S2"),
    "parity3": (3, lambda: _uniform([(a, b, c, a ^ b ^ c) for a, b, c in _bits(3)]), "T = S1 xor S2 xor S3"),
    "trirnd": (3, lambda: _uniform([(0, 0, 0, 0), (1, 1, 1, 1)]), "S1 = S2 = S3 = T, one fair bit"),
    "xorcopy": (3, lambda: _uniform([(a, b, a ^ b, f"{a}{b}{a ^ b}") for a, b in _bits(2)]),
                "S3 = S1 xor S2, T = (S1, S2, S3)"),
    "parity4": (4, lambda: _uniform([(*x, x[0] ^ x[1] ^ x[2] ^ x[3]) for x in _bits(4)]), "T = parity of 4 bits"),
}


def gate_names() -> list[str]:
    return list(GATES)


def gate(name: str, exact: bool = False) -> Distribution:
    """The named gate as a Distribution (float, or exact with ``exact=True``)."""
    key = name.lower().replace("_", "-")
    if key not in GATES:
        raise ValueError(f"unknown gate {name!r}; choose from {', '.join(GATES)}")
    n, make, _ = GATES[key]
    outs, probs = make()
    if not exact:
        probs = [float(p) for p in probs]
    return Distribution.from_outcomes(outs, probs, sources=n, exact=exact)
