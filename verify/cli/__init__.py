"""The ``limen`` command line.

Each subcommand lives in its own module that defines ``add_arguments(parser)``
and ``main(args) -> int``; heavy imports (torch, dit) happen inside ``main`` so
``limen --help`` stays fast. ``run`` and ``bench`` take a target (an experiment
or a benchmark), registered the same way.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "check": ("limen.verify.checks.cli", "compare a theory prediction with a training run (the main job)"),
    "derive": ("limen.theory.cli", "list or print the symbolic results of limen.theory"),
    "pid": ("limen.estimators.cli", "partial information decomposition of a pmf file or a named gate"),
    "run": (None, "train an experiment (subliminal | infomorphic) and write result records"),
    "bench": (None, "benchmarks, each against a baseline measured in the same run"),
}
RUN_TARGETS: dict[str, tuple[str, str]] = {
    "subliminal": ("limen.verify.subliminal.cli", "teacher/student split-head distillation runs or named sweeps"),
    "infomorphic": ("limen.verify.infomorphic.cli", "infomorphic networks trained with PID goals"),
}
BENCH_TARGETS: dict[str, tuple[str, str]] = {
    "pid": ("limen.verify.bench.pid", "I^sx estimators vs dit and vs a dense-histogram goal"),
    "subliminal": ("limen.verify.bench.subliminal", "batched engine vs one-run-per-call baseline"),
    "infomorphic": ("limen.verify.bench.infomorphic", "sparse PID training step vs dense-histogram step"),
    "predict": ("limen.verify.bench.predict", "student prediction vs the training it predicts"),
}

EPILOG = """\
examples:
  limen check all --quick            every check, small, on the embedded digits data
  limen check all --quick --json     the same, one JSON object of verdicts on stdout (progress on stderr)
  limen check transfer-fraction --data fashion-mnist --device cuda --seeds 20
  limen pid --gate xor               I^sx decomposition of the XOR gate
  limen derive --list                the symbolic results and their assumptions
  limen run subliminal --help        one run or a named sweep of the split-head protocol
  limen bench pid                    estimator speed against dit, measured in one run
"""


def _add_module(sub: argparse._SubParsersAction, name: str, module: str, help_: str) -> None:
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name and module.startswith(exc.name):
            return  # the module is not part of this install; do not advertise it
        raise
    parser = sub.add_parser(name, help=help_, description=(mod.__doc__ or help_).strip(),
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    mod.add_arguments(parser)
    parser.set_defaults(_main=mod.main)


def _add_group(sub: argparse._SubParsersAction, name: str, help_: str, targets: dict) -> None:
    parser = sub.add_parser(name, help=help_, description=help_)
    inner = parser.add_subparsers(title="targets", metavar="TARGET", required=True)
    for tname, (module, thelp) in targets.items():
        _add_module(inner, tname, module, thelp)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="limen",
        description="Derive subliminal-learning predictions, compute exact PIDs, and check "
                    "closed-form predictions against real training runs.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    from limen import __version__
    parser.add_argument("--version", action="version", version=f"limen {__version__}")
    sub = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)
    groups = {"run": RUN_TARGETS, "bench": BENCH_TARGETS}
    for name, (module, help_) in COMMANDS.items():
        if module is None:
            _add_group(sub, name, help_, groups[name])
        else:
            _add_module(sub, name, module, help_)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``limen`` console script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args._main(args) or 0)
    except (ValueError, FileNotFoundError) as exc:
        print(f"limen: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("limen: interrupted; finished runs are kept in the results file", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
