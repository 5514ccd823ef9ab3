"""Run blocking code in threads from tasks: ``AsyncThreadPool`` and ``AsyncDBCursor``.

Owns a pool of daemon worker threads fed through a FIFO job queue. A task yields
``pool.async_task(fn, ...)`` and is parked on its job; the worker runs ``fn`` and hands the result
(or the exception) back through the scheduler's thread-safe ``_post``, so scheduler state is only
ever touched on the scheduler thread. Imports L0, L1 and ``pycos.sync``.

Invariants:

* A task that stops waiting (terminated, or an exception thrown into it) cancels its job: a job
  not yet started is skipped, the result of a running one is discarded. Its ``cleanup`` callback,
  if any, runs in the worker in both cases.
* ``AsyncDBCursor`` runs the operations on one cursor one at a time, in the order they were
  issued, even on a pool with several threads.
"""

from __future__ import annotations

import logging
import queue
import threading
import traceback
from collections.abc import Callable, Generator
from typing import Any

from .core import lowlevel
from .core.scheduler import Pycos
from .core.traps import SUSPEND, Trap
from .errors import ContextError
from .sync import Lock

__all__ = ["AsyncThreadPool", "AsyncDBCursor"]

_log = logging.getLogger(__name__)


class _Job:
    """One call to run in a worker; also the wait object its task is parked on."""

    __slots__ = ("sched", "task", "fn", "args", "kwargs", "cleanup", "cancelled")

    def __init__(self, sched: Any, task: Any, fn: Callable[..., Any], args: tuple[Any, ...],
                 kwargs: dict[str, Any], cleanup: Callable[[], Any] | None) -> None:
        self.sched = sched
        self.task = task
        self.fn = fn
        self.args = args
        self.kwargs = kwargs
        self.cleanup = cleanup
        self.cancelled = False

    def cancel_wait(self, task: Any) -> None:
        """The task stopped waiting (scheduler thread): skip or discard this job."""
        self.cancelled = True

    def run(self) -> None:
        """Worker thread: run the call unless cancelled, then the cleanup, then post the outcome
        to the scheduler (after anything the cleanup posted, so the task wakes up to it)."""
        outcome: tuple[Callable[[Any], None], Any] | None = None
        if not self.cancelled:
            try:
                outcome = (self._done, self.fn(*self.args, **self.kwargs))
            except BaseException as exc:  # noqa: BLE001 - re-raised in the waiting task
                outcome = (self._fail, exc)
        if self.cleanup is not None:
            try:
                self.cleanup()
            except Exception:  # noqa: BLE001
                _log.warning("cleanup of thread job %r failed:\n%s", self.fn,
                             traceback.format_exc())
        if outcome is not None:
            lowlevel.call_soon(self.sched, *outcome)

    def _done(self, result: Any) -> None:
        if not self.cancelled:
            lowlevel.wake(self.task, result)

    def _fail(self, exc: BaseException) -> None:
        if not self.cancelled:
            lowlevel.wake_exc(self.task, exc)


class _Submit(Trap):
    """``yield pool.async_task(...)``: park the task on a new job and queue it."""

    __slots__ = ("pool", "fn", "args", "kwargs", "cleanup")

    def __init__(self, pool: AsyncThreadPool, fn: Callable[..., Any], args: tuple[Any, ...],
                 kwargs: dict[str, Any], cleanup: Callable[[], Any] | None = None) -> None:
        self.pool = pool
        self.fn = fn
        self.args = args
        self.kwargs = kwargs
        self.cleanup = cleanup

    def _apply(self, sched: Any, task: Any) -> Any:
        pool = self.pool
        if pool._closed:
            if self.cleanup is not None:
                self.cleanup()
            raise RuntimeError(f"{pool!r} has been terminated; it runs no more jobs")
        job = _Job(sched, task, self.fn, self.args, self.kwargs, self.cleanup)
        lowlevel.park(task, job, None, None)
        pool._jobs.put(job)
        return SUSPEND


class AsyncThreadPool:
    """A pool of daemon threads that run blocking calls for tasks.

    Args:
        num_threads: the number of worker threads (an int >= 1).

    Data shared between tasks and functions run in the pool must be protected with
    ``threading`` locks, not task locks: the functions run outside the scheduler.
    """

    def __init__(self, num_threads: int) -> None:
        if isinstance(num_threads, bool) or not isinstance(num_threads, int):
            raise TypeError(f"AsyncThreadPool() needs an int thread count, got {num_threads!r}")
        if num_threads < 1:
            raise ValueError(f"AsyncThreadPool() needs at least 1 thread, got {num_threads}")
        self._jobs: queue.Queue[_Job | None] = queue.Queue()
        self._closed = False
        self._threads = [threading.Thread(target=self._worker, name=f"pycos-pool-{i}",
                                          daemon=True) for i in range(num_threads)]
        for thread in self._threads:
            thread.start()

    def __repr__(self) -> str:
        state = "terminated" if self._closed else f"{self._jobs.qsize()} queued"
        return f"<AsyncThreadPool {len(self._threads)} threads, {state}>"

    @property
    def num_threads(self) -> int:
        """The number of worker threads."""
        return len(self._threads)

    def _worker(self) -> None:
        jobs = self._jobs
        while True:
            job = jobs.get()
            try:
                if job is None:
                    return
                job.run()
            finally:
                jobs.task_done()

    def async_task(self, target: Callable[..., Any], *args: Any, **kwargs: Any) -> Trap:
        """Use with yield: ``result = yield pool.async_task(target, *args, **kwargs)``.

        Runs ``target(*args, **kwargs)`` in a worker thread; the yield evaluates to its result,
        or raises the exception it raised (the same object, so its type is kept). The
        ``threading.Thread`` spelling ``async_task(target, args=(...), kwargs={...})`` is
        accepted too.

        Raises:
            TypeError: ``target`` is not callable.
            RuntimeError: (at the yield) the pool has been terminated.
        """
        if not callable(target):
            raise TypeError(f"async_task() needs a callable target, got {target!r}")
        if not args and kwargs and set(kwargs) <= {"args", "kwargs"}:
            args = tuple(kwargs.get("args", ()))
            kwargs = dict(kwargs.get("kwargs", {}))
        return _Submit(self, target, args, kwargs)

    def join(self) -> None:
        """Plain call from a thread (not a task): block until every queued job has run.

        Raises:
            ContextError: called on the scheduler thread (it would stop every task).
        """
        _check_not_scheduler("join")
        self._jobs.join()

    def terminate(self) -> None:
        """Plain call: refuse new jobs and stop the threads once the queued jobs have run.

        From a plain thread it waits for that; from a task it returns at once.
        """
        if self._closed:
            return
        self._closed = True
        for _ in self._threads:
            self._jobs.put(None)
        if not _on_scheduler_thread():
            for thread in self._threads:
                thread.join()


def _on_scheduler_thread() -> bool:
    sched = Pycos.scheduler()
    return sched is not None and lowlevel.in_thread(sched)


def _check_not_scheduler(what: str) -> None:
    if _on_scheduler_thread():
        raise ContextError(f"{what}() blocks the calling thread and cannot be used inside a "
                           "task")


class AsyncDBCursor:
    """A DB-API cursor whose blocking calls run in a thread pool.

    Args:
        dbcursor: the cursor to wrap.
        thread_pool: the ``AsyncThreadPool`` to run in; a private one-thread pool if None.
            pycos's argument order ``AsyncDBCursor(thread_pool, dbcursor)`` is accepted too.

    ``execute``, ``executemany`` and ``callproc`` are used with yield; every other attribute
    (``fetchone``, ``rowcount`` …) is the wrapped cursor's own, used as a plain call.
    Operations on one cursor run one at a time, in the order issued.
    """

    def __init__(self, dbcursor: Any, thread_pool: AsyncThreadPool | None = None) -> None:
        if isinstance(dbcursor, AsyncThreadPool) and not isinstance(thread_pool,
                                                                     AsyncThreadPool):
            dbcursor, thread_pool = thread_pool, dbcursor
        if dbcursor is None or not callable(getattr(dbcursor, "execute", None)):
            raise TypeError(f"AsyncDBCursor() needs a DB-API cursor, got {dbcursor!r}")
        self._own_pool = thread_pool is None
        if thread_pool is None:
            thread_pool = AsyncThreadPool(1)
        elif not isinstance(thread_pool, AsyncThreadPool):
            raise TypeError(f"AsyncDBCursor() needs an AsyncThreadPool, got {thread_pool!r}")
        self._cursor = dbcursor
        self._pool = thread_pool
        self._lock = Lock()

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name in ("_cursor", "_pool", "_lock", "_own_pool"):
            raise AttributeError(name)
        return getattr(self._cursor, name)

    def close(self) -> Any:
        """Plain call: close the wrapped cursor (and stop the private pool, if this cursor made
        one); the value is what the cursor's ``close`` returns."""
        try:
            return self._cursor.close()
        finally:
            if self._own_pool:
                self._pool.terminate()

    def _run(self, fn: Callable[..., Any], *args: Any) -> Generator[Any, Any, Any]:
        yield self._lock.acquire()
        # The worker releases the lock after the call (or when it skips a cancelled one), so
        # the cursor is never used by two threads at once even if this task is terminated.
        return (yield _Submit(self._pool, fn, args, {}, self._lock.release))

    def execute(self, query: Any, args: Any = None) -> Generator[Any, Any, Any]:
        """Use with yield: ``r = yield cursor.execute(query, args=None)``; the value is what the
        cursor's ``execute`` returns."""
        if args is None:
            return self._run(self._cursor.execute, query)
        return self._run(self._cursor.execute, query, args)

    def executemany(self, query: Any, args: Any) -> Generator[Any, Any, Any]:
        """Use with yield: ``r = yield cursor.executemany(query, args)``."""
        return self._run(self._cursor.executemany, query, args)

    def callproc(self, proc: Any, args: Any = ()) -> Generator[Any, Any, Any]:
        """Use with yield: ``r = yield cursor.callproc(proc, args=())``."""
        return self._run(self._cursor.callproc, proc, args)
