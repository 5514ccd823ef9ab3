"""``pycos.CategorizeMessages``: take a task's messages by category.

Owns a per-task set of categorising functions and the buckets of messages already taken from the
task's queue but not yet asked for. Imports L0 and L1 (``pycos.core``) only.

Invariants:

* A message's category is the first non-None answer of the categorising functions, most
  recently added first; None (no answer) means "uncategorized".
* Within a category, messages come out in the order the task received them.
* A message taken from the task's queue is never lost: it is either returned or kept in its
  bucket (a categorising function that raises is logged and counts as "no answer").
"""

from __future__ import annotations

import logging
import traceback
from collections import deque
from collections.abc import Callable, Generator, Hashable
from typing import Any

from .core import lowlevel
from .core.scheduler import _check_timeout
from .core.task import Task
from .core.traps import describe_generator_op, note_made

__all__ = ["CategorizeMessages"]

_log = logging.getLogger(__name__)

Categorize = Callable[[Any], Hashable]


class _TimedOut:
    """Private alarm value: tells a timeout apart from any message (None included)."""

    __slots__ = ()


_TIMED_OUT = _TimedOut()


class CategorizeMessages:
    """Split the messages of ``task`` into categories, to serve some before others.

    Args:
        task: the task whose messages are categorized; only that task calls ``receive``.

    Raises:
        TypeError: ``task`` is not a Task.
    """

    __slots__ = ("_task", "_fns", "_buckets")

    def __init__(self, task: Task) -> None:
        if not isinstance(task, Task):
            raise TypeError(f"CategorizeMessages() needs a Task, got {task!r}")
        self._task = task
        self._fns: list[Categorize] = []
        self._buckets: dict[Hashable, deque[Any]] = {}

    def __repr__(self) -> str:
        held = {k: len(v) for k, v in self._buckets.items() if v}
        return f"<CategorizeMessages of {self._task!r}, held {held}>"

    def add(self, categorize: Categorize) -> None:
        """Plain call: add ``categorize(msg) -> category or None``.

        The most recently added function is asked first; the first non-None answer (a hashable
        value) is the message's category. Messages all functions answer None for are
        "uncategorized" and are what ``receive()`` with no category returns.

        Raises:
            TypeError: ``categorize`` is not callable.
        """
        if not callable(categorize):
            raise TypeError(f"add() needs a callable categorize(msg), got {categorize!r}")
        self._fns.insert(0, categorize)

    def remove(self, categorize: Categorize) -> None:
        """Plain call: remove a function added earlier (its most recent addition). Messages
        already sorted into buckets stay there.

        Raises:
            ValueError: ``categorize`` was not added.
        """
        try:
            self._fns.remove(categorize)
        except ValueError:
            raise ValueError(f"remove(): {categorize!r} was not added to {self!r}") from None

    def _category(self, message: Any) -> Hashable:
        for fn in self._fns:
            try:
                category = fn(message)
            except Exception:  # noqa: BLE001 - a user function; the message is kept
                _log.warning("categorize function %r failed on a message of %r; treated as "
                             "uncategorized:\n%s", fn, self._task, traceback.format_exc())
                continue
            if category is not None:
                return category
        return None

    def receive(self, category: Hashable = None, timeout: float | None = None,
                alarm_value: Any = None) -> Generator[Any, Any, Any]:
        """Use with yield, by the task itself:
        ``msg = yield cm.receive(category=None, timeout=None, alarm_value=None)``.

        The oldest message of ``category`` (None: the oldest uncategorized message). Messages of
        other categories that arrive meanwhile are kept for later ``receive`` calls.

        Returns:
            (the yield's value) the message, or ``alarm_value`` if none of that category came
            within ``timeout`` seconds (``timeout=0`` only looks at what is already queued).

        Raises:
            TypeError, ValueError: bad ``timeout``.
            ContextError: (at the yield) yielded by another task than the one categorized.
        """
        _check_timeout(timeout, "timeout")
        return note_made(self._receive(category, timeout, alarm_value))

    recv = receive

    def _receive(self, category: Hashable, timeout: float | None,
                 alarm_value: Any) -> Generator[Any, Any, Any]:
        bucket = self._buckets.get(category)
        if bucket:
            return bucket.popleft()
        task = self._task
        sched = lowlevel.scheduler_of(task)
        deadline = None if timeout is None else sched.time() + timeout
        remaining = timeout
        while True:
            message = yield task.receive(remaining, _TIMED_OUT)
            if message is _TIMED_OUT:
                return alarm_value
            found = self._category(message)
            if found == category:
                return message
            self._buckets.setdefault(found, deque()).append(message)
            if deadline is not None:
                remaining = max(0.0, deadline - sched.time())


describe_generator_op(CategorizeMessages._receive, "cm.receive()", ("receive", "recv"))
