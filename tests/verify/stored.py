"""Test helper (not a test): the runs committed to a results store, read while other processes write it."""

import json
import sqlite3
from pathlib import Path


def stored_records(out: Path) -> list[dict]:
    """Records of ``out/results.db`` in the order they were stored (read-only; [] before the tables exist)."""
    if not (Path(out) / "results.db").exists():
        return []
    db = sqlite3.connect(f"file:{Path(out) / 'results.db'}?mode=ro", uri=True, timeout=30)
    try:
        return [json.loads(r) for (r,) in db.execute("SELECT record FROM runs ORDER BY seq")]
    except sqlite3.OperationalError:  # the store is being created
        return []
    finally:
        db.close()
