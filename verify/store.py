"""The results store: one SQLite database per output folder, ``OUT/results.db``.

Tables (SQLite in WAL mode; every write is one transaction, so a killed process leaves
either all of a group's results or none of them):

* ``runs(key, version, producer, record, stale)`` -- one finished run; unique per
  (config key, code version), so results of other code are kept but never taken for current
  ones (:mod:`limen.verify.versions`). ``stale`` marks a row reused on request
  (``--reuse-stale``) or imported from an old ``records.jsonl``.
* ``measurements(key, run_version, name, version, value)`` -- values of named measurements
  of a run's networks, apart from the engine's metrics: adding a measurement to finished
  runs, or a new version of one, writes here without touching ``runs``.
* ``claims(item, owner, expires)`` -- leases: the process that holds an item is training
  it. Others on the same store skip it; a lease that is not renewed (its holder died)
  expires after ``lease_s`` seconds, at once when the holder was a process of this
  host that no longer exists, and the item is taken again.
* ``members(view, key)`` -- which runs a report folder (a check) uses, for its export.

A folder with an old ``records.jsonl`` (and ``*/records.jsonl``: the layout of check
reports) is imported when its database is first opened: those rows have the code version
``legacy`` and are stale (a bad line stops the import with its file and line number; the
next open imports again). Exports (:meth:`Store.export_jsonl`, :meth:`Store.export_parquet`)
write one line per run, the newest row of each key, for other tools; :func:`load_records`
reads any of them into a pandas DataFrame.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import secrets
import sqlite3
import sys
import threading
import time
from pathlib import Path
from typing import Iterable, Iterator, Sequence

from .records import ResultStore, json_default

DB_FILE = "results.db"
EXPORT_FILE = "records.jsonl"
LEGACY = "legacy"
LEASE_S = 60.0
#: how long a connection waits for another process's lock before it gives up
BUSY_S = 60.0
#: top-level fields of a record that belong to the run itself; any other field of an old record is a measurement
RUN_FIELDS = frozenset({"key", "config", "seed", "metrics", "timings", "run_info", "code_version", "producer",
                        "stale", "measure_versions"})

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, key TEXT NOT NULL, version TEXT NOT NULL, producer TEXT NOT NULL,
    record TEXT NOT NULL, stale INTEGER NOT NULL DEFAULT 0, created REAL NOT NULL, UNIQUE (key, version));
CREATE TABLE IF NOT EXISTS measurements (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, key TEXT NOT NULL, run_version TEXT NOT NULL, name TEXT NOT NULL,
    version TEXT NOT NULL, value TEXT NOT NULL, created REAL NOT NULL, UNIQUE (key, run_version, name, version));
CREATE TABLE IF NOT EXISTS claims (item TEXT PRIMARY KEY, owner TEXT NOT NULL, expires REAL NOT NULL);
CREATE TABLE IF NOT EXISTS members (seq INTEGER PRIMARY KEY AUTOINCREMENT, view TEXT NOT NULL, key TEXT NOT NULL,
    UNIQUE (view, key));
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


def check_out(path: str | os.PathLike, what: str = "--out") -> Path:
    """``path`` as a folder results can be written to, or a ValueError saying why not (nothing is created)."""
    p = Path(path)
    for q in (p, *p.parents):
        if q.exists():
            if not q.is_dir():
                where = "" if q == p else f" (its part {q} is)"
                raise ValueError(f"{what} {p} is a file, not a folder{where}; give a folder for the results")
            if not os.access(q, os.W_OK | os.X_OK):
                raise ValueError(f"{what} {p}: no permission to write in {q}")
            return p
    return p


def _alive(owner: str) -> bool:
    """False when ``owner`` (``host:pid:token``) was a process of this host that has ended."""
    host, _, rest = owner.partition(":")
    if host != platform.node():
        return True
    try:
        os.kill(int(rest.split(":", 1)[0]), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, ValueError):
        return True
    return True


def _void(owner: str, expires: float, now: float) -> bool:
    """A lease nobody holds any more: expired, or of a process of this host that has ended."""
    return expires < now or not _alive(owner)


def _chunks(seq: Sequence, n: int = 500) -> Iterator[Sequence]:
    for i in range(0, len(seq), n):
        yield seq[i:i + n]


def _leases(db: sqlite3.Connection, items: Sequence[str]) -> dict[str, tuple[str, float]]:
    """``{item: (owner, expires)}`` of the leases recorded for ``items``."""
    held = {}
    for part in _chunks(items):
        q = f"SELECT item, owner, expires FROM claims WHERE item IN ({','.join('?' * len(part))})"
        held.update({i: (o, e) for i, o, e in db.execute(q, list(part))})
    return held


class Store:
    """The SQLite results store of one folder (module docstring); use as a context manager or :meth:`close`."""

    def __init__(self, folder: str | os.PathLike, *, lease_s: float = LEASE_S):
        self.folder = check_out(folder)
        self.path = self.folder / DB_FILE
        self.lease_s = float(lease_s)
        self.owner = f"{platform.node()}:{os.getpid()}:{secrets.token_hex(4)}"
        self._beat: threading.Thread | None = None
        self._stop = threading.Event()
        self.folder.mkdir(parents=True, exist_ok=True)
        self._db = self._connect()
        if self._db.execute("SELECT value FROM meta WHERE name = 'imported'").fetchone() is None:
            self._import_legacy()  # until it has succeeded once (a bad line stops it; the next open retries)
            with self._tx() as db:
                db.execute("INSERT OR REPLACE INTO meta (name, value) VALUES ('imported', ?)", (str(time.time()),))

    # -- connection ------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        """A connection in WAL mode, with the tables.

        Switching a new file to WAL takes an exclusive lock that SQLite can refuse without
        waiting out the busy timeout while another process opens the same file, so that one
        step is retried until ``BUSY_S`` has passed.
        """
        db = sqlite3.connect(self.path, timeout=BUSY_S, isolation_level=None, check_same_thread=False)
        deadline = time.monotonic() + BUSY_S
        while True:
            try:
                db.execute("PRAGMA journal_mode=WAL")
                break
            except sqlite3.OperationalError as err:
                if "locked" not in str(err) or time.monotonic() > deadline:
                    db.close()
                    raise
                time.sleep(0.02)
        db.execute("PRAGMA synchronous=FULL")
        db.executescript(_SCHEMA)
        return db

    @contextlib.contextmanager
    def _tx(self, db: sqlite3.Connection | None = None) -> Iterator[sqlite3.Connection]:
        """One write transaction (``BEGIN IMMEDIATE``: writers queue instead of failing)."""
        db = db or self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def close(self) -> None:
        self.stop_heartbeat()
        self._db.close()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- reading ---------------------------------------------------------------

    def versions(self, keys: Iterable[str]) -> dict[str, list[str]]:
        """Code versions stored per key, newest first."""
        out: dict[str, list[str]] = {}
        for part in _chunks(list(dict.fromkeys(keys))):
            q = f"SELECT key, version FROM runs WHERE key IN ({','.join('?' * len(part))}) ORDER BY seq DESC"
            for key, version in self._db.execute(q, list(part)):
                out.setdefault(key, []).append(version)
        return out

    def measured(self, keys: Iterable[str]) -> dict[tuple[str, str, str], set[str]]:
        """``(key, run_version, name) -> {versions}`` of the stored measurements of ``keys``."""
        out: dict[tuple[str, str, str], set[str]] = {}
        for part in _chunks(list(dict.fromkeys(keys))):
            q = (f"SELECT key, run_version, name, version FROM measurements "
                 f"WHERE key IN ({','.join('?' * len(part))})")
            for key, rv, name, version in self._db.execute(q, list(part)):
                out.setdefault((key, rv, name), set()).add(version)
        return out

    def record(self, key: str, version: str, measures: dict[str, str | None] | None = None) -> dict | None:
        """The run ``(key, version)`` as a record with its measurements, or None.

        ``measures``: name -> measurement version to attach (``None``: the newest stored value);
        default: every measurement stored for the run, newest of each name.
        """
        row = self._db.execute("SELECT record, producer, stale FROM runs WHERE key = ? AND version = ?",
                               (key, version)).fetchone()
        if row is None:
            return None
        rec = json.loads(row[0])
        rec.update({"code_version": version, "producer": row[1]})
        if row[2]:
            rec["stale"] = True
        rows: dict[str, dict[str, str]] = {}  # name -> version -> value, oldest first
        for name, mv, value in self._db.execute(
                "SELECT name, version, value FROM measurements WHERE key = ? AND run_version = ? ORDER BY seq",
                (key, version)):
            rows.setdefault(name, {}).pop(mv, None)
            rows[name][mv] = value
        wanted = {n: None for n in rows} if measures is None else measures
        stored: dict[str, tuple[str, str]] = {}
        for name, mv in wanted.items():
            have = rows.get(name, {})
            if mv is None and have:
                stored[name] = list(have.items())[-1]  # the newest value
            elif mv in have:
                stored[name] = (mv, have[mv])
        for name, (mv, value) in stored.items():
            rec[name] = json.loads(value)
        if stored:
            rec["measure_versions"] = {n: mv for n, (mv, _) in sorted(stored.items())}
        return rec

    def latest(self, view: str | None = None) -> list[dict]:
        """The newest row of every key (of ``view``'s keys, when given), in the order runs were first stored."""
        if view is None:
            newest: dict[str, str] = {}  # keeps each key where it first appeared, with its last (newest) version
            for k, v in self._db.execute("SELECT key, version FROM runs ORDER BY seq"):
                newest[k] = v
            order = list(newest)
        else:
            order = [k for (k,) in self._db.execute("SELECT key FROM members WHERE view = ? ORDER BY seq", (view,))]
            newest = {k: v[0] for k, v in self.versions(order).items()}
        return [r for r in (self.record(k, newest[k]) for k in order if k in newest) if r is not None]

    # -- writing ---------------------------------------------------------------

    def put(self, runs: Sequence[dict] = (), measurements: Sequence[dict] = (), *, view: str | None = None,
            release: Iterable[str] = ()) -> None:
        """Write runs, measurements, view members and release claims, all in one transaction.

        A run is ``{"key", "version", "producer", "record"}``; a measurement ``{"key", "run_version",
        "name", "version", "value"}``. A row that exists already is kept (the first result stands).
        """
        now = time.time()
        run_rows = [(r["key"], r["version"], r["producer"], json.dumps(r["record"], sort_keys=True, default=json_default),
                     int(bool(r.get("stale"))), now) for r in runs]
        meas_rows = [(m["key"], m["run_version"], m["name"], m["version"],
                      json.dumps(m["value"], sort_keys=True, default=json_default), now) for m in measurements]
        keys = list(dict.fromkeys([r["key"] for r in runs] + [m["key"] for m in measurements]))
        with self._tx() as db:
            db.executemany("INSERT OR IGNORE INTO runs (key, version, producer, record, stale, created) "
                           "VALUES (?, ?, ?, ?, ?, ?)", run_rows)
            db.executemany("INSERT OR IGNORE INTO measurements (key, run_version, name, version, value, created) "
                           "VALUES (?, ?, ?, ?, ?, ?)", meas_rows)
            if view is not None:
                db.executemany("INSERT OR IGNORE INTO members (view, key) VALUES (?, ?)", [(view, k) for k in keys])
            db.executemany("DELETE FROM claims WHERE item = ? AND owner = ?", [(i, self.owner) for i in release])

    def add_members(self, view: str, keys: Iterable[str]) -> None:
        with self._tx() as db:
            db.executemany("INSERT OR IGNORE INTO members (view, key) VALUES (?, ?)", [(view, k) for k in keys])

    def mark_stale(self, pairs: Iterable[tuple[str, str]]) -> None:
        """Mark runs ``(key, version)`` as reused although their code version is not the current one."""
        with self._tx() as db:
            db.executemany("UPDATE runs SET stale = 1 WHERE key = ? AND version = ?", list(pairs))

    # -- claims ------------------------------------------------------------------

    def claim(self, items: Iterable[str]) -> set[str]:
        """Take the leases of ``items`` that nobody holds (or whose holder died); return those now held here."""
        items = list(dict.fromkeys(items))
        if not items:
            return set()
        now = time.time()
        got: set[str] = set()
        with self._tx() as db:
            held = _leases(db, items)
            for item in items:
                owner, expires = held.get(item, (None, 0.0))
                if owner is None or owner == self.owner or _void(owner, expires, now):
                    got.add(item)
            db.executemany("INSERT OR REPLACE INTO claims (item, owner, expires) VALUES (?, ?, ?)",
                           [(i, self.owner, now + self.lease_s) for i in got])
        if got:
            self.start_heartbeat()
        return got

    def holders(self, items: Iterable[str]) -> dict[str, str]:
        """Items held by other live processes, and by whom (``host:pid:token``)."""
        items = list(dict.fromkeys(items))
        now = time.time()
        return {item: owner for item, (owner, expires) in _leases(self._db, items).items()
                if owner != self.owner and not _void(owner, expires, now)}

    def release(self, items: Iterable[str] | None = None) -> None:
        """Give up leases held here (all of them by default)."""
        with self._tx() as db:
            if items is None:
                db.execute("DELETE FROM claims WHERE owner = ?", (self.owner,))
            else:
                db.executemany("DELETE FROM claims WHERE item = ? AND owner = ?", [(i, self.owner) for i in items])

    def purge_void(self) -> int:
        """Delete the leases nobody holds any more -- expired, or of a process of this host that has ended (a
        process killed between claiming and releasing leaves them behind) -- and return how many went."""
        now = time.time()
        with self._tx() as db:
            void = [(i, o) for i, o, e in db.execute("SELECT item, owner, expires FROM claims") if _void(o, e, now)]
            db.executemany("DELETE FROM claims WHERE item = ? AND owner = ?", void)
        return len(void)

    def start_heartbeat(self) -> None:
        """Renew this process's leases every ``lease_s / 4`` seconds from a background thread."""
        if self._beat is not None and self._beat.is_alive():
            return
        self._stop.clear()

        def beat() -> None:
            db = sqlite3.connect(self.path, timeout=BUSY_S, isolation_level=None)
            try:
                while not self._stop.wait(self.lease_s / 4):
                    with self._tx(db):
                        db.execute("UPDATE claims SET expires = ? WHERE owner = ?",
                                   (time.time() + self.lease_s, self.owner))
            finally:
                db.close()

        self._beat = threading.Thread(target=beat, name="limen-store-lease", daemon=True)
        self._beat.start()

    def stop_heartbeat(self) -> None:
        self._stop.set()
        if self._beat is not None:
            self._beat.join(timeout=5)
        self._beat = None

    # -- models kept on disk -------------------------------------------------------

    def models_path(self, key: str, version: str) -> Path:
        return self.folder / "models" / f"{key}-{version}.pt"

    def save_models(self, key: str, version: str, blob: bytes) -> None:
        """Write a run's serialised networks atomically (temporary file, then rename)."""
        path = self.models_path(key, version)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_bytes(blob)
        os.replace(tmp, path)

    # -- import and export -------------------------------------------------------

    def _import_legacy(self) -> None:
        """Rows of ``records.jsonl`` and ``*/records.jsonl`` (old report folders) as stale legacy rows."""
        files = [self.folder / EXPORT_FILE] + sorted(self.folder.glob(f"*/{EXPORT_FILE}"))
        n = 0
        for path in files:
            if not path.is_file():
                continue
            view = None if path.parent == self.folder else path.parent.name
            runs, meas = [], []
            for rec in ResultStore(path).records():
                if "key" not in rec or "metrics" not in rec:
                    continue
                version = rec.get("code_version", LEGACY)
                mvs = rec.get("measure_versions", {})
                runs.append({"key": rec["key"], "version": version, "producer": rec.get("producer", LEGACY),
                             "record": {k: v for k, v in rec.items() if k in RUN_FIELDS - {"code_version", "producer",
                                                                                           "stale", "measure_versions"}},
                             "stale": version == LEGACY or rec.get("stale", False)})
                meas += [{"key": rec["key"], "run_version": version, "name": k, "version": mvs.get(k, LEGACY),
                          "value": v} for k, v in rec.items() if k not in RUN_FIELDS]
            self.put(runs, meas, view=view)
            n += len(runs)
        if n:
            print(f"limen: imported {n} record(s) of {self.folder} from records.jsonl into {self.path}",
                  file=sys.stderr, flush=True)

    def export_jsonl(self, path: str | os.PathLike | None = None, view: str | None = None) -> Path:
        """Write :meth:`latest` as JSON lines (atomically) to ``path`` (default ``OUT/records.jsonl``)."""
        path = Path(path) if path is not None else self.folder / EXPORT_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        with tmp.open("w", encoding="utf-8") as fh:
            for rec in self.latest(view):
                fh.write(json.dumps(rec, sort_keys=True, default=json_default) + "\n")
        os.replace(tmp, path)
        return path

    def export_parquet(self, path: str | os.PathLike, view: str | None = None) -> Path:
        """Write :meth:`latest` as a Parquet table (columns as in :func:`load_records`; needs pyarrow)."""
        frame = records_frame(self.latest(view))
        nested = [c for c in frame.columns if frame[c].map(lambda v: isinstance(v, (list, dict))).any()]
        for c in nested:
            frame[c] = frame[c].map(lambda v: json.dumps(v, default=json_default))
        try:
            table = _arrow_table(frame, nested)
        except ImportError as exc:
            raise ValueError("Parquet export needs pyarrow: pip install pyarrow") from exc
        import pyarrow.parquet as pq

        pq.write_table(table, str(path))
        return Path(path)


def _arrow_table(frame, nested: list[str]):
    import pyarrow as pa

    table = pa.Table.from_pandas(frame, preserve_index=False)
    meta = dict(table.schema.metadata or {})
    meta[b"limen_json_columns"] = json.dumps(nested).encode()
    return table.replace_schema_metadata(meta)


# ----------------------------------------------------------------------------- reading records anywhere

def records_frame(records: Sequence[dict]):
    """Records as a pandas DataFrame, nested fields flattened (``config.m``, ``metrics.tau``, ``check.…``)."""
    import pandas as pd

    frame = pd.json_normalize(list(records), sep=".")
    first = [c for c in ("key", "producer", "code_version", "stale", "seed") if c in frame.columns]
    return frame[first + sorted(c for c in frame.columns if c not in first)]


def load_records(path: str | os.PathLike, *, view: str | None = None):
    """Every run of a results folder, database, ``records.jsonl`` or Parquet export, as a pandas DataFrame.

    One row per run (the newest version of each config), columns flattened: ``key``, ``producer``,
    ``code_version``, ``stale`` (when any is), ``seed``, then sorted ``config.<field>``, ``metrics.<name>``,
    ``run_info.<name>``, ``timings.<name>`` and one column per measured value
    (``check.transfer_fraction``, …). A folder is read from its ``results.db`` when it has
    one, else from its ``records.jsonl``; ``view`` picks the runs of one report folder of a
    check store (e.g. ``view="transfer-fraction"``).
    """
    try:
        import pandas as pd
    except ImportError as exc:
        raise ValueError("load_records needs pandas: pip install pandas") from exc
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"no results at {p}")
    if p.is_dir() and not (p / DB_FILE).exists():
        if not (p / EXPORT_FILE).exists():
            raise FileNotFoundError(f"{p} holds neither {DB_FILE} nor {EXPORT_FILE}")
        p = p / EXPORT_FILE
    if p.is_dir() or p.suffix in (".db", ".sqlite"):
        folder = p if p.is_dir() else p.parent
        with Store(folder) as store:
            return records_frame(store.latest(view))
    if p.suffix == ".parquet":
        import pyarrow.parquet as pq

        table = pq.read_table(str(p))
        nested = json.loads((table.schema.metadata or {}).get(b"limen_json_columns", b"[]"))
        frame = table.to_pandas()
        for c in nested:
            frame[c] = frame[c].map(lambda v: json.loads(v) if isinstance(v, str) else v)
        return frame
    return records_frame(ResultStore(p).records())


__all__ = ["DB_FILE", "EXPORT_FILE", "LEGACY", "Store", "check_out", "load_records", "records_frame"]
