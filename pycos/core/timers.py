"""The timer heap.

Owns pending timers as a binary heap of ``[when, seq, fn, task, arg]`` entries. Cancelling is lazy
(the entry's ``fn`` becomes None and is skipped when it reaches the top); when dead entries
outnumber live ones the heap is rebuilt, so memory stays proportional to live timers. ``seq`` keeps
timers with equal deadlines in the order they were set, which makes runs reproducible.
Scheduler-thread only; imports only the standard library.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterator
from typing import Any

__all__ = ["TimerHeap"]

Entry = list[Any]  # [when: float, seq: int, fn: Callable | None, task: Any, arg: Any]


class TimerHeap:
    """A heap of one-shot timers with lazy cancellation."""

    __slots__ = ("_heap", "_seq", "_dead")

    def __init__(self) -> None:
        self._heap: list[Entry] = []
        self._seq = 0
        self._dead = 0

    def __len__(self) -> int:
        return len(self._heap) - self._dead

    def add(self, when: float, fn: Callable[[Any, Any], None], task: Any, arg: Any) -> Entry:
        """Call ``fn(task, arg)`` once the clock reaches ``when``; returns the entry for cancel."""
        self._seq += 1
        entry: Entry = [when, self._seq, fn, task, arg]
        heapq.heappush(self._heap, entry)
        return entry

    def cancel(self, entry: Entry) -> None:
        """Cancel a pending entry (idempotent)."""
        if entry[2] is None:
            return
        entry[2] = None
        entry[3] = entry[4] = None
        self._dead += 1
        if self._dead > 256 and self._dead * 2 > len(self._heap):
            self._heap = [e for e in self._heap if e[2] is not None]
            heapq.heapify(self._heap)
            self._dead = 0

    def next_deadline(self) -> float | None:
        """Deadline of the earliest live timer, or None."""
        heap = self._heap
        while heap and heap[0][2] is None:
            heapq.heappop(heap)
            self._dead -= 1
        return heap[0][0] if heap else None

    def pop_due(self, now: float) -> Iterator[Entry]:
        """Remove and yield live entries whose deadline is ``<= now``, earliest first."""
        heap = self._heap
        while heap and heap[0][0] <= now:
            entry = heapq.heappop(heap)
            if entry[2] is None:
                self._dead -= 1
                continue
            yield entry

    def clear(self) -> None:
        """Drop every timer."""
        self._heap.clear()
        self._dead = 0
