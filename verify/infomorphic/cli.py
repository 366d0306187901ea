"""Train infomorphic networks (PID-goal neurons, local learning) and the study's baselines.

Every run trains one network (a model at one hidden size and seed) and appends one
record to ``OUT/records.jsonl``: config, per-epoch accuracies (train with label
context, validation, test), layer losses, the mean hidden atoms per epoch, the final
PID atoms of every hidden neuron and of the output neurons, timing, versions. Per-neuron
atoms of every epoch go to ``OUT/atoms/<key>.npz``. A restarted command skips finished
runs. Plots: ``accuracy_vs_n.png`` (test accuracy vs N, mean ± 95 % CI over seeds, per
model), ``atoms.png`` (mean atoms of the trained hidden neurons), ``atoms_evolution_*.png``.

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
  limen run infomorphic --goal "{F}{C}=1,{F}{L}=-1" --data fashion-mnist --device cuda
  limen run infomorphic --search 40 --search-epochs 50    Optuna goal search (pip install limen[optuna])
  limen run infomorphic --search 40 --executor ray --address auto   trials in parallel on a Ray cluster
"""

from __future__ import annotations

import argparse
import json
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
    parser.add_argument("--out", default="runs/infomorphic", help="results folder (default runs/infomorphic)")
    parser.add_argument("--no-plot", action="store_true", help="skip the plots")
    parser.add_argument("--compare", action="store_true",
                        help="compare backprop, optimised, heuristic, readout, random-projection at the first "
                             "--n-hidden (or --models) and test the study's ordering")
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


def main(args: argparse.Namespace) -> int:
    if args.list_goals:
        _list_goals()
        return 0
    from rich.console import Console

    from ..progress import progress
    from ..records import ResultStore, config_key
    from .compare import DEFAULT_EPOCHS, DEFAULT_MODELS, summary_of
    from .train import PRESETS, _PRESET_ALIASES, preset, train_configs

    console = Console(stderr=True)
    out = Path(args.out)
    ns = _ints(args.n_hidden, "--n-hidden")
    if args.seeds < 1:
        raise ValueError("--seeds must be at least 1")
    epochs = args.epochs if args.epochs is not None else DEFAULT_EPOCHS.get(args.data, 100)
    common = dict(data=args.data, epochs=epochs, batch_size=args.batch_size, lateral=args.lateral,
                  max_connections=args.max_connections, n_bins=args.n_bins)
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
    store = ResultStore(out / "records.jsonl")
    have = {r["key"] for r in store.records()}
    todo = [c for c in dict.fromkeys(configs) if config_key(c) not in have]
    console.print(f"infomorphic: {len(configs)} runs ({len(configs) - len(todo)} already in {store.path}), "
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
    _print_table(records, console)
    summary = {}
    if args.compare:
        summary = summary_of(records, models, data=args.data, n_hidden=ns[0], epochs=epochs)
        _print_ordering(summary, console)
    if not args.no_plot:
        from .plot import plot_all

        files = plot_all(records, out)
        console.print(f"plots: {', '.join(str(out / f) for f in files)}")
        summary["plots"] = files
    if summary:
        (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    console.print(f"records: {store.path}")
    return 0


def _print_table(records, console) -> None:
    from rich.table import Table

    from .compare import STUDY_MNIST_N100, summarise
    from .plot import _by

    t = Table(title="test accuracy (%), mean ± 95% CI over seeds")
    for c in ("model", "N", "seeds", "test acc", "val acc", "train acc (label ctx)", "study MNIST N=100"):
        t.add_column(c, justify="right")
    for (m, n), recs in sorted(_by(records, "model", "n_hidden").items(), key=lambda kv: (kv[0][0], kv[0][1])):
        s = summarise([100 * r["metrics"]["test_acc"] for r in recs])
        v = summarise([100 * r["metrics"]["val_acc"] for r in recs])
        tr = summarise([100 * r["metrics"]["train_acc"] for r in recs])
        ci = (lambda d: f"{d['mean']:.2f}" + (f" ± {(d['ci_hi'] - d['ci_lo']) / 2:.2f}" if d["n"] > 1 else ""))
        ref = STUDY_MNIST_N100.get(m)
        t.add_row(m, str(n), str(s["n"]), ci(s), ci(v), ci(tr), f"{ref}" if ref and n == 100 else "")
    console.print(t)


def _print_ordering(summary, console) -> None:
    console.print("study's ordering at N=100 (backprop ≳ optimised > heuristic > readout > random-projection):")
    for o in summary["ordering"]:
        console.print(f"  {o['relation']:36s} diff {100 * o['diff']:+.2f} pp, 95% CI [{100 * o['lo']:+.2f}, "
                      f"{100 * o['hi']:+.2f}] -> {o['verdict']}")
    console.print(f"  ordering holds: {summary['ordering_holds']}  (rules: '>' {summary['rules']['>']}; "
                  f"'≳' {summary['rules']['≳']})")
