"""A job of a cluster: one call whose result arrives later (DsageNg's addJob / waitForResult).

Owns ``Job``: ``yield job.result(timeout)`` (yield or block) gives the value or raises the
job's exception, ``job.done()`` checks without waiting, ``job.cancel()`` gives up on it, and
``job.location`` says which node ran it; ``wait_any_order(jobs, timeout)`` gives the jobs in
the order they finish (``Cluster.as_completed``). A job's state changes only on its
scheduler's thread. Imports the standard library, ``pycos.core``, ``pycos.net`` and its
package.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any

from ..core.blocking import yield_or_block
from ..net.pending import Pending
from .errors import JobCancelled

__all__ = ["Job", "wait_any_order"]

_TIMEOUT = object()


class Job:
    """One submitted call (made by ``Cluster.submit``)."""

    __slots__ = ("name", "task", "location", "_done", "_value", "_exc", "_waiters",
                 "_listeners")

    def __init__(self, name: str) -> None:
        self.name = name
        self.task: Any = None
        self.location: Any = None
        self._done = False
        self._value: Any = None
        self._exc: BaseException | None = None
        self._waiters: list[Pending] = []
        self._listeners: list[Callable[[Job], None]] = []

    def __repr__(self) -> str:
        state = "done" if self._done else "pending"
        return f"<Job {self.name} {state}{f' on {self.location!r}' if self.location else ''}>"

    def finish(self, value: Any, exc: BaseException | None, location: Any = None) -> None:
        """Record the outcome (once; the scheduler's thread)."""
        if self._done:
            return
        self._done, self._value, self._exc = True, value, exc
        if location is not None:
            self.location = location
        waiters, self._waiters = self._waiters, []
        for pending in waiters:
            pending.resolve(True)
        listeners, self._listeners = self._listeners, []
        for fn in listeners:
            fn(self)

    def done(self) -> bool:
        """Plain call: True once the result (or failure) is here."""
        return self._done

    def outcome(self) -> Any:
        """The value, or raise the failure (only once ``done()``)."""
        if self._exc is not None:
            raise self._exc
        return self._value

    @yield_or_block
    def result(self, timeout: float | None = None) -> Generator[Any, Any, Any]:
        """Yield or block: the job's value; its exception is raised.

        Raises:
            TimeoutError: not done within ``timeout`` seconds (the job goes on).
            JobCancelled: the job was cancelled.
        """
        if not self._done:
            pending = Pending(timeout, _TIMEOUT)
            self._waiters.append(pending)
            if (yield pending) is _TIMEOUT and not self._done:
                raise TimeoutError(f"{self!r} did not finish within {timeout} s")
        return self.outcome()

    def cancel(self) -> bool:
        """Plain call: give up on the job (its result, if it still comes, is dropped; code
        already running on the node is not stopped). False when it is done already."""
        if self._done:
            return False
        task = self.task
        if task is not None:
            task.terminate()
        self.finish(None, JobCancelled(f"{self.name} was cancelled"))
        return True

    def listen(self, fn: Callable[[Job], None]) -> None:
        """Call ``fn(job)`` when done (now, if it is)."""
        if self._done:
            fn(self)
        else:
            self._listeners.append(fn)


@yield_or_block
def wait_any_order(jobs: list[Job], timeout: float | None = None) -> Generator[Any, Any,
                                                                               list[Job]]:
    """Yield or block: ``jobs`` in the order they finish (those done within ``timeout``)."""
    jobs = list(jobs)
    if not all(isinstance(j, Job) for j in jobs):
        raise TypeError("as_completed() takes Jobs (from Cluster.submit)")
    order: list[Job] = []
    everything = Pending(timeout, None)

    def one(job: Job) -> None:
        if job not in order:
            order.append(job)
        if len(order) == len(jobs):
            everything.resolve(True)

    for job in jobs:
        job.listen(one)
    if jobs and len(order) < len(jobs):
        yield everything
    return list(order)
