"""Sweep executors: where groups of shape-compatible runs are trained.

A sweep is planned as a list of *groups*; each group is a list of run configs
that one worker trains together in one batched pass (same shapes, shared cached
teachers). An executor calls ``fn(group)`` for every group, wherever it likes,
and hands each group's records to ``on_done`` **in the driver process**, which
is the only writer of the result store: this is what makes records exactly-once.
With ``claim``, the executor asks the driver just before it hands out a group:
``claim(group)`` returns the part of the group this process may train (the rest is
held by another process on the same store, or finished meanwhile); an empty part is
skipped.

``local`` runs groups one after another in this process. Other executors
(``ray``) live in their own modules and are looked up by :func:`get_executor`.
"""

from __future__ import annotations

from typing import Callable, Protocol, Sequence

Group = Sequence[object]
GroupFn = Callable[[Group], list[dict]]
DoneFn = Callable[[Group, list[dict]], None]
ClaimFn = Callable[[Group], Sequence[object]]


class Executor(Protocol):
    name: str

    def map_groups(self, groups: Sequence[Group], fn: GroupFn, on_done: DoneFn, claim: ClaimFn | None = None) -> None:
        """Run ``fn`` on every (claimed part of a) group; ``on_done(group, records)`` in the driver as each finishes."""


class LocalExecutor:
    """Train groups sequentially in the calling process (one device)."""

    name = "local"

    def map_groups(self, groups: Sequence[Group], fn: GroupFn, on_done: DoneFn, claim: ClaimFn | None = None) -> None:
        for group in groups:
            part = group if claim is None else list(claim(group))
            if part:
                on_done(part, fn(part))


def get_executor(name: "str | Executor" = "local", **options) -> Executor:
    """Executor by name: ``local`` or ``ray`` (``address=...``, needs ``pip install limen[ray]``).

    An executor object (e.g. a configured ``RayExecutor``) is returned as it is.
    """
    if not isinstance(name, str):
        if options:
            raise ValueError("options go to the executor's constructor, not with an executor object")
        return name
    if name == "local":
        if options:
            raise ValueError(f"the local executor takes no options, got {sorted(options)}")
        return LocalExecutor()
    if name == "ray":
        try:
            from .executor_ray import RayExecutor
        except ImportError as exc:
            raise ValueError("the ray executor needs Ray: pip install 'limen[ray]'") from exc
        return RayExecutor(**options)
    raise ValueError(f"unknown executor {name!r}; choose local or ray")
