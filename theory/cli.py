"""List, print, evaluate and check the symbolic results of limen.theory.

  limen derive --list                          every result, exact or approximate
  limen derive fixed-point                     statement, assumptions and derivation steps
  limen derive fixed-point --latex             the statement as LaTeX (--derivation: the steps too)
  limen derive head-overlap --check            verify it on random matrices (exit status 1 on failure)
  limen derive aux-perturbation-sigma-critical --evaluate m=10 d=256
  limen derive fixed-point --evaluate W0=@w0.npy W_T=@wt.npy A=@a.npy X=@x.npy   (@file: numpy .npy)
"""

from __future__ import annotations

import argparse
import inspect
import json
import math
from typing import Any

import numpy as np

#: Parameters named like the dimensions of limen.theory (aux-head width m, widths d and D, noise
#: samples N, input dimension n_in, GD steps) are counts wherever they occur, also in results whose
#: statement names only a derived symbol (e.g. the rank r = min(m, d)): name -> least value.
COUNTS = {"m": 1, "d": 1, "D": 1, "N": 1, "n_in": 1, "steps": 0}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", nargs="?", help="result name (see --list)")
    parser.add_argument("--list", action="store_true", help="list the registered results")
    parser.add_argument("--latex", action="store_true", help="print the statement as LaTeX")
    parser.add_argument("--assumptions", action="store_true", help="print only the assumptions")
    parser.add_argument("--derivation", action="store_true", help="print the derivation steps (with --latex: as LaTeX)")
    parser.add_argument("--check", action="store_true", help="verify the result on random concrete matrices")
    parser.add_argument("--seed", type=int, default=0, help="seed for --check (default 0)")
    parser.add_argument("--evaluate", nargs="+", metavar="KEY=VALUE",
                        help="evaluate with numbers: KEY=number, KEY=word, or KEY=@file.npy for arrays")


def _parse_value(text: str):
    if text.startswith("@"):
        return np.load(text[1:])
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    if text.lower() in ("none", "null"):
        return None
    return text


def _domain(result, names) -> dict[str, dict[str, bool]]:
    """The assumptions (sympy: integer, positive, nonnegative, real) of the statement's symbols that
    share a name with a parameter in ``names``, else the :data:`COUNTS` convention."""
    import sympy as sp

    out: dict[str, dict[str, bool]] = {}
    for sym in result.expr.free_symbols:
        if isinstance(sym, sp.Symbol) and sym.name in names:
            facts = {k: True for k in ("integer", "positive", "nonnegative", "real") if sym.assumptions0.get(k)}
            if facts:
                out.setdefault(sym.name, {}).update(facts)
    for name, least in COUNTS.items():
        if name in names and name not in out:
            out[name] = {"integer": True, "positive" if least >= 1 else "nonnegative": True}
    return out


def _kind(facts: dict[str, bool]) -> str:
    noun = "an integer" if facts.get("integer") else "a real number"
    return noun + (" > 0" if facts.get("positive") else " >= 0" if facts.get("nonnegative") else "")


def _outside(value: Any, facts: dict[str, bool]) -> bool:
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value.item()
    if isinstance(value, np.ndarray):
        return False  # arrays are checked by the evaluator (shapes)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return True
    return bool(math.isnan(value) or (facts.get("integer") and not float(value).is_integer())
                or (facts.get("positive") and not value > 0) or (facts.get("nonnegative") and not value >= 0))


def _has_nan(value) -> bool:
    if isinstance(value, dict):
        return any(_has_nan(v) for v in value.values())
    if isinstance(value, (tuple, list)):
        return any(_has_nan(v) for v in value)
    if isinstance(value, (float, np.floating, np.ndarray)):
        arr = np.asarray(value)
        return arr.dtype.kind in "fc" and bool(np.isnan(arr).any())
    return False


def evaluate(result, items: list[str]) -> Any:
    """``--evaluate KEY=VALUE ...``: names, required names and domains checked before evaluating;
    a ``ValueError`` (exit status 2) names the argument and what it accepts, also when the
    evaluation gives nan."""
    params = inspect.signature(result.evaluator).parameters
    accepted = [n for n, p in params.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    required = [n for n in accepted if params[n].default is inspect.Parameter.empty]
    shown = ", ".join(n if n in required else f"{n}={params[n].default!r}" for n in accepted)
    numbers = {}
    for item in items:
        if "=" not in item:
            raise ValueError(f"--evaluate takes KEY=VALUE, got {item!r}; {result.name} accepts {shown}")
        key, value = item.split("=", 1)
        if key not in accepted:
            raise ValueError(f"{result.name} --evaluate: unknown name {key!r}; accepted: {shown}")
        numbers[key] = _parse_value(value)
    missing = [n for n in required if n not in numbers]
    if missing:
        raise ValueError(f"{result.name} --evaluate: missing {', '.join(missing)}; accepted: {shown}")
    for name, facts in _domain(result, set(numbers)).items():
        if _outside(numbers[name], facts):
            raise ValueError(f"{result.name} --evaluate: {name}={numbers[name]!r} is outside the domain: {name} "
                             f"must be {_kind(facts)} (see limen derive {result.name} --assumptions)")
    try:
        with np.errstate(invalid="ignore"):
            out = result.evaluate(**numbers)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{result.name} --evaluate: {exc}") from None
    if _has_nan(out):
        raise ValueError(f"{result.name} --evaluate: the result is nan for {' '.join(items)}: an input is outside "
                         f"the domain of the statement (see limen derive {result.name} --assumptions)")
    return out


def _jsonable(value):
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (tuple, list)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (np.floating, np.integer, np.bool_)):
        return value.item()
    return value


def main(args: argparse.Namespace) -> int:
    from limen import theory

    if args.list or not args.name:
        names = theory.list_results()
        width = max(len(n) for n in names)
        section = None
        for name in names:
            r = theory.get(name)
            if r.section != section:
                section = r.section
                print(f"\n[{section}]")
            print(f"  {name:<{width}}  {'exact ' if r.exact else 'approx'}  {r.title}")
        print("\nlimen derive NAME [--latex] [--derivation] [--assumptions] [--check] [--evaluate K=V ...]")
        return 0
    r = theory.get(args.name)
    if args.evaluate:
        out = evaluate(r, args.evaluate)
        print(json.dumps(_jsonable(out), indent=2) if not isinstance(out, float) else repr(out))
        return 0
    if args.check:
        rep = r.check(args.seed)
        print(rep)
        return 0 if rep.passed else 1
    if args.assumptions:
        for a in r.assumptions:
            print(f"- {a}")
        return 0
    if args.latex:
        print(r.latex())
        if args.derivation:
            import sympy as sp

            for text, expr in r.steps():
                print(f"% {text}" if text else "%")
                if expr is not None:
                    print(sp.latex(expr))
        return 0
    import sympy as sp

    print(r.describe())
    print()
    print(sp.pretty(r.expr, use_unicode=True))
    print("\nassumptions:")
    for a in r.assumptions:
        print(f"  - {a}")
    print(f"\npredicts: {r.predicts}")
    if r.approximation:
        print(f"approximation: {r.approximation}")
    if args.derivation:
        print("\nderivation:")
        for i, (text, expr) in enumerate(r.steps(), 1):
            if text:
                print(f"  {i}. {text}")
            if expr is not None:
                print("     " + sp.pretty(expr, use_unicode=True).replace("\n", "\n     "))
    return 0
