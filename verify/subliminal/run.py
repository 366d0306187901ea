"""Sweeps: plan groups, train them through an executor, write records (resumable), summarise."""

from __future__ import annotations

import functools
import json
import math
from pathlib import Path
from typing import Iterable, Sequence

from ..executors import get_executor
from ..progress import progress as _progress
from ..records import ResultStore, config_key
from ..stats import t_interval
from .config import RunConfig
from .engine import plan_groups, train_group

RECORDS_FILE = "records.jsonl"


def run_sweep(configs: Iterable[RunConfig], out: str | Path, device: str = "auto", executor: str = "local",
              progress: bool | None = True, *, executor_options: dict | None = None, data_root: str | None = None,
              allow_tf32: bool = False, noise_rng: str = "auto", max_group: int | None = None,
              memory_budget: int = 8 << 30, description: str = "subliminal runs") -> list[dict]:
    """Train every config not yet in ``out/records.jsonl``; return the records of all ``configs`` (in order).

    Resume: a config whose :func:`config_key` is already in the store is skipped, so a killed sweep
    restarted with the same arguments loses nothing and duplicates nothing. Groups go through
    ``get_executor(executor, **executor_options).map_groups``; the calling process is the only writer
    of the store (one atomic append per finished group). ``device`` is resolved where the group runs.
    ``progress=None`` shows a bar only on a terminal; ``False`` shows nothing. ``allow_tf32`` and
    ``noise_rng`` are passed to :func:`train_group` (see there).
    """
    configs = list(configs)
    for c in configs:
        if not isinstance(c, RunConfig):
            raise TypeError(f"run_sweep takes RunConfig objects, got {type(c).__name__}")
    store = ResultStore(Path(out) / RECORDS_FILE)
    done = store.done_keys()
    todo, seen = [], set(done)
    for c in configs:
        k = config_key(c)
        if k not in seen:
            seen.add(k)
            todo.append(c)
    groups = plan_groups(todo, max_group=max_group, memory_budget=memory_budget)
    ex = get_executor(executor, **(executor_options or {}))
    fn = functools.partial(train_group, device=device, data_root=data_root, allow_tf32=allow_tf32, noise_rng=noise_rng)
    if todo:
        enabled = None if progress is None else bool(progress)
        if progress is False:
            ex.map_groups(groups, fn=fn, on_done=lambda g, recs: store.extend(recs))
        else:
            with _progress(len(todo), description, enabled=enabled) as bar:
                note = [description]

                def on_done(group, recs):
                    store.extend(recs)
                    bar.advance(len(recs), note[0])

                def on_failure(group, exc):  # executors with workers (ray): a worker died, its group is retried
                    note[0] = f"{description} ({ex.failures} worker failure(s), retried)"
                    bar.advance(0, note[0])
                    if user_on_failure is not None:
                        user_on_failure(group, exc)
                user_on_failure = getattr(ex, "on_failure", None)
                if hasattr(ex, "on_failure"):
                    ex.on_failure = on_failure
                try:
                    ex.map_groups(groups, fn=fn, on_done=on_done)
                finally:
                    if hasattr(ex, "on_failure"):
                        ex.on_failure = user_on_failure
    by_key = {r["key"]: r for r in store.records()}
    return [by_key[config_key(c)] for c in configs if config_key(c) in by_key]


# ----------------------------------------------------------------------------- summaries

def mean_ci(values: Sequence[float]) -> tuple[float, float, int]:
    """Mean and 95 % CI half-width (Student t over seeds) of the finite values, and their count."""
    return t_interval([float(v) for v in values if v is not None and math.isfinite(v)])


def varying_fields(records: Sequence[dict]) -> list[str]:
    """Config fields (except seed) that take more than one value across records."""
    fields: dict[str, set] = {}
    for r in records:
        for k, v in r["config"].items():
            if k != "seed":
                fields.setdefault(k, set()).add(json.dumps(v, sort_keys=True))
    return [k for k, vals in fields.items() if len(vals) > 1]


DEFAULT_SUMMARY_METRICS = ("teacher_final_acc", "student_final_acc", "oracle_acc", "agreement", "cka_test", "tau",
                           "student_final_aux_mse")


def summarize(records: Sequence[dict], by: Sequence[str] | None = None,
              metrics: Sequence[str] = DEFAULT_SUMMARY_METRICS) -> list[dict]:
    """One row per combination of the ``by`` config fields (default: every field that varies, except
    the seed) with ``mean``, ``ci95`` and ``n`` over seeds for each metric."""
    by = list(varying_fields(records) if by is None else by)
    rows: dict[str, dict] = {}
    for r in records:
        key_vals = {k: r["config"].get(k) for k in by}
        k = json.dumps(key_vals, sort_keys=True)
        rows.setdefault(k, {"group": key_vals, "records": []})["records"].append(r)
    out = []
    for row in rows.values():
        entry = {**row["group"], "n": len(row["records"])}
        for mname in metrics:
            mean, ci, _ = mean_ci([rec["metrics"].get(mname) for rec in row["records"]])
            entry[mname] = {"mean": mean, "ci95": ci}
        out.append(entry)
    return out


def _short(v) -> str:
    if isinstance(v, str) and "," in v and ":" in v:
        return ",".join(p.split(":", 1)[1] for p in v.split(","))
    if isinstance(v, list):
        return json.dumps(v, separators=(",", ":"))
    return str(v)


def summary_markdown(rows: Sequence[dict], metrics: Sequence[str] = DEFAULT_SUMMARY_METRICS) -> str:
    """A Markdown table of :func:`summarize` rows (mean ± 95 % CI)."""
    if not rows:
        return "(no records)\n"
    by = [k for k in rows[0] if k != "n" and k not in metrics]
    head = by + ["n"] + list(metrics)
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [_short(r[k]) for k in by] + [str(r["n"])]
        for mname in metrics:
            v = r[mname]
            if not math.isfinite(v["mean"]):
                cells.append("–")
            elif math.isfinite(v["ci95"]):
                cells.append(f"{v['mean']:.4g} ± {v['ci95']:.2g}")
            else:
                cells.append(f"{v['mean']:.4g}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_summary(records: Sequence[dict], out: str | Path, by: Sequence[str] | None = None,
                  metrics: Sequence[str] = DEFAULT_SUMMARY_METRICS) -> str:
    """Write ``out/summary.json`` and ``out/summary.md``; return the Markdown table."""
    rows = summarize(records, by, metrics)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(rows, indent=1, sort_keys=True, default=str) + "\n")
    md = summary_markdown(rows, metrics)
    (out / "summary.md").write_text(md)
    return md
