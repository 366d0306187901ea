"""Option parsers shared by the subcommands (argparse ``type=`` callables and ``KEY=VALUE`` conversion).

Each raises ``argparse.ArgumentTypeError`` (argparse then names the option and exits with
status 2 before any work) or ``ValueError`` naming the option, the value and what to give.
"""

from __future__ import annotations

import argparse
import json
import re
from typing import Any


def seeds(text: str) -> int | list[int]:
    """``--seeds``: a count ``N`` (seeds 0..N-1), a list ``a,b,c`` (one seed: ``7,``) or a range ``a-b``
    of distinct seeds >= 0."""
    text = text.strip()
    hint = "give a count N >= 1 (seeds 0..N-1), a list a,b,c (one seed: 7,) or a range a-b of distinct seeds >= 0"
    if re.fullmatch(r"\d+-\d+", text):
        a, b = (int(v) for v in text.split("-"))
        if b < a:
            raise argparse.ArgumentTypeError(f"range {text!r} is empty (its end is below its start); {hint}")
        return list(range(a, b + 1))
    parts = [p.strip() for p in text.split(",")]
    if len(parts) > 1:
        parts = [p for p in parts if p]  # "7," is the one seed 7
    if any(not re.fullmatch(r"[+-]?\d+", p) for p in parts):
        raise argparse.ArgumentTypeError(f"{text!r} is not a seed count or a list of integer seeds; {hint}")
    values = [int(p) for p in parts]
    if len(values) == 1 and "," not in text:
        if values[0] < 1:
            raise argparse.ArgumentTypeError(f"seed count {values[0]} is not >= 1; {hint}")
        return values[0]
    negative = [v for v in values if v < 0]
    if negative:
        raise argparse.ArgumentTypeError(f"seed {negative[0]} is negative; {hint}")
    repeated = sorted({v for v in values if values.count(v) > 1})
    if repeated:
        raise argparse.ArgumentTypeError(f"seed {repeated[0]} is given {values.count(repeated[0])} times "
                                         f"(a repeated seed is the same run); {hint}")
    return values


def count(text: str) -> int:
    """A count >= 1 (e.g. ``limen check --seeds``)."""
    if not re.fullmatch(r"\s*\+?\d+\s*", text) or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number >= 1")
    return int(text)


def key_value(text: str, option: str) -> tuple[str, str]:
    """Split ``KEY=VALUE`` (the key with ``-`` read as ``_``)."""
    if "=" not in text:
        raise ValueError(f"{option} expects KEY=VALUE, got {text!r}")
    key, value = text.split("=", 1)
    return key.strip().replace("-", "_"), value.strip()


_NONE = ("none", "null")
_TRUE, _FALSE = ("true", "1", "yes"), ("false", "0", "no")


def convert(text: str, annotation: str, what: str) -> Any:
    """``text`` as the type named by a dataclass or signature ``annotation`` (``int``, ``float | None``,
    ``tuple[int, ...]``, ``bool``, ``str``; ``Any``: JSON if it parses, else the string);
    ``what`` names the setting in the error message."""
    kinds = [k.strip() for k in str(annotation).split("|")]
    if "None" in kinds and text.lower() in _NONE:
        return None
    kind = next((k for k in kinds if k != "None"), "Any")
    try:
        if kind == "int":
            return int(text)
        if kind == "float":
            return float(text)
        if kind == "bool":
            if text.lower() in _TRUE + _FALSE:
                return text.lower() in _TRUE
            raise ValueError
        if kind.startswith("tuple[int"):
            return tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        expected = {"int": "an integer", "float": "a number", "bool": "true or false"}.get(
            kind, "comma-separated integers (e.g. 256,256)")
        none = " or none" if "None" in kinds else ""
        raise ValueError(f"{what}={text}: expected {expected}{none}") from None
    if kind == "str":
        return text
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text
