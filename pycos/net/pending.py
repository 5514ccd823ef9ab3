"""A one-shot result a task waits for, completed from any thread.

Owns ``Pending``: ``value = yield pending`` in a task; any thread completes it with
``resolve(value)`` or ``fail(exc)``, and callbacks may be attached. Remote requests, dials and
name searches hand their results to waiting tasks through one. Imports the standard library and
``pycos.core.lowlevel``.

Invariants: a Pending completes at most once (later completions are ignored); the waiting task is
only ever woken on its own scheduler's thread, and only while it still waits on this very
Pending (a timeout, ``terminate`` or ``throw`` undoes the wait through ``cancel_wait``).
"""

from __future__ import annotations

import threading
from typing import Any

from ..core import lowlevel
from ..core.lowlevel import SUSPEND, Trap

__all__ = ["Pending"]

_UNSET = object()


class Pending(Trap):
    """A one-shot result: ``value = yield pending`` in a task; ``resolve``/``fail`` from any
    thread.

    Args:
        timeout: seconds to wait when yielded; None waits until completed.
        alarm: the yield's value when the timeout passes.
    """

    __slots__ = ("_lock", "_value", "_exc", "_task", "_sched", "timeout", "alarm", "_callbacks",
                 "_cancelled")

    def __init__(self, timeout: float | None = None, alarm: Any = None) -> None:
        self._lock = threading.Lock()
        self._value: Any = _UNSET
        self._exc: BaseException | None = None
        self._task: Any = None
        self._sched: Any = None
        self.timeout = timeout
        self.alarm = alarm
        self._callbacks: list[Any] | None = None
        self._cancelled = False

    @property
    def cancelled(self) -> bool:
        """True once the waiting task stopped waiting (timeout, terminate, throw)."""
        return self._cancelled

    @property
    def done(self) -> bool:
        """True once resolved or failed (plain call)."""
        return self._value is not _UNSET

    def result(self) -> Any:
        """The value once done (plain call); raises the failure; None before completion."""
        if self._exc is not None:
            raise self._exc
        return None if self._value is _UNSET else self._value

    def resolve(self, value: Any) -> bool:
        """Plain call from any thread: complete with ``value``. False if already complete."""
        return self._complete(value, None)

    def fail(self, exc: BaseException) -> bool:
        """Plain call from any thread: complete by raising ``exc`` in the waiting task."""
        return self._complete(None, exc)

    def add_callback(self, fn: Any) -> None:
        """Run ``fn(pending)`` on the completing thread when done (now, if already done)."""
        with self._lock:
            if self._value is _UNSET:
                if self._callbacks is None:
                    self._callbacks = []
                self._callbacks.append(fn)
                return
        fn(self)

    def _complete(self, value: Any, exc: BaseException | None) -> bool:
        with self._lock:
            if self._value is not _UNSET:
                return False
            self._value, self._exc = value, exc
            task, sched = self._task, self._sched
            callbacks, self._callbacks = self._callbacks, None
        if task is not None:
            lowlevel.call(sched, self._wake, task)
        for fn in callbacks or ():
            fn(self)
        return True

    # ------------------------------------------------------------ the trap
    def _apply(self, sched: Any, task: Any) -> Any:
        with self._lock:
            if self._value is not _UNSET:
                if self._exc is not None:
                    raise self._exc
                return self._value
            if self._task is not None:
                raise RuntimeError("a Pending can be waited for by one task only")
            self._task, self._sched = task, sched
        timeout = self.timeout
        if timeout is not None and timeout <= 0:
            with self._lock:
                self._task = self._sched = None
                self._cancelled = True
            return lowlevel.reschedule(task, self.alarm)
        lowlevel.park(task, self, timeout, self.alarm)
        return SUSPEND

    def _wake(self, task: Any) -> None:
        """On the waiting task's scheduler thread: resume it if it still waits here."""
        if not lowlevel.is_parked_on(task, self):
            return
        if self._exc is not None:
            lowlevel.wake_exc(task, self._exc)
        else:
            lowlevel.wake(task, self._value)

    def cancel_wait(self, task: Any) -> None:
        """Undo the wait (timeout, terminate, throw): a later completion wakes nobody."""
        with self._lock:
            if self._task is task:
                self._task = self._sched = None
                self._cancelled = True

    def __repr__(self) -> str:
        state = "pending" if self._value is _UNSET else ("failed" if self._exc else "done")
        return f"<Pending {state}>"
