"""Bookkeeping of one map over a cluster: chunk sizes, what is in flight, reassignment.

Owns ``ChunkPlan`` (pure, no I/O, no clock of its own): items are handed out in chunks of
consecutive indices — the first of ⌈n / (4·workers)⌉ items, later ones sized from each
worker's measured time per item to take about ``target`` seconds, never more than an even
share of what is left — and each result is stored exactly once, whatever arrives twice. A lost
worker's chunks in flight go back to the queue and are handed to the next worker that asks.
Imports only the standard library.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Any

__all__ = ["Chunk", "ChunkPlan", "MISSING", "TARGET_SECONDS"]

#: Work per chunk the sizing aims at.
TARGET_SECONDS = 0.010


class _Missing:
    __repr__ = lambda self: "<MISSING>"  # noqa: E731


MISSING: Any = _Missing()


@dataclass(slots=True)
class Chunk:
    """Items ``start`` to ``stop`` (excluded), handed to ``worker``."""

    cid: int
    start: int
    stop: int
    worker: Any = None

    def __len__(self) -> int:
        return self.stop - self.start


class ChunkPlan:
    """The chunks of a map of ``n`` items over ``workers`` workers.

    Args:
        n: number of items.
        workers: number of workers (for the first chunk size and the share).
        chunksize: a fixed chunk size (None: adaptive).
        target: seconds of work per chunk the adaptive sizing aims at.
    """

    def __init__(self, n: int, workers: int, chunksize: int | None = None,
                 target: float = TARGET_SECONDS) -> None:
        if n < 0 or workers < 1:
            raise ValueError("a plan needs n >= 0 items and at least one worker")
        self.n = n
        self.workers = workers
        self.fixed = chunksize
        self.target = target
        self.first = max(1, math.ceil(n / (4 * workers)))
        self.next = 0
        self.requeued: deque[Chunk] = deque()
        self.in_flight: dict[int, Chunk] = {}
        self.results: list[Any] = [MISSING] * n
        self.ran_on: list[Any] = [None] * n
        self.order: list[int] = []
        self.done = 0
        self.chunks_done = 0
        self.reassigned = 0
        self.per_item: dict[Any, float] = {}
        self._cid = 0

    @property
    def finished(self) -> bool:
        """Every item has its result."""
        return self.done >= self.n

    @property
    def waiting(self) -> bool:
        """Some items are neither done nor in flight."""
        return bool(self.requeued) or self.next < self.n

    def size_for(self, worker: Any) -> int:
        """Items of the next new chunk for ``worker``."""
        left = self.n - self.next
        if self.fixed:
            return max(1, min(self.fixed, left))
        per = self.per_item.get(worker)
        size = self.first if per is None else (
            int(self.target / per) if per > 0 else 4 * self.first)
        share = math.ceil(left / (2 * self.workers))
        return max(1, min(size, share, left))

    def take(self, worker: Any) -> Chunk | None:
        """The next chunk for ``worker`` (a reassigned one first), or None when nothing waits."""
        if self.requeued:
            chunk = self.requeued.popleft()
        elif self.next < self.n:
            size = self.size_for(worker)
            self._cid += 1
            chunk = Chunk(self._cid, self.next, self.next + size)
            self.next += size
        else:
            return None
        chunk.worker = worker
        self.in_flight[chunk.cid] = chunk
        return chunk

    def complete(self, cid: int, values: list[Any], seconds: float, where: Any) -> list[int]:
        """Store the results of chunk ``cid`` (ignored if it is not in flight: a duplicate);
        the indices stored now."""
        chunk = self.in_flight.pop(cid, None)
        if chunk is None or len(values) != len(chunk):
            return []
        stored = []
        for offset, value in enumerate(values):
            i = chunk.start + offset
            if self.results[i] is MISSING:
                self.results[i] = value
                self.ran_on[i] = where
                self.order.append(i)
                stored.append(i)
        self.done += len(stored)
        self.chunks_done += 1
        if values and seconds >= 0:
            per = seconds / len(values)
            old = self.per_item.get(chunk.worker)
            self.per_item[chunk.worker] = per if old is None else 0.5 * (old + per)
        return stored

    def give_back(self, cid: int, worker: Any = MISSING) -> bool:
        """Chunk ``cid`` (of ``worker``, when given) failed without a result: queue it again.
        False if it is not in flight (there, or at all)."""
        chunk = self.in_flight.get(cid)
        if chunk is None or (worker is not MISSING and chunk.worker != worker):
            return False
        del self.in_flight[cid]
        chunk.worker = None
        self.requeued.append(chunk)
        self.reassigned += 1
        return True

    def lost(self, is_lost: Any) -> int:
        """Every chunk in flight whose worker satisfies ``is_lost(worker)`` is queued again;
        how many."""
        gone = [cid for cid, c in self.in_flight.items() if is_lost(c.worker)]
        for cid in gone:
            self.give_back(cid)
        return len(gone)
