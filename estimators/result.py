"""``PIDResult``: one decomposition (any measure, any backend) with tables and JSON export."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Iterator

import numpy as np

from .lattice import RedundancyLattice, lattice

__all__ = ["PIDResult", "NodeMap"]


def _parse_label(label: str, n: int):
    """``"{1}{23}"`` (1-based) -> node; ``"{0}{12}"`` is not accepted (ambiguous); use tuples."""
    s = label.strip().replace(" ", "")
    if not (s.startswith("{") and s.endswith("}")):
        raise KeyError(label)
    parts = s[1:-1].split("}{")
    try:
        return tuple(tuple(int(ch) - 1 for ch in part) for part in parts)
    except ValueError:
        raise KeyError(label) from None


class NodeMap(Mapping):
    """Read-only mapping node -> value in lattice order; keys may be any spelling of a node
    (non-canonical tuples, lists) or a 1-based label such as ``"{1}{23}"``."""

    def __init__(self, L: RedundancyLattice, values):
        self._L = L
        vals = list(values)
        if len(vals) != L.n_nodes:
            raise ValueError(f"expected {L.n_nodes} values, got {len(vals)}")
        self._vals = vals

    def _idx(self, key) -> int:
        if isinstance(key, str):
            key = _parse_label(key, self._L.n)
        try:
            return self._L.index(key)
        except ValueError as exc:
            raise KeyError(key) from exc

    def __getitem__(self, key):
        return self._vals[self._idx(key)]

    def __iter__(self) -> Iterator:
        return iter(self._L.nodes)

    def __len__(self) -> int:
        return self._L.n_nodes

    def __contains__(self, key) -> bool:
        try:
            self._idx(key)
            return True
        except KeyError:
            return False

    def array(self, order: str = "default") -> np.ndarray:
        """Values as a float64 array in the named node order."""
        a = np.array([float(v) for v in self._vals])
        return a if order == "default" else self._L.reorder(a, "default", order)

    def __repr__(self) -> str:
        return "NodeMap({" + ", ".join(f"{self._L.label(nd)}: {v}" for nd, v in zip(self._L.nodes, self._vals)) + "})"


def _num(v) -> float:
    return float(v)


def _fmt(v, digits: int) -> str:
    if v is None:
        return "-"
    x = _num(v)
    if np.isnan(x):
        return "nan"
    return f"{x:+.{digits}f}"


@dataclass
class PIDResult:
    """A partial information decomposition of one distribution.

    ``atoms`` and ``redundancies`` map nodes (dit-canonical tuples, e.g. ``((0,), (1,))``, or labels
    like ``"{1}{2}"``) to values in bits; ``atoms_plus``/``atoms_minus`` (I^sx only) are the
    informative/misinformative parts; ``mi`` = I(T; S1..Sn), ``h_target`` = H(T), ``h_res`` =
    H(T) − I(T; S). ``pointwise`` (when requested) maps each realisation (source labels..., target
    label) to a :class:`NodeMap` of pointwise atoms (likewise ``pointwise_plus``/``_minus``).
    Exact (sympy) results hold sympy expressions; ``float()`` works on every value.
    """

    n: int
    measure: str
    backend: str
    atoms: NodeMap
    redundancies: NodeMap | None
    mi: Any
    h_target: Any
    h_res: Any
    atoms_plus: NodeMap | None = None
    atoms_minus: NodeMap | None = None
    pointwise: dict | None = None
    pointwise_plus: dict | None = None
    pointwise_minus: dict | None = None
    pointwise_red: dict | None = None
    info: dict = field(default_factory=dict)

    @property
    def lattice(self) -> RedundancyLattice:
        return lattice(self.n)

    @property
    def exact(self) -> bool:
        return self.backend == "sympy"

    def __getitem__(self, node):
        return self.atoms[node]

    def array(self, which: str = "atoms", order: str = "default") -> np.ndarray:
        """float64 array of ``atoms`` / ``redundancies`` / ``atoms_plus`` / ``atoms_minus`` in ``order``."""
        m = getattr(self, which)
        if m is None:
            raise ValueError(f"this result has no {which}")
        return m.array(order)

    # ------------------------------------------------------------------ presentation
    def table(self, order: str = "default", digits: int = 6, labels: str = "braces") -> str:
        """Plain-text table: node, label, redundancy, atom (and π⁺, π⁻ when available)."""
        L = self.lattice
        nodes = L.order(order)
        cols = ["node", "I_cap", "atom"]
        if self.atoms_plus is not None:
            cols += ["atom+", "atom-"]
        if self.exact:
            cols.append("exact atom")
        rows = []
        for nd in nodes:
            r = [L.label(nd, labels), _fmt(self.redundancies[nd] if self.redundancies is not None else None, digits),
                 _fmt(self.atoms[nd], digits)]
            if self.atoms_plus is not None:
                r += [_fmt(self.atoms_plus[nd], digits), _fmt(self.atoms_minus[nd], digits)]
            if self.exact:
                r.append(str(self.atoms[nd]))
            rows.append(r)
        widths = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(cols)]
        line = lambda r: "  ".join(x.rjust(w) if i else x.ljust(w) for i, (x, w) in enumerate(zip(r, widths)))
        head = (f"PID ({self.measure}, backend {self.backend}, {self.n} sources, {L.n_nodes} atoms, bits)\n")
        out = [head + line(cols), "  ".join("-" * w for w in widths)]
        out += [line(r) for r in rows]
        tot = sum(_num(v) for v in self.atoms.values()) if all(
            not np.isnan(_num(v)) for v in self.atoms.values()) else float("nan")
        out.append(f"I(T;S) = {_num(self.mi):.{digits}f}   sum of atoms = {tot:.{digits}f}   "
                   f"H(T) = {_num(self.h_target):.{digits}f}   H_res = {_num(self.h_res):.{digits}f}")
        return "\n".join(out)

    def pointwise_table(self, digits: int = 6, labels: str = "braces") -> str:
        """One row per realisation, one column per node (pointwise atoms)."""
        if self.pointwise is None:
            raise ValueError("no pointwise values: call pid(..., pointwise=True)")
        L = self.lattice
        cols = ["realisation"] + [L.label(nd, labels) for nd in L.nodes]
        rows = [[" ".join(map(str, o))] + [_fmt(m[nd], digits) for nd in L.nodes] for o, m in self.pointwise.items()]
        widths = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(cols)]
        fmt = lambda r: "  ".join(x.rjust(w) for x, w in zip(r, widths))
        return "\n".join([fmt(cols), "  ".join("-" * w for w in widths)] + [fmt(r) for r in rows])

    def __str__(self) -> str:
        return self.table()

    def to_dict(self, labels: str = "braces") -> dict:
        """JSON-ready dict: floats, node labels as keys, the dit-style node tuples, exact strings."""
        L = self.lattice

        def nm(m):
            return None if m is None else {L.label(nd, labels): _num(m[nd]) for nd in L.nodes}

        d = {
            "measure": self.measure, "backend": self.backend, "n_sources": self.n,
            "nodes": {L.label(nd, labels): [list(a) for a in nd] for nd in L.nodes},
            "atoms": nm(self.atoms), "redundancies": nm(self.redundancies),
            "atoms_plus": nm(self.atoms_plus), "atoms_minus": nm(self.atoms_minus),
            "mi": _num(self.mi), "h_target": _num(self.h_target), "h_res": _num(self.h_res),
        }
        if self.exact:
            d["exact"] = {"atoms": {L.label(nd, labels): str(self.atoms[nd]) for nd in L.nodes},
                          "mi": str(self.mi), "h_res": str(self.h_res)}
        if self.pointwise is not None:
            d["pointwise"] = [{"outcome": [x if isinstance(x, (int, str, float)) else str(x) for x in o],
                               "atoms": nm(self.pointwise[o]),
                               "atoms_plus": nm(self.pointwise_plus[o]) if self.pointwise_plus else None,
                               "atoms_minus": nm(self.pointwise_minus[o]) if self.pointwise_minus else None}
                              for o in self.pointwise]
        if self.info:
            d["info"] = self.info
        return d
