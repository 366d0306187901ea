"""Provenance recorded with every run: versions, device, host, time."""

from __future__ import annotations

import datetime as _dt
import os
import platform
import subprocess
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

import limen

from .device import device_name


def _git(*args: str) -> str | None:
    root = Path(__file__).resolve().parent.parent
    try:
        out = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


@lru_cache(maxsize=1)
def _git_commit() -> str | None:
    return _git("rev-parse", "--short", "HEAD") or None


def _git_dirty() -> bool | None:
    """Whether the checkout has uncommitted changes to tracked files (then git_commit is not the code that ran;
    the records' code_version, a hash of the sources, still is)."""
    status = _git("status", "--porcelain", "--untracked-files=no")
    return None if status is None else bool(status)


def run_info(device: torch.device | None = None) -> dict:
    """Versions and hardware for a results record (JSON-serialisable)."""
    info = {
        "limen": limen.__version__,
        "git_commit": _git_commit(),
        "git_dirty": _git_dirty(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "host": platform.node(),
        "platform": platform.platform(),
        "cpu_threads": torch.get_num_threads(),
        "time_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "pid": os.getpid(),
    }
    if device is not None:
        info["device"] = str(device)
        info["device_name"] = device_name(device)
    return info
