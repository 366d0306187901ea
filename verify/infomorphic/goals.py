"""Goal vectors γ of infomorphic neurons: names of the atoms, the study's goals, parsing.

A goal is ``G = Σ_α γ_α Π_α + γ_res H_res``; γ has one entry per atom of the
redundancy lattice in the infomorphic γ order (``limen.estimators.lattice(n).nodes``
for n = 2, 3), then ``H_res``: 5 entries for bivariate neurons, 19 for trivariate.

Atoms are named by their antichain with the sources' letters, e.g. for a trivariate
neuron (F = feedforward, C = context, L = lateral): ``{F}{C}`` is the information
shared by F and C but not by L, ``{FC}{FL}`` the information in (F,C) and in (F,L)…,
``{FCL}`` the synergy, ``H_res`` the residual entropy. Parentheses are accepted for
braces, and element order does not matter (``{L}{FC}`` == ``(FC)(L)``).

User goals (:func:`parse_goal`):

* a named goal (``heuristic``, ``optimised``, ``optimised-sparse`` …, see :data:`GOALS`);
* ``NAME=VALUE,…`` by atom name, e.g. ``"{F}{C}=1,{FC}{FL}=-1,H_res=0.1"``;
* ``INDEX=VALUE,…`` by γ index, e.g. ``"1=1,11=-1"``;
* a full list of numbers (comma separated, or a sequence) of the right length.
"""

from __future__ import annotations

import re
from typing import Mapping, Sequence

import numpy as np

__all__ = ["SOURCES", "GOALS", "OUTPUT_GOAL", "atom_names", "parse_goal", "goal_vector", "describe_goal"]

#: source letters of each neuron type, in source order
SOURCES: dict[str, str] = {
    "trivariate": "FCL",
    "bivariate-fc": "FC",
    "bivariate-fl": "FL",
    "output": "FC",
}

#: the output layer's goal in the study: unique F, unique C, shared, synergy, H_res
OUTPUT_GOAL = (-0.2, 0.1, 1.0, 0.1, 0.0)

#: named goals per neuron type (values from the study's goal configs, ``paper_trivariate/conf/goals/`` in
#: Priesemann-Group/Infomorphic_Networks)
GOALS: dict[str, dict[str, tuple[float, ...]]] = {
    "trivariate": {
        # gamma = 1 on {F}{C}: label information shared by F and C, not by L (naive.yaml)
        "heuristic": tuple(1.0 if i == 1 else 0.0 for i in range(19)),
        # Optuna TPE, 100 neurons, MNIST (opt_1_100_tpe.yaml)
        "optimised": (0.3307, 0.9781, -0.9935, 0.4017, 0.2428, 0.6255, 0.4713, 0.0212, 0.0605, -0.9470,
                      -0.0199, -0.9677, -0.6924, 0.4270, 0.9736, 0.7370, -0.1218, -0.2151, 0.0350),
        # its four largest-impact entries, rounded (opt_1_100_modified.yaml)
        "optimised-sparse": (0.33, 1.0, -1.0, 0, 0, 0, 0, 0, 0, 0, 0, -1.0, 0, 0, 0, 0, 0, 0, 0),
        # Optuna, CIFAR-10 (opt_1_100_CIFAR.yaml)
        "optimised-cifar": (0.9838, 0.6048, -0.2133, 0.2427, 0.3396, -0.5790, 0.0500, 0.0336, 0.5974, -0.0782,
                            0.4762, -0.8475, -0.3992, 0.5563, 0.2715, -0.4623, -0.0628, -0.2629, 0.0),
    },
    "bivariate-fc": {
        "heuristic": (0.0, 0.0, 1.0, 0.0, 0.0),  # redundancy F∧C
        "optimised": (0.0379, 0.3185, 0.7755, 0.1536, 0.0076),  # opt_2_100
    },
    "bivariate-fl": {
        "heuristic": (1.0, 0.0, 0.0, 0.0, 0.0),  # unique F
        "optimised": (0.8051, -0.4079, 0.5380, 0.5634, -0.0097),  # opt_2_100
    },
    "output": {"default": OUTPUT_GOAL},
}
_ALIASES = {"optimized": "optimised", "optimized-sparse": "optimised-sparse", "rounded": "optimised-sparse",
            "optimised-rounded": "optimised-sparse", "naive": "heuristic", "optimized-cifar": "optimised-cifar"}


def _nodes(n: int):
    from limen.estimators.lattice import lattice

    return lattice(n).nodes


def atom_names(kind: str) -> list[str]:
    """Names of γ's entries for a neuron type: the atoms in γ order, then ``H_res``."""
    letters = _letters(kind)
    return ["".join("{" + "".join(letters[i] for i in a) + "}" for a in node)
            for node in _nodes(len(letters))] + ["H_res"]


def _letters(kind: str) -> str:
    if kind not in SOURCES:
        raise ValueError(f"unknown neuron type {kind!r}; choose one of {sorted(SOURCES)}")
    return SOURCES[kind]


def _canon(name: str, letters: str):
    s = name.strip().replace("(", "{").replace(")", "}").replace(" ", "")
    if s.lower() in ("h_res", "hres", "h"):
        return "H_res"
    parts = re.findall(r"\{([^{}]*)\}", s)
    if not parts or "".join("{" + p + "}" for p in parts) != s:
        raise ValueError(f"cannot read atom name {name!r}; write it like {{F}}{{C}} or (FC)(FL) or H_res")
    elems = []
    for p in parts:
        bad = [c for c in p if c not in letters]
        if bad or not p:
            raise ValueError(f"atom name {name!r} uses sources {bad or '{}'}; this neuron's sources are "
                             f"{', '.join(letters)}")
        elems.append(frozenset(p))
    return frozenset(elems)


def parse_goal(spec, kind: str = "trivariate") -> np.ndarray:
    """γ vector (float64, atoms in γ order then H_res) from a name, a spec string, a mapping or numbers."""
    names = atom_names(kind)
    size = len(names)
    letters = _letters(kind)
    if isinstance(spec, np.ndarray) or (isinstance(spec, Sequence) and not isinstance(spec, str)):
        vec = np.asarray(spec, dtype=np.float64).reshape(-1)
        return _check_vector(vec, size, kind)
    if isinstance(spec, Mapping):
        items = list(spec.items())
    elif isinstance(spec, str):
        text = spec.strip()
        key = _ALIASES.get(text.lower(), text.lower())
        if key in GOALS.get(kind, {}):
            return np.asarray(GOALS[kind][key], dtype=np.float64)
        if "=" not in text:
            try:
                vec = np.asarray([float(v) for v in text.replace(";", ",").split(",") if v.strip()])
            except ValueError:
                raise ValueError(f"unknown goal {spec!r} for {kind} neurons; named goals: "
                                 f"{', '.join(sorted(GOALS.get(kind, {})))}; or give NAME=VALUE pairs, "
                                 f"INDEX=VALUE pairs or {size} numbers") from None
            return _check_vector(vec, size, kind)
        items = []
        for part in re.split(r"[,;]", text):
            if not part.strip():
                continue
            if "=" not in part:
                raise ValueError(f"goal term {part!r} lacks '=VALUE'")
            k, v = part.rsplit("=", 1)
            items.append((k.strip(), v.strip()))
    else:
        raise ValueError(f"cannot read a goal from {type(spec).__name__}")
    lookup = {_canon(nm, letters): i for i, nm in enumerate(names)}
    vec = np.zeros(size)
    seen = set()
    for k, v in items:
        if isinstance(k, (int, np.integer)) or (isinstance(k, str) and re.fullmatch(r"[+-]?\d+", k)):
            idx = int(k)
            if not 0 <= idx < size:
                raise ValueError(f"γ index {idx} out of range 0..{size - 1} for {kind} neurons")
        else:
            c = _canon(str(k), letters)
            if c not in lookup:
                raise ValueError(f"{k!r} is not an atom of a {kind} neuron; atoms: {', '.join(names)}")
            idx = lookup[c]
        if idx in seen:
            raise ValueError(f"γ entry {names[idx]} given twice")
        seen.add(idx)
        try:
            vec[idx] = float(v)
        except ValueError:
            raise ValueError(f"γ value {v!r} for {names[idx]} is not a number") from None
    return _check_vector(vec, size, kind)


def _check_vector(vec: np.ndarray, size: int, kind: str) -> np.ndarray:
    if vec.shape != (size,):
        raise ValueError(f"a {kind} goal has {size} entries ({size - 1} atoms, then H_res), got {vec.size}")
    if not np.all(np.isfinite(vec)):
        raise ValueError("goal contains NaN or inf")
    return vec.astype(np.float64)


def goal_vector(spec, kind: str = "trivariate") -> tuple[float, ...]:
    """:func:`parse_goal` as a plain tuple (for configs and JSON records)."""
    return tuple(float(v) for v in parse_goal(spec, kind))


def describe_goal(gamma, kind: str = "trivariate") -> str:
    """Nonzero entries of γ as ``name=value`` pairs."""
    names = atom_names(kind)
    return ", ".join(f"{names[i]}={v:+.4g}" for i, v in enumerate(gamma) if v != 0) or "0"
