"""Readiness-driven operations shared by sockets, TLS and files (layer L3, private).

Owns the machinery that turns one non-blocking system call into a blocking operation of a task:

* an operation (``Op``) is a trap. ``yield op`` first tries the call at once; when it completes
  the ``yield`` has its value without any poller work and without a trip through the run queue;
* only when the call would block (``attempt`` returns ``WANT_READ`` / ``WANT_WRITE``) is the task
  parked and a ``Callback`` registered with the scheduler's poller for that direction. When the
  descriptor is ready the callback retries the call on the scheduler thread and wakes the task
  with its result (or raises the call's error in it);
* a ``Pollable`` (an ``AsyncSocket`` or ``AsyncFile``) has at most one waiting operation per
  direction: a second one gets the poller's ``ConcurrentWaitError``. ``_close_waits`` wakes every
  task waiting on it with an error.

Two measures keep the common request/response and streaming patterns cheap: the read callback
stays registered after a read completes (``_rheld``; the first readiness event that finds no
reader unregisters it, so an unread descriptor never makes the scheduler spin), and after a write
the next read skips the attempt that would fail and waits for readiness at once (``ReadOp``).

Invariants: ``_wtask``/``_wop`` are set exactly while the write callback is registered; the read
callback is registered whenever ``_rtask``/``_rop`` are set (and maybe a while longer, recorded
in ``_rheld``). A parked task's ``_wait`` is the Pollable, so timeouts, ``terminate`` and
``throw`` undo the wait through ``cancel_wait``. Operations that had to wait for a sibling
operation of the same object (a TLS handshake run by another task, or a TLS write that needs
the read direction someone else holds) sit in ``_queue`` and are retried when that sibling lets
go. Scheduler-thread only (``on_scheduler`` brings other threads there). Imports the standard
library and ``pycos.core``.
"""

from __future__ import annotations

import errno
import threading
from collections.abc import Callable
from typing import Any

from .core import lowlevel
from .core.lowlevel import READ, SUSPEND, WRITE, Callback, ConcurrentWaitError, Trap
from .errors import ClosedWhileWaiting

__all__ = ["Op", "ReadOp", "Pollable", "WANT_READ", "WANT_WRITE", "closed_error", "on_scheduler"]


def on_scheduler(sched: Any, fn: Callable[[], None]) -> None:
    """Run ``fn()`` on ``sched``'s thread and return when it has run (now, when called on
    that thread). If the scheduler has stopped, ``fn`` runs in the caller."""
    if lowlevel.in_thread(sched):
        fn()
        return
    done = threading.Event()

    def run(event: threading.Event) -> None:
        try:
            fn()
        finally:
            event.set()

    if lowlevel.call_soon(sched, run, done):
        done.wait()
    else:
        fn()


class _Want:
    __slots__ = ("name", "event")

    def __init__(self, name: str, event: int) -> None:
        self.name = name
        self.event = event

    def __repr__(self) -> str:
        return f"<{self.name}>"


#: Returned by ``Op.attempt`` when the call must wait until the descriptor is readable.
WANT_READ = _Want("want-read", READ)
#: Returned by ``Op.attempt`` when the call must wait until the descriptor is writable.
WANT_WRITE = _Want("want-write", WRITE)


def closed_error(what: str = "descriptor") -> OSError:
    """The error raised in tasks that were waiting on an object that got closed."""
    return ClosedWhileWaiting(errno.EBADF, f"{what} was closed while a task was waiting on it")


class Op(Trap):
    """One operation on a ``Pollable``; yielding it runs it.

    Subclasses implement ``attempt()``: perform the non-blocking call and return its result, or
    ``WANT_READ`` / ``WANT_WRITE`` when it must wait (progress already made is kept in the op
    and ``moved`` set, which restarts the inactivity timeout). ``expired()`` gives the value on
    timeout (or raises ``TimeoutError``); ``release()`` drops buffers and makes a cached op
    reusable. ``direction`` is the readiness the operation naturally waits for.
    """

    __slots__ = ("owner", "busy", "timeout", "moved", "stamp")

    direction = READ

    def __init__(self, owner: Any) -> None:
        self.owner = owner
        self.busy = False
        self.timeout: float | None = None
        self.moved = False
        self.stamp = 0.0

    def _apply(self, sched: Any, task: Any) -> Any:
        owner = self.owner
        if owner._gated:
            return owner._gated_begin(sched, task, self)
        try:
            result = self.attempt()
            if result is WANT_READ or result is WANT_WRITE:
                owner._wait_for(sched, task, self, result.event)
                return SUSPEND
        except BaseException:
            self.release()
            raise
        self.release()
        return result

    def _run(self, sched: Any, task: Any) -> Any:
        """``_apply`` without the gate check (same body; kept apart for speed)."""
        try:
            result = self.attempt()
            if result is WANT_READ or result is WANT_WRITE:
                self.owner._wait_for(sched, task, self, result.event)
                return SUSPEND
        except BaseException:
            self.release()
            raise
        self.release()
        return result

    def attempt(self) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def expired(self) -> Any:
        """Value of the ``yield`` when the timeout passes; by default ``socket.timeout``."""
        raise TimeoutError("timed out")

    def release(self) -> None:
        """Forget per-call state (the op may be reused by its owner afterwards)."""
        self.busy = False

    def __repr__(self) -> str:
        return f"<{type(self).__name__} on {self.owner!r}>"


class ReadOp(Op):
    """An op that waits for readability. When the owner's ``_rhint`` says the descriptor is
    probably empty (the last thing done on it was a write, so an answer cannot be there yet),
    the op skips the attempt that would fail and waits for readiness at once: a
    request/response exchange then costs no failed system call. A read after a read tries first
    (a busy stream usually has more data). Never for TLS: data may sit in the TLS layer while
    the descriptor is not readable."""

    __slots__ = ()

    def _apply(self, sched: Any, task: Any) -> Any:
        owner = self.owner
        if owner._rhint and not owner._gated and not owner._tls:
            try:
                owner._wait_for(sched, task, self, READ)
            except BaseException:
                self.release()
                raise
            return SUSPEND
        return Op._apply(self, sched, task)


class Pollable:
    """Base of objects whose operations wait for readiness of one descriptor."""

    __slots__ = ("_fd", "_sched", "_rtask", "_rop", "_wtask", "_wop", "_rcb", "_wcb", "_queue",
                 "_gated", "_rheld", "_rhint", "_tls")

    def _init_pollable(self, fd: int) -> None:
        self._fd = fd
        self._sched: Any = None
        self._rtask: Any = None
        self._rop: Op | None = None
        self._wtask: Any = None
        self._wop: Op | None = None
        self._rcb: Callback | None = None
        self._wcb: Callback | None = None
        self._queue: list[tuple[Any, Op]] | None = None
        self._gated = False
        self._rheld: Any = None  # scheduler whose poller has our read callback registered
        self._rhint = False  # a read now would probably find nothing (see ReadOp)
        self._tls = False

    # ------------------------------------------------------------ starting
    def _gated_begin(self, sched: Any, task: Any, op: Op) -> Any:  # pragma: no cover
        """Start ``op`` while ``_gated`` is set (subclasses that use the gate define it)."""
        raise NotImplementedError

    def _wait_for(self, sched: Any, task: Any, op: Op, event: int) -> None:
        """``op`` would block: register it for ``event`` and park ``task``."""
        if not self._hold_or_queue(sched, task, op, event):
            raise ConcurrentWaitError(
                f"another task is already waiting on {self!r} in the same direction")
        self._park(sched, task, op)

    def _park(self, sched: Any, task: Any, op: Op) -> None:
        timeout = op.timeout
        if timeout:
            now = lowlevel.now(sched)
            op.moved = False
            op.stamp = now
            lowlevel.park_timed(task, self, now + timeout, self._expire, op)
        else:
            lowlevel.park(task, self, None, None)

    def _hold_or_queue(self, sched: Any, task: Any, op: Op, event: int) -> bool:
        """Register ``op`` for ``event``. If a sibling op holds that direction, queue ``op``
        when it needs the direction only incidentally (TLS); False when it is a true second
        waiter in its own direction."""
        try:
            self._hold(sched, task, op, event)
        except ConcurrentWaitError:
            if event == op.direction or not self._sibling_holds(event):
                return False
            self._enqueue(task, op)
        return True

    def _sibling_holds(self, event: int) -> bool:
        return (self._rtask if event == READ else self._wtask) is not None

    def _hold(self, sched: Any, task: Any, op: Op, event: int) -> None:
        if self._fd < 0:  # closed by another thread since the operation was tried
            raise closed_error("the socket")
        self._sched = sched
        if event == READ:
            if self._rtask is not None:
                raise ConcurrentWaitError(f"another task is already waiting to read {self!r}")
            if self._rheld is not sched:
                cb = self._rcb
                if cb is None:
                    cb = self._rcb = Callback(self._on_read)
                lowlevel.poller_of(sched).add_waiter(self._fd, READ, cb)
                self._rheld = sched
            self._rtask = task
            self._rop = op
        else:
            cb = self._wcb
            if cb is None:
                cb = self._wcb = Callback(self._on_write)
            lowlevel.poller_of(sched).add_waiter(self._fd, WRITE, cb)
            self._wtask = task
            self._wop = op

    def _drop(self, event: int) -> None:
        if event == READ:
            # The read registration stays (most sockets are read again soon); the first
            # readiness event that finds no waiting op removes it (see ``_step``).
            self._rtask = self._rop = None
        else:
            self._wtask = self._wop = None
            lowlevel.remove_writer(self._sched, self._fd)
        if self._queue:
            lowlevel.call_soon(self._sched, self._retry_queue)

    def _unhold_read(self) -> None:
        """Remove the idle read registration (nobody is reading). Scheduler thread."""
        sched, self._rheld = self._rheld, None
        if sched is not None and self._rtask is None and self._fd >= 0:
            lowlevel.remove_reader(sched, self._fd)

    def _release_poller(self) -> None:
        """Plain call (any thread): forget the idle read registration, before the descriptor
        changes hands (``unwrap``, blocking mode, another wrapper)."""
        sched = self._rheld
        if sched is not None and lowlevel.alive(sched):
            on_scheduler(sched, self._unhold_read)
        self._rheld = None

    def _enqueue(self, task: Any, op: Op) -> None:
        self._sched = lowlevel.scheduler_of(task)
        if self._queue is None:
            self._queue = []
        self._queue.append((task, op))

    # ------------------------------------------------------------ progress
    def _on_read(self) -> None:
        self._step(READ)

    def _on_write(self) -> None:
        self._step(WRITE)

    def _step(self, event: int) -> None:
        """The descriptor is ready for ``event``: retry the op waiting for it."""
        if event == READ:
            task, op = self._rtask, self._rop
        else:
            task, op = self._wtask, self._wop
        if task is None or op is None:
            if event == READ and self._rheld is not None:
                self._unhold_read()
            return
        sched = self._sched
        try:
            result = op.attempt()
        except Exception as exc:  # the call failed: raise its error in the task
            self._drop(event)
            op.release()
            lowlevel.wake_exc(task, exc)
            return
        if result is WANT_READ or result is WANT_WRITE:
            if op.moved:
                op.moved = False
                op.stamp = lowlevel.now(sched)
            if result.event != event:
                self._drop(event)
                self._rehold(sched, task, op, result.event)
            return
        self._drop(event)
        op.release()
        lowlevel.wake(task, result)

    def _rehold(self, sched: Any, task: Any, op: Op, event: int) -> None:
        """Move a parked op to another direction (or the queue); failures go to the task."""
        try:
            if not self._hold_or_queue(sched, task, op, event):
                raise ConcurrentWaitError(
                    f"another task is already waiting on {self!r} in the same direction")
        except Exception as exc:
            op.release()
            lowlevel.wake_exc(task, exc)

    def _resume(self, task: Any, op: Op) -> None:
        """Retry a queued op of a task that is still parked on this object."""
        sched = lowlevel.scheduler_of(task)
        try:
            result = op.attempt()
        except Exception as exc:
            op.release()
            lowlevel.wake_exc(task, exc)
            return
        if result is WANT_READ or result is WANT_WRITE:
            self._rehold(sched, task, op, result.event)
            return
        op.release()
        lowlevel.wake(task, result)

    def _retry_queue(self) -> None:
        queue, self._queue = self._queue, None
        for task, op in queue or ():
            if lowlevel.is_parked_on(task, self):
                self._resume(task, op)

    # ------------------------------------------------------------ undo
    def cancel_wait(self, task: Any) -> None:
        """Undo the wait of ``task`` (timeout, terminate, throw)."""
        if self._rtask is task:
            op = self._rop
            self._drop(READ)
        elif self._wtask is task:
            op = self._wop
            self._drop(WRITE)
        else:
            op = self._unqueue(task)
        if op is not None:
            op.release()

    def _unqueue(self, task: Any) -> Op | None:
        queue = self._queue
        if queue:
            for i, (waiter, op) in enumerate(queue):
                if waiter is task:
                    del queue[i]
                    return op
        return None

    def _expire(self, task: Any, op: Op) -> None:
        """Timer callback: the op's (inactivity) timeout passed."""
        lowlevel.timer_fired(task)
        sched = lowlevel.scheduler_of(task)
        if not lowlevel.is_parked_on(task, self):
            return
        due = op.stamp + (op.timeout or 0.0)
        now = lowlevel.now(sched)
        if due > now:  # progress was made since the timer was set: wait the rest
            lowlevel.rearm(task, due, self._expire, op)
            return
        if self._rtask is task:
            self._drop(READ)
        elif self._wtask is task:
            self._drop(WRITE)
        else:
            self._unqueue(task)
        try:
            value = op.expired()
        except Exception as exc:
            op.release()
            lowlevel.wake_exc(task, exc)
            return
        op.release()
        lowlevel.wake(task, value)

    def _close_waits(self, exc_factory: Any, sched: Any = None) -> None:
        """Wake every task waiting on this object with a fresh ``exc_factory()`` error and
        unregister from the poller (scheduler thread; call before closing the descriptor)."""
        if self._sched is not None:
            sched = self._sched
        if sched is None:
            return
        waiters: list[tuple[Any, Op | None]] = []
        if self._rtask is not None:
            waiters.append((self._rtask, self._rop))
        if self._wtask is not None:
            waiters.append((self._wtask, self._wop))
        waiters.extend(self._queue or ())
        self._rtask = self._rop = self._wtask = self._wop = None
        self._queue = None
        self._rheld = None
        if self._fd >= 0:
            lowlevel.close_fd(sched, self._fd, exc_factory())  # also wakes WaitIO users
        for task, op in waiters:
            if op is not None:
                op.release()
            if lowlevel.is_parked_on(task, self):
                lowlevel.wake_exc(task, exc_factory())
