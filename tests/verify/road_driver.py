"""``limen ...`` in a process of its own, every engine training logged: a test helper, not a test.

``python road_driver.py DIR ARGS...`` imports the engine, writes ``DIR/ready-<pid>``, waits for
``DIR/go`` (so that several drivers start their sweeps together), then runs ``limen ARGS`` with
``train_group`` wrapped to append ``<pid> <config key>`` per trained run to ``DIR/trained.log``
(one ``write`` per group, O_APPEND: lines of concurrent drivers do not mix). A driver trains its first
group only once every other driver has claimed one too, or has died: the tiny runs would otherwise let
one driver finish the whole sweep before a descheduled peer claims anything, on a loaded machine.
"""

import os
import sys
import time
from pathlib import Path

import limen.verify.subliminal as sub
import limen.verify.subliminal.engine  # noqa: F401 - loaded before the start signal
from limen.verify.cli import main
from limen.verify.records import config_key

folder = Path(sys.argv[1])
real = sub.train_group
first = True


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def wait_for_peers(timeout: float = 120.0) -> None:
    """Until every driver that signalled ``ready`` holds a claimed group (``working-<pid>``) or is gone."""
    (folder / f"working-{os.getpid()}").touch()
    peers = [int(p.name.split("-", 1)[1]) for p in folder.glob("ready-*")]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all((folder / f"working-{p}").exists() or not _alive(p) for p in peers):
            return
        time.sleep(0.02)


def counted(group, *args, **kwargs):
    global first
    if first:
        first = False
        wait_for_peers()
    fd = os.open(folder / "trained.log", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, "".join(f"{os.getpid()} {config_key(c)}\n" for c in group).encode())
    finally:
        os.close(fd)
    return real(group, *args, **kwargs)


sub.train_group = counted
(folder / f"ready-{os.getpid()}").touch()
while not (folder / "go").exists():
    time.sleep(0.02)
sys.exit(main(sys.argv[2:]))
