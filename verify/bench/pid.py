"""I^sx estimators against dit and against a dense-histogram goal, measured in one run.

Three measurements, all on this machine in this process:

1. **dit vs sx_pid**: dit 2.3 ``PID_SX`` (one call; it is slow) and ``sx_pid`` (numpy float64,
   median of repeated calls) on the same random 3-source pmf, by default 3×3×3→2 (54 outcomes,
   full support); the atoms are compared too. Target: ≥ 1000× faster.
2. **batched throughput** of ``sx_pid`` over ``--batch`` (10⁴) random 3-source pmfs of shape
   2×2×2×2 and 4×4×4×2: numpy float64 and torch (float64 and float32) on ``--device``, in
   decompositions per second.
3. **sample-based goal** (``limen.estimators.sample.sx_sample_goal``: occupied cells only) against
   the dense-histogram goal (``dense_histogram_goal``: a dense ``(neurons, bins³, |T|)`` histogram,
   then the dense estimator, the public code's approach) on ``--neurons`` 1000 neurons × ``--samples``
   1024 samples × ``--bins`` 20 bins per source, 3 sources, soft binary target, the optimised MNIST
   goal of the infomorphic study (all 18 atoms + H_res weighted). Forward pass only. The dense
   baseline runs in chunks of ``--dense-chunk`` neurons to bound memory (the cost per neuron is
   unchanged). Target: ≥ 20× faster on CPU.

Prints a table and, with ``--json``, the JSON record (also written to ``--out``). ``--quick``
shrinks every size (for tests; its ratios are not the benchmark). Progress goes to stderr, a
line per finished measurement when stderr is not a terminal; ``--no-progress`` silences it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import time
from pathlib import Path
from typing import Callable

import numpy as np

# the optimised MNIST goal of "What should a neuron aim for?" (arXiv 2412.02482), as published in
# Priesemann-Group/Infomorphic_Networks, paper_trivariate/conf/goals/opt_1_100_tpe.yaml (γ order, H_res last)
OPTIMISED_GOAL = [0.3307, 0.9781, -0.9935, 0.4017, 0.2428, 0.6255, 0.4713, 0.0212, 0.0605, -0.9470, -0.0199,
                  -0.9677, -0.6924, 0.4270, 0.9736, 0.7370, -0.1218, -0.2151, 0.0350]
HEURISTIC_GOAL = [0.0, 1.0] + [0.0] * 17
TARGETS = {"dit_speedup": 1000.0, "sample_speedup_cpu": 20.0}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="cpu", help="torch device for the torch parts (cpu, cuda, auto)")
    parser.add_argument("--dit-shape", default="3x3x3x2", help="pmf shape for the dit comparison (default 3x3x3x2)")
    parser.add_argument("--skip-dit", action="store_true", help="skip the dit comparison (it takes ~20-60 s)")
    parser.add_argument("--batch", type=int, default=10_000, help="pmfs per batch for the throughput part")
    parser.add_argument("--neurons", type=int, default=1000)
    parser.add_argument("--samples", type=int, default=1024)
    parser.add_argument("--bins", type=int, default=20)
    parser.add_argument("--dense-chunk", type=int, default=100, help="neurons per dense-baseline call")
    parser.add_argument("--goal", choices=("optimised", "heuristic"), default="optimised")
    parser.add_argument("--repeats", type=int, default=5, help="timed repetitions (median reported)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--quick", action="store_true", help="small sizes (smoke test, not the benchmark)")
    parser.add_argument("--json", action="store_true", help="print the JSON record")
    parser.add_argument("--out", default=None, help="also write the JSON record to this file")
    parser.add_argument("--no-progress", action="store_true", help="no progress output on stderr")


def _quiet(message: str) -> None:
    pass


def _median_time(fn, repeats: int, sync=lambda: None, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    sync()
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        sync()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def _random_pmfs(rng, batch: int, shape: tuple) -> np.ndarray:
    return rng.dirichlet(np.ones(int(np.prod(shape))), size=batch).reshape(batch, *shape)


def bench_dit(shape: tuple, repeats: int, seed: int = 0, done: Callable[[str], None] = _quiet) -> dict:
    import dit
    from dit.pid import PID_SX

    from limen.estimators import lattice, sx_pid

    rng = np.random.default_rng(seed)
    p = _random_pmfs(rng, 1, shape)[0]
    n = len(shape) - 1
    idx = [i for i in np.ndindex(*shape) if p[i] > 0]
    d = dit.Distribution(idx, [float(p[i]) for i in idx])
    t0 = time.perf_counter()
    r = PID_SX(d, sources=[[i] for i in range(n)], target=[n])
    t_dit = time.perf_counter() - t0
    ref = np.array([r.get_pi(nd) for nd in lattice(n).nodes])
    t_ours = _median_time(lambda: sx_pid(p), max(repeats, 20))
    ours = sx_pid(p)
    done(f"dit PID_SX vs sx_pid on {'x'.join(map(str, shape))}")
    return {"shape": list(shape), "outcomes": len(idx), "dit_seconds": t_dit, "sx_pid_seconds": t_ours,
            "speedup": t_dit / t_ours, "max_abs_diff": float(np.abs(ours - ref).max()),
            "target": TARGETS["dit_speedup"], "meets_target": t_dit / t_ours >= TARGETS["dit_speedup"]}


def bench_batched(batch: int, shapes, device: str, repeats: int, seed: int = 1,
                  done: Callable[[str], None] = _quiet) -> list[dict]:
    import torch

    from limen.estimators import sx_pid
    from limen.verify.device import synchronize

    dev = torch.device(device)
    sync = (lambda: synchronize(dev))
    rng = np.random.default_rng(seed)
    rows = []
    for shape in shapes:
        p = _random_pmfs(rng, batch, shape)
        t = _median_time(lambda: sx_pid(p, n_sources=3, validate=False), repeats)
        rows.append({"shape": list(shape), "batch": batch, "impl": "numpy float64", "seconds": t,
                     "per_second": batch / t})
        done(f"batched sx_pid {'x'.join(map(str, shape))}, numpy float64")
        for dtype in (torch.float64, torch.float32):
            pt = torch.as_tensor(p, dtype=dtype, device=dev)
            t = _median_time(lambda: sx_pid(pt, n_sources=3, validate=False), repeats, sync)
            rows.append({"shape": list(shape), "batch": batch, "impl": f"torch {str(dtype)[6:]} {dev.type}",
                         "seconds": t, "per_second": batch / t})
            done(f"batched sx_pid {'x'.join(map(str, shape))}, {rows[-1]['impl']}")
    return rows


def bench_sample(neurons: int, samples: int, bins: int, device: str, repeats: int, chunk: int, goal: str,
                 seed: int = 2, done: Callable[[str], None] = _quiet) -> dict:
    import torch

    from limen.verify.device import synchronize

    try:
        from limen.estimators.sample import dense_histogram_goal, sx_sample_goal
    except ImportError as exc:  # pragma: no cover - the sample estimator is part of the package
        return {"skipped": f"limen.estimators.sample not available ({exc})"}
    dev = torch.device(device)
    sync = (lambda: synchronize(dev))
    g = torch.Generator().manual_seed(seed)
    # binned F, C, L: correlated Gaussian activations cut into `bins` equal bins, soft binary target
    z = torch.randn(neurons, samples, 3, generator=g)
    z[..., 1] = 0.6 * z[..., 0] + 0.8 * z[..., 1]
    b = ((z.clamp(-3, 2.999) + 3) / 6 * bins).long().clamp(0, bins - 1)
    theta = torch.sigmoid(z[..., 0] + 0.5 * z[..., 2])
    pt = torch.stack([1 - theta, theta], dim=-1)
    b, pt = b.to(dev), pt.to(dev)
    gamma = OPTIMISED_GOAL if goal == "optimised" else HEURISTIC_GOAL

    def sparse():
        return sx_sample_goal(b, pt, gamma, bins, validate=False)

    def dense():
        return torch.cat([dense_histogram_goal(b[i:i + chunk], pt[i:i + chunk], gamma, bins, validate=False)
                          for i in range(0, neurons, chunk)])

    with torch.no_grad():
        t_sparse = _median_time(sparse, repeats, sync)
        done("sample-based goal, sx_sample_goal")
        t_dense = _median_time(dense, max(1, min(repeats, 3)), sync)
        a, c = sparse(), dense()
        done("sample-based goal, dense_histogram_goal")
    return {"neurons": neurons, "samples": samples, "bins": bins, "sources": 3, "goal": goal,
            "device": str(dev), "dtype": str(pt.dtype), "dense_chunk": chunk,
            "sparse_seconds": t_sparse, "dense_seconds": t_dense, "speedup": t_dense / t_sparse,
            "max_abs_diff": float((a - c).abs().max()),
            "target": TARGETS["sample_speedup_cpu"] if dev.type == "cpu" else None,
            "meets_target": (t_dense / t_sparse >= TARGETS["sample_speedup_cpu"]) if dev.type == "cpu" else None}


def _fmt_table(rec: dict) -> str:
    lines = [f"limen bench pid  ({rec['info'].get('device_name', rec['info'].get('device'))}, "
             f"{rec['info']['cpu_threads']} CPU threads, {rec['info']['time_utc']})", ""]
    d = rec.get("dit")
    if d:
        lines += ["1. dit PID_SX vs sx_pid (numpy float64), one 3-source pmf",
                  f"   shape {'x'.join(map(str, d['shape']))} ({d['outcomes']} outcomes): dit {d['dit_seconds']:.3f} s, "
                  f"sx_pid {d['sx_pid_seconds'] * 1e3:.3f} ms -> {d['speedup']:,.0f}x "
                  f"(target >= {d['target']:,.0f}x: {'met' if d['meets_target'] else 'NOT met'}); "
                  f"max |diff| {d['max_abs_diff']:.1e}", ""]
    if rec.get("batched"):
        lines += ["2. batched sx_pid throughput (3 sources)",
                  f"   {'shape':10s} {'batch':>7s}  {'implementation':24s} {'seconds':>9s} {'decomp./s':>12s}"]
        for r in rec["batched"]:
            lines.append(f"   {'x'.join(map(str, r['shape'])):10s} {r['batch']:>7d}  {r['impl']:24s} "
                         f"{r['seconds']:9.4f} {r['per_second']:12,.0f}")
        lines.append("")
    s = rec.get("sample")
    if s:
        if "skipped" in s:
            lines.append(f"3. sample-based goal: skipped ({s['skipped']})")
        else:
            tgt = (f" (target >= {s['target']:.0f}x on CPU: {'met' if s['meets_target'] else 'NOT met'})"
                   if s["target"] else "")
            lines += [f"3. sample-based goal vs dense histogram: {s['neurons']} neurons x {s['samples']} samples x "
                      f"{s['bins']} bins/source, 3 sources, {s['goal']} goal, {s['dtype']}, {s['device']}",
                      f"   sx_sample_goal {s['sparse_seconds'] * 1e3:.1f} ms, dense_histogram_goal "
                      f"{s['dense_seconds'] * 1e3:.1f} ms -> {s['speedup']:.1f}x{tgt}; max |diff| {s['max_abs_diff']:.1e}"]
    return "\n".join(lines)


def main(args: argparse.Namespace) -> int:
    import torch

    from limen.verify.device import resolve_device
    from limen.verify.progress import progress
    from limen.verify.runinfo import run_info

    if args.threads:
        torch.set_num_threads(args.threads)
    device = str(resolve_device(args.device)) if args.device == "auto" else args.device
    if args.quick:
        args.dit_shape, args.batch, args.neurons, args.samples, args.bins = "2x2x2x2", 200, 20, 256, 8
        args.repeats, args.dense_chunk = 2, 10
    try:
        dshape = tuple(int(x) for x in args.dit_shape.lower().split("x"))
    except ValueError:
        raise ValueError(f"--dit-shape must look like 3x3x3x2, got {args.dit_shape!r}") from None
    if len(dshape) != 4:
        raise ValueError("--dit-shape must describe a 3-source pmf (4 numbers)")
    rec: dict = {"command": "limen bench pid", "quick": args.quick, "info": run_info(torch.device(device))}
    shapes = [(2, 2, 2, 2), (4, 4, 4, 2)]
    n_items = (0 if args.skip_dit else 1) + 3 * len(shapes) + 2
    with (contextlib.nullcontext(None) if args.no_progress else progress(n_items, "limen bench pid")) as bar:
        done = _quiet if bar is None else (lambda message: bar.advance(1, f"limen bench pid: {message}"))
        if not args.skip_dit:
            rec["dit"] = bench_dit(dshape, args.repeats, done=done)
        rec["batched"] = bench_batched(args.batch, shapes, device, args.repeats, done=done)
        rec["sample"] = bench_sample(args.neurons, args.samples, args.bins, device, args.repeats, args.dense_chunk,
                                     args.goal, done=done)
    text = json.dumps(rec, indent=2, default=str)
    if args.out:
        Path(args.out).write_text(text + "\n")
    print(text if args.json else _fmt_table(rec))
    return 0
