"""Train split-head teacher/student runs (one config, or a named sweep) and write result records.

Records go to the results store OUT/results.db (one transaction per finished group) and are
exported to OUT/records.jsonl; a killed sweep restarted with the same command skips finished
runs, and two processes given the same OUT split the work. Runs stored by another version of
the code are trained again (--reuse-stale keeps them, marked stale). The summary (mean ± 95 %
CI over seeds) is printed on stdout -- a table, or with --json one JSON object -- and written to
OUT/summary.md and OUT/summary.json; OUT/summary.png plots its main metrics against the swept
variable. Progress and notes go to stderr.

examples:
  limen run subliminal --m 10 --seeds 3                       three seeds of the default protocol (digits)
  limen run subliminal --sweep init-controls --quick --seeds 3
  limen run subliminal --sweep init-controls --data fashion-mnist --device cuda --tf32
  limen run subliminal --init random,random,A,A --m 50 --data fashion-mnist
  limen run subliminal --perturb student:aux_head,std=0.05 --seeds 5
  limen run subliminal --sweep width --set frozen=both --quick
  limen run subliminal --list                                 the named sweeps
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import json
import sys
import textwrap
from pathlib import Path

from limen.verify.cli import options

#: RunConfig fields set by options of the same name (``--student-hidden`` -> ``student_hidden``)
_FIELD_OPTIONS = ("m", "hidden", "student_hidden", "arch", "student_arch", "init", "teacher_init", "trainable",
                  "teacher_trainable", "teacher_epochs", "student_epochs", "batch_size", "noise", "noise_steps",
                  "noise_batch", "noise_pool", "perlin_res", "teacher_lr", "student_lr", "n_classes")
#: parameters every sweep function takes (set by --seeds, --data, --quick, not by --set)
_SWEEP_COMMON = ("seeds", "data", "quick")


def add_arguments(p: argparse.ArgumentParser) -> None:
    what = p.add_argument_group("what to run")
    what.add_argument("--sweep", help="a named sweep (see --list); without it, one config from the options below")
    what.add_argument("--list", action="store_true", help="list the named sweeps and exit")
    what.add_argument("--seeds", type=options.seeds, default=None,
                      help="N (seeds 0..N-1), a list a,b,c (one seed: 7,) or a range a-b; "
                           "default 1 for one config, 20 for a sweep")
    what.add_argument("--data", default="digits",
                      help="digits (embedded, default) | fashion-mnist | mnist | emnist-balanced | emnist-letters")
    what.add_argument("--data-dir", default=None, help="folder with the IDX files (else $LIMEN_DATA, standard places)")
    what.add_argument("--quick", action="store_true", help="a sweep's small form (fewer grid points, 2x30 student steps)")
    what.add_argument("--dry-run", action="store_true", help="print the planned groups and exit")
    cfg = p.add_argument_group("run config (defaults: the reference protocol; on a sweep, every run)")
    cfg.add_argument("--m", type=int, help="aux-head width (default 10)")
    cfg.add_argument("--hidden", help="teacher hidden widths, e.g. 256,256")
    cfg.add_argument("--student-hidden", help="student hidden widths (default: the teacher's)")
    cfg.add_argument("--arch", choices=("mlp", "cnn"))
    cfg.add_argument("--student-arch", choices=("mlp", "cnn"))
    cfg.add_argument("--init", help="student init sources: A,A,random,A or fc1:random,... or all:random")
    cfg.add_argument("--teacher-init", help="teacher init sources (same forms)")
    cfg.add_argument("--trainable", help="student trainable flags: true,true,false,true or aux_head:false")
    cfg.add_argument("--teacher-trainable", help="teacher trainable flags")
    cfg.add_argument("--teacher-epochs", type=int)
    cfg.add_argument("--student-epochs", type=int)
    cfg.add_argument("--batch-size", type=int, help="teacher batch (default 1024)")
    cfg.add_argument("--noise", choices=("uniform", "normal", "perlin"))
    cfg.add_argument("--noise-steps", type=int, help="noise batches per student epoch (default 60)")
    cfg.add_argument("--noise-batch", type=int, help="noise batch size (default 1000)")
    cfg.add_argument("--noise-pool", type=int, help="fixed pool of N noise samples instead of fresh noise per step")
    cfg.add_argument("--perlin-res", type=int)
    cfg.add_argument("--normalize-noise", action="store_true", help="apply the data normalisation to the noise")
    cfg.add_argument("--teacher-lr", type=float)
    cfg.add_argument("--student-lr", type=float)
    cfg.add_argument("--n-classes", type=int, help="keep classes 0..K-1")
    cfg.add_argument("--perturb", action="append", default=[],
                     help="target:layer[+layer],std=S[,timing=T,include_weight=B,include_bias=B] (repeatable)")
    cfg.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                     help="any other RunConfig field, or an option of the sweep (e.g. frozen=both for --sweep "
                          "width); a field set on a sweep replaces it in every run, also where the sweep varies it")
    ex = p.add_argument_group("execution and output")
    ex.add_argument("--out", default=None, help="results folder (default runs/subliminal/<sweep or single>)")
    ex.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    ex.add_argument("--executor", default="local", choices=("local", "ray"))
    ex.add_argument("--address", default=None, help="Ray cluster address (auto, ray://host:port); with --executor ray")
    ex.add_argument("--tf32", action="store_true", help="allow TF32 matmuls on CUDA (faster; recorded in run_info)")
    ex.add_argument("--noise-rng", default="auto", choices=("auto", "generator", "philox"),
                    help="training-noise RNG: per-member torch generators (reference streams) or one fused "
                         "Philox kernel per step on CUDA (auto: philox where available)")
    ex.add_argument("--max-group", type=int, default=None, help="at most this many runs trained together")
    ex.add_argument("--json", action="store_true",
                    help="print one JSON object on stdout (summary rows, record and plot paths) instead of the table")
    ex.add_argument("--no-progress", action="store_true", help="no progress display on stderr")
    ex.add_argument("--reuse-stale", action="store_true",
                    help="use runs stored by another version of the code instead of training them again "
                         "(their records are marked stale)")
    ex.add_argument("--keep-models", action="store_true",
                    help="keep every run's networks (OUT/models/) so that a later measurement needs no training")


def _sweep_options(fn) -> dict[str, str]:
    """A sweep function's own options (name -> annotation), e.g. ``frozen`` and ``m`` of ``width``."""
    return {n: str(p.annotation) for n, p in inspect.signature(fn).parameters.items()
            if n not in _SWEEP_COMMON and p.kind is not p.VAR_KEYWORD}


def _settings(args, sweep: str | None) -> tuple[dict, dict]:
    """(RunConfig fields, sweep options) from the config options and ``--set KEY=VALUE``, converted by type."""
    from .config import RunConfig
    from .sweeps import SWEEPS

    run_fields = {f.name: str(f.type) for f in dataclasses.fields(RunConfig) if f.name not in ("seed", "data")}
    own = _sweep_options(SWEEPS[sweep]) if sweep else {}
    given = {f: getattr(args, f) for f in _FIELD_OPTIONS if getattr(args, f, None) is not None}
    if args.normalize_noise:
        given["normalize_noise"] = True
    if args.perturb:
        given["perturb"] = tuple(args.perturb)
    for item in args.set:
        key, text = options.key_value(item, "--set")
        if key in ("seed", "data"):
            raise ValueError(f"--set {key}=...: set {'the seeds with --seeds' if key == 'seed' else 'it with --data'}")
        kind = own.get(key, run_fields.get(key))
        if kind is None:
            elsewhere = sorted(n for n, fn in SWEEPS.items() if key in _sweep_options(fn))
            hint = f" ({key} is an option of --sweep {' / '.join(elsewhere)})" if elsewhere else ""
            sweep_part = f"; options of --sweep {sweep}: {', '.join(own)}" if own else ""
            raise ValueError(f"--set {key}={text}: unknown key {key!r}{hint}. Allowed: the RunConfig fields "
                             f"{', '.join(run_fields)}{sweep_part}")
        given[key] = options.convert(text, kind, f"--set {key}")
    fields = {k: v for k, v in given.items() if k not in own}
    return fields, {k: v for k, v in given.items() if k in own}


def build_configs(args) -> tuple[list, str, list[str]]:
    """(distinct RunConfigs, sweep name or ``single``, notes for stderr)."""
    from .config import RunConfig
    from .sweeps import SWEEPS

    if args.sweep and args.sweep not in SWEEPS:
        raise ValueError(f"unknown sweep {args.sweep!r}; named sweeps: {', '.join(SWEEPS)}")
    fields, own = _settings(args, args.sweep)
    notes = []
    if not args.sweep:
        seeds = 1 if args.seeds is None else args.seeds
        return [RunConfig(seed=s, data=args.data, **fields)
                for s in (range(seeds) if isinstance(seeds, int) else seeds)], "single", notes
    data = args.data
    if args.sweep == "emnist-classes" and data == "digits":
        data = "emnist-balanced"
    make = lambda **kw: SWEEPS[args.sweep](seeds=20 if args.seeds is None else args.seeds,  # noqa: E731
                                           data=data, quick=args.quick, **own, **kw)
    configs = make(**fields)
    if fields:
        plain = make()
        for k, v in fields.items():
            values = list(dict.fromkeys(getattr(c, k) for c in plain))
            if len(values) > 1:
                shown = ", ".join(str(x) for x in values[:8]) + (", ..." if len(values) > 8 else "")
                notes.append(f"{k}={v} replaces the values the sweep {args.sweep} varies ({shown}) in every run")
    distinct = list(dict.fromkeys(configs))
    if len(distinct) < len(configs):
        notes.append(f"{len(configs)} planned runs, {len(distinct)} distinct: each is run and counted once")
    return distinct, args.sweep, notes


def _describe(fn) -> str:
    """A sweep's description: the first paragraph of its docstring, on one line."""
    return " ".join((fn.__doc__ or "").strip().split("\n\n")[0].replace("``", "").split())


def main(args) -> int:
    from .sweeps import SWEEPS

    if args.list:
        described = {name: _describe(fn) for name, fn in SWEEPS.items()}
        if args.json:
            print(json.dumps(described, indent=1))
        else:
            for name, text in described.items():
                print(textwrap.fill(text, width=100, initial_indent=f"{name:20s} ", subsequent_indent=" " * 21))
        return 0
    try:
        configs, name, notes = build_configs(args)
    except TypeError as exc:  # a value of the wrong kind for a sweep option
        raise ValueError(str(exc)) from exc
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    from .engine import plan_groups
    from .plots import plot_summary
    from .run import run_sweep, varying_fields, write_summary

    from ..store import check_out

    out = check_out(args.out or Path("runs") / "subliminal" / name)  # before any work
    if args.dry_run:
        sizes = [len(g) for g in plan_groups(configs, max_group=args.max_group)]
        print(json.dumps({"sweep": name, "runs": len(configs), "groups": sizes}) if args.json else
              f"{len(configs)} runs in {len(sizes)} groups: sizes {sizes}")
        return 0
    opts = {"address": args.address} if args.address else {}
    records = run_sweep(configs, out, device=args.device, executor=args.executor, executor_options=opts,
                        data_root=args.data_dir, allow_tf32=args.tf32, noise_rng=args.noise_rng,
                        max_group=args.max_group, reuse_stale=args.reuse_stale, keep_models=args.keep_models,
                        progress=False if args.no_progress else None, description=f"subliminal {name}")
    md = write_summary(records, out)
    rows = json.loads((out / "summary.json").read_text())
    plot = plot_summary(rows, varying_fields(records), out)
    where = {"out": str(out), "records": str(out / "records.jsonl"), "summary_md": str(out / "summary.md"),
             "summary_json": str(out / "summary.json"), "plots": [str(plot)] if plot else []}
    if args.json:
        print(json.dumps({"sweep": name, "n_records": len(records), **where, "summary": rows}, indent=1))
    else:
        print(md, end="")
    print(f"{len(records)} records in {where['records']}; summary in {where['summary_md']}"
          + (f"; plot {plot}" if plot else ""), file=sys.stderr)
    return 0
