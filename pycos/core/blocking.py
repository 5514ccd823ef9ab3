"""Yield or block: one operation, used with ``yield`` in a task or as a plain call elsewhere.

Owns ``run(op, timeout)``, the blocking half (a plain call from a thread that is not a
scheduler's: it runs the operation as a task and returns its value, or raises its exception),
and ``yield_or_block``, the decorator that gives a generator method both halves: inside a task
the call returns the operation, to be yielded (and a "never yielded" warning names the line
that dropped it, as for every other operation); anywhere else it runs it with ``run`` and
returns the result. Layer L1: imports L0 and the other ``core`` modules.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from types import GeneratorType
from typing import Any, TypeVar

from ..errors import ContextError
from .scheduler import current_scheduler
from .task import Task
from .traps import (
    IS_GENERATOR,
    IS_TRAP,
    YIELD_KINDS,
    _check_timeout,
    _thread_scheduler,
    describe_generator_op,
    note_made,
)

__all__ = ["run", "yield_or_block", "in_task"]

_F = TypeVar("_F", bound=Callable[..., Any])


def in_task() -> bool:
    """True when called by a task (on a scheduler's thread, while a task runs)."""
    sched = _thread_scheduler.sched
    return sched is not None and sched._current is not None


def run(op: Any, timeout: float | None = None) -> Any:
    """Plain call: run ``op`` — a generator (an operation such as ``node.peer(loc)``) or
    anything a task may yield — as a task of the running scheduler and return its value,
    re-raising the exception it ends with (never a ``MonitorStatus``).

    Raises:
        ContextError: called on a scheduler's thread (a task must ``yield op`` instead;
            blocking there would stop every task).
        TimeoutError: ``op`` did not finish within ``timeout`` seconds (it is then
            terminated).
        TypeError: ``op`` is a generator *function* (call it) or not an operation.
    """
    if _thread_scheduler.sched is not None:
        raise ContextError(f"pycos.run({_name(op)}) blocks, and this is a scheduler's thread: "
                           "in a task write 'yield' before the operation instead")
    _check_timeout(timeout)
    if callable(op) and YIELD_KINDS.get(type(op)) not in (IS_TRAP, IS_GENERATOR):
        raise TypeError(f"pycos.run() needs an operation, got the function {_name(op)}: call "
                        "it first (pycos.run(fn(...)))")
    done = threading.Event()
    outcome: list[Any] = [False, None]

    def runner(task: Any = None) -> Any:
        try:
            outcome[1] = yield op
            outcome[0] = True
        except BaseException as exc:  # noqa: BLE001 - handed to the calling thread
            outcome[1] = exc
        finally:
            done.set()

    task = Task(runner)
    try:
        finished = done.wait(timeout)
    except BaseException:  # Ctrl-C in the waiting thread: the operation stops too
        task.terminate()
        raise
    if not finished:
        task.terminate()
        raise TimeoutError(f"{_name(op)} did not finish within {timeout} s")
    ok, value = outcome
    if ok:
        return value
    if isinstance(value, BaseException):
        raise value
    raise ContextError(f"{_name(op)} was stopped before it finished (the scheduler ended)")


def yield_or_block(fn: _F) -> _F:
    """Decorator for a generator function (or method) implementing one operation: inside a
    task, a call returns the operation to be yielded; in plain code it runs it with ``run``
    and returns its result (the operation bounds its own waits)."""
    describe_generator_op(fn, f"{fn.__qualname__}()", (fn.__name__,))

    @functools.wraps(fn)
    def call(*args: Any, **kwargs: Any) -> Any:
        op = fn(*args, **kwargs)
        if in_task():
            return note_made(op)
        current_scheduler()  # plain code: a scheduler must run the operation
        return run(op)

    call.__wrapped__ = fn
    return call  # type: ignore[return-value]


def _name(op: Any) -> str:
    if isinstance(op, GeneratorType):
        return f"{op.__qualname__}()"
    return getattr(op, "__qualname__", None) or type(op).__name__

