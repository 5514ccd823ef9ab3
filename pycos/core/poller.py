"""I/O readiness over the stdlib ``selectors`` module.

Owns one record per watched descriptor: the task (or internal callback) waiting to read and the
one waiting to write. Facts this module keeps true:

* the selector registration of a descriptor is always derived from its record by one function,
  ``_sync`` (registered for exactly the directions that have a waiter);
* a second waiter in the same direction is an error (``ConcurrentWaitError``), never a silent
  overwrite;
* closing a descriptor through ``close_fd`` wakes every task waiting on it with an error;
* a descriptor closed *behind its back* (``os.close`` while a duplicate keeps the file open, so
  the kernel keeps reporting it) never takes the scheduler down: its waiters get an ``OSError``
  (EBADF) and the selector is rebuilt without the stale registration, which the kernel would
  otherwise report forever (a busy loop).

Scheduler-thread only. Imports the standard library and ``pycos.errors``.
"""

from __future__ import annotations

import errno
import logging
import selectors
from collections.abc import Callable
from time import monotonic as _monotonic
from typing import Any

from ..errors import PycosError

__all__ = ["Poller", "Callback", "ConcurrentWaitError", "READ", "WRITE"]

logger = logging.getLogger("pycos.core.poller")

READ = selectors.EVENT_READ
WRITE = selectors.EVENT_WRITE


class ConcurrentWaitError(PycosError, RuntimeError):
    """Another task is already waiting on this descriptor in the same direction."""


class Callback:
    """An internal, permanent waiter: ``fn()`` runs on every readiness event."""

    __slots__ = ("fn",)

    def __init__(self, fn: Callable[[], None]) -> None:
        self.fn = fn


class _FdRecord:
    """Who waits on one descriptor; also the "wait object" parked tasks point at."""

    __slots__ = ("poller", "fd", "reader", "writer", "mask")

    def __init__(self, poller: Poller, fd: int) -> None:
        self.poller = poller
        self.fd = fd
        self.reader: Any = None
        self.writer: Any = None
        self.mask = 0

    def cancel_wait(self, task: Any) -> None:
        """Undo a task's wait on this descriptor (timeout, terminate, throw)."""
        if self.reader is task:
            self.reader = None
        if self.writer is task:
            self.writer = None
        self.poller._sync_or_fail(self)


def _fileno(fileobj: Any) -> int:
    if isinstance(fileobj, int):
        fd = fileobj
    else:
        fd = fileobj.fileno()
    if not isinstance(fd, int) or fd < 0:
        raise ValueError(f"invalid file descriptor {fd!r}")
    return fd


def _closed_behind(fd: int) -> OSError:
    return OSError(errno.EBADF, f"descriptor {fd} was closed without the scheduler being told "
                                "(close sockets and files through their pycos objects)")


class Poller:
    """Readiness notification for the scheduler.

    Args:
        wake: ``wake(task, value)`` resumes a parked task with a value.
        wake_exc: ``wake_exc(task, exc)`` resumes a parked task by raising ``exc`` in it.
    """

    def __init__(self, wake: Callable[[Any, Any], None],
                 wake_exc: Callable[[Any, BaseException], None]) -> None:
        self._selector = selectors.DefaultSelector()
        self._records: dict[int, _FdRecord] = {}
        self._wake = wake
        self._wake_exc = wake_exc

    @property
    def name(self) -> str:
        """Name of the OS mechanism in use (``epoll``, ``kqueue``, ``poll``, ``select``)."""
        return type(self._selector).__name__.replace("Selector", "").lower()

    def __len__(self) -> int:
        return len(self._records)

    def _record(self, fd: int) -> _FdRecord:
        rec = self._records.get(fd)
        if rec is None:
            rec = self._records[fd] = _FdRecord(self, fd)
        return rec

    def _sync(self, rec: _FdRecord) -> None:
        mask = (READ if rec.reader is not None else 0) | (WRITE if rec.writer is not None else 0)
        if mask == rec.mask:
            return
        sel = self._selector
        try:
            if mask == 0:
                sel.unregister(rec.fd)
                del self._records[rec.fd]
            elif rec.mask == 0:
                sel.register(rec.fd, mask, rec)
            else:
                sel.modify(rec.fd, mask, rec)
        except (KeyError, ValueError, OSError):
            # The descriptor was closed behind our back; forget it and let waiters fail.
            self._records.pop(rec.fd, None)
            rec.mask = 0
            self._rebuild()
            raise
        rec.mask = mask

    def _sync_or_fail(self, rec: _FdRecord) -> None:
        """``_sync`` where the caller cannot take an error: the waiters left on a descriptor
        found closed are woken with one instead."""
        try:
            self._sync(rec)
        except (KeyError, ValueError, OSError):
            self._fail_waiters(rec)

    def _fail_waiters(self, rec: _FdRecord) -> None:
        waiters = (rec.reader, rec.writer)
        rec.reader = rec.writer = None
        for waiter in waiters:
            if waiter is not None and type(waiter) is not Callback:
                self._wake_exc(waiter, _closed_behind(rec.fd))

    def _rebuild(self) -> None:
        """A new selector with every valid registration: the kernel may go on reporting a
        descriptor closed while a duplicate of it is open, and only a new selector forgets it."""
        old = self._selector
        new = selectors.DefaultSelector()
        bad = []
        for fd, rec in list(self._records.items()):
            if rec.mask:
                try:
                    new.register(fd, rec.mask, rec)
                except (KeyError, ValueError, OSError):
                    bad.append(rec)
        self._selector = new
        try:
            old.close()
        except OSError:
            pass
        for rec in bad:
            self._records.pop(rec.fd, None)
            rec.mask = 0
            self._fail_waiters(rec)

    def add_waiter(self, fileobj: Any, event: int, waiter: Any) -> _FdRecord:
        """Make ``waiter`` (a task, or a ``Callback``) the one waiting for ``event``.

        Raises:
            ConcurrentWaitError: another waiter already holds that direction.
            ValueError / OSError: the descriptor is invalid or closed.
        """
        fd = _fileno(fileobj)
        rec = self._record(fd)
        if event == READ:
            if rec.reader is not None:
                raise ConcurrentWaitError(f"another task is already waiting to read fd {fd}")
            rec.reader = waiter
        elif event == WRITE:
            if rec.writer is not None:
                raise ConcurrentWaitError(f"another task is already waiting to write fd {fd}")
            rec.writer = waiter
        else:
            raise ValueError(f"event must be READ or WRITE, got {event!r}")
        try:
            self._sync(rec)
        except (KeyError, ValueError, OSError):
            if event == READ:
                rec.reader = None
            else:
                rec.writer = None
            raise
        return rec

    def remove_waiter(self, fileobj: Any, event: int) -> None:
        """Forget the waiter of one direction (used for internal callbacks)."""
        rec = self._records.get(_fileno(fileobj))
        if rec is None:
            return
        if event & READ:
            rec.reader = None
        if event & WRITE:
            rec.writer = None
        self._sync_or_fail(rec)

    def close_fd(self, fileobj: Any, exc: BaseException) -> None:
        """Call before closing a descriptor: waiting tasks get ``exc`` raised in them."""
        try:
            fd = _fileno(fileobj)
        except (ValueError, OSError):
            return
        rec = self._records.get(fd)
        if rec is None:
            return
        reader, writer = rec.reader, rec.writer
        rec.reader = rec.writer = None
        try:
            self._sync(rec)
        except (KeyError, ValueError, OSError):
            pass  # already closed: the waiters get ``exc`` all the same
        for waiter in (reader, writer):
            if waiter is not None and type(waiter) is not Callback:
                self._wake_exc(waiter, exc)

    def poll(self, timeout: float | None) -> int:
        """Wait up to ``timeout`` seconds (None: forever) and wake ready waiters."""
        if timeout == 0:
            try:
                events = self._selector.select(0)
            except InterruptedError:
                return 0
        else:
            start = _monotonic()
            try:
                events = self._selector.select(timeout)
            except InterruptedError:
                return 0
            if not events and (timeout is None or _monotonic() - start < timeout - 0.002):
                # Woken early by nothing we track: the kernel reports a descriptor closed
                # behind our back (a duplicate keeps it alive). Forget it, or spin forever.
                self._rebuild()
                return 0
        for key, mask in events:
            rec = key.data
            if mask & READ and rec.reader is not None:
                self._fire(rec, READ)
            if mask & WRITE and rec.writer is not None:
                self._fire(rec, WRITE)
        return len(events)

    def _fire(self, rec: _FdRecord, event: int) -> None:
        waiter = rec.reader if event == READ else rec.writer
        if type(waiter) is Callback:
            try:
                waiter.fn()  # internal permanent callback (wake-up socket, listeners)
            except Exception:  # a bug or a descriptor gone bad: never the scheduler's end
                logger.exception("readiness callback for descriptor %d failed; dropped", rec.fd)
                if event == READ:
                    rec.reader = None
                else:
                    rec.writer = None
                self._sync_or_fail(rec)
            return
        if event == READ:
            rec.reader = None
        else:
            rec.writer = None
        try:
            self._sync(rec)
        except (KeyError, ValueError, OSError):  # closed behind our back
            self._fail_waiters(rec)
            self._wake_exc(waiter, _closed_behind(rec.fd))
            return
        self._wake(waiter, True)

    def close(self) -> None:
        """Release the selector."""
        self._records.clear()
        self._selector.close()
