"""Putting stream items back in ``ident`` order: the seed's "use this id to re-arrange".

Owns ``ReorderBuffer``: items go in as they arrive and come out in ascending ``ident`` order,
starting at ``start`` (0 by default: a negative ident ends a stream, so idents start at 0 or
above). A missing ident is waited for at most ``gap_time`` seconds, and at most ``capacity``
items are held; past either bound the smallest held item goes out and its gap is skipped. An
item whose place was already passed goes out at once (counted in ``late``): nothing is ever
dropped. Pure: the caller gives the time. Imports only the standard library.
"""

from __future__ import annotations

import heapq
from typing import Any

__all__ = ["ReorderBuffer", "CAPACITY", "GAP_TIME"]

CAPACITY = 1024
GAP_TIME = 0.25


class ReorderBuffer:
    """Items in, ascending ``ident`` out.

    Args:
        capacity: most items held.
        gap_time: seconds a missing ident is waited for.
        start: the first ident expected.
    """

    def __init__(self, capacity: int = CAPACITY, gap_time: float = GAP_TIME,
                 start: int = 0) -> None:
        if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 1:
            raise ValueError(f"capacity must be an int >= 1, got {capacity!r}")
        if isinstance(gap_time, bool) or not isinstance(gap_time, int | float) or gap_time < 0:
            raise ValueError(f"gap_time must be a number >= 0, got {gap_time!r}")
        self.capacity = capacity
        self.gap_time = float(gap_time)
        self.expected = start
        self.held: list[tuple[int, int, Any]] = []
        self.seq = 0
        self.waiting_since: float | None = None
        self.late = 0
        self.skipped = 0

    def __len__(self) -> int:
        return len(self.held)

    def push(self, ident: int, value: Any, now: float) -> list[tuple[int, Any]]:
        """Take one item; returns the items now due, in order."""
        if ident < self.expected:
            self.late += 1
            return [(ident, value)]
        if ident == self.expected and not self.held:
            self.expected = ident + 1
            return [(ident, value)]
        heapq.heappush(self.held, (ident, self.seq, value))
        self.seq += 1
        out: list[tuple[int, Any]] = []
        self._release(out)
        while len(self.held) > self.capacity:
            self._skip(out)
        if self.held and self.waiting_since is None:
            self.waiting_since = now
        return out

    def _release(self, out: list[tuple[int, Any]]) -> None:
        held = self.held
        while held and held[0][0] <= self.expected:
            ident, _seq, value = heapq.heappop(held)
            out.append((ident, value))
            if ident == self.expected:
                self.expected = ident + 1
        if not held:
            self.waiting_since = None

    def _skip(self, out: list[tuple[int, Any]]) -> None:
        ident, _seq, value = heapq.heappop(self.held)
        self.skipped += ident - self.expected
        out.append((ident, value))
        self.expected = ident + 1
        self._release(out)

    def deadline(self) -> float | None:
        """When the wait for the missing ident ends (None: nothing is held)."""
        if self.waiting_since is None:
            return None
        return self.waiting_since + self.gap_time

    def expire(self, now: float) -> list[tuple[int, Any]]:
        """Items due because the gap has been waited for long enough."""
        out: list[tuple[int, Any]] = []
        while self.held and self.waiting_since is not None and \
                now - self.waiting_since >= self.gap_time:
            self._skip(out)
            if self.held:
                self.waiting_since = now
        return out

    def flush(self) -> list[tuple[int, Any]]:
        """Every held item, in order (the stream ended)."""
        out = [(ident, value) for ident, _seq, value in sorted(self.held)]
        if out:
            self.expected = out[-1][0] + 1
        self.held.clear()
        self.waiting_since = None
        return out
