"""Config keys, and JSON-lines files of records.

:func:`config_key` is the stable identity of a run config (the hash of its canonical JSON,
:func:`config_dict`). :class:`ResultStore` reads and appends JSON-lines files of records
(``records.jsonl`` exports of the results store, :mod:`limen.verify.store`, and other
append-only logs such as a goal search's trials). A line is written with a single ``write``
on a file opened in append mode and then ``fsync``-ed, so a killed process leaves at most
one truncated last line; readers skip (and report) such a line, and
:meth:`ResultStore.append` repairs it before writing. Any other line that is not a JSON
object is an error that names the file and the line.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path
from typing import Any, Iterable, Iterator


def _canonical(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: _canonical(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {str(k): _canonical(v) for k, v in sorted(obj.items(), key=lambda kv: str(kv[0]))}
    if isinstance(obj, (list, tuple)):
        return [_canonical(v) for v in obj]
    return obj


def config_dict(config: Any) -> dict:
    """A config (dataclass or mapping) as a plain, key-sorted JSON-ready dict."""
    out = _canonical(config)
    if not isinstance(out, dict):
        raise TypeError(f"config must be a dataclass or a mapping, got {type(config).__name__}")
    return out


def config_key(config: Any) -> str:
    """Stable 16-hex-digit identity of a run config (sha256 of its canonical JSON)."""
    blob = json.dumps(config_dict(config), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


class ResultStore:
    """A JSONL file of run records keyed by ``record["key"]``."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.skipped_lines = 0

    def __iter__(self) -> Iterator[dict]:
        return iter(self.records())

    def records(self) -> list[dict]:
        """All complete records, in file order; a truncated last line is skipped."""
        if not self.path.exists():
            return []
        out, self.skipped_lines = [], 0
        with self.path.open("r", encoding="utf-8") as fh:
            for number, line in enumerate(fh, 1):
                if not line.endswith("\n"):
                    self.skipped_lines += 1  # killed mid-write; repaired on next append
                    continue
                line = line.strip()
                if not line:
                    continue
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise ValueError(f"{self.path}, line {number}: not a JSON record ({exc.msg} at column "
                                     f"{exc.colno}); repair or delete that line") from None
                if not isinstance(rec, dict):
                    raise ValueError(f"{self.path}, line {number}: a record must be a JSON object, "
                                     f"got {type(rec).__name__}; repair or delete that line")
                out.append(rec)
        return out

    def done_keys(self) -> set[str]:
        """Keys of every finished run."""
        return {r["key"] for r in self.records() if "key" in r}

    def _repair_tail(self) -> None:
        if not self.path.exists() or self.path.stat().st_size == 0:
            return
        with self.path.open("rb+") as fh:
            fh.seek(-1, os.SEEK_END)
            if fh.read(1) == b"\n":
                return
            fh.seek(0)
            fh.truncate(fh.read().rfind(b"\n") + 1)

    def append(self, record: dict) -> None:
        """Append one record atomically (single write + fsync)."""
        self.extend([record])

    def extend(self, records: Iterable[dict]) -> None:
        """Append several records in one write + fsync."""
        lines = "".join(json.dumps(r, sort_keys=True, default=json_default) + "\n" for r in records)
        if not lines:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._repair_tail()
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, lines.encode("utf-8"))
            os.fsync(fd)
        finally:
            os.close(fd)


def json_default(obj: Any) -> Any:
    if hasattr(obj, "tolist"):
        return obj.tolist()  # numpy / torch scalars and arrays
    if isinstance(obj, Path):
        return str(obj)
    if dataclasses.is_dataclass(obj):
        return config_dict(obj)
    raise TypeError(f"cannot serialise {type(obj).__name__} into a results record")
