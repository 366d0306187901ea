"""Code versions: which source produced a stored number.

A producer of numbers (the subliminal engine, a check's own experiment, a measurement)
has a *version*: the hash of :data:`SCHEMA` and of the source text of the modules that
compute its numbers (:func:`source_version`). The results store keys every record by
(config, version), so numbers from other code are never served as current ones; any
edit of those modules, even a comment, makes a new version (conservative, never wrong).
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
from pathlib import Path

#: Layout of stored records and measurement values; bump it when a field changes meaning.
SCHEMA = 1

#: The modules whose source fixes the numbers of a subliminal-engine record.
SUBLIMINAL_SOURCES = ("limen.verify.subliminal.config", "limen.verify.subliminal.engine",
                      "limen.verify.subliminal.evaluate", "limen.verify.subliminal.metrics",
                      "limen.verify.subliminal.nets", "limen.verify.subliminal.noise",
                      "limen.verify.subliminal.teachers", "limen.verify.subliminal.training", "limen.verify.data")


def _top_level(name: str) -> tuple[Path, list[str]]:
    """Folder of the package ``limen.<part>`` and the remaining dotted parts (imports no submodule)."""
    parts = name.split(".")
    if len(parts) < 2 or parts[0] != "limen":
        raise ValueError(f"source_version takes limen modules (limen.theory, limen.verify.…), got {name!r}")
    spec = importlib.util.find_spec(".".join(parts[:2]))
    if spec is None or not spec.submodule_search_locations:
        raise ValueError(f"no limen package {'.'.join(parts[:2])!r}")
    return Path(list(spec.submodule_search_locations)[0]), parts[2:]


def source_files(name: str) -> list[Path]:
    """The ``.py`` files of a limen module (one file) or package (every file below it, sorted)."""
    folder, rest = _top_level(name)
    path = folder.joinpath(*rest)
    if path.is_dir():
        return sorted(path.rglob("*.py"))
    file = path.with_suffix(".py")
    if not file.is_file():
        raise ValueError(f"no source file for module {name!r} (looked for {file})")
    return [file]


@functools.lru_cache(maxsize=None)
def source_version(modules: tuple[str, ...], extra: str = "") -> str:
    """12 hex digits of ``sha256(SCHEMA, extra, the source of every module in modules)``.

    ``extra`` adds anything else that fixes the numbers (a function's name, its parameters).
    """
    h = hashlib.sha256(f"limen schema {SCHEMA}\n{extra}\n".encode())
    for name in sorted(set(modules)):
        for file in source_files(name):
            h.update(f"\n{name}:{file.relative_to(_top_level(name)[0]).as_posix()}\n".encode())
            h.update(file.read_bytes())
    return h.hexdigest()[:12]


def subliminal_version() -> str:
    """Version of the subliminal engine's records (:data:`SUBLIMINAL_SOURCES`)."""
    return source_version(SUBLIMINAL_SOURCES)
