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
import json

import numpy as np


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
        numbers = {}
        for item in args.evaluate:
            if "=" not in item:
                raise ValueError(f"--evaluate takes KEY=VALUE, got {item!r}")
            key, value = item.split("=", 1)
            numbers[key] = _parse_value(value)
        try:
            out = r.evaluate(**numbers)
        except TypeError as exc:
            raise ValueError(f"{r.name}: {exc}") from None
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
