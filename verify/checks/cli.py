"""Compare a theory prediction with training runs: ``limen check PRESET`` (or ``all``).

Prints one table per check on stdout -- quantity, predicted, measured (mean ± 95 %
CI over seeds), tolerance, verdict -- or, with --json, one JSON object and nothing
else; progress and errors go to stderr. Writes a report folder OUT/PRESET/ with
records.jsonl (finished runs; a rerun with the same --out resumes), summary.json
and plots. A failed prediction is a result, not an error: the exit status is
non-zero only when a check could not run. See docs/checks.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import traceback

from limen.verify.cli import options

from .registry import PRESET_MODULES


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("preset", nargs="?", metavar="PRESET",
                        help="a check (" + ", ".join(PRESET_MODULES) + ") or 'all'")
    parser.add_argument("--list", action="store_true", help="list the checks and exit")
    parser.add_argument("--data", default="digits",
                        help="data set: digits (embedded, default), fashion-mnist, mnist, emnist-balanced, ...")
    parser.add_argument("--data-dir", default=None, help="folder holding the data set files (else $LIMEN_DATA / defaults)")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N (default auto)")
    parser.add_argument("--seeds", type=options.count, default=None, help="seeds per condition (default: the check's own)")
    parser.add_argument("--quick", action="store_true", help="small sizes (laptop CPU, minutes for all checks)")
    parser.add_argument("--out", default="reports", help="report root; each check writes OUT/PRESET/ (default reports)")
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads for torch (default: 1 with --quick on the CPU, whose small matrices run "
                             "fastest single-threaded, else torch's default)")
    parser.add_argument("--json", action="store_true",
                        help="print one JSON object on stdout (per check: verdict, counts, rows, report folder) "
                             "instead of the tables")
    parser.add_argument("--no-progress", action="store_true",
                        help="no progress on stderr (else a bar on a terminal, plain lines every <= 10 s otherwise)")
    store = parser.add_argument_group("results store (OUT/results.db, shared by the checks of one --out)")
    store.add_argument("--reuse-stale", action="store_true",
                       help="use runs stored by another version of the code instead of training them again "
                            "(their records are marked stale)")
    store.add_argument("--keep-models", action="store_true",
                       help="keep every run's networks (OUT/models/) so that a later measurement needs no training")
    store.add_argument("--executor", default="local", choices=("local", "ray"), help="where engine runs train")
    store.add_argument("--address", default=None, help="Ray cluster address (with --executor ray)")


def _list() -> int:
    from rich.console import Console
    from rich.table import Table

    from .registry import get, names

    t = Table(title="limen checks", title_justify="left")
    t.add_column("check")
    t.add_column("in 'all'")
    t.add_column("what it compares")
    for name in names():
        p = get(name)
        t.add_row(name, "yes" if p.in_all else "no", p.title)
    Console().print(t)
    return 0


def _set_threads(args: argparse.Namespace) -> None:
    """``--threads``, or one thread for ``--quick`` on the CPU: tiny matrices gain nothing from a second
    thread, and on a busy machine its hand-offs made the quick checks several times slower (measured)."""
    import torch

    from limen.verify.device import resolve_device

    if args.threads is not None:
        if args.threads < 1:
            raise ValueError("--threads must be at least 1")
        torch.set_num_threads(args.threads)
    elif args.quick and resolve_device(args.device).type == "cpu":
        torch.set_num_threads(1)


def main(args: argparse.Namespace) -> int:
    if args.list or not args.preset:
        if not args.list:
            print("limen check: name a check or 'all' (see --list)", file=sys.stderr)
        return _list() if args.list else 2

    from rich.console import Console

    from .registry import get, names, run_preset
    from .report import overview, print_result, result_json

    _set_threads(args)
    console = Console(quiet=args.json)  # the human tables; with --json, stdout holds the JSON only
    errors = Console(stderr=True)
    settings = dict(data=args.data, data_dir=args.data_dir, device=args.device, seeds=args.seeds,
                    quick=args.quick, progress=not args.no_progress, reuse_stale=args.reuse_stale,
                    keep_models=args.keep_models, executor=args.executor, address=args.address)
    from limen.verify.store import check_out

    out = check_out(args.out)  # before any work: a file there would lose the results
    if args.preset != "all":
        get(args.preset)  # unknown name -> ValueError -> exit 2 with the list of names
        result = run_preset(args.preset, out, **settings)
        print_result(result, console, out=out / args.preset)
        if args.json:
            print(json.dumps({"checks": [result_json(result, out / args.preset)], "errors": []}, indent=1))
        return 0

    done = []
    for name in names(in_all=True):
        console.rule(f"[bold]{name}")
        try:
            result = run_preset(name, out, **settings)
        except KeyboardInterrupt:
            raise
        except Exception as exc:  # one broken check must not hide the others' results
            errors.print(f"[bold magenta]ERROR[/] in {name}: {type(exc).__name__}: {exc}", highlight=False)
            traceback.print_exc(file=sys.stderr)
            done.append((name, None, f"{type(exc).__name__}: {exc}"))
            continue
        print_result(result, console, out=out / name)
        done.append((name, result, None))
    console.print(overview(done))
    failed = [n for n, r, _ in done if r is None]
    if args.json:
        checks = [result_json(r, out / n) if r is not None else
                  {"name": n, "verdict": "ERROR", "error": err, "report": str(out / n)} for n, r, err in done]
        print(json.dumps({"checks": checks, "errors": failed}, indent=1))
    if failed:
        errors.print(f"[bold magenta]{len(failed)} check(s) could not run:[/] {', '.join(failed)}")
        return 1
    return 0
