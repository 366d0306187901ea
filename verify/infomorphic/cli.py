"""Train infomorphic networks (PID-goal neurons, local learning) and the study's baselines.

Every run trains one network (a model at one hidden size and seed) and stores one
record in the results store ``OUT/results.db`` (exported as ``OUT/records.jsonl``): config,
per-epoch accuracies (train with label context, validation, test), layer losses, the mean hidden atoms per epoch, the final
PID atoms of every hidden neuron and of the output neurons, which neurons' label context
fell into a single bin, the input normalisation, timing, versions. Per-neuron atoms of
every measured epoch go to ``OUT/atoms/<key>.npz``. A restarted command skips finished
runs. Plots: ``accuracy_vs_n.png`` (test accuracy vs N, mean ± 95 % CI over seeds, per
model), ``atoms.png`` (mean atoms of the trained hidden neurons), ``atoms_evolution_*.png``.

The results table (and with ``--compare`` the ordering) goes to stdout, progress to
stderr; ``--json`` prints a machine-readable summary on stdout instead of the tables.
Inputs are standardised with the data set's own training mean and std (``--normalize
mnist``: MNIST's constants); final accuracies are means over ``--eval-passes``
stochastic evaluation passes.

Models: optimised, optimised-sparse, heuristic (trivariate F/C/L neurons with the study's
goals), bivariate-fc[-optimised], bivariate-fl[-optimised], backprop (same architecture,
straight-through), random-projection, readout. ``--goal`` sets the hidden goal of the
trivariate/bivariate models: a name, ``{F}{C}=1,{FC}{FL}=-1``, ``1=1,11=-1`` or 19 numbers
(``--list-goals`` prints the atom names and the named goals).

examples:
  limen run infomorphic                                   optimised model, N=100, digits, 1 seed
  limen run infomorphic --models optimised,heuristic,backprop,readout,random-projection \\
      --n-hidden 10,50,100 --seeds 3 --epochs 200
  limen run infomorphic --compare --seeds 5               the study's ordering at N=100, with CIs
  limen run infomorphic --compare --seeds 5 --json > summary.json
  limen run infomorphic --goal "{F}{C}=1,{F}{L}=-1" --data fashion-mnist --device cuda
  limen run infomorphic --models backprop --binary 01 --theta-clip 1e-6 --eval-batch 1024   as the public code
  limen run infomorphic --search 40 --search-epochs 50    Optuna goal search (pip install limen[optuna])
  limen run infomorphic --search 40 --executor ray --address auto   trials in parallel on a Ray cluster
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--models", default="optimised",
                        help="comma-separated models (default optimised); see the list above")
    parser.add_argument("--goal", default=None, help="hidden goal for trivariate/bivariate models (overrides "
                                                     "the model's named goal)")
    parser.add_argument("--n-hidden", default="100", help="hidden sizes, comma separated (default 100)")
    parser.add_argument("--seeds", type=int, default=1, help="seeds 0..S-1 per model and size (default 1)")
    parser.add_argument("--epochs", type=int, default=None,
                        help="training epochs (default: 500 on digits, 100 otherwise)")
    parser.add_argument("--data", default="digits", help="digits (embedded), fashion-mnist, mnist, …")
    parser.add_argument("--data-dir", default=None, help="folder to look for the data set in first")
    parser.add_argument("--device", default="auto", help="auto (default), cpu, cuda or cuda:N")
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--lateral", default="dense", choices=["dense", "sparse"],
                        help="lateral connectivity; sparse: at most --max-connections partners per neuron")
    parser.add_argument("--max-connections", type=int, default=100)
    parser.add_argument("--n-bins", type=int, default=20)
    parser.add_argument("--atoms-every", type=int, default=1, metavar="K",
                        help="measure the hidden neurons' atoms every K epochs (and at the last; default 1)")
    parser.add_argument("--no-cuda-graphs", action="store_true",
                        help="on CUDA, run every step eagerly instead of replaying a captured CUDA graph")
    parser.add_argument("--normalize", default="train", choices=("train", "mnist"),
                        help="input standardisation: the data set's own training mean and std (default, as the "
                             "public code), or MNIST's 0.1307/0.3081")
    parser.add_argument("--eval-passes", type=int, default=5, metavar="P",
                        help="final accuracies: mean over P stochastic evaluation passes (default 5)")
    ref = parser.add_argument_group("variants that reproduce the public code where limen differs "
                                    "(docs/infomorphic.md, fidelity)")
    ref.add_argument("--eval-batch", type=int, default=0, metavar="B",
                     help="apply the flip rule per block of B evaluated samples (the code: 1024); "
                          "default 0 = over the whole set")
    ref.add_argument("--theta-clip", type=float, default=0.0, metavar="EPS",
                     help="clamp bivariate θ into [EPS, 1-EPS] (the code: 1e-6); default 0 = no clamp")
    ref.add_argument("--binary", default="pm1", choices=("pm1", "01"),
                     help="hidden outputs of the backprop and random-projection baselines: ±1 (default) "
                          "or {0,1} (the code)")
    parser.add_argument("--out", default="runs/infomorphic", help="results folder (default runs/infomorphic)")
    parser.add_argument("--json", action="store_true",
                        help="print a machine-readable summary (JSON) on stdout instead of the tables")
    parser.add_argument("--no-plot", action="store_true", help="skip the plots")
    parser.add_argument("--compare", action="store_true",
                        help="compare backprop, optimised, heuristic, readout, random-projection at the first "
                             "--n-hidden (or --models) and test the study's ordering where the runs can decide it "
                             "(the study's length or a plateau; room above the readout)")
    parser.add_argument("--search", type=int, default=0, metavar="TRIALS",
                        help="Optuna goal search over γ in [-1,1]^18 (γ_res = 0) with this many trials")
    parser.add_argument("--search-epochs", type=int, default=None, help="epochs per search trial")
    parser.add_argument("--executor", default="local", choices=("local", "ray"),
                        help="with --search: ray trains a batch of trials at once, one per worker")
    parser.add_argument("--address", default=None, help="Ray cluster address (auto, host:port, ray://host:port)")
    parser.add_argument("--list-goals", action="store_true", help="print atom names and named goals, then exit")


def _list_goals() -> None:
    from .goals import GOALS, atom_names

    for kind, goals in GOALS.items():
        names = atom_names(kind)
        print(f"{kind} neurons: γ = [{', '.join(names)}]")
        for name, vec in goals.items():
            nz = ", ".join(f"{names[i]}={v:g}" for i, v in enumerate(vec) if v)
            print(f"  {name:18s} {nz}")


def _ints(text: str, what: str) -> list[int]:
    try:
        vals = [int(v) for v in str(text).split(",") if v.strip()]
    except ValueError:
        raise ValueError(f"{what} must be comma-separated integers, got {text!r}") from None
    if not vals:
        raise ValueError(f"{what} is empty")
    return vals


def _check_args(args: argparse.Namespace) -> None:
    """Reject bad options before any work (ValueError naming the option)."""
    for flag in ("seeds", "epochs", "search_epochs", "batch_size", "n_bins", "atoms_every", "max_connections",
                 "eval_passes"):
        v = getattr(args, flag)
        if v is not None and v < 1:
            raise ValueError(f"--{flag.replace('_', '-')} must be at least 1, got {v}")
    if args.eval_batch < 0:
        raise ValueError(f"--eval-batch must be 0 (the whole set) or positive, got {args.eval_batch}")
    if args.search < 0:
        raise ValueError(f"--search must be a number of trials >= 1, got {args.search}")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is an existing file; give a folder (it is created if missing)")


def main(args: argparse.Namespace) -> int:
    if args.list_goals:
        _list_goals()
        return 0
    _check_args(args)
    from rich.console import Console

    from ..progress import progress
    from ..records import config_key
    from ..store import DB_FILE
    from .compare import DEFAULT_EPOCHS, DEFAULT_MODELS, summary_of
    from .train import PRESETS, _PRESET_ALIASES, finished_keys, preset, train_configs

    console = Console(stderr=True)  # progress and file locations
    results = Console(stderr=args.json)  # the tables: stdout unless --json
    if not results.is_terminal:  # a file or a pipe: wide enough for the table, no wrapping
        results = Console(stderr=args.json, width=180)
    out = Path(args.out)
    ns = _ints(args.n_hidden, "--n-hidden")
    epochs = args.epochs if args.epochs is not None else DEFAULT_EPOCHS.get(args.data, 100)
    common = dict(data=args.data, epochs=epochs, batch_size=args.batch_size, lateral=args.lateral,
                  max_connections=args.max_connections, n_bins=args.n_bins, normalize=args.normalize,
                  eval_passes=args.eval_passes, eval_batch=args.eval_batch, theta_clip=args.theta_clip,
                  binary=args.binary)
    if args.search:
        from .search import goal_search

        res = goal_search(args.search, data=args.data, n_hidden=ns[0], epochs=args.search_epochs or epochs,
                          device=args.device, out=out, data_root=args.data_dir, executor=args.executor,
                          executor_options={"address": args.address} if args.address else None,
                          **{k: v for k, v in common.items() if k not in ("data", "epochs")})
        print(json.dumps({k: v for k, v in res.items() if k != "trials"}, indent=2))
        return 0
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    if args.compare and args.models == "optimised":
        models = list(DEFAULT_MODELS)
    for m in models:
        if _PRESET_ALIASES.get(m, m) not in PRESETS:
            raise ValueError(f"unknown model {m!r}; choose from {', '.join(PRESETS)}")
    models = [_PRESET_ALIASES.get(m, m) for m in models]
    if args.compare:
        ns = ns[:1]
    configs = []
    for m in models:
        extra = {}
        if args.goal is not None and PRESETS[m]["goal"] is not None:
            extra["goal"] = args.goal
        for n in ns:
            for s in range(args.seeds):
                configs.append(preset(m, n_hidden=n, seed=s, **common, **extra))
    have = finished_keys(configs, out)
    todo = [c for c in dict.fromkeys(configs) if config_key(c) not in have]
    console.print(f"infomorphic: {len(configs)} runs ({len(configs) - len(todo)} already in {out / DB_FILE}), "
                  f"data {args.data}, epochs {epochs}")
    with progress(max(sum(c.epochs + 1 for c in todo), 1), "training") as tick:
        def on_epoch(cfg, epoch, entry):
            tick.advance(1, f"{cfg.model} N={cfg.n_hidden} seed {cfg.seed} epoch {epoch}: "
                            f"test {100 * entry['test_acc']:.1f}%")

        def on_run(cfg, rec):
            m = rec["metrics"]
            console.print(f"  {cfg.model} N={cfg.n_hidden} seed {cfg.seed}: test {100 * m['test_acc']:.2f}%  "
                          f"val {100 * m['val_acc']:.2f}%  ({m['step_ms']:.1f} ms/step)")

        records = train_configs(configs, out=out, device=args.device, data_root=args.data_dir, on_epoch=on_epoch,
                                on_run=on_run, cuda_graphs=False if args.no_cuda_graphs else None,
                                atoms_every=args.atoms_every)
    table = results_table(records)
    _print_table(table, results)
    summary = {"data": args.data, "epochs": epochs, "records": str(out / "records.jsonl"), "store": str(out / DB_FILE),
               "table": table}
    if args.compare:
        summary["comparison"] = summary_of(records, models, data=args.data, n_hidden=ns[0], epochs=epochs)
        _print_ordering(summary["comparison"], results)
    if not args.no_plot:
        from .plot import plot_all

        files = plot_all(records, out)
        console.print(f"plots: {', '.join(str(out / f) for f in files)}")
        summary["plots"] = files
    out.mkdir(parents=True, exist_ok=True)
    text = json.dumps(_strict(summary), indent=2, default=str, allow_nan=False)
    (out / "summary.json").write_text(text + "\n")
    if args.json:
        print(text)
    console.print(f"records: {out / DB_FILE} (exported to {out / 'records.jsonl'}); summary: {out / 'summary.json'}")
    return 0


def _strict(obj):
    """``obj`` with every non-finite float (an interval from one seed, an sd of one pass) as None: strict JSON."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _strict(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_strict(v) for v in obj]
    return obj


def results_table(records) -> list[dict]:
    """One row per (model, N): test, validation and training accuracy (mean ± 95 % CI over seeds, %),
    the spread of the evaluation passes and the share of hidden neurons whose context fell into one bin."""
    from .compare import STUDY_MNIST_N100, collapsed_share, evaluation_spread, summarise
    from .plot import _by

    rows = []
    for (m, n), recs in sorted(_by(records, "model", "n_hidden").items(), key=lambda kv: (kv[0][0], kv[0][1])):
        n_passes, sd = evaluation_spread(recs)
        rows.append({
            "model": m, "n_hidden": n, "seeds": len(recs),
            **{f"{k}_pct": summarise([100 * r["metrics"][k] for r in recs]) for k in ("test_acc", "val_acc",
                                                                                      "train_acc")},
            "eval_passes": n_passes, "eval_sd_pct": 100 * sd,
            "context_collapsed_share": collapsed_share(recs),
            "study_mnist_n100_pct": STUDY_MNIST_N100.get(m) if n == 100 else None,
        })
    return rows


def _print_table(table: list[dict], console) -> None:
    from rich.table import Table

    t = Table(title="test accuracy (%), mean ± 95% CI over seeds (each run: mean over its evaluation passes)")
    for c in ("model", "N", "seeds", "test acc", "passes sd", "val acc", "train acc (label ctx)",
              "context in one bin", "study MNIST N=100"):
        t.add_column(c, justify="right")

    def ci(d):
        return f"{d['mean']:.2f}" + (f" ± {(d['ci_hi'] - d['ci_lo']) / 2:.2f}" if d["n"] > 1 else "")

    for r in table:
        share = r["context_collapsed_share"]
        t.add_row(r["model"], str(r["n_hidden"]), str(r["seeds"]), ci(r["test_acc_pct"]),
                  f"{r['eval_sd_pct']:.2f}" if r["eval_passes"] > 1 else "", ci(r["val_acc_pct"]),
                  ci(r["train_acc_pct"]), "" if share is None else f"{100 * share:.0f} %",
                  "" if r["study_mnist_n100_pct"] is None else f"{r['study_mnist_n100_pct']}")
    console.print(t)


def _print_ordering(summary, console) -> None:
    console.print("study's ordering at N=100 (backprop ≳ optimised > heuristic > readout > random-projection):")
    for o in summary["ordering"]:
        console.print(f"  {o['relation']:36s} diff {100 * o['diff']:+.2f} pp, 95% CI [{100 * o['lo']:+.2f}, "
                      f"{100 * o['hi']:+.2f}] -> {o['verdict']}" + (f" ({o['reason']})" if o["reason"] else ""))
    console.print(f"  ordering holds: {summary['ordering_holds']}  (rules: '>' {summary['rules']['>']}; "
                  f"'≳' {summary['rules']['≳']}; judged {summary['rules']['judged']})")
