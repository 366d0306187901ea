"""Train split-head teacher/student runs (one config, or a named sweep) and write result records.

Records go to the results store OUT/results.db (one transaction per finished group) and are
exported to OUT/records.jsonl; a killed sweep restarted with the same command skips finished
runs, and two processes given the same OUT split the work. Runs stored by another version of
the code are trained again (--reuse-stale keeps them, marked stale). A summary table (mean ±
95 % CI over seeds) is printed and written to OUT/summary.md and OUT/summary.json.

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
import json
from pathlib import Path

#: RunConfig fields set by options of the same name (``--student-hidden`` -> ``student_hidden``)
_FIELD_OPTIONS = ("m", "hidden", "student_hidden", "arch", "student_arch", "init", "teacher_init", "trainable",
                  "teacher_trainable", "teacher_epochs", "student_epochs", "batch_size", "noise", "noise_steps",
                  "noise_batch", "noise_pool", "perlin_res", "teacher_lr", "student_lr", "n_classes")


def add_arguments(p: argparse.ArgumentParser) -> None:
    what = p.add_argument_group("what to run")
    what.add_argument("--sweep", help="a named sweep (see --list); without it, one config from the options below")
    what.add_argument("--list", action="store_true", help="list the named sweeps and exit")
    what.add_argument("--seeds", default=None,
                      help="number of seeds (0..N-1) or a comma list; default 1 for one config, 20 for a sweep")
    what.add_argument("--data", default="digits",
                      help="digits (embedded, default) | fashion-mnist | mnist | emnist-balanced | emnist-letters")
    what.add_argument("--data-dir", default=None, help="folder with the IDX files (else $LIMEN_DATA, standard places)")
    what.add_argument("--quick", action="store_true", help="a sweep's small form (fewer grid points, 2x30 student steps)")
    what.add_argument("--dry-run", action="store_true", help="print the planned groups and exit")
    cfg = p.add_argument_group("run config (defaults: the reference protocol)")
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
                     help="any other RunConfig field, or a sweep option (e.g. frozen=both for --sweep width)")
    ex = p.add_argument_group("execution")
    ex.add_argument("--out", default=None, help="results folder (default runs/subliminal/<sweep or single>)")
    ex.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    ex.add_argument("--executor", default="local", choices=("local", "ray"))
    ex.add_argument("--address", default=None, help="Ray cluster address (auto, ray://host:port); with --executor ray")
    ex.add_argument("--tf32", action="store_true", help="allow TF32 matmuls on CUDA (faster; recorded in run_info)")
    ex.add_argument("--noise-rng", default="auto", choices=("auto", "generator", "philox"),
                    help="training-noise RNG: per-member torch generators (reference streams) or one fused "
                         "Philox kernel per step on CUDA (auto: philox where available)")
    ex.add_argument("--max-group", type=int, default=None, help="at most this many runs trained together")
    ex.add_argument("--no-progress", action="store_true")
    ex.add_argument("--reuse-stale", action="store_true",
                    help="use runs stored by another version of the code instead of training them again "
                         "(their records are marked stale)")
    ex.add_argument("--keep-models", action="store_true",
                    help="keep every run's networks (OUT/models/) so that a later measurement needs no training")


def _seeds(text: str | None, default: int):
    if text is None:
        return default
    if "," in text:
        return [int(s) for s in text.split(",") if s.strip()]
    if "-" in text:
        a, b = text.split("-", 1)
        return list(range(int(a), int(b) + 1))
    n = int(text)
    if n < 1:
        raise ValueError(f"--seeds must be >= 1, got {n}")
    return n


def _value(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def build_configs(args) -> tuple[list, str]:
    from .config import RunConfig
    from .sweeps import SWEEPS

    fields = {f: getattr(args, f) for f in _FIELD_OPTIONS if getattr(args, f, None) is not None}
    if args.normalize_noise:
        fields["normalize_noise"] = True
    if args.perturb:
        fields["perturb"] = tuple(args.perturb)
    for kv in args.set:
        if "=" not in kv:
            raise ValueError(f"--set expects KEY=VALUE, got {kv!r}")
        k, v = kv.split("=", 1)
        fields[k.strip().replace("-", "_")] = _value(v)
    if args.sweep:
        if args.sweep not in SWEEPS:
            raise ValueError(f"unknown sweep {args.sweep!r}; named sweeps: {', '.join(SWEEPS)}")
        data = args.data
        if args.sweep == "emnist-classes" and data == "digits":
            data = "emnist-balanced"
        return SWEEPS[args.sweep](seeds=_seeds(args.seeds, 20), data=data, quick=args.quick, **fields), args.sweep
    seeds = _seeds(args.seeds, 1)
    seeds = range(seeds) if isinstance(seeds, int) else seeds
    return [RunConfig(seed=s, data=args.data, **fields) for s in seeds], "single"


def main(args) -> int:
    from .sweeps import SWEEPS

    if args.list:
        for name, fn in SWEEPS.items():
            print(f"{name:20s} {(fn.__doc__ or '').strip().splitlines()[0]}")
        return 0
    try:
        configs, name = build_configs(args)
    except TypeError as exc:  # unknown RunConfig field from --set
        raise ValueError(str(exc)) from exc
    from .engine import plan_groups
    from .run import run_sweep, write_summary

    from ..store import check_out

    out = check_out(args.out or Path("runs") / "subliminal" / name)  # before any work
    if args.dry_run:
        groups = plan_groups(configs, max_group=args.max_group)
        print(f"{len(configs)} runs in {len(groups)} groups: sizes {[len(g) for g in groups]}")
        return 0
    opts = {"address": args.address} if args.address else {}
    records = run_sweep(configs, out, device=args.device, executor=args.executor, executor_options=opts,
                        data_root=args.data_dir, allow_tf32=args.tf32, noise_rng=args.noise_rng,
                        max_group=args.max_group, reuse_stale=args.reuse_stale, keep_models=args.keep_models,
                        progress=None if not args.no_progress else False, description=f"subliminal {name}")
    md = write_summary(records, out)
    print(md, end="")
    print(f"{len(records)} records in {out / 'records.jsonl'}; summary in {out / 'summary.md'}")
    return 0
