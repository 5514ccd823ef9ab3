"""Synchronisation primitives for tasks: ``Lock``, ``RLock``, ``Condition``, ``Event``,
``Semaphore``.

Owns no scheduler state of its own: every blocking method returns a trap (or a generator) that
parks the task on a ``pycos.WaitQueue``, so timeouts, ``terminate`` and ``throw`` undo a wait the
same way everywhere. Imports L0 and L1 (``pycos.core``) only.

Invariants:

* Wake-up is FIFO and ownership is handed over on release: a releasing task gives the lock (or
  the semaphore's unit) directly to the oldest waiter, so a task that arrives later can never
  take it first ("no barging").
* Primitive state is changed only on the scheduler thread. The calls that make sense from a plain
  thread (``Lock.release``, ``Event.set``, ``Condition.notify``, ``Semaphore.release``) are posted
  to the scheduler when made from another thread.
* Timeouts return False; they never raise.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Generator
from typing import Any

from .core import lowlevel
from .core.scheduler import Pycos, _check_timeout
from .core.traps import Trap, describe_generator_op, note_made, yield_mistake
from .core.waitqueue import WaitQueue

__all__ = ["Lock", "RLock", "Condition", "Event", "Semaphore"]

_log = logging.getLogger(__name__)


# ------------------------------------------------------------------ helpers
def _acquire_timeout(blocking: Any, timeout: Any, forever: Any = -1) -> float | None:
    """Normalise ``(blocking, timeout)``: None waits forever, ``0.0`` does not wait.

    ``forever`` is the "no timeout" sentinel of the call (pycos uses -1 for locks); None always
    means no timeout too. Any other negative number is a ValueError.
    """
    if timeout is None or (forever is not None and timeout == forever
                           and not isinstance(timeout, bool)):
        seconds = None
    else:
        _check_timeout(timeout, "timeout")
        seconds = float(timeout)
    if not blocking:
        return 0.0
    return seconds


def _current_task() -> Any:
    """The task running now on the calling thread's scheduler, or None (plain thread or no
    scheduler)."""
    return Pycos.cur_task()


def _on_scheduler(sched: Pycos | None, fn: Callable[..., Any], *args: Any) -> None:
    """Run ``fn(*args)`` on the scheduler thread (now if already there, else posted).

    With no scheduler running nobody can be waiting, so ``fn`` runs in the caller's thread.
    """
    if sched is None or not lowlevel.alive(sched):
        sched = Pycos.scheduler()
    if sched is None:
        fn(*args)
    else:
        lowlevel.call(sched, fn, *args)


class _Acquire(Trap):
    """``yield lock.acquire(...)``: ``owner._take(sched, task, timeout)`` on the scheduler."""

    __slots__ = ("owner", "timeout")
    _what = "lock.acquire()"
    _names = ("acquire",)

    def __init__(self, owner: Any, timeout: float | None) -> None:
        self.owner = owner
        self.timeout = timeout

    def _apply(self, sched: Any, task: Any) -> Any:
        return self.owner._take(sched, task, self.timeout)


# ------------------------------------------------------------------ Lock
class Lock:
    """A mutual-exclusion lock for tasks (not for threads).

    ``yield lock.acquire()`` takes it, waiting in FIFO order; ``lock.release()`` hands it to the
    oldest waiter. The lock is not re-entrant: a task that acquires it again waits like any
    other (until a plain thread releases it for it, or its timeout); use ``RLock`` for that.
    """

    __slots__ = ("_owner", "_waiters", "_sched")

    def __init__(self) -> None:
        self._owner: Any = None
        self._waiters = WaitQueue()
        self._sched: Pycos | None = None

    def __repr__(self) -> str:
        state = f"locked by {self._owner!r}" if self._owner is not None else "unlocked"
        return f"<{type(self).__name__} {state}, {len(self._waiters)} waiting>"

    def locked(self) -> bool:
        """Plain call: True if some task holds the lock."""
        return self._owner is not None

    def acquire(self, blocking: bool = True, timeout: float | None = -1) -> Trap:
        """Use with yield: ``ok = yield lock.acquire(blocking=True, timeout=-1)``.

        Args:
            blocking: when False, do not wait: True if the lock was free, else False.
            timeout: seconds to wait at most; -1 or None waits forever.

        Returns:
            (the yield's value) True once the lock is held, False if ``timeout`` passed first.

        Raises:
            TypeError, ValueError: ``timeout`` is not a number, or negative other than -1.
        """
        return note_made(_Acquire(self, _acquire_timeout(blocking, timeout)))

    def _take(self, sched: Any, task: Any, timeout: float | None) -> Any:
        self._sched = sched
        owner = self._owner
        if owner is None:
            self._owner = task
            return True
        if timeout is not None and timeout <= 0:
            return False
        return self._waiters._park_now(sched, task, timeout, False)

    def _hand_off(self) -> None:
        """Give the lock to the oldest waiter, or free it (scheduler thread)."""
        self._owner = self._waiters.wake_one(True)

    def release(self) -> None:
        """Plain call (may be used with yield): release the lock, handing it to the oldest waiter.

        Inside a task only the holder may release it. A plain thread may release a lock held by
        a task (for example when a task passed work, and the lock with it, to a thread); that
        release is carried out on the scheduler thread.

        Raises:
            RuntimeError: the lock is not held, or is held by another task than the caller.
        """
        task = _current_task()
        if self._owner is None:
            raise RuntimeError(f"release of {self!r}, which is not locked")
        if task is not None:
            if self._owner is not task:
                raise RuntimeError(f"{task!r} cannot release {self!r}: it does not hold it")
            self._hand_off()
            return
        _on_scheduler(self._sched, self._release_posted)

    def _release_posted(self) -> None:
        if self._owner is None:
            _log.error("release of %r from a thread ignored: it is not locked", self)
            return
        self._hand_off()

    # Used by Condition: give the lock up completely, then take it back as it was.
    def _is_owned_by(self, task: Any) -> bool:
        return task is not None and self._owner is task

    def _release_save(self) -> Any:
        self._hand_off()
        return None

    def _acquire_restore(self, state: Any) -> Generator[Any, Any, None]:
        yield _Acquire(self, None)


# ------------------------------------------------------------------ RLock
class RLock(Lock):
    """A re-entrant lock: ``yield rlock.acquire(blocking=True, timeout=-1)`` as for ``Lock``,
    but the holding task may acquire it again at once. It is released when ``release`` has been
    called as many times as ``acquire``. Only the holding task can release it.
    """

    __slots__ = ("_depth",)

    def __init__(self) -> None:
        super().__init__()
        self._depth = 0

    def __repr__(self) -> str:
        return f"{super().__repr__()[:-1]}, depth {self._depth}>"

    def _take(self, sched: Any, task: Any, timeout: float | None) -> Any:
        self._sched = sched
        owner = self._owner
        if owner is task:
            self._depth += 1
            return True
        if owner is None:
            self._owner = task
            self._depth = 1
            return True
        if timeout is not None and timeout <= 0:
            return False
        return self._waiters._park_now(sched, task, timeout, False)

    def _hand_off(self) -> None:
        self._owner = self._waiters.wake_one(True)
        self._depth = 0 if self._owner is None else 1

    def release(self) -> None:
        """Plain call (may be used with yield): undo one ``acquire`` of the holding task; at the
        last one the lock goes to the oldest waiter.

        Raises:
            RuntimeError: the caller is not the task holding the lock (a plain thread never
                holds an RLock).
        """
        task = _current_task()
        if task is None or self._owner is not task:
            who = repr(task) if task is not None else "a thread outside the scheduler"
            raise RuntimeError(f"{who} cannot release {self!r}: it does not hold it")
        self._depth -= 1
        if self._depth == 0:
            self._hand_off()

    def _release_save(self) -> Any:
        depth = self._depth
        self._hand_off()
        return depth

    def _acquire_restore(self, state: Any) -> Generator[Any, Any, None]:
        yield _Acquire(self, None)
        self._depth = state


# ------------------------------------------------------------------ Condition
class Condition:
    """A condition variable for tasks.

    Args:
        lock: the ``Lock`` or ``RLock`` it uses; a new ``RLock`` by default.

    ``yield cond.acquire()`` / ``cond.release()`` work on that lock. ``yield cond.wait()``
    releases it, waits for ``notify``, and re-acquires it before returning, in every case
    (notified, timed out or interrupted by an exception thrown into the task).
    """

    __slots__ = ("_lock", "_waiters", "_sched")

    def __init__(self, lock: Lock | None = None) -> None:
        if lock is None:
            lock = RLock()
        elif not isinstance(lock, Lock):
            raise TypeError(f"Condition() needs a pycos Lock or RLock, got {lock!r}")
        self._lock = lock
        self._waiters = WaitQueue()
        self._sched: Pycos | None = None

    def __repr__(self) -> str:
        return f"<Condition {self._lock!r}, {len(self._waiters)} waiting>"

    def acquire(self, blocking: bool = True, timeout: float | None = -1) -> Trap:
        """Use with yield: ``ok = yield cond.acquire(blocking=True, timeout=-1)``; see
        ``Lock.acquire``."""
        return self._lock.acquire(blocking, timeout)

    def release(self) -> None:
        """Plain call (may be used with yield): release the underlying lock."""
        self._lock.release()

    def locked(self) -> bool:
        """Plain call: True if some task holds the underlying lock."""
        return self._lock.locked()

    def wait(self, timeout: float | None = None) -> Generator[Any, Any, bool]:
        """Use with yield: ``notified = yield cond.wait(timeout=None)``.

        The calling task must hold the lock. Releases it (completely, for an RLock acquired
        several times), waits until ``notify`` or ``timeout`` seconds, then re-acquires it as it
        was.

        Returns:
            (the yield's value) True if notified, False if the timeout passed.

        Raises:
            TypeError, ValueError: bad ``timeout``.
            RuntimeError: (at the yield) the task does not hold the lock.
        """
        _check_timeout(timeout, "timeout")
        return note_made(self._wait(timeout))

    def _wait(self, timeout: float | None) -> Generator[Any, Any, bool]:
        task = _current_task()
        if task is None:
            raise RuntimeError("Condition.wait() must be yielded by a task")
        lock = self._lock
        if not lock._is_owned_by(task):
            raise RuntimeError(f"{task!r} cannot wait on {self!r}: it does not hold the lock")
        self._sched = lowlevel.scheduler_of(task)
        state = lock._release_save()
        try:
            notified = yield self._waiters.park(timeout, False)
        except GeneratorExit:
            raise  # terminated: the task ends, there is no caller to give the lock back to
        except BaseException:
            yield from lock._acquire_restore(state)
            raise
        yield from lock._acquire_restore(state)
        return bool(notified)

    def wait_for(self, predicate: Callable[[], Any],
                 timeout: float | None = None) -> Generator[Any, Any, Any]:
        """Use with yield: ``result = yield cond.wait_for(predicate, timeout=None)``.

        Waits (as ``wait``) until ``predicate()`` is true or ``timeout`` seconds pass in total;
        evaluates to the last value of ``predicate()``.
        """
        if not callable(predicate):
            raise TypeError(f"wait_for() needs a callable predicate, got {predicate!r}")
        _check_timeout(timeout, "timeout")
        return note_made(self._wait_for(predicate, timeout))

    def _wait_for(self, predicate: Callable[[], Any],
                  timeout: float | None) -> Generator[Any, Any, Any]:
        result = predicate()
        if result:
            return result
        sched = _current_task()._sched
        deadline = None if timeout is None else sched.time() + timeout
        while not result:
            remaining = None
            if deadline is not None:
                remaining = deadline - sched.time()
                if remaining <= 0:
                    break
            yield from self._wait(remaining)
            result = predicate()
        return result

    def notify(self, n: int = 1) -> None:
        """Plain call (may be used with yield; safe from a plain thread): wake up to ``n`` of
        the waiting tasks, oldest first. Each then re-acquires the lock in turn."""
        if isinstance(n, bool) or not isinstance(n, int):
            raise TypeError(f"notify() needs an int count, got {n!r}")
        if n < 0:
            raise ValueError(f"notify() count must be >= 0, got {n}")
        _on_scheduler(self._sched, self._notify, n)

    def _notify(self, n: int) -> None:
        while n and self._waiters.wake_one(True) is not None:
            n -= 1

    def notify_all(self) -> None:
        """Plain call (may be used with yield; safe from a plain thread): wake every waiting
        task."""
        _on_scheduler(self._sched, self._waiters.wake_all, True)

    notifyAll = notify_all


# ------------------------------------------------------------------ Event
class _EventWait(Trap):
    __slots__ = ("event", "timeout")
    _what = "event.wait()"
    _names = ("wait",)

    def __init__(self, event: Event, timeout: float | None) -> None:
        self.event = event
        self.timeout = timeout

    def _apply(self, sched: Any, task: Any) -> Any:
        event = self.event
        event._sched = sched
        if event._flag:
            return True
        if self.timeout is not None and self.timeout <= 0:
            return False
        return event._waiters._park_now(sched, task, self.timeout, False)


class Event:
    """An event flag for tasks: ``yield event.wait()`` waits until ``event.set()``."""

    __slots__ = ("_flag", "_waiters", "_sched")

    def __init__(self) -> None:
        self._flag = False
        self._waiters = WaitQueue()
        self._sched: Pycos | None = None

    def __repr__(self) -> str:
        return f"<Event {'set' if self._flag else 'clear'}, {len(self._waiters)} waiting>"

    def set(self) -> None:
        """Plain call (may be used with yield; safe from a plain thread): set the flag and wake
        every waiting task (in FIFO order)."""
        self._flag = True
        _on_scheduler(self._sched, self._waiters.wake_all, True)

    def clear(self) -> None:
        """Plain call: reset the flag; later ``wait`` calls block again."""
        self._flag = False

    def is_set(self) -> bool:
        """Plain call: the flag."""
        return self._flag

    isSet = is_set

    def wait(self, timeout: float | None = None) -> Trap:
        """Use with yield: ``ok = yield event.wait(timeout=None)``.

        Returns:
            (the yield's value) True if the flag is (or becomes) set, False if ``timeout``
            seconds passed first (``timeout=0`` polls).

        Raises:
            TypeError, ValueError: ``timeout`` is not a number or is negative.
        """
        _check_timeout(timeout, "timeout")
        return note_made(_EventWait(self, timeout))


# ------------------------------------------------------------------ Semaphore
class Semaphore:
    """A counting semaphore for tasks.

    Args:
        value: the initial count (an int >= 0).
    """

    __slots__ = ("_value", "_waiters", "_sched")

    def __init__(self, value: int = 1) -> None:
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"Semaphore() needs an int initial value, got {value!r}")
        if value < 0:
            raise ValueError(f"Semaphore() initial value must be >= 0, got {value}")
        self._value = value
        self._waiters = WaitQueue()
        self._sched: Pycos | None = None

    def __repr__(self) -> str:
        return f"<Semaphore value={self._value}, {len(self._waiters)} waiting>"

    @property
    def value(self) -> int:
        """The current count (units that can be acquired without waiting)."""
        return self._value

    def acquire(self, blocking: bool = True, timeout: float | None = None) -> Trap:
        """Use with yield: ``ok = yield sem.acquire(blocking=True, timeout=None)``.

        Takes one unit, waiting in FIFO order while the count is 0.

        Returns:
            (the yield's value) True once a unit is taken; False if ``blocking`` is False and
            none is free, or if ``timeout`` seconds passed.

        Raises:
            TypeError, ValueError: ``timeout`` is not a number or is negative.
        """
        return note_made(_Acquire(self, _acquire_timeout(blocking, timeout, forever=None)))

    def _take(self, sched: Any, task: Any, timeout: float | None) -> Any:
        self._sched = sched
        if self._value > 0:
            self._value -= 1
            return True
        if timeout is not None and timeout <= 0:
            return False
        return self._waiters._park_now(sched, task, timeout, False)

    def release(self, n: int = 1) -> None:
        """Plain call (may be used with yield; safe from a plain thread): return ``n`` units;
        each goes straight to the oldest waiting task, if any."""
        if isinstance(n, bool) or not isinstance(n, int):
            raise TypeError(f"release() needs an int count, got {n!r}")
        if n < 1:
            raise ValueError(f"release() count must be >= 1, got {n}")
        _on_scheduler(self._sched, self._release, n)

    def _release(self, n: int) -> None:
        for _ in range(n):
            if self._waiters.wake_one(True) is None:
                self._value += 1


describe_generator_op(Condition._wait, "cond.wait()", ("wait",))
describe_generator_op(Condition._wait_for, "cond.wait_for()", ("wait_for",))
yield_mistake(Lock, "to take the lock write 'yield lock.acquire()'")
yield_mistake(RLock, "to take the lock write 'yield rlock.acquire()'")
yield_mistake(Condition, "write 'yield cond.acquire()' to take its lock, 'yield cond.wait()' to "
              "wait for a notify")
yield_mistake(Event, "to wait for it write 'yield event.wait()'")
yield_mistake(Semaphore, "to take a unit write 'yield sem.acquire()'")
