"""Traps: the values a task yields to block.

``task.sleep(1)``, ``task.receive()``, ``lock.acquire()`` … return small immutable trap objects;
nothing happens until the task yields one, and then only the scheduler acts on it by calling
``trap._apply(scheduler, task)``. ``_apply`` returns either the result of the ``yield`` at once
(the task keeps running without a trip through the run queue) or ``SUSPEND`` when the task was
parked or rescheduled. This module also holds the "wait kind" sentinels a parked task points at.
Imports only the standard library.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "Trap", "SUSPEND", "SUSPENDED", "RECEIVING", "WOKEN", "Suspend", "Receive", "RECEIVE_FOREVER",
    "WaitTask", "WaitIO",
]


class _Sentinel:
    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"<{self.name}>"

    def cancel_wait(self, task: Any) -> None:
        """Nothing to undo: the task is not on any queue."""


#: Returned by ``_apply`` when the task is no longer running (parked or rescheduled).
SUSPEND = _Sentinel("suspend")
#: Wait kind of a task in ``suspend``/``sleep`` (woken by ``resume``).
SUSPENDED = _Sentinel("suspended")
#: Wait kind of a task in ``receive`` (woken by ``send``).
RECEIVING = _Sentinel("receiving")
#: A task whose wait completed (it holds a result: a message, a lock …) but has not run yet.
WOKEN = _Sentinel("woken")


class Trap:
    """Base class of all traps. Subclasses implement ``_apply(sched, task)``."""

    __slots__ = ()

    def _apply(self, sched: Any, task: Any) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def __repr__(self) -> str:
        names: tuple[str, ...] = self.__slots__
        fields = ", ".join(f"{k}={getattr(self, k)!r}" for k in names)
        return f"{type(self).__name__}({fields})"


class Suspend(Trap):
    """``yield task.suspend(timeout, alarm_value)`` / ``yield task.sleep(t)``."""

    __slots__ = ("timeout", "alarm")

    def __init__(self, timeout: float | None, alarm: Any) -> None:
        self.timeout = timeout
        self.alarm = alarm

    def _apply(self, sched: Any, task: Any) -> Any:
        timeout = self.timeout
        if timeout is not None and timeout <= 0:
            return sched._reschedule(task, self.alarm)
        sched._park(task, SUSPENDED, timeout, self.alarm)
        return SUSPEND


class Receive(Trap):
    """``yield task.receive(timeout, alarm_value)``: the oldest queued message."""

    __slots__ = ("timeout", "alarm")

    def __init__(self, timeout: float | None, alarm: Any) -> None:
        self.timeout = timeout
        self.alarm = alarm

    def _apply(self, sched: Any, task: Any) -> Any:
        msgs = task._msgs
        if msgs:
            return msgs.popleft()
        timeout = self.timeout
        if timeout is not None and timeout <= 0:
            return sched._reschedule(task, self.alarm)
        sched._park(task, RECEIVING, timeout, self.alarm)
        return SUSPEND


#: The common ``receive()`` with no timeout, shared by every task.
RECEIVE_FOREVER = Receive(None, None)


class WaitTask(Trap):
    """``yield other.finish(timeout)``: wait until ``other`` ends; its result (None on timeout)."""

    __slots__ = ("other", "timeout")

    def __init__(self, other: Any, timeout: float | None) -> None:
        self.other = other
        self.timeout = timeout

    def _apply(self, sched: Any, task: Any) -> Any:
        other = self.other
        if other._gen is None:
            return other._value
        if other is task:
            raise RuntimeError(f"task {task!r} cannot wait for its own end")
        timeout = self.timeout
        if timeout is not None and timeout <= 0:
            return sched._reschedule(task, None)
        if other._waiters is None:
            other._waiters = []
        other._waiters.append(task)
        sched._park(task, other, timeout, None)
        return SUSPEND


class WaitIO(Trap):
    """Wait until ``fileobj`` is readable (``event=READ``) or writable (``WRITE``).

    The ``yield`` evaluates to True when ready. On timeout ``timeout_exc`` is raised in the task;
    closing the descriptor through the poller raises the poller's error in it.
    """

    __slots__ = ("fileobj", "event", "timeout", "timeout_exc")

    def __init__(self, fileobj: Any, event: int, timeout: float | None,
                 timeout_exc: BaseException | None = None) -> None:
        self.fileobj = fileobj
        self.event = event
        self.timeout = timeout
        self.timeout_exc = timeout_exc

    def _apply(self, sched: Any, task: Any) -> Any:
        rec = sched._poller.add_waiter(self.fileobj, self.event, task)
        if self.timeout is None:
            sched._park(task, rec, None, None)
        else:
            exc = self.timeout_exc or TimeoutError("timed out")
            sched._park_raise(task, rec, self.timeout, exc)
        return SUSPEND
