"""The student prediction against the training it predicts, timed in one run on one device.

For one run of the split-head protocol (default: the reference protocol on the chosen data, shared
initialisation, m = 10; ``--quick``: the checks' quick sizes) it times

* **training**: the whole run through the engine with a fresh teacher cache (teacher, student,
  evaluation), and the student's share of it (the distillation phase the prediction stands in for);
* **prediction**: ``limen.verify.subliminal.predict.predict`` on the run's pre-run view (initial student,
  trained teacher, noise law, Adam's settings), median over ``--repeats``; the subsampled-Adam student
  (``limen.verify.subliminal.surrogate``: the prediction of ``predict-student`` on runs whose target is not
  reachable), median over ``--repeats``; the eNTK baseline (the same response with the function target) and the
  exact linearised student (the response's linear model trained by Adam,
  ``limen.verify.subliminal.linear_student``; timed once) for comparison.

Target: each prediction costs at most 10 % of the student's training (and so of the whole run).
Prints a table and writes JSON (``--out``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

RATIO_TARGET = 0.10


def run_bench(data: str = "digits", *, data_dir: str | None = None, device: str = "auto", quick: bool = False,
              m: int = 10, init: str = "A,A,A,A", repeats: int = 3, seed: int = 0) -> dict:
    import torch

    from limen.verify.device import device_name, resolve_device, synchronize
    from limen.verify.runinfo import run_info
    from limen.verify.subliminal import RunConfig, train_group
    from limen.verify.checks import protocol
    from limen.verify.subliminal.engine import TeacherCache, get_data
    from limen.verify.subliminal.linear_student import linearised_student
    from limen.verify.subliminal.predict import predict
    from limen.verify.subliminal.surrogate import subsampled_student

    dev = resolve_device(device)
    sizes = argparse.Namespace(data=data, quick=quick)
    cfg = RunConfig(seed=seed, m=m, init=init, **protocol.base(sizes))
    data_set = get_data(cfg, dev, data_dir)
    synchronize(dev)
    t0 = time.perf_counter()
    recs, models = train_group([cfg], dev, data_root=data_dir, return_models=True, cache=TeacherCache())
    synchronize(dev)
    train_s = time.perf_counter() - t0
    student_s = recs[0]["timings"]["group_student_s"]
    pre = models[0].pre_run()

    def timed(fn):
        out = []
        for _ in range(repeats):
            synchronize(dev)
            t = time.perf_counter()
            fn()
            synchronize(dev)
            out.append(time.perf_counter() - t)
        return statistics.median(out), out

    pred_s, pred_all = timed(lambda: predict(pre, data_set, device=dev))
    entk_s, entk_all = timed(lambda: predict(pre, data_set, target="function", device=dev))
    sub_s, sub_all = timed(lambda: subsampled_student(pre, data_set, device=dev))
    synchronize(dev)
    t = time.perf_counter()
    linearised_student(pre, data_set, device=dev)
    synchronize(dev)
    linearised_s = time.perf_counter() - t
    ratio_student, ratio_run, ratio_sub = pred_s / student_s, pred_s / train_s, sub_s / student_s
    return {
        "config": {k: getattr(cfg, k) for k in ("data", "m", "init", "hidden", "teacher_epochs", "noise_batch",
                                                "noise_steps", "student_epochs")},
        "device": str(dev), "device_name": device_name(dev), "threads": torch.get_num_threads(),
        "train_run_s": train_s, "train_student_s": student_s, "predict_s": pred_s, "predict_all_s": pred_all,
        "entk_s": entk_s, "entk_all_s": entk_all, "linearised_s": linearised_s,
        "subsampled_s": sub_s, "subsampled_all_s": sub_all, "subsampled_ratio_to_student": ratio_sub,
        "linearised_ratio_to_student": linearised_s / student_s, "ratio_to_student": ratio_student, "ratio_to_run": ratio_run,
        "targets": [{"name": "prediction / student training", "measured": ratio_student, "bound": f"≤ {RATIO_TARGET}",
                     "pass": ratio_student <= RATIO_TARGET},
                    {"name": "subsampled-Adam student / student training", "measured": ratio_sub,
                     "bound": f"≤ {RATIO_TARGET}", "pass": ratio_sub <= RATIO_TARGET}],
        "run_info": run_info(dev),
    }


def print_report(report: dict, console=None) -> None:
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    c = report["config"]
    t = Table(title=f"limen bench predict — {report['device_name']} ({report['device']}, {report['threads']} threads), "
                    f"{c['data']}, hidden {tuple(c['hidden'])}, m = {c['m']}, init {c['init']}")
    for col in ("whole run", "student training", "prediction", "eNTK baseline", "prediction / student",
                "prediction / run", "subsampled Adam / student", "exact linearised student / student"):
        t.add_column(col, justify="right")
    t.add_row(f"{report['train_run_s']:.2f} s", f"{report['train_student_s']:.2f} s", f"{report['predict_s']:.3f} s",
              f"{report['entk_s']:.3f} s", f"{100 * report['ratio_to_student']:.1f} %",
              f"{100 * report['ratio_to_run']:.1f} %", f"{100 * report['subsampled_ratio_to_student']:.1f} %",
              f"{100 * report['linearised_ratio_to_student']:.0f} %")
    console.print(t)
    console.print("prediction: Kronecker-factored linear response from the pre-run view; subsampled Adam: the real "
                  "network on a twentieth of the noise (both medians of the repeats); training: the same run through "
                  "the engine with a fresh teacher cache, one member.")
    for tg in report["targets"]:
        mark = "[green]PASS[/green]" if tg["pass"] else "[red]FAIL[/red]"
        console.print(f"  {mark} {tg['name']}: {tg['measured']:.3g} (target {tg['bound']})")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", default="digits", help="digits (default), fashion-mnist, mnist, ...")
    parser.add_argument("--data-dir", default=None, help="folder with the data set's files")
    parser.add_argument("--device", default="auto", help="auto (default), cpu, cuda or cuda:N")
    parser.add_argument("--quick", action="store_true", help="the checks' quick sizes instead of the full protocol")
    parser.add_argument("--m", type=int, default=10, help="aux logits (default 10)")
    parser.add_argument("--init", default="A,A,A,A", help="student init sources (default shared: A,A,A,A)")
    parser.add_argument("--repeats", type=int, default=3, help="timed predictions (median reported)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--json", action="store_true", help="print the JSON report on stdout instead of the table")
    parser.add_argument("--out", default="reports/bench_predict.json", help="JSON report path")


def main(args: argparse.Namespace) -> int:
    import torch

    if args.repeats < 1:
        raise ValueError("--repeats must be at least 1")
    if args.m < 1:
        raise ValueError("--m must be at least 1")
    if args.threads is not None:
        if args.threads < 1:
            raise ValueError("--threads must be at least 1")
        torch.set_num_threads(args.threads)
    out = Path(args.out)
    if out.exists() and out.is_dir():
        raise ValueError(f"--out {out} is a folder; give a file path for the JSON report")
    report = run_bench(args.data, data_dir=args.data_dir, device=args.device, quick=args.quick, m=args.m,
                       init=args.init, repeats=args.repeats)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, default=str) + "\n")
    if args.json:
        print(json.dumps(report, default=str))
    else:
        print_report(report)
        print(f"JSON report: {out}")
    return 0
