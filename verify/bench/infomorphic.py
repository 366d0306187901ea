"""Infomorphic training step: sample-based PID goals vs the dense-histogram step, in one run.

For each hidden size N (default 100 and 2000), batch 1024 and 784 inputs (MNIST
size), it times on one device:

* **step**: one full training step of the trivariate infomorphic network (forward with
  2 recurrent passes, hidden goal for N neurons and output goal for 10 neurons,
  backward, two Adam updates), once with the sample-based estimator
  (``limen.estimators.sample.sx_sample_goal``, the default of ``limen run infomorphic``)
  and once with the dense baseline (``dense_histogram_goal``: the dense
  ``(N, 20**3, 2)`` θ-histogram, then the dense I^sx estimator's goal), all else equal;
* **goal**: the hidden layer's goal alone, forward + backward, for both (eager).

On CUDA both steps are replayed from CUDA graphs (as ``limen run infomorphic`` does;
``--no-graphs`` for eager steps), so kernel-launch overhead does not hide the work.

The dense baseline uses the dense estimator's own fast path (only the redundancies with
non-zero weight of ``w = Mᵀγ``), so the ratio is the gain from occupied cells alone; for
the public code's approach (all 18 redundancies, then γ) add ``--dense-all-atoms``.
On the CPU the dense step is computed in chunks of ``--dense-chunk`` neurons (memory;
the time is additive). Inputs are Gaussian images with one-hot labels by default
(``--data`` uses a real data set's first batch, standardised as in ``limen run
infomorphic``); timings do not depend on the values beyond the occupancy of the bins.

Targets: ratio ≥ 10× on CPU and on GPU; on GPU a full 100-epoch MNIST-size
run at N = 2000 (47 steps per epoch × 100, extrapolated from the step time) in under
60 s, i.e. about ≤ 10 ms per step. Prints a table and writes JSON (``--out``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

MNIST_STEPS_PER_EPOCH = 47  # 48000 training images (80 % of 60000) in batches of 1024
RATIO_TARGET = 10.0
GPU_RUN_TARGET_S = 60.0


def _timeit(fn, device, repeats: int, warmup: int = 1) -> list[float]:
    from limen.verify.device import synchronize

    for _ in range(warmup):
        fn()
    synchronize(device)
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        synchronize(device)
        out.append(time.perf_counter() - t0)
    return out


def _chunked(goal_fn, chunk: int | None):
    """``goal_fn`` applied to neuron chunks (memory bound of the dense baseline on the CPU)."""
    import torch

    if not chunk:
        return goal_fn

    def fn(bins, p, gamma, n_bins, validate=False):
        return torch.cat([goal_fn(bins[i:i + chunk], p[i:i + chunk], gamma, n_bins, validate=validate)
                          for i in range(0, bins.shape[0], chunk)])

    return fn


def _dense_all_atoms(bins, p, gamma, n_bins, validate=False):
    """The public code's approach: all atoms and H_res densely, then γ."""
    import torch

    from limen.estimators.sample import dense_histogram_atoms

    g = torch.as_tensor(gamma, dtype=p.dtype, device=p.device)
    return dense_histogram_atoms(bins, p, n_bins, validate=validate) @ g


def bench_size(n_hidden: int, *, device, goal: str, batch: int, repeats: int, dense_repeats: int,
               dense_chunk: int | None, dense_all_atoms: bool, data=None, seed: int = 0, graphs: bool = False) -> dict:
    import torch

    from limen.estimators.sample import dense_histogram_goal, sx_sample_goal
    from limen.verify.infomorphic.model import one_hot
    from limen.verify.infomorphic.train import GraphedStep, build, make_step, optimizers, preset

    cfg = preset(goal, n_hidden=n_hidden, batch_size=batch, seed=seed)
    torch.manual_seed(seed)
    if data is None:
        x = torch.randn(batch, 784, device=device)
        y = torch.randint(0, 10, (batch,), device=device)
    else:
        x, y = data
        x, y = x[:batch].reshape(batch, -1).to(device), y[:batch].to(device)
    dense = _dense_all_atoms if dense_all_atoms else dense_histogram_goal
    dense = _chunked(dense, dense_chunk)
    out = {"n_hidden": n_hidden, "batch": batch, "goal": goal, "inputs": x.shape[1]}
    ctx = one_hot(y, 10)
    gamma = cfg.gamma_hidden()
    for name, fn, reps in (("sparse", sx_sample_goal, repeats), ("dense", dense, dense_repeats)):
        net = build(cfg, x.shape[1], 10, device)
        step = make_step(net, cfg, optimizers(net, cfg), goal_fn=fn)
        out[f"{name}_eager_step_s"] = statistics.median(_timeit(lambda: step(x, y), device, reps))
        out[f"{name}_graph_step_s"] = None
        if graphs:
            try:
                net = build(cfg, x.shape[1], 10, device)
                gstep = GraphedStep(make_step(net, cfg, optimizers(net, cfg, capturable=True), goal_fn=fn))
                for _ in range(3):  # warm-up steps and the capture
                    gstep(x, y)
                if gstep.error is not None:
                    raise RuntimeError(gstep.error)
                out[f"{name}_graph_step_s"] = statistics.median(_timeit(lambda: gstep(x, y), device, reps))
            except Exception as exc:  # e.g. a host sync inside the step: not capturable
                out[f"{name}_graph_error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
                torch.cuda.synchronize(device)
        times = [t for t in (out[f"{name}_eager_step_s"], out[f"{name}_graph_step_s"]) if t is not None]
        out[f"{name}_step_s"] = min(times)

        def goal_only():  # hidden goal alone, forward + backward (eager)
            _, pid = net.hidden(x, ctx)
            bins, p = net.hidden_pid_inputs(pid)
            fn(bins, p, gamma, cfg.n_bins, validate=False).sum().backward()

        out[f"{name}_goal_s"] = statistics.median(_timeit(goal_only, device, reps))
    out["step_ratio"] = out["dense_step_s"] / out["sparse_step_s"]
    out["goal_ratio"] = out["dense_goal_s"] / out["sparse_goal_s"]
    out["eager_step_ratio"] = out["dense_eager_step_s"] / out["sparse_eager_step_s"]
    out["mnist_100_epochs_s"] = out["sparse_step_s"] * MNIST_STEPS_PER_EPOCH * 100
    return out


def run_bench(device: str = "auto", neurons=(100, 2000), goal: str = "optimised", batch: int = 1024,
              repeats: int = 5, dense_repeats: int | None = None, dense_chunk: int | None = None,
              dense_all_atoms: bool = False, data: str | None = None, threads: int | None = None,
              graphs: bool | None = None) -> dict:
    import torch

    from limen.verify.device import device_name, resolve_device
    from limen.verify.runinfo import run_info

    dev = resolve_device(device)
    graphs = dev.type == "cuda" if graphs is None else bool(graphs and dev.type == "cuda")
    if threads:
        torch.set_num_threads(threads)
    if dense_repeats is None:
        dense_repeats = repeats if dev.type == "cuda" else max(1, min(repeats, 2))
    if dense_chunk is None and dev.type == "cpu":
        dense_chunk = 250
    xy = None
    if data:
        from limen.verify.data import load_dataset
        from limen.verify.infomorphic.train import prepare_data

        prep = prepare_data(load_dataset(data), 0.0, 0)
        xy = (prep.x_train, prep.y_train)
    rows = []
    for n in neurons:
        rows.append(bench_size(int(n), device=dev, goal=goal, batch=batch, repeats=repeats,
                               dense_repeats=dense_repeats, dense_chunk=dense_chunk if dev.type == "cpu" else None,
                               dense_all_atoms=dense_all_atoms, data=xy, graphs=graphs))
    targets = []
    for r in rows:
        targets.append({"name": f"step ratio dense/sparse, N={r['n_hidden']}", "measured": r["step_ratio"],
                        "bound": f">= {RATIO_TARGET:g}", "pass": r["step_ratio"] >= RATIO_TARGET})
        if dev.type == "cuda" and r["n_hidden"] >= 2000:
            targets.append({"name": f"100-epoch MNIST-size run, N={r['n_hidden']} (extrapolated)",
                            "measured": r["mnist_100_epochs_s"], "bound": f"< {GPU_RUN_TARGET_S:g} s",
                            "pass": r["mnist_100_epochs_s"] < GPU_RUN_TARGET_S})
    return {"benchmark": "infomorphic", "device": str(dev), "device_name": device_name(dev), "goal": goal,
            "dense_baseline": "all atoms, then gamma" if dense_all_atoms else "dense estimator, goal fast path",
            "dense_chunk": dense_chunk if dev.type == "cpu" else None, "threads": torch.get_num_threads(),
            "cuda_graphs": graphs,
            "rows": rows, "targets": targets, "run_info": run_info(dev)}


def print_report(report: dict, console=None) -> None:
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    ms = (lambda v: "n/a" if v is None else f"{1e3 * v:.2f} ms")
    t = Table(title=f"limen bench infomorphic — {report['device_name']} ({report['device']}, "
                    f"{report['threads']} threads), goal {report['goal']}, batch {report['rows'][0]['batch']}")
    cols = ["N", "sparse step", "dense step", "ratio"]
    if report.get("cuda_graphs"):
        cols[1:3] = ["sparse eager", "sparse graphed", "dense eager", "dense graphed"]
        cols.append("ratio eager")
    cols += ["sparse goal", "dense goal", "goal ratio", "100-epoch MNIST run"]
    for col in cols:
        t.add_column(col, justify="right")
    for r in report["rows"]:
        row = [str(r["n_hidden"])]
        if report.get("cuda_graphs"):
            row += [ms(r["sparse_eager_step_s"]), ms(r["sparse_graph_step_s"]), ms(r["dense_eager_step_s"]),
                    ms(r["dense_graph_step_s"]), f"{r['step_ratio']:.1f}×", f"{r['eager_step_ratio']:.1f}×"]
        else:
            row += [ms(r["sparse_step_s"]), ms(r["dense_step_s"]), f"{r['step_ratio']:.1f}×"]
        row += [ms(r["sparse_goal_s"]), ms(r["dense_goal_s"]), f"{r['goal_ratio']:.1f}×",
                f"{r['mnist_100_epochs_s']:.0f} s"]
        t.add_row(*row)
    console.print(t)
    console.print("ratio = dense step / sparse step, each in its faster mode"
                  + (" (eager or replayed from a CUDA graph)" if report.get("cuda_graphs") else "")
                  + f"; dense baseline: {report['dense_baseline']}"
                  + (f" (chunks of {report['dense_chunk']} neurons)" if report.get("dense_chunk") else "")
                  + "; the 100-epoch time is 47 steps x 100 epochs x the sparse step (extrapolated).")
    for r in report["rows"]:
        for side in ("sparse", "dense"):
            if r.get(f"{side}_graph_error"):
                console.print(f"  N={r['n_hidden']}: {side} step not capturable as a CUDA graph "
                              f"({r[f'{side}_graph_error']}); eager time used")
    for tg in report["targets"]:
        mark = "[green]PASS[/green]" if tg["pass"] else "[red]FAIL[/red]"
        console.print(f"  {mark} {tg['name']}: {tg['measured']:.3g} (target {tg['bound']})")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="auto", help="auto (default), cpu, cuda or cuda:N")
    parser.add_argument("--neurons", default="100,2000", help="hidden sizes, comma separated (default 100,2000)")
    parser.add_argument("--goal", default="optimised", choices=["optimised", "heuristic", "optimised-sparse"],
                        help="hidden-layer goal (default: the study's optimised goal)")
    parser.add_argument("--batch", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=5, help="timed steps per measurement (median reported)")
    parser.add_argument("--dense-repeats", type=int, default=None,
                        help="timed steps for the dense baseline (default: --repeats on GPU, 2 on CPU)")
    parser.add_argument("--dense-chunk", type=int, default=None,
                        help="neurons per chunk for the dense baseline on the CPU (default 250)")
    parser.add_argument("--dense-all-atoms", action="store_true",
                        help="dense baseline computes all atoms then γ (the public code's approach)")
    parser.add_argument("--data", default=None, help="take the inputs from this data set (default: Gaussian)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--no-graphs", action="store_true",
                        help="on CUDA, time eager steps instead of CUDA-graph replays (both sides)")
    parser.add_argument("--out", default="reports/bench_infomorphic.json", help="JSON report path")
    parser.add_argument("--quick", action="store_true", help="N = 100 only, 2 repeats (a smoke test)")


def main(args: argparse.Namespace) -> int:
    neurons = [int(v) for v in str(args.neurons).split(",") if v.strip()]
    repeats = args.repeats
    if args.quick:
        neurons, repeats = [100], 2
    if not neurons or min(neurons) < 2:
        raise ValueError("--neurons needs sizes >= 2")
    report = run_bench(args.device, neurons, args.goal, args.batch, repeats, args.dense_repeats, args.dense_chunk,
                       args.dense_all_atoms, args.data, args.threads, graphs=False if args.no_graphs else None)
    print_report(report)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(f"JSON report: {out}")
    return 0
