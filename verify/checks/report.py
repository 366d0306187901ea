"""Report folder (``summary.json``) and the terminal tables of ``limen check``."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Sequence

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from .core import CheckResult, Verdict, fmt

STYLE = {Verdict.PASS: "bold green", Verdict.FAIL: "bold red", Verdict.INCONCLUSIVE: "bold yellow",
         Verdict.INFO: "dim"}


def _json_safe(obj):
    if isinstance(obj, float) and not math.isfinite(obj):
        return None if math.isnan(obj) else ("inf" if obj > 0 else "-inf")
    if isinstance(obj, dict):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    if hasattr(obj, "tolist"):
        return _json_safe(obj.tolist())
    if isinstance(obj, Path):
        return str(obj)
    return obj


def write_summary(result: CheckResult, out: str | Path) -> Path:
    """Write ``out/summary.json`` (rows, verdicts, config, notes, plots, run_info); returns its path."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    payload = result.to_dict()
    if (out / "records.jsonl").exists():
        payload["records"] = "records.jsonl"
    path = out / "summary.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(_json_safe(payload), indent=2, sort_keys=False) + "\n")
    tmp.replace(path)
    return path


def result_json(result: CheckResult, folder: Path) -> dict:
    """The machine-readable summary of one check for ``limen check --json`` (JSON-safe: ±inf as strings).

    Rows carry ``predicted``, ``measured`` (point estimate), ``interval`` ([lo, hi], 95 %), ``n``,
    ``method``, ``tolerance`` and ``verdict``; the per-run values are in ``summary.json`` of ``report``.
    """
    rows = [{"quantity": r.quantity, "predicted": r.to_dict()["predicted"],
             "measured": r.measured.mean if r.measured else None,
             "interval": [r.measured.lo, r.measured.hi] if r.measured else None,
             "n": r.measured.n if r.measured else None, "method": r.measured.method if r.measured else None,
             "tolerance": r.tolerance, "verdict": r.verdict, "detail": r.detail} for r in result.rows]
    return _json_safe({"name": result.preset, "title": result.title, "verdict": result.verdict,
                       "counts": result.counts(), "elapsed_s": result.elapsed_s, "rows": rows,
                       "notes": list(result.notes), "plots": [str(folder / p) for p in result.plots],
                       "report": str(folder), "summary": str(folder / "summary.json")})


def table(result: CheckResult) -> Table:
    """The check's rich table: quantity, predicted, measured, tolerance, verdict."""
    t = Table(title=f"[bold]{escape(result.preset)}[/bold] — {escape(result.title)}", title_justify="left",
              show_lines=False, expand=False)
    t.add_column("quantity", overflow="fold", max_width=44)
    t.add_column("predicted", justify="right", overflow="fold", max_width=22)
    t.add_column("measured (mean ± 95% CI)", justify="right", overflow="fold", max_width=34)
    t.add_column("tolerance", justify="right", overflow="fold", max_width=20)
    t.add_column("verdict", justify="center")
    for r in result.rows:
        t.add_row(*(Text(v) for v in (r.quantity, fmt(r.predicted), r.measured.text() if r.measured else "—",
                                       r.tolerance)), Text(r.verdict, style=STYLE[r.verdict]))
    return t


def print_result(result: CheckResult, console: Console | None = None, *, out: Path | None = None) -> None:
    console = console or Console()
    console.print(table(result))
    for note in result.notes:
        console.print(f"  [dim]•[/dim] {escape(note)}", highlight=False)
    c = result.counts()
    where = f" → {escape(str(out))}" if out else ""
    console.print(f"  [{STYLE[result.verdict]}]{result.verdict}[/]: {c['PASS']} pass, {c['FAIL']} fail, "
                  f"{c['INCONCLUSIVE']} inconclusive ({result.elapsed_s or 0:.1f} s){where}\n", highlight=False)


def overview(results: Sequence[tuple[str, CheckResult | None, str | None]]) -> Table:
    """One line per preset for ``limen check all``: (name, result or None, error message or None)."""
    t = Table(title="[bold]limen check[/bold] — overview", title_justify="left")
    for col in ("check", "verdict", "pass", "fail", "inconclusive", "time (s)"):
        t.add_column(col, justify="left" if col == "check" else "right")
    for name, res, err in results:
        if res is None:
            t.add_row(name, Text("ERROR", style="bold magenta"), "", "", "", "", end_section=False)
            continue
        c = res.counts()
        t.add_row(name, Text(res.verdict, style=STYLE[res.verdict]), str(c["PASS"]), str(c["FAIL"]),
                  str(c["INCONCLUSIVE"]), f"{res.elapsed_s or 0:.1f}")
    return t
