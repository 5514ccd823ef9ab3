"""The one wait queue every blocking primitive is built on.

Owns a FIFO of parked tasks. A task parks itself with ``yield queue.park(timeout, alarm)``; the
owner wakes the oldest with ``wake_one`` or everyone with ``wake_all``. Timeouts, ``terminate``
and ``throw`` undo a wait through ``cancel_wait``, so every lock, event, condition and channel
gets the same timeout rules for free. Scheduler-thread only.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from .traps import SUSPEND, Trap, note_made, yield_mistake

__all__ = ["WaitQueue"]


class WaitQueue:
    """FIFO of tasks waiting for something; the basis of ``pycos.sync`` and channels."""

    __slots__ = ("_waiters",)

    def __init__(self) -> None:
        self._waiters: OrderedDict[Any, None] = OrderedDict()

    def __len__(self) -> int:
        return len(self._waiters)

    def __bool__(self) -> bool:
        return bool(self._waiters)

    def park(self, timeout: float | None = None, alarm: Any = False) -> Trap:
        """A trap: ``yield queue.park(...)`` waits until woken (value given to ``wake_*``) or
        until ``timeout`` seconds pass (value ``alarm``). ``timeout <= 0`` does not wait."""
        return note_made(_Park(self, timeout, alarm))

    def _park_now(self, sched: Any, task: Any, timeout: float | None, alarm: Any) -> Any:
        """What yielding ``park(timeout, alarm)`` does, for a trap's ``_apply`` that decides to
        wait on this queue (scheduler thread): returns ``SUSPEND`` or, if ``timeout <= 0``,
        reschedules the task with ``alarm``."""
        if timeout is not None and timeout <= 0:
            return sched._reschedule(task, alarm)
        self._waiters[task] = None
        sched._park(task, self, timeout, alarm)
        return SUSPEND

    def cancel_wait(self, task: Any) -> None:
        """Remove ``task`` (undo of a timed-out or interrupted wait)."""
        self._waiters.pop(task, None)

    def wake_one(self, value: Any = True) -> Any:
        """Wake the oldest waiter with ``value``; returns it, or None if nobody waits."""
        if not self._waiters:
            return None
        task, _ = self._waiters.popitem(last=False)
        task._sched._wake(task, value)
        return task

    def wake_all(self, value: Any = True) -> int:
        """Wake every waiter with ``value``; returns how many were woken."""
        n = 0
        while self._waiters:
            task, _ = self._waiters.popitem(last=False)
            task._sched._wake(task, value)
            n += 1
        return n


class _Park(Trap):
    __slots__ = ("queue", "timeout", "alarm")
    _what = "queue.park()"
    _names = ("park",)

    def __init__(self, queue: WaitQueue, timeout: float | None, alarm: Any) -> None:
        self.queue = queue
        self.timeout = timeout
        self.alarm = alarm

    def _apply(self, sched: Any, task: Any) -> Any:  # WaitQueue._park_now, inlined
        timeout = self.timeout
        if timeout is not None and timeout <= 0:
            return sched._reschedule(task, self.alarm)
        self.queue._waiters[task] = None
        sched._park(task, self.queue, timeout, self.alarm)
        return SUSPEND


yield_mistake(WaitQueue, "'yield queue.park()' waits on it")
