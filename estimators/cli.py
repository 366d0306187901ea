"""Partial information decomposition of a pmf file or a named gate.

examples:
  limen pid --gate xor                      I^sx of the XOR gate (table)
  limen pid --gate and --exact              exact atoms (sympy)
  limen pid --gate parity3 --order dit      3-source parity, nodes in dit's order
  limen pid --gate and --measure wb --backend dit     dit's PID_WB for comparison
  limen pid pmf.json --json                 a file; JSON output
  limen pid samples.csv --target y          samples (no probability column)
  limen pid measured.csv --bins 8           continuous samples, 8 equal-width bins per column

file formats (by extension):
  .json  an object with ONE of
           "pmf": nested lists, dense array (|S1|, ..., |Sn|, |T|), last axis = target;
                  optional "n_sources"
           "outcomes": ["000", "011", ...] or [[s1, ..., sn, t], ...], with optional
                  "probs": [0.25, ...] (numbers or "p/q" strings = exact; default uniform),
                  optional "sources" (int: the first k variables; or groups [[0], [1, 2]]),
                  optional "target" (variable indices)
           "samples": {"sources": [[s1, ..., sn], ...] (N rows), "target": [t, ...] (N)}
         or a bare nested list (a dense pmf)
  .csv   a header row of distinct names; if a column is named p, prob or probability each
         row is an outcome with that probability, otherwise each row is one sample (plug-in
         estimate); the target is the last other column (or --target NAME), the rest are sources
  .npy   a dense pmf array

samples must be discrete: NaN/inf values and columns in which more than half of the samples
carry a value seen only once (continuous data) are refused. --bins N cuts every numeric
column with more than N distinct values into N equal-width bins over its range [min, max]
(bin = min(floor(N (x - min) / (max - min)), N - 1)); other columns are kept as they are.
A decomposition estimated to need more than --max-memory GB (default 4) is refused before
anything is allocated.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

PROB_COLUMNS = ("p", "prob", "probability")
MAX_DIGITS = 16


def _option(cast, ok, what: str):
    """argparse type: ``cast(text)`` if ``ok`` of it, else an error saying what the option must be."""
    def parse(text: str):
        try:
            x = cast(text)
        except ValueError:
            x = None
        if x is None or not ok(x):
            raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}")
        return x
    return parse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from .measures import measure_names

    parser.add_argument("file", nargs="?", help="pmf or samples file (.json, .csv, .npy); see formats above")
    parser.add_argument("--gate", help="a named test distribution instead of a file (--list-gates)")
    parser.add_argument("--list-gates", action="store_true", help="list the named gates and exit")
    parser.add_argument("--measure", default="sx",
                        help=f"{measure_names()}, default sx; with --backend dit any dit measure "
                             "(broja, ccs, dep, gk, pm, ...)")
    parser.add_argument("--backend", choices=("numpy", "torch", "sympy", "dit"), default=None,
                        help="numpy (default), torch, sympy (exact), dit")
    parser.add_argument("--exact", action="store_true", help="exact rational pmf and sympy atoms (I^sx)")
    parser.add_argument("--pointwise", action="store_true", help="also print the pointwise atoms")
    parser.add_argument("--order", default="default", help="node order: default, gamma, graded, dit, sxpid")
    parser.add_argument("--digits", type=_option(int, lambda k: 0 <= k <= MAX_DIGITS,
                                                 f"a whole number of decimals from 0 to {MAX_DIGITS}"), default=6,
                        help=f"decimals in the table, 0 to {MAX_DIGITS} (default 6)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--target", help="CSV: name of the target column (default: the last)")
    parser.add_argument("--n-sources", type=int, default=None, help="dense pmf: number of sources")
    parser.add_argument("--normalize", action="store_true", help="rescale a pmf that does not sum to 1")
    parser.add_argument("--bins", type=_option(int, lambda k: k >= 2, "a whole number of bins >= 2"), default=None,
                        metavar="N",
                        help="samples: cut every numeric column with more than N distinct values into N "
                             "equal-width bins over its range (see above)")
    parser.add_argument("--max-memory", type=_option(float, lambda x: 0 < x < float("inf"),
                                                     "a positive number of gigabytes"), default=4.0, metavar="GB",
                        help="refuse a decomposition estimated to need more memory (default 4 GB)")


def _load_json(path: Path, args):
    from .distribution import Distribution

    try:
        obj = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from exc
    kw = {"normalize": args.normalize}
    if isinstance(obj, list):
        return Distribution.from_pmf(obj, args.n_sources, exact=args.exact or None, **kw)
    if not isinstance(obj, dict):
        raise ValueError(f"{path}: expected a JSON object or a nested list")
    keys = [k for k in ("pmf", "outcomes", "samples") if k in obj]
    if len(keys) != 1:
        raise ValueError(f"{path}: the JSON object needs exactly one of 'pmf', 'outcomes', 'samples' "
                         f"(got {sorted(obj)})")
    if keys[0] == "pmf":
        return Distribution.from_pmf(obj["pmf"], obj.get("n_sources", args.n_sources),
                                     exact=args.exact or None, **kw)
    if keys[0] == "outcomes":
        return Distribution.from_outcomes(obj["outcomes"], obj.get("probs"), sources=obj.get("sources"),
                                          target=obj.get("target"), exact=args.exact or None, **kw)
    smp = obj["samples"]
    if not isinstance(smp, dict) or "sources" not in smp or "target" not in smp:
        raise ValueError(f"{path}: 'samples' must be an object with 'sources' (N rows) and 'target' (N values)")
    return Distribution.from_samples(smp["sources"], smp["target"], exact=args.exact, bins=args.bins)


def _load_csv(path: Path, args):
    import csv

    from .distribution import Distribution

    with path.open(newline="") as fh:
        rows = [r for r in csv.reader(fh) if r and any(c.strip() for c in r)]
    if len(rows) < 2:
        raise ValueError(f"{path}: needs a header row and at least one data row")
    head = [h.strip() for h in rows[0]]
    data = [[c.strip() for c in r] for r in rows[1:]]
    twice = sorted({h for h in head if head.count(h) > 1})
    if twice:
        raise ValueError(f"{path}: the header names {', '.join(map(repr, twice))} more than once; "
                         "every column needs its own name")
    if any(len(r) != len(head) for r in data):
        raise ValueError(f"{path}: every row needs {len(head)} columns like the header")
    pcol = next((i for i, h in enumerate(head) if h.lower() in PROB_COLUMNS), None)
    var = [i for i in range(len(head)) if i != pcol]
    if args.target is not None:
        if args.target not in head:
            raise ValueError(f"{path}: no column named {args.target!r} (columns: {head})")
        tcol = head.index(args.target)
    else:
        tcol = var[-1]
    src = [i for i in var if i != tcol]
    if not src:
        raise ValueError(f"{path}: no source columns")
    if pcol is not None:
        outs = [tuple(r[i] for i in src) + (r[tcol],) for r in data]
        probs = [r[pcol] if "/" in r[pcol] else _number(r[pcol], path) for r in data]
        return Distribution.from_outcomes(outs, probs, sources=len(src), exact=args.exact or None,
                                          normalize=args.normalize)
    return Distribution.from_samples([[r[i] for i in src] for r in data], [r[tcol] for r in data],
                                     exact=args.exact, bins=args.bins,
                                     names=[f"column {head[i]!r}" for i in src + [tcol]])


def _number(s: str, path) -> float:
    try:
        return float(s)
    except ValueError:
        raise ValueError(f"{path}: probability {s!r} is not a number") from None


def load_file(path: str | Path, args) -> "Distribution":  # noqa: F821
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no such file: {path}")
    suffix = path.suffix.lower()
    if suffix == ".json":
        return _load_json(path, args)
    if suffix in (".csv", ".tsv", ".txt"):
        return _load_csv(path, args)
    if suffix == ".npy":
        import numpy as np

        from .distribution import Distribution

        return Distribution.from_pmf(np.load(path), args.n_sources, normalize=args.normalize)
    raise ValueError(f"{path}: unknown file type {suffix!r} (use .json, .csv or .npy)")


def main(args: argparse.Namespace) -> int:
    from .base import memory_limit

    with memory_limit(args.max_memory * 1e9):
        return _main(args)


def _main(args: argparse.Namespace) -> int:
    from .api import pid
    from .gates import GATES, gate

    if args.list_gates:
        for name, (n, _, desc) in GATES.items():
            print(f"{name:12s} {n} sources  {desc}")
        return 0
    if (args.file is None) == (args.gate is None):
        raise ValueError("give either a FILE or --gate NAME (see limen pid --help)")
    d = gate(args.gate, exact=args.exact) if args.gate else load_file(args.file, args)
    if args.exact and not d.exact:
        d = d.to_exact()
    backend = args.backend
    if backend is None and args.exact:
        backend = "sympy"
    r = pid(d, measure=args.measure, backend=backend, pointwise=args.pointwise)
    if args.json:
        out = r.to_dict()
        out["source"] = args.gate or str(args.file)
        json.dump(out, sys.stdout, indent=2)
        print()
        return 0
    print(r.table(order=args.order, digits=args.digits))
    if args.pointwise:
        print()
        print("pointwise atoms per realisation (sources..., target):")
        print(r.pointwise_table(digits=args.digits))
    return 0
