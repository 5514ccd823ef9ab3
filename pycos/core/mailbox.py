"""Counted messages: inbound flow control for messages that come from another node.

Owns ``Account`` (the bytes of messages from one source that wait, unreceived, in tasks'
mailboxes) and ``send_counted``, which gives a message to a local task like ``Task.send`` but,
when the message has to be queued, counts it against an account until the task receives it.
The networked layer keeps one account per peer link and stops reading that link while the
account is over its limit, so a peer that sends faster than the tasks here consume meets TCP's
back-pressure instead of growing this process. Imports the other ``core`` modules.
Scheduler-thread only.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

from .traps import RECEIVING

__all__ = ["Account", "send_counted", "CountedQueue"]


class Account:
    """Bytes of messages from one source still queued, unreceived, in local mailboxes.

    Args:
        limit: above this many bytes ``over`` is True; once back at half of it ``on_low()``
            runs (the source may send again).
        on_low: called once each time the account drops to half the limit after having been
            over it.
    """

    __slots__ = ("queued", "limit", "on_low", "was_over", "by_task")

    def __init__(self, limit: int, on_low: Callable[[], None]) -> None:
        self.queued = 0
        self.limit = limit
        self.on_low = on_low
        self.was_over = False
        self.by_task: dict[Any, int] = {}

    @property
    def over(self) -> bool:
        """True while more than ``limit`` bytes wait."""
        return self.queued > self.limit

    def add(self, task: Any, size: int) -> None:
        self.queued += size
        self.by_task[task] = self.by_task.get(task, 0) + size
        if self.queued > self.limit:
            self.was_over = True

    def release(self, task: Any, size: int) -> None:
        self.queued -= size
        left = self.by_task.get(task, 0) - size
        if left > 0:
            self.by_task[task] = left
        else:
            self.by_task.pop(task, None)
        if self.was_over and self.queued <= self.limit // 2:
            self.was_over = False
            self.on_low()

    def forget_ended(self) -> None:
        """Release what tasks that have ended will never receive."""
        for task in [t for t in self.by_task if t._gen is None]:
            self.release(task, self.by_task[task])

    def clear(self) -> None:
        """Forget everything (the source is gone)."""
        self.queued = 0
        self.by_task.clear()
        self.was_over = False


class _Counted:
    __slots__ = ("message", "size", "account", "task")

    def __init__(self, message: Any, size: int, account: Account, task: Any) -> None:
        self.message = message
        self.size = size
        self.account = account
        self.task = task


class CountedQueue(deque):  # type: ignore[type-arg]
    """A task's mailbox once it holds counted messages: taking one releases its bytes."""

    __slots__ = ()

    def popleft(self) -> Any:
        item = deque.popleft(self)
        if type(item) is _Counted:
            item.account.release(item.task, item.size)
            return item.message
        return item


def send_counted(task: Any, message: Any, size: int, account: Account) -> int:
    """Give ``message`` to the local ``task`` (scheduler thread): at once when it waits in
    ``receive``, else queued and counted against ``account`` (``size`` bytes) until received.
    Returns 0, or -1 when the task has ended."""
    if task._gen is None:
        return -1
    if task._wait is RECEIVING:
        task._sched._wake(task, message)
        return 0
    msgs = task._msgs
    if type(msgs) is not CountedQueue:
        msgs = task._msgs = CountedQueue(msgs or ())
    account.add(task, size)
    msgs.append(_Counted(message, size, account, task))
    return 0
