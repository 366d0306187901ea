"""Progress of long work, on stderr: a live bar on a terminal, plain lines otherwise.

Without a terminal (CI, ``nohup``, a pipe) every finished unit prints a line
``DESCRIPTION: done/total (elapsed)`` -- at most one a second, the latest state
always shown -- and while work goes on a heartbeat line
``DESCRIPTION: done/total, still working (elapsed)`` comes at least every
``interval`` seconds (10 s), so a long unit never leaves a log silent.
"""

from __future__ import annotations

import contextlib
import math
import sys
import threading
import time
from typing import Callable, Iterator, TextIO

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

HEARTBEAT_S = 10.0  #: longest silence of the plain-line display while work goes on
MIN_GAP_S = 1.0     #: shortest gap between two plain lines


@contextlib.contextmanager
def progress(total: int, description: str, *, enabled: bool | None = None, stream: TextIO | None = None,
             interval: float = HEARTBEAT_S, clock: Callable[[], float] = time.monotonic) -> Iterator["Ticker"]:
    """Context manager yielding a :class:`Ticker`; ``advance(n, message)`` reports ``n`` finished units.

    ``enabled=False`` prints nothing; ``True`` or ``None`` show progress on ``stream``
    (default stderr): a bar when it is a terminal, else :class:`PlainLines` with a
    heartbeat every ``interval`` seconds of ``clock``.
    """
    if enabled is False:
        yield Ticker(lambda n, message: None)
        return
    stream = sys.stderr if stream is None else stream
    console = Console(file=stream)
    if console.is_terminal:
        with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                      TimeElapsedColumn(), TimeRemainingColumn(), console=console, transient=False) as bar:
            task = bar.add_task(description, total=total)
            yield Ticker(lambda n, msg: bar.update(task, advance=n, description=msg or description))
        return
    lines = PlainLines(total, description, stream, clock=clock, interval=interval)
    stop = threading.Event()

    def heartbeat() -> None:
        while not stop.wait(min(MIN_GAP_S, interval)):
            lines.beat()

    beat = threading.Thread(target=heartbeat, name="limen-progress", daemon=True)
    beat.start()
    try:
        yield Ticker(lines.advance)
    finally:
        stop.set()
        beat.join()
        lines.flush()


class PlainLines:
    """The plain-line display of :func:`progress` (thread-safe; ``beat()`` is called about once a second)."""

    def __init__(self, total: int, description: str, stream: TextIO, *, clock: Callable[[], float] = time.monotonic,
                 interval: float = HEARTBEAT_S, min_gap: float | None = None):
        self.total, self.description, self.stream = total, description, stream
        self.clock, self.interval = clock, interval
        self.min_gap = MIN_GAP_S if min_gap is None else min_gap
        self.done = 0
        self._start = self._last_line = clock()
        self._last_unit = -math.inf
        self._pending: str | None = None  # a finished unit's line not printed yet (throttled)
        self._lock = threading.Lock()

    def advance(self, n: int = 1, message: str | None = None) -> None:
        with self._lock:
            self.done += n
            text = f"{message or self.description}: {self.done}/{self.total}"
            now = self.clock()
            if self.done >= self.total or now - self._last_unit >= self.min_gap:
                self._emit(text, now)
                self._last_unit = now
            else:
                self._pending = text

    def beat(self) -> None:
        """Print a throttled unit line once its gap has passed, or a heartbeat after ``interval`` of silence."""
        with self._lock:
            now = self.clock()
            if self._pending is not None and now - self._last_unit >= self.min_gap:
                self._emit(self._pending, now)
                self._last_unit = now
            elif now - self._last_line >= self.interval:
                self._emit(f"{self.description}: {self.done}/{self.total}, still working", now)

    def flush(self) -> None:
        """Print the last throttled unit line, if any (the final state is always shown)."""
        with self._lock:
            if self._pending is not None:
                self._emit(self._pending, self.clock())

    def _emit(self, text: str, now: float) -> None:
        print(f"{text} ({elapsed(now - self._start)})", file=self.stream, flush=True)
        self._last_line, self._pending = now, None


def elapsed(seconds: float) -> str:
    """``12 s``, ``3 min 05 s`` or ``1 h 02 min``."""
    s = int(seconds)
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


class Ticker:
    """Handle returned by :func:`progress`."""

    def __init__(self, fn):
        self._fn = fn

    def advance(self, n: int = 1, message: str | None = None) -> None:
        self._fn(n, message)
