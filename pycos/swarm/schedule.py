"""How a swarm shares out files: largest first, small files batched, work stealing.

Owns ``Unit`` (one request's worth: one large file, or up to ``BATCH_FILES`` small ones),
``make_units`` and ``Plan``: units are dealt to the connections largest first, each to the one
with the fewest bytes so far; a connection takes from the front of its own queue (its largest
unit) and, once that is empty, steals from the back of the busiest other queue (its smallest),
so no connection idles while another has work queued. Pure and thread-safe. Imports only the
standard library.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

__all__ = ["Unit", "make_units", "Plan", "INLINE_MAX", "BATCH_FILES"]

#: Files up to this size are batched (and travel inline).
INLINE_MAX = 64 * 1024
#: Small files per request.
BATCH_FILES = 64


@dataclass
class Unit:
    """One request's files: ``(path, size)`` pairs and their total size."""

    files: list[tuple[str, int]] = field(default_factory=list)
    nbytes: int = 0

    @property
    def big(self) -> bool:
        """A single file sent as a raw section."""
        return len(self.files) == 1 and self.files[0][1] > INLINE_MAX

    @property
    def paths(self) -> list[str]:
        return [path for path, _size in self.files]


def make_units(files: Iterable[tuple[str, int]], inline_max: int = INLINE_MAX,
               batch_files: int = BATCH_FILES) -> list[Unit]:
    """Units for ``files`` (path, size), largest first: each file over ``inline_max`` alone,
    the rest in batches of ``batch_files`` (largest with largest)."""
    ordered = sorted(files, key=lambda f: (-f[1], f[0]))
    units: list[Unit] = []
    batch = Unit()
    for path, size in ordered:
        if size > inline_max:
            units.append(Unit([(path, size)], size))
            continue
        batch.files.append((path, size))
        batch.nbytes += size
        if len(batch.files) >= batch_files:
            units.append(batch)
            batch = Unit()
    if batch.files:
        units.append(batch)
    units.sort(key=lambda u: -u.nbytes)
    return units


class Plan:
    """Units dealt to ``workers`` connections (any thread).

    Args:
        units: as ``make_units`` gives them.
        workers: how many connections share them.
    """

    def __init__(self, units: list[Unit], workers: int) -> None:
        if workers < 1:
            raise ValueError("a plan needs at least one worker")
        self.lock = threading.Lock()
        self.queues: list[deque[Unit]] = [deque() for _ in range(workers)]
        self.left = [0] * workers
        self.stolen = 0
        for unit in sorted(units, key=lambda u: -u.nbytes):
            w = min(range(workers), key=lambda i: (self.left[i], i))
            self.queues[w].append(unit)
            self.left[w] += unit.nbytes or 1

    def take(self, worker: int) -> Unit | None:
        """The next unit for ``worker``: its own largest, else another's smallest; None
        when every queue is empty."""
        with self.lock:
            own = self.queues[worker]
            if own:
                unit = own.popleft()
                self.left[worker] -= unit.nbytes or 1
                return unit
            victim = max(range(len(self.queues)), key=lambda i: (self.left[i], -i))
            if not self.queues[victim]:
                return None
            unit = self.queues[victim].pop()
            self.left[victim] -= unit.nbytes or 1
            self.stolen += 1
            return unit

    def remaining(self) -> int:
        with self.lock:
            return sum(len(q) for q in self.queues)
