"""Which worker trains which group next: shards by teacher, work stealing at the end.

A sweep arrives as *groups* (runs trained together in one batched pass). Groups
whose runs share a teacher go into one *shard*; a worker that has started a shard
keeps taking its groups, so the teacher it trained (cached in that worker's
process) is reused. A worker with nothing of its own claims the largest unclaimed
shard; when no shard is unclaimed it steals the last group of the shard with the
most runs left, so no worker idles while work remains (the thief retrains that
teacher once: a small cost next to an idle device).

This module is pure Python (no Ray); :mod:`limen.verify.executor_ray` drives it.
"""

from __future__ import annotations

from collections import deque
from typing import Callable, Hashable, Sequence

Affinity = Callable[[Sequence[object]], Hashable]


class ShardQueue:
    """Dynamic assignment of group indices to workers, keeping teacher affinity.

    ``affinity(group)`` gives the shard key of a group (groups with equal keys
    share a shard); ``None`` puts every group in a shard of its own. Shards and the
    groups inside them keep the order in which the sweep planned them.
    """

    def __init__(self, groups: Sequence[Sequence[object]], affinity: Affinity | None = None):
        self._cost = [max(len(g), 1) for g in groups]
        self._shards: dict[Hashable, deque[int]] = {}
        self._shard_of: list[Hashable] = []
        for i, group in enumerate(groups):
            key = ("group", i) if affinity is None else affinity(group)
            self._shards.setdefault(key, deque()).append(i)
            self._shard_of.append(key)
        self._owner: dict[Hashable, Hashable] = {}      # shard key -> worker
        self._owned: dict[Hashable, list[Hashable]] = {}  # worker -> shard keys, in claim order

    def __len__(self) -> int:
        """Groups not yet handed out (re-queued groups included)."""
        return sum(len(q) for q in self._shards.values())

    @property
    def n_shards(self) -> int:
        return len(self._shards)

    def _left(self, key: Hashable) -> int:
        return sum(self._cost[i] for i in self._shards[key])

    def next_for(self, worker: Hashable) -> int | None:
        """Index of the group ``worker`` should train next, or ``None`` when none is left."""
        for key in self._owned.get(worker, ()):
            if self._shards[key]:
                return self._shards[key].popleft()
        unclaimed = [k for k, q in self._shards.items() if q and k not in self._owner]
        if unclaimed:
            key = max(unclaimed, key=self._left)  # largest first: long shards start early
            self._owner[key] = worker
            self._owned.setdefault(worker, []).append(key)
            return self._shards[key].popleft()
        claimed = [k for k, q in self._shards.items() if q]
        if claimed:
            return self._shards[max(claimed, key=self._left)].pop()  # steal from the end
        return None

    def requeue(self, index: int) -> None:
        """Put a group back (its worker died before returning it); it runs next in its shard."""
        self._shards[self._shard_of[index]].appendleft(index)

    def release(self, worker: Hashable) -> None:
        """Forget ``worker`` (it died): its shards become unclaimed, hence re-assignable."""
        for key in self._owned.pop(worker, []):
            if self._owner.get(key) == worker:
                del self._owner[key]


def split_to_fill(groups: Sequence[Sequence[object]], n_workers: int) -> list[list[object]]:
    """Split the largest groups into contiguous halves until there are ``n_workers`` groups.

    A sweep planned as fewer groups than there are workers would leave workers
    idle; any contiguous part of a group is itself a valid group (same shapes).
    Groups are split only while there are fewer groups than workers, so a large
    sweep keeps the engine's batching untouched. Plan order is kept, and halves are
    contiguous, so runs sharing a teacher (adjacent in the engine's plan) mostly
    stay together.
    """
    out = [list(g) for g in groups]
    while 0 < len(out) < n_workers:
        i = max(range(len(out)), key=lambda j: len(out[j]))
        if len(out[i]) < 2:
            break
        half = (len(out[i]) + 1) // 2
        out[i:i + 1] = [out[i][:half], out[i][half:]]
    return out
