"""Progress display for long runs (rich), quiet when output is not a terminal."""

from __future__ import annotations

import contextlib
import sys
from typing import Iterator

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


@contextlib.contextmanager
def progress(total: int, description: str, *, enabled: bool | None = None) -> Iterator["Ticker"]:
    """Context manager yielding a :class:`Ticker`; ``advance(n)`` moves the bar.

    When stderr is not a terminal the bar is replaced by one line per ~10 % so
    that logs of batch jobs still show progress.
    """
    console = Console(stderr=True)
    live = console.is_terminal if enabled is None else enabled
    if live:
        with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                      TimeElapsedColumn(), TimeRemainingColumn(), console=console, transient=False) as bar:
            task = bar.add_task(description, total=total)
            yield Ticker(lambda n, msg: bar.update(task, advance=n, description=msg or description))
    else:
        state = {"done": 0, "last": -1}

        def _line(n: int, msg: str | None) -> None:
            state["done"] += n
            decile = (10 * state["done"]) // max(total, 1)
            if decile != state["last"]:
                state["last"] = decile
                print(f"{msg or description}: {state['done']}/{total}", file=sys.stderr, flush=True)

        yield Ticker(_line)


class Ticker:
    """Handle returned by :func:`progress`."""

    def __init__(self, fn):
        self._fn = fn

    def advance(self, n: int = 1, message: str | None = None) -> None:
        self._fn(n, message)
