"""Running blocking calls on worker threads for L3 I/O (layer L3, private).

Owns a small, lazily grown pool of daemon worker threads and the ``ThreadCall`` trap:
``result = yield ThreadCall(fn, *args)`` parks the task, runs ``fn(*args)`` on a worker and
resumes the task with its result (or raises its exception in it). Used for what the OS cannot
poll: regular disk files, host name resolution, waiting for a child process without pidfd.

Invariants: the worker thread never touches scheduler state; it hands the outcome to the
scheduler thread with ``lowlevel.call_soon``. A call whose task stopped waiting (terminated, thrown
into) is left to finish and its outcome is dropped. Imports the standard library and
``pycos.core``.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Any

from ._log import logger
from .core import lowlevel
from .core.traps import SUSPEND, Trap

__all__ = ["ThreadCall", "MAX_WORKERS"]

#: Upper bound on worker threads; more concurrent calls wait in the pool's queue.
MAX_WORKERS = 8
_IDLE_EXIT = 30.0


class _Pool:
    """Daemon worker threads, started on demand and stopped after idling."""

    def __init__(self, limit: int) -> None:
        self._jobs: queue.SimpleQueue[ThreadCall] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._limit = limit
        self._threads = 0
        self._idle = 0

    def submit(self, job: ThreadCall) -> None:
        self._jobs.put(job)
        with self._lock:
            if self._idle > 0 or self._threads >= self._limit:
                return
            self._threads += 1
        threading.Thread(target=self._work, name="pycos-io", daemon=True).start()

    def _work(self) -> None:
        while True:
            with self._lock:
                self._idle += 1
            try:
                job = self._jobs.get(timeout=_IDLE_EXIT)
            except queue.Empty:
                with self._lock:
                    self._idle -= 1
                    if self._jobs.empty():
                        self._threads -= 1
                        return
                continue
            with self._lock:
                self._idle -= 1
            job._run()


_pool = _Pool(MAX_WORKERS)


class ThreadCall(Trap):
    """Use with yield: ``yield ThreadCall(fn, *args)`` runs ``fn(*args)`` on a worker thread.

    The ``yield`` evaluates to the call's return value; an exception it raises is raised in the
    task. ``on_done`` (optional, scheduler thread) runs when the call has finished, whether or
    not the task still waits for it.
    """

    __slots__ = ("fn", "args", "on_done", "_sched", "_task")

    def __init__(self, fn: Callable[..., Any], *args: Any,
                 on_done: Callable[[], None] | None = None) -> None:
        self.fn = fn
        self.args = args
        self.on_done = on_done
        self._sched: Any = None
        self._task: Any = None

    def _apply(self, sched: Any, task: Any) -> Any:
        if self._sched is not None:
            raise RuntimeError(f"{self!r} was already yielded once")
        self._sched = sched
        self._task = task
        lowlevel.park(task, self, None, None)
        _pool.submit(self)
        return SUSPEND

    def cancel_wait(self, task: Any) -> None:
        """The task stopped waiting: the outcome will be dropped."""
        if self._task is task:
            self._task = None

    def _run(self) -> None:
        """Worker thread: run the call and hand the outcome to the scheduler thread."""
        try:
            result, exc = self.fn(*self.args), None
        except BaseException as error:  # noqa: BLE001 - handed to the task as is
            result, exc = None, error
        if not lowlevel.call_soon(self._sched, self._finish, result, exc):
            logger.debug("scheduler stopped before %r finished", self.fn)

    def _finish(self, result: Any, exc: BaseException | None) -> None:
        if self.on_done is not None:
            self.on_done()
        task, self._task = self._task, None
        if task is None or not lowlevel.is_parked_on(task, self):
            return
        if exc is None:
            lowlevel.wake(task, result)
        else:
            lowlevel.wake_exc(task, exc)

    def __repr__(self) -> str:
        return f"ThreadCall({getattr(self.fn, '__qualname__', self.fn)!r})"
