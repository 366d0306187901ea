"""Batched subliminal engine vs a one-run-per-call baseline of the same protocol, in one process.

Times, on one device:

* the baseline (:mod:`limen.verify.bench.subliminal_baseline`): DataLoader, one
  model at a time, teacher retrained per run, ``.item()`` every step -- on a
  few runs (``--baseline-runs``; it is slow);
* the engine (``limen.verify.subliminal.run_sweep``) on many runs of the same
  protocol, in two modes:
  - *own teachers*: ``--runs`` runs with distinct seeds, every run trains its teacher;
  - *cached teachers*: an m-sweep (m in 3, 10, 25, 50, 100, 250, as in Figure 2)
    over ``--runs / 6`` seeds, students of one seed sharing that seed's teacher
    (trained once, inside the timing).

It reports runs/s for each, the speed-up over the baseline, the accuracies of
both implementations (same protocol, so they agree within seed noise), the
speed targets of its device class with pass/fail (GPU: >= 50 runs/s with own teachers on >= 100
runs, >= 150 runs/s with cached teachers, >= 500x the baseline, the study grid in <= 600 s;
CPU: >= 5x the baseline), and a *grid estimate*:
the time the ~16,260-run study grid would take, extrapolated from the measured
per-teacher and per-student costs with a FLOP-and-step cost model of each sweep
(an extrapolation, not a measurement), and an *arithmetic ceiling*: the protocol's
matmul FLOPs per run divided by this device's measured float32 matmul rate, which
bounds the seconds per run of any implementation that does the same arithmetic, and
so the speed-up any engine can have over the baseline on this device. Writes
everything as JSON (``--out``).

``--profile FILE`` reruns the cached-teacher mode once more under ``torch.profiler``
(after the timings, so they are unaffected) and writes its operator table, sorted by
device time, to FILE: where the engine's time goes on this device.

``--quick`` runs the engine's quick protocol on both sides (digits, hidden 64-64, noise
batches of 500, 20 teacher epochs; ``limen.verify.subliminal.config.quick_overrides``): the
targets, which are for the default 784-256-256 protocol, are then shown as not applicable.
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import sys
import tempfile
import time
from pathlib import Path

GRID_BUDGET_S = 600.0

# speed targets (default 784-256-256 protocol)
GPU_TARGETS = {"own_runs_per_s": 50.0, "own_min_runs": 100, "cached_runs_per_s": 150.0, "speedup": 500.0,
               "grid_seconds": GRID_BUDGET_S}
CPU_TARGETS = {"speedup": 5.0}


# ----------------------------------------------------------------------------- protocol

def _engine_configs(data: str, overrides: dict, seeds, m_values) -> list:
    """RunConfigs of the protocol: the reference's defaults, changed only by ``overrides`` (the quick protocol)."""
    from limen.verify.subliminal import RunConfig

    return [RunConfig(seed=s, data=data, m=m, **overrides) for s in seeds for m in m_values]


# ----------------------------------------------------------------------------- timing

def _time_engine(configs, device, data_root, tf32, workdir: Path, label: str) -> tuple[float, list[dict]]:
    from limen.verify.device import synchronize
    from limen.verify.subliminal import TEACHER_CACHE, run_sweep

    TEACHER_CACHE.clear()  # every mode trains its own teachers inside its timing
    out = workdir / label
    synchronize(device)
    t0 = time.perf_counter()
    records = run_sweep(configs, out=out, device=str(device), progress=False, data_root=data_root, allow_tf32=tf32)
    synchronize(device)
    seconds = time.perf_counter() - t0
    if len(records) != len(configs):
        raise RuntimeError(f"engine returned {len(records)} records for {len(configs)} runs ({label})")
    return seconds, records


def _mean(values) -> float | None:
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else None


_PHASES = {"teacher": "group_teacher_s", "student": "group_student_s", "eval": "group_eval_s"}


def _phases(records, groups) -> dict | None:
    """The engine's own per-group phase timers, summed over groups (host timers: indicative on CUDA)."""
    from limen.verify.records import config_key

    by_key = {r["key"]: r.get("timings", {}) for r in records}
    first = [by_key.get(config_key(g[0]), {}) for g in groups]
    if not all(all(k in t for k in _PHASES.values()) for t in first):
        return None
    return {name: sum(t[key] for t in first) for name, key in _PHASES.items()}


def _mode_summary(configs, seconds, records, n_teachers, groups) -> dict:
    acc_t = [r["metrics"].get("teacher_final_acc") for r in records]
    acc_s = [r["metrics"].get("student_final_acc") for r in records]
    return {"runs": len(configs), "teachers": n_teachers, "groups": len(groups), "seconds": seconds,
            "engine_phase_seconds": _phases(records, groups),
            "runs_per_s": len(configs) / seconds, "mean_teacher_acc": _mean(acc_t), "mean_student_acc": _mean(acc_s),
            "seeds": sorted({c.seed for c in configs}), "m_values": sorted({c.m for c in configs}),
            "m_list": [c.m for c in configs]}


def _unit_costs(own: dict, cached: dict, student_cost) -> tuple[float, float, float, str]:
    """Seconds per teacher, per default-size student training and per run's evaluation (batched).

    Preferred: the engine's own phase timers in the own-teacher mode (every run m = 10, no
    padding): teacher / teachers, student / runs, eval / runs. Without them, solve the two modes'
    end-to-end times (evaluation counted with the student), own: T_a = n_a t_T + sum_i c(m_i) t_S
    and cached: T_b = n_b t_T + sum_j c(m_j) t_S, where c(m) is a student's multiply-adds with aux
    width m relative to m = 10 (ill-conditioned when teachers are cheap; clamped to >= 0).
    """
    ph = own.get("engine_phase_seconds")
    if ph:
        n = own["runs"]
        return ph["teacher"] / own["teachers"], ph["student"] / n, ph["eval"] / n, "engine phase timers"
    n_a, n_b = own["teachers"], cached["teachers"]
    c_a = sum(student_cost(m) for m in own["m_list"])
    c_b = sum(student_cost(m) for m in cached["m_list"])
    det = n_a * c_b - n_b * c_a
    how = "solved from the two modes' end-to-end times"
    if abs(det) < 1e-9 * n_a * c_b:
        return own["seconds"] / n_a / 2, own["seconds"] / c_a / 2, 0.0, how + " (degenerate: split evenly)"
    t_t = (own["seconds"] * c_b - cached["seconds"] * c_a) / det
    t_s = (n_a * cached["seconds"] - n_b * own["seconds"]) / det
    if t_t < 0:  # timing noise: attribute everything to the students
        t_t, t_s = 0.0, min(own["seconds"] / c_a, cached["seconds"] / c_b)
    elif t_s < 0:
        t_t, t_s = min(own["seconds"] / n_a, cached["seconds"] / n_b), 0.0
    return t_t, t_s, 0.0, how


# ----------------------------------------------------------------------------- grid estimate

def _mlp_macs(n_in: int, hidden, heads: int) -> int:
    dims = (n_in, *hidden)
    return sum(a * b for a, b in zip(dims[:-1], dims[1:])) + dims[-1] * heads


def grid_rows() -> list[dict]:
    """The study grid (the reference's figure scripts, 20 seeds; the grids of :mod:`~limen.verify.subliminal.sweeps`)
    as cost rows.

    Each row: runs, distinct teachers, the mean cost of one teacher (multiply-adds per sample x
    training-set size) and of one student (``macs``: multiply-adds per sample; ``steps``: noise
    steps), each relative to the default 784-256-256 (K=10, m=10, 60k images, 5x60 noise steps
    of 1000) teacher and student.
    """
    from limen.verify.subliminal import sweeps as sw

    base = _mlp_macs(784, (256, 256), 20)
    rel = lambda hidden, heads: _mlp_macs(784, hidden, heads) / base  # noqa: E731
    mean = lambda values: sum(values) / len(values)  # noqa: E731
    seeds = 20
    d1, d6, ks = sw.STUDENT_D1, sw.WIDTH_D, sw.EMNIST_K
    s20, s26 = sw.SQRT2_GRID, sw.SQRT2_GRID_26  # Figure 4's noise-step (and m) grids (sorted, no repeats)
    cnn = (28 * 28 * 32 * 9 + 14 * 14 * 128 * 32 * 9 + 1152 * 256 + 256 * 20) / base
    hh = (256, 256)
    # sweep, runs, teachers, teacher cost, student macs, student steps
    rows = [
        ("fig2 init conditions x m", len(sw.INIT_CONDITIONS) * len(sw.M_FIG2) * seeds, 0, 0.0,
         mean([rel(hh, 10 + m) for m in sw.M_FIG2]), 1.0),
        (f"fig3 EMNIST classes K={ks[0]}..{ks[-1]}", len(ks) * seeds, len(ks) * seeds,
         mean([2400 * k / 60000 * rel(hh, k + 50) for k in ks]), mean([rel(hh, k + 50) for k in ks]), 1.0),
        ("fig3 student width D1", 2 * len(d1) * seeds, 0, 0.0,
         mean([rel((d, 256), 10 + m) for d in d1 for m in (10, 50)]), 1.0),
        ("fig3 student -1/+1 layer", 4 * seeds, seeds, 1.0,
         mean([rel(h, 10 + m) for h in ((256,), (256, 256, 256)) for m in (10, 50)]), 1.0),
        ("fig3 MLP teacher -> CNN student", 2 * seeds, seeds, rel((256, 256, 256), 20), cnn, 1.0),
        ("fig4 m x noise steps", len(s20) ** 2 * seeds, 0, 0.0, mean([rel(hh, 10 + m) for m in s20]),
         mean([s / 60 for s in s20])),
        ("fig4 m=1 x noise steps", len(s26) * seeds, 0, 0.0, rel(hh, 11), mean([s / 60 for s in s26])),
        ("fig4 noise steps=1 x m", len(s26) * seeds, 0, 0.0, mean([rel(hh, 10 + m) for m in s26]), 1 / 60),
        ("fig5 head perturbation sigma", 2 * len(sw.SIGMAS) * seeds, 0, 0.0, 1.0, 1.0),
        ("fig6 width D (4 MNIST + 1 EMNIST)", 5 * len(d6) * seeds, 3 * len(d6) * seeds,
         mean([2 * rel((256, d), 20) + 1.88 * rel((256, d), 97) for d in d6]) / 3,
         mean([4 * rel((256, d), 20) + rel((256, d), 97) for d in d6]) / 5, 1.0),
        ("default MNIST teachers (shared by fig2/3/4/5)", 0, seeds, 1.0, 0.0, 0.0),
    ]
    keys = ("sweep", "runs", "teachers", "teacher", "macs", "steps")
    return [dict(zip(keys, r)) for r in rows]


def grid_estimate(t_teacher: float, t_student: float, t_eval: float = 0.0) -> dict:
    """Seconds for the study grid: per sweep, teachers x teacher x t_T + runs x macs x (steps x t_S + t_E)."""
    rows = [{**r, "seconds": r["teachers"] * r["teacher"] * t_teacher
             + r["runs"] * r["macs"] * (r["steps"] * t_student + t_eval)} for r in grid_rows()]
    return {"seconds": sum(r["seconds"] for r in rows), "runs": sum(r["runs"] for r in rows),
            "teachers": sum(r["teachers"] for r in rows), "seconds_per_teacher": t_teacher,
            "seconds_per_student": t_student, "seconds_per_evaluation": t_eval, "rows": rows,
            "method": ("extrapolation, not a measurement: per-teacher, per-student-training and per-run evaluation "
                       "seconds measured on the default protocol (see unit_costs_from), scaled per sweep by "
                       "multiply-adds per sample, training-set size and noise steps relative to the default "
                       "protocol; assumes the measured batched efficiency carries over to every sweep (wide, CNN "
                       "and EMNIST groups may batch less well)")}


def profile_engine(configs, device, data_root, tf32, workdir: Path, path: Path, rows: int = 40) -> None:
    """Run ``configs`` under ``torch.profiler`` and write the operator table (by device time) to ``path``."""
    from torch.profiler import ProfilerActivity, profile

    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=acts) as prof:
        _time_engine(configs, device, data_root, tf32, workdir, "profile")
    key = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(prof.key_averages().table(sort_by=key, row_limit=rows) + "\n")


# ----------------------------------------------------------------------------- arithmetic ceiling

def run_flops(cfg, n_in: int, n_train: int, n_classes: int) -> dict:
    """Matmul FLOPs of one run of an MLP protocol (2 per multiply-add; element-wise work and evaluation ignored).

    Training a layer costs its forward, weight-gradient and input-gradient products (3 × the
    forward multiply-adds) except the first layer's input gradient (inputs need none):
    ``train(F) = 3F − n_in·h1`` per sample. Teacher: ``epochs · n_train · train(F_K)`` with
    ``F_K`` the body plus the class head. Student step: ``batch · (F_m + train(F_m))``, the
    teacher's forward to its aux logits plus the student's training, ``F_m`` the body plus an
    m-wide aux head.
    """
    first = n_in * cfg.hidden[0]
    f_k = _mlp_macs(n_in, cfg.hidden, n_classes)
    f_m = _mlp_macs(n_in, cfg.hidden, cfg.m)
    teacher = 2 * cfg.teacher_epochs * n_train * (3 * f_k - first)
    student = 2 * cfg.student_epochs * cfg.student_steps_per_epoch * cfg.noise_batch * (f_m + 3 * f_m - first)
    return {"teacher": float(teacher), "student": float(student)}


def matmul_rate(device, cfg, n_in: int, tf32: bool, repeats: int = 5) -> float:
    """Float32 FLOP/s of this device on the protocol's largest product (noise batch × n_in @ n_in × h1).

    Batched over members as the engine does (16 on CUDA, 1 on the CPU, where one product
    already uses every core); the best of ``repeats`` timings.
    """
    import torch

    from limen.verify.device import synchronize

    members = 16 if device.type == "cuda" else 1
    a = torch.rand(members, cfg.noise_batch, n_in, device=device)
    b = torch.rand(members, n_in, cfg.hidden[0], device=device)
    prev = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = tf32
    try:
        torch.bmm(a, b)
        best = math.inf
        for _ in range(repeats):
            synchronize(device)
            t0 = time.perf_counter()
            for _ in range(4):
                torch.bmm(a, b)
            synchronize(device)
            best = min(best, (time.perf_counter() - t0) / 4)
    finally:
        torch.backends.cuda.matmul.allow_tf32 = prev
    return 2.0 * members * cfg.noise_batch * n_in * cfg.hidden[0] / best


def arithmetic_ceiling(flops: dict, rate: float, students_per_teacher: int, baseline_s_per_run: float,
                       engine_s_per_run: dict) -> dict:
    """Least seconds per run at ``rate`` and the largest speed-up over the baseline that allows.

    Own teachers: teacher + student FLOPs per run; cached: the teacher's FLOPs shared by
    ``students_per_teacher`` runs. ``engine_fraction``: floor / the engine's measured seconds
    per run (the share of the device's matmul rate the engine sustains).
    """
    floor = {"own_teachers": (flops["teacher"] + flops["student"]) / rate,
             "cached_teachers": (flops["teacher"] / students_per_teacher + flops["student"]) / rate}
    return {"flops_per_run": flops, "matmul_flop_per_s": rate, "students_per_teacher": students_per_teacher,
            "floor_seconds_per_run": floor,
            "max_speedup": {k: baseline_s_per_run / v for k, v in floor.items()},
            "engine_fraction": {k: floor[k] / engine_s_per_run[k] for k in floor},
            "method": "matmul FLOPs of the protocol (run_flops) / this device's float32 matmul rate measured in "
                      "the same run (matmul_rate); element-wise work, data movement and evaluation are ignored, "
                      "so the floor is optimistic and the speed-up ceiling generous"}


# ----------------------------------------------------------------------------- targets

def _target(name, measured, op, bound, applies=True, note="") -> dict:
    ok = None if (measured is None or not applies) else (measured >= bound if op == ">=" else measured <= bound)
    return {"target": name, "measured": measured, "bound": f"{op} {bound:g}",
            "verdict": "n/a" if ok is None else ("pass" if ok else "fail"), "note": note}


def targets(device_type: str, quick: bool, own: dict, cached: dict, speedup_own: float, grid_s: float,
            ceiling_own: float | None = None) -> list[dict]:
    applies = not quick
    note = "reduced --quick protocol: targets are for the default 784-256-256 protocol" if quick else ""
    if device_type == "cuda":
        few = own["runs"] < GPU_TARGETS["own_min_runs"]
        return [
            _target("own teachers: runs/s (>= 100 runs batched)", own["runs_per_s"], ">=",
                    GPU_TARGETS["own_runs_per_s"], applies and not few,
                    note or (f"only {own['runs']} runs; the target needs >= 100" if few else "")),
            _target("cached teachers: runs/s", cached["runs_per_s"], ">=", GPU_TARGETS["cached_runs_per_s"], applies,
                    note),
            _target("speed-up over baseline (own teachers)", speedup_own, ">=", GPU_TARGETS["speedup"], applies,
                    note or "like for like: both sides train one teacher per run"),
            _target("study grid estimate, seconds", grid_s, "<=", GPU_TARGETS["grid_seconds"], applies,
                    note or "extrapolated, see grid_estimate.method"),
        ]
    cap = f"; arithmetic ceiling on this device {ceiling_own:.1f}x" if ceiling_own else ""
    return [_target("speed-up over baseline (own teachers)", speedup_own, ">=", CPU_TARGETS["speedup"], applies,
                    note or f"target stated for 2 CPU cores; like for like: one teacher per run on both sides{cap}")]


# ----------------------------------------------------------------------------- the benchmark

def run_bench(device: str = "auto", data: str | None = None, data_dir: str | None = None, runs: int | None = None,
              baseline_runs: int | None = None, quick: bool = False, tf32: bool = False,
              m_values: tuple[int, ...] | None = None, profile: str | None = None,
              log=lambda msg: print(msg, file=sys.stderr, flush=True)) -> dict:
    """Run the benchmark and return the report (a JSON-ready dict)."""
    import torch

    from limen.verify.data import load_dataset
    from limen.verify.device import resolve_device
    from limen.verify.records import config_dict
    from limen.verify.runinfo import run_info
    from limen.verify.subliminal import plan_groups, teacher_key

    from .subliminal_baseline import run_baseline

    dev = resolve_device(device)
    cuda = dev.type == "cuda"
    data = data or ("digits" if quick else "fashion-mnist")
    runs = runs or (240 if cuda else (12 if quick else 8))
    baseline_runs = baseline_runs or (3 if cuda else 2)
    if runs < 1 or baseline_runs < 1:
        raise ValueError("--runs and --baseline-runs must be at least 1")
    from limen.verify.subliminal.config import quick_overrides
    from limen.verify.subliminal.sweeps import M_FIG2

    m_values = tuple(m_values or M_FIG2)
    overrides = quick_overrides(data) if quick else {}
    ds = load_dataset(data, root=data_dir)  # CPU copy for the baseline; also fails early if the data are missing
    tf32_prev = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32

    m0 = 10  # the reference's default m
    own_cfgs = _engine_configs(data, overrides, range(runs), (m0,))
    n_seeds = max(1, round(runs / len(m_values)))
    cached_cfgs = _engine_configs(data, overrides, range(n_seeds), m_values)
    warm_cfgs = _engine_configs(data, overrides, (900_000,), (m0,))

    with tempfile.TemporaryDirectory(prefix="limen-bench-") as tmp:
        work = Path(tmp)
        log(f"warm-up: engine, 1 run on {dev}")
        _time_engine(warm_cfgs, dev, data_dir, tf32, work, "warmup")

        log(f"engine, own teachers: {len(own_cfgs)} runs")
        sec, recs = _time_engine(own_cfgs, dev, data_dir, tf32, work, "own")
        own = _mode_summary(own_cfgs, sec, recs, len({teacher_key(c) for c in own_cfgs}), plan_groups(own_cfgs))
        own_by_seed = {r["seed"]: r["metrics"] for r in recs}

        log(f"engine, cached teachers: {len(cached_cfgs)} runs ({n_seeds} seeds x m in {m_values})")
        sec, recs = _time_engine(cached_cfgs, dev, data_dir, tf32, work, "cached")
        cached = _mode_summary(cached_cfgs, sec, recs, len({teacher_key(c) for c in cached_cfgs}),
                               plan_groups(cached_cfgs))
        if profile:
            log(f"profiling the cached-teacher mode -> {profile}")
            profile_engine(cached_cfgs, dev, data_dir, tf32, work, Path(profile))

    base_cfgs = _engine_configs(data, overrides, range(baseline_runs), (m0,))
    base_runs = []
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = tf32
    try:
        for i, cfg in enumerate(base_cfgs):
            log(f"baseline run {i + 1}/{baseline_runs} (seed {cfg.seed})")
            base_runs.append(run_baseline(ds, cfg, dev))
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = tf32_prev
    base_seconds = sum(r["seconds"] for r in base_runs)
    baseline = {"runs": baseline_runs, "seconds": base_seconds, "runs_per_s": baseline_runs / base_seconds,
                "seconds_per_run": [r["seconds"] for r in base_runs],
                "mean_teacher_acc": _mean(r["teacher_final_acc"] for r in base_runs),
                "mean_student_acc": _mean(r["student_final_acc"] for r in base_runs), "per_run": base_runs}

    same = [s for s in range(baseline_runs) if s in own_by_seed]
    accuracy = {
        "seeds": same,
        "baseline_teacher": [r["teacher_final_acc"] for r in base_runs if r["seed"] in own_by_seed],
        "engine_teacher": [own_by_seed[s].get("teacher_final_acc") for s in same],
        "baseline_student": [r["student_final_acc"] for r in base_runs if r["seed"] in own_by_seed],
        "engine_student": [own_by_seed[s].get("student_final_acc") for s in same],
        "note": "same protocol and seeds; the two implementations draw shuffles and noise differently, "
                "so they agree within seed-to-seed spread, not bit for bit",
    }
    speedup = {"own_teachers": own["runs_per_s"] / baseline["runs_per_s"],
               "cached_teachers": cached["runs_per_s"] / baseline["runs_per_s"]}
    n_in, k, hidden = ds.input_dim, ds.n_classes, own_cfgs[0].hidden
    *unit, how = _unit_costs(own, cached, lambda m: _mlp_macs(n_in, hidden, k + m) / _mlp_macs(n_in, hidden, k + m0))
    grid = grid_estimate(*unit)
    grid["unit_costs_from"] = how
    grid["applies"] = not quick
    ceiling = arithmetic_ceiling(run_flops(own_cfgs[0], n_in, len(ds.y_train), k),
                                 matmul_rate(dev, own_cfgs[0], n_in, tf32), len(m_values),
                                 base_seconds / baseline_runs,
                                 {key: 1.0 / mode["runs_per_s"] for key, mode in
                                  (("own_teachers", own), ("cached_teachers", cached))})
    tg = targets(dev.type, quick, own, cached, speedup["own_teachers"], grid["seconds"],
                 ceiling["max_speedup"]["own_teachers"])
    verdicts = [t["verdict"] for t in tg if t["verdict"] != "n/a"]
    return {
        "benchmark": "subliminal",
        "command": "limen bench subliminal " + " ".join(shlex.quote(a) for a in sys.argv[3:])
        if sys.argv[1:3] == ["bench", "subliminal"] else " ".join(map(shlex.quote, sys.argv)),
        "run_info": run_info(dev), "tf32": tf32, "quick": quick, "data": ds.describe(),
        "protocol": {k: v for k, v in config_dict(own_cfgs[0]).items() if k != "seed"},
        "baseline": baseline,
        "engine": {"own_teachers": own, "cached_teachers": cached},
        "speedup": speedup, "accuracy": accuracy, "grid_estimate": grid, "arithmetic_ceiling": ceiling, "targets": tg,
        "passed": (all(v == "pass" for v in verdicts) if verdicts else None),
    }


# ----------------------------------------------------------------------------- output

def _fmt(v, digits=3) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:,.{digits}f}" if abs(v) < 1e4 else f"{v:,.0f}"
    return str(v)


def print_report(report: dict, console=None) -> None:
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    if not console.is_terminal:
        console = Console(width=max(console.width, 150))
    ri = report["run_info"]
    title = (f"limen bench subliminal -- {ri.get('device_name')} ({ri.get('device')}), torch {ri['torch']}, "
             f"{report['data']['name']}, {'quick' if report['quick'] else 'default'} protocol"
             f"{', TF32' if report['tf32'] else ''}")
    t = Table(title=title)
    for col in ("implementation", "runs", "teachers", "seconds", "runs/s", "speed-up", "teacher acc", "student acc"):
        t.add_column(col, justify="left" if col == "implementation" else "right")
    b = report["baseline"]
    t.add_row("one run per call (baseline)", str(b["runs"]), str(b["runs"]), _fmt(b["seconds"], 2),
              _fmt(b["runs_per_s"]), "1", _fmt(b["mean_teacher_acc"]), _fmt(b["mean_student_acc"]))
    for key, label in (("own_teachers", "engine, own teachers"), ("cached_teachers", "engine, cached teachers (m-sweep)")):
        e = report["engine"][key]
        t.add_row(label, str(e["runs"]), str(e["teachers"]), _fmt(e["seconds"], 2), _fmt(e["runs_per_s"], 1),
                  f"{report['speedup'][key]:,.1f}x", _fmt(e["mean_teacher_acc"]), _fmt(e["mean_student_acc"]))
    console.print(t)
    for key, label in (("own_teachers", "own teachers"), ("cached_teachers", "cached teachers")):
        ph = report["engine"][key]["engine_phase_seconds"]
        if ph:
            console.print(f"engine phases, {label} (its own host timers, indicative on CUDA): "
                          + ", ".join(f"{k} {v:.2f} s" for k, v in ph.items()))

    g = report["grid_estimate"]
    console.print(f"Grid estimate (extrapolated, not measured): the ~{g['runs']:,}-run study grid "
                  f"({g['teachers']:,} teachers) in about {g['seconds']:,.0f} s = {g['seconds'] / 60:,.1f} min "
                  f"(per default-size run, batched: teacher {g['seconds_per_teacher']:.4f} s, student training "
                  f"{g['seconds_per_student']:.4f} s, evaluation {g['seconds_per_evaluation']:.4f} s; "
                  f"from {g['unit_costs_from']}).")
    c = report.get("arithmetic_ceiling")
    if c:
        fl, mx, fr = c["floor_seconds_per_run"], c["max_speedup"], c["engine_fraction"]
        console.print(f"Arithmetic ceiling: {c['flops_per_run']['teacher'] / 1e9:,.4g} GFLOP per teacher + "
                      f"{c['flops_per_run']['student'] / 1e9:,.4g} GFLOP per student at this device's measured "
                      f"{c['matmul_flop_per_s'] / 1e9:,.4g} GFLOP/s (float32 matmul): at least {fl['own_teachers']:.4g} s per run "
                      f"with its own teacher ({fl['cached_teachers']:.4g} s with {c['students_per_teacher']} "
                      f"students per teacher), so at most {mx['own_teachers']:,.1f}x / {mx['cached_teachers']:,.1f}x "
                      f"the baseline; the engine runs at {100 * fr['own_teachers']:.0f} % / "
                      f"{100 * fr['cached_teachers']:.0f} % of that rate.")
    tt = Table(title="speed targets")
    for col in ("target", "bound", "measured", "verdict", "note"):
        tt.add_column(col)
    colour = {"pass": "green", "fail": "red", "n/a": "yellow"}
    for row in report["targets"]:
        tt.add_row(row["target"], row["bound"], _fmt(row["measured"], 1),
                   f"[{colour[row['verdict']]}]{row['verdict']}[/]", row["note"])
    console.print(tt)
    a = report["accuracy"]
    if a["seeds"]:
        console.print("Same seeds, both implementations (teacher / student final test accuracy): " + "; ".join(
            f"seed {s}: baseline {bt:.3f}/{bs:.3f}, engine {_fmt(et)}/{_fmt(es)}"
            for s, bt, et, bs, es in zip(a["seeds"], a["baseline_teacher"], a["engine_teacher"],
                                         a["baseline_student"], a["engine_student"])))


# ----------------------------------------------------------------------------- CLI

def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="auto", help="auto (default), cpu, cuda or cuda:N")
    parser.add_argument("--data", default=None, choices=["digits", "fashion-mnist", "mnist"],
                        help="data set (default: fashion-mnist; digits with --quick)")
    parser.add_argument("--data-dir", default=None, help="folder to look for the data set in first")
    parser.add_argument("--runs", type=int, default=None,
                        help="engine runs per mode (default: 240 on CUDA, 8 on CPU, 12 with --quick on CPU)")
    parser.add_argument("--baseline-runs", type=int, default=None,
                        help="baseline runs to time (default: 3 on CUDA, 2 on CPU; the baseline is slow)")
    parser.add_argument("--quick", action="store_true",
                        help="the quick protocol on both sides (digits, hidden 64-64, noise batches of 500)")
    parser.add_argument("--m-values", default=None,
                        help="aux widths of the cached-teacher m-sweep, comma list (default: Figure 2's grid, "
                             "sweeps.M_FIG2)")
    parser.add_argument("--tf32", action="store_true", help="allow TF32 matmuls on CUDA, on both sides")
    parser.add_argument("--out", default="reports/bench_subliminal.json", help="JSON report path")
    parser.add_argument("--profile", default=None, metavar="FILE",
                        help="also run the cached-teacher mode under torch.profiler (untimed) and write its "
                             "operator table to FILE")


def main(args: argparse.Namespace) -> int:
    m_values = None
    if args.m_values is not None:
        try:
            m_values = tuple(int(v) for v in args.m_values.split(",") if v.strip())
        except ValueError as exc:
            raise ValueError(f"--m-values must be comma-separated integers, got {args.m_values!r}") from exc
        if not m_values:
            raise ValueError("--m-values needs at least one value")
    report = run_bench(device=args.device, data=args.data, data_dir=args.data_dir, runs=args.runs,
                       baseline_runs=args.baseline_runs, quick=args.quick, tf32=args.tf32, m_values=m_values,
                       profile=args.profile)
    print_report(report)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(f"report written to {out}")
    return 0


if __name__ == "__main__":  # python -m limen.verify.bench.subliminal ...
    _parser = argparse.ArgumentParser(prog="python -m limen.verify.bench.subliminal", description=__doc__,
                                      formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(_parser)
    sys.exit(main(_parser.parse_args()))
