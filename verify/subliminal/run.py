"""Sweeps through the road (:mod:`limen.verify.road`): plan, train (and measure) through an executor,
store the records (resumable, shareable between processes), summarise."""

from __future__ import annotations

import functools
import io
import json
import math
from pathlib import Path
from typing import Iterable, Sequence

from ..road import Road
from ..stats import t_interval
from ..versions import subliminal_version
from .config import RunConfig

#: the most runs of one group when they are measured (unless ``max_group`` says otherwise): a group's results are
#: stored together when all of them are done, so this bounds what a killed sweep loses to a few runs' training and
#: measuring, not a whole check's (at full size one run's diagnostics take a minute)
MEASURED_GROUP = 8


def train_and_measure(group: list[RunConfig], *, measures=(), keep_models: bool = False,
                      device: str = "auto", data_root: str | None = None, allow_tf32: bool = False,
                      noise_rng: str = "auto") -> list[dict]:
    """The engine's group function on the road: train ``group`` and measure each run where it trained.

    Runs wherever the executor puts it (a Ray worker, or this process); returns per run its record,
    the values of ``measures`` (:class:`~limen.verify.road.Measure`, on the trained networks and the
    run's data set, on this device) and, with ``keep_models``, the serialised networks. The networks
    are dropped when the function returns. Each result carries the engine and measurement versions of
    the code that computed it (the driver refuses results of other code).
    """
    from .. import subliminal  # the package's train_group: the engine's stable entry point
    from ..device import resolve_device
    from .engine import get_data

    dev = resolve_device(device)
    need_models = bool(measures) or keep_models
    out = subliminal.train_group(group, dev, data_root=data_root, allow_tf32=allow_tf32, noise_rng=noise_rng,
                                 return_models=need_models)
    records, models = out if need_models else (out, [None] * len(group))
    data = get_data(group[0], dev, data_root) if measures else None
    mv = {m.name: m.version for m in measures}  # of the code here, checked by the driver
    return [{"key": rec["key"], "version": subliminal_version(), "record": rec, "measure_versions": mv,
             "measures": {m.name: m(mod, data) for m in measures}, "models": _serialise(mod) if keep_models else None}
            for rec, mod in zip(records, models)]


def _serialise(models) -> bytes:
    import torch

    buf = io.BytesIO()
    torch.save(models, buf)
    return buf.getvalue()


class EngineProducer:
    """The subliminal engine as a producer of the road: ``plan_groups``, :func:`train_and_measure`."""

    name = "subliminal"

    def __init__(self, device: str = "auto", data_root: str | None = None, allow_tf32: bool = False,
                 noise_rng: str = "auto", max_group: int | None = None, memory_budget: int = 8 << 30):
        self.device, self.data_root, self.allow_tf32, self.noise_rng = device, data_root, allow_tf32, noise_rng
        self.max_group, self.memory_budget = max_group, memory_budget

    @property
    def version(self) -> str:
        return subliminal_version()

    def plan(self, configs):
        from .engine import plan_groups

        return plan_groups(configs, max_group=self.max_group, memory_budget=self.memory_budget)

    def group_fn(self, measures, keep_models):
        return functools.partial(train_and_measure, measures=tuple(measures),
                                 keep_models=keep_models, device=self.device, data_root=self.data_root,
                                 allow_tf32=self.allow_tf32, noise_rng=self.noise_rng)

    def measure_kept(self, config, path, measures) -> dict:
        """Measure a finished run from its kept networks (in this process, on ``device``; no training)."""
        import torch

        from ..device import resolve_device
        from .engine import get_data

        models = torch.load(path, weights_only=False)
        dev = resolve_device(self.device)
        data = get_data(config, dev, self.data_root)
        return {m.name: m(models, data) for m in measures}


def run_sweep(configs: Iterable[RunConfig], out: str | Path, device: str = "auto", executor: str = "local",
              progress: bool | None = True, *, executor_options: dict | None = None, data_root: str | None = None,
              allow_tf32: bool = False, noise_rng: str = "auto", max_group: int | None = None,
              memory_budget: int = 8 << 30, description: str = "subliminal runs", measures: Sequence = (),
              keep_models: bool = False, reuse_stale: bool = False, view: str | None = None) -> list[dict]:
    """Train every config the store ``out/results.db`` lacks; return the records of all ``configs`` (in order).

    Goes through the road (:class:`~limen.verify.road.Road`): a config whose record of the current
    engine version is stored is not trained again, so a killed sweep restarted with the same
    arguments loses nothing, and two processes on one ``out`` split the work. With ``measures`` a group holds at
    most ``MEASURED_GROUP`` runs unless ``max_group`` is given. Groups go through
    ``get_executor(executor, **executor_options).map_groups``; the calling process is the only writer
    of the store (one transaction per finished group). ``device`` is resolved where the group runs.
    ``measures``: measurements of the trained networks (names of
    :data:`~limen.verify.road.MEASURES`, ``Measure`` objects or ``(name, function)``), stored apart
    and added to each record under their names; ``keep_models`` saves every run's networks
    (``out/models/``) so that a later measurement needs no training; ``reuse_stale`` takes records of
    other code versions instead of training them again (marked ``"stale": true``); ``view`` names a
    report folder inside ``out`` whose ``records.jsonl`` lists these runs (else ``out/records.jsonl``
    lists every run). ``progress=None`` shows a bar only on a terminal; ``False`` shows nothing.
    ``allow_tf32`` and ``noise_rng`` are passed to ``train_group``.
    """
    configs = list(configs)
    for c in configs:
        if not isinstance(c, RunConfig):
            raise TypeError(f"run_sweep takes RunConfig objects, got {type(c).__name__}")
    if measures and max_group is None:
        max_group = MEASURED_GROUP
    producer = EngineProducer(device, data_root, allow_tf32, noise_rng, max_group, memory_budget)
    road = Road(out, producer, measures, view=view, reuse_stale=reuse_stale, keep_models=keep_models,
                executor=executor, executor_options=executor_options,
                progress=None if progress is None else bool(progress), description=description)
    return road.run(configs)


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
    records = list({r.get("key") or id(r): r for r in records}.values())  # a config asked for twice is one run
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
