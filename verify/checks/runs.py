"""Running a check's experiments with resume: records keyed by config in ``records.jsonl``."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Callable, Sequence

from limen.verify.records import ResultStore, config_dict, config_key


def run_configs(configs: Sequence, path: str | Path, fn: Callable[[object], dict], *,
                progress: bool = False, description: str = "runs") -> list[dict]:
    """Records for ``configs`` in order: finished ones read from ``path``, the rest computed by ``fn``.

    ``fn(config) -> metrics dict``; each new record ``{"key", "config", "metrics", "run_info"}``
    is appended to the store as soon as it finishes, so an interrupted check resumes.
    """
    from limen.verify.progress import progress as bar
    from limen.verify.runinfo import run_info

    store = ResultStore(path)
    have = {r["key"]: r for r in store.records() if "key" in r}
    todo = [c for c in configs if config_key(c) not in have]
    if todo:
        info = run_info()
        with (bar(len(todo), description) if progress else contextlib.nullcontext()) as tick:
            for cfg in todo:
                rec = {"key": config_key(cfg), "config": config_dict(cfg), "metrics": fn(cfg), "run_info": info}
                store.append(rec)
                have[rec["key"]] = rec
                if tick is not None:
                    tick.advance()
    return [have[config_key(c)] for c in configs]
