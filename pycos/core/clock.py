"""Clocks for the scheduler's timers.

Owns the notion of "now" used by every timeout. ``SystemClock`` reads ``time.monotonic``;
``FakeClock`` is virtual time for tests: it moves only when told to (``advance``) or, with
``autojump``, jumps straight to the next timer whenever the scheduler has nothing else to do, so
timeouts are tested instantly and deterministically. Imports only the standard library.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

__all__ = ["Clock", "SystemClock", "FakeClock"]


class Clock:
    """Interface of a scheduler clock."""

    #: True when time only moves on request (the scheduler then never sleeps on timers).
    virtual: bool = False
    #: With a virtual clock: jump to the next timer when the scheduler would otherwise block.
    autojump: bool = False

    def time(self) -> float:
        """Current time in seconds (monotonic)."""
        raise NotImplementedError

    def attach(self, wake: Callable[[], None]) -> None:
        """Called by the scheduler that uses this clock with a thread-safe wake-up function."""


class SystemClock(Clock):
    """The real monotonic clock."""

    def time(self) -> float:
        return time.monotonic()


class FakeClock(Clock):
    """Virtual time for tests.

    Args:
        start: the initial reading.
        autojump: when True (the default) the scheduler jumps the clock to the next timer as soon
            as no task is ready and no I/O is pending, so a ``sleep(3600)`` finishes at once in
            real time while ``clock.time()`` moves by 3600.
    """

    virtual = True

    def __init__(self, start: float = 0.0, autojump: bool = True) -> None:
        self._now = float(start)
        self.autojump = autojump
        self._lock = threading.Lock()
        self._wake: Callable[[], None] | None = None

    def time(self) -> float:
        return self._now

    def attach(self, wake: Callable[[], None]) -> None:
        self._wake = wake

    def jump_to(self, when: float) -> None:
        """Move the clock forward to ``when`` (never backwards); used by the scheduler."""
        with self._lock:
            if when > self._now:
                self._now = when

    def advance(self, seconds: float) -> None:
        """Move virtual time forward by ``seconds`` and let the scheduler fire due timers."""
        if seconds < 0:
            raise ValueError(f"cannot move a clock backwards (got {seconds!r})")
        with self._lock:
            self._now += seconds
        if self._wake is not None:
            self._wake()
