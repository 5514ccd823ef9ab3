"""Yield or block for the controller's calls, which are blocking socket work.

Owns ``yield_or_block``: a decorated method called by a task returns a ``Pending`` to be
yielded while the work runs on a thread of its own (a call holds its connection for its whole
length, so it never takes a thread of a shared pool); called from plain code (a script, a
notebook, a thread) it does the work right there and returns the result. Called on a
scheduler's thread outside a task (a callback), it raises ``ContextError`` rather than block
every task. Imports the standard library, ``pycos.core``, ``pycos.errors`` and
``pycos.net.pending``.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from ..core import lowlevel
from ..core.blocking import in_task
from ..core.traps import note_made
from ..errors import ContextError
from ..net.pending import Pending

__all__ = ["yield_or_block", "in_task", "resolved"]

_F = TypeVar("_F", bound=Callable[..., Any])


def _on_scheduler_thread() -> bool:
    sched = lowlevel.running_scheduler()
    return sched is not None and lowlevel.in_thread(sched)


def yield_or_block(fn: _F) -> _F:
    """Decorator: in a task, run ``fn`` on a new thread and return a ``Pending`` to yield;
    in plain code, call ``fn``."""

    @functools.wraps(fn)
    def call(*args: Any, **kwargs: Any) -> Any:
        if in_task():
            pending = Pending()

            def work() -> None:
                try:
                    value = fn(*args, **kwargs)
                except BaseException as exc:  # noqa: BLE001 - raised in the waiting task
                    pending.fail(exc)
                else:
                    pending.resolve(value)

            threading.Thread(target=work, name=f"pycos-swarm-{fn.__name__}",
                             daemon=True).start()
            return note_made(pending)
        if _on_scheduler_thread():
            raise ContextError(f"{fn.__qualname__}() blocks, and this is a scheduler's "
                               "thread: call it from a task with 'yield', or from plain code")
        return fn(*args, **kwargs)

    return call  # type: ignore[return-value]


def resolved(value: Any) -> Any:
    """``value`` as an operation: in a task a completed ``Pending`` (yield it), else the
    value itself."""
    if in_task():
        pending = Pending()
        pending.resolve(value)
        return note_made(pending)
    return value
