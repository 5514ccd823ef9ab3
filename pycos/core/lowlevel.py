"""The scheduler's door for library code: the one way layers above the core act on it.

Owns nothing: every function here is a small documented wrapper around the scheduler's
internals (``Pycos._*``), which no module outside ``pycos.core`` may touch (a hygiene test
checks it). Layers L2–L5 park and wake tasks, post work across threads, set timers, watch
descriptors and register names through these functions only. Imports the other ``core``
modules.

Thread rules, stated per function: "scheduler thread" functions may only run on the thread of
the scheduler they are given (inside a task, a trap's ``_apply``, a poller or timer callback);
"any thread" functions are safe anywhere.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from .poller import READ, WRITE, Callback, ConcurrentWaitError
from .scheduler import Pycos, _check_timeout, current_scheduler
from .traps import SUSPEND, WOKEN, Trap

__all__ = [
    "Trap", "SUSPEND", "WOKEN", "READ", "WRITE", "Callback", "ConcurrentWaitError",
    "current_scheduler", "scheduler_of", "running_scheduler", "private_scheduler",
    "in_thread", "call_soon", "call", "run_and_wait", "current_task",
    "park", "park_raise", "park_timed", "timer_fired", "rearm", "wake", "wake_exc",
    "reschedule", "is_parked_on",
    "now", "add_timer", "cancel_timer", "call_later",
    "add_reader", "add_writer", "remove_reader", "remove_writer", "close_fd",
    "register_name", "unregister_name", "lookup_name", "registered", "router_of",
    "set_router",
    "check_timeout", "spawn_daemon", "alive",
]

Handle = list[Any]
check_timeout = _check_timeout


# ---------------------------------------------------------------------- schedulers
def scheduler_of(task: Any) -> Pycos:
    """The scheduler a task runs on (any thread)."""
    return task._sched  # type: ignore[no-any-return]


def running_scheduler() -> Pycos | None:
    """The process's running scheduler, or None (any thread)."""
    return Pycos.scheduler()


def private_scheduler(clock: Any = None, name: str = "pycos-private") -> Pycos:
    """A scheduler of its own on a thread of its own named ``name``, not the process-wide one
    (any thread); its owner terminates it."""
    return Pycos.private(clock, name)


def alive(sched: Pycos) -> bool:
    """True while ``sched`` accepts work (any thread)."""
    return bool(sched._alive)


def in_thread(sched: Pycos) -> bool:
    """True when called on ``sched``'s own thread (any thread)."""
    return sched._tid == threading.get_ident()


def call_soon(sched: Pycos, fn: Callable[..., Any], *args: Any) -> bool:
    """Run ``fn(*args)`` on ``sched``'s thread at the start of its next loop pass (any thread;
    wakes it if it sleeps). False when the scheduler has stopped."""
    return sched._post(fn, *args)


def call(sched: Pycos, fn: Callable[..., Any], *args: Any) -> Any:
    """Run ``fn(*args)`` now when on ``sched``'s thread (its result), else post it (None)."""
    return sched._call(fn, *args)


def run_and_wait(sched: Pycos, fn: Callable[[], None]) -> None:
    """Run ``fn()`` on ``sched``'s thread and return once it ran (any thread; runs it in the
    caller when the scheduler has stopped)."""
    if in_thread(sched):
        fn()
        return
    done = threading.Event()

    def run() -> None:
        try:
            fn()
        finally:
            done.set()

    if sched._post(run):
        done.wait()
    else:
        fn()


def current_task(sched: Pycos | None = None) -> Any:
    """The task running now on this thread's scheduler, or None (any thread)."""
    return Pycos.cur_task(sched)


def spawn_daemon(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Start ``fn`` as a task and make it a daemon before it first runs (scheduler thread or
    any thread); the task's own code need not call ``set_daemon``."""
    from .task import Task

    task = Task(fn, *args, **kwargs)
    sched = task._sched
    if not task._daemon:
        def make_daemon() -> None:
            if task._gen is not None and not task._daemon:
                task._daemon = True
                if task in sched._live:
                    sched._nondaemons -= 1
                    if sched._nondaemons == 0 and sched._idle_waiters:
                        for event in sched._idle_waiters:
                            event.set()
                        sched._idle_waiters.clear()
        sched._call(make_daemon)
    return task


# ---------------------------------------------------------------------- parking
def park(task: Any, wait: Any, timeout: float | None, alarm: Any) -> None:
    """Scheduler thread, from a trap's ``_apply``: ``task`` waits on ``wait`` (an object with
    ``cancel_wait(task)``); after ``timeout`` s it resumes with ``alarm``."""
    task._sched._park(task, wait, timeout, alarm)


def park_raise(task: Any, wait: Any, timeout: float, exc: BaseException) -> None:
    """Like :func:`park`, but the timeout raises ``exc`` in the task."""
    task._sched._park_raise(task, wait, timeout, exc)


def wake(task: Any, value: Any) -> None:
    """Scheduler thread: resume a parked task with ``value`` (its wait object already let go
    of it)."""
    task._sched._wake(task, value)


def wake_exc(task: Any, exc: BaseException) -> None:
    """Scheduler thread: resume a parked task by raising ``exc`` at its yield."""
    task._sched._wake_exc(task, exc)


def reschedule(task: Any, value: Any) -> Any:
    """Scheduler thread, from a trap: put ``task`` at the end of the run queue with ``value``;
    returns ``SUSPEND`` for the trap to return."""
    return task._sched._reschedule(task, value)


def park_timed(task: Any, wait: Any, when: float, fn: Callable[[Any, Any], None],
               arg: Any) -> None:
    """Scheduler thread: park ``task`` on ``wait`` with a timer of its own that calls
    ``fn(task, arg)`` at ``when`` (the task's timer: cancelled when it is woken). ``fn`` must
    call :func:`timer_fired` first."""
    sched = task._sched
    sched._park(task, wait, None, None)
    task._timer = sched._timers.add(when, fn, task, arg)


def timer_fired(task: Any) -> None:
    """Scheduler thread, first thing in a :func:`park_timed` callback: the task's timer is
    spent."""
    task._timer = None


def rearm(task: Any, when: float, fn: Callable[[Any, Any], None], arg: Any) -> None:
    """Scheduler thread, in a :func:`park_timed` callback: set the task's timer again (an
    inactivity limit that moved)."""
    task._timer = task._sched._timers.add(when, fn, task, arg)


def is_parked_on(task: Any, wait: Any) -> bool:
    """True while ``task`` waits on ``wait`` (scheduler thread)."""
    return task._wait is wait


# ---------------------------------------------------------------------- time
def now(sched: Pycos) -> float:
    """The reading of ``sched``'s clock (any thread)."""
    return sched._clock.time()


def add_timer(sched: Pycos, when: float, fn: Callable[[Any, Any], None], task: Any,
              arg: Any) -> Handle:
    """Scheduler thread: call ``fn(task, arg)`` once ``sched``'s clock reaches ``when``;
    returns a handle for :func:`cancel_timer`."""
    return sched._timers.add(when, fn, task, arg)


def cancel_timer(sched: Pycos, handle: Handle) -> None:
    """Scheduler thread: cancel a timer (idempotent)."""
    sched._timers.cancel(handle)


def call_later(sched: Pycos, delay: float, fn: Callable[..., Any], *args: Any) -> Handle:
    """Scheduler thread: run ``fn(*args)`` after ``delay`` seconds of ``sched``'s clock."""
    return sched._timers.add(sched._clock.time() + delay, _call_args, fn, args)


def _call_args(fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
    fn(*args)


# ---------------------------------------------------------------------- descriptors
def add_reader(sched: Pycos, fileobj: Any, fn: Callable[[], None]) -> None:
    """Scheduler thread: call ``fn()`` each time ``fileobj`` is readable, until
    :func:`remove_reader`. Raises ``ConcurrentWaitError`` if someone reads it already."""
    sched._poller.add_waiter(fileobj, READ, Callback(fn))


def add_writer(sched: Pycos, fileobj: Any, fn: Callable[[], None]) -> None:
    """Scheduler thread: call ``fn()`` each time ``fileobj`` is writable, until
    :func:`remove_writer`."""
    sched._poller.add_waiter(fileobj, WRITE, Callback(fn))


def remove_reader(sched: Pycos, fileobj: Any) -> None:
    """Scheduler thread: stop watching ``fileobj`` for reading."""
    sched._poller.remove_waiter(fileobj, READ)


def remove_writer(sched: Pycos, fileobj: Any) -> None:
    """Scheduler thread: stop watching ``fileobj`` for writing."""
    sched._poller.remove_waiter(fileobj, WRITE)


def close_fd(sched: Pycos, fileobj: Any, exc: BaseException) -> None:
    """Scheduler thread, before closing a descriptor: every task waiting on it gets ``exc``."""
    sched._poller.close_fd(fileobj, exc)


def poller_of(sched: Pycos) -> Any:
    """The scheduler's poller (for ``pycos._iowait`` only)."""
    return sched._poller


# ---------------------------------------------------------------------- names and the router
def register_name(sched: Pycos, kind: str, name: str, obj: Any) -> int:
    """Make ``obj`` findable as ``name`` among objects of ``kind`` (any thread); -1 if
    taken."""
    return sched._register(kind, name, obj)


def unregister_name(sched: Pycos, kind: str, name: str, obj: Any) -> int:
    """Undo :func:`register_name` (any thread); -1 if ``obj`` is not registered so."""
    return sched._unregister(kind, name, obj)


def lookup_name(sched: Pycos, kind: str, name: str) -> Any:
    """The local object registered as ``name`` (any thread), or None."""
    return sched._lookup(kind, name)


def registered(sched: Pycos, kind: str) -> list[Any]:
    """The local objects registered under any name among objects of ``kind`` (any thread)."""
    with sched._names_lock:
        return [obj for (k, _name), obj in sched._names.items() if k == kind]


def registered_names(sched: Pycos, kind: str) -> list[tuple[str, Any]]:
    """``(name, object)`` of every object of ``kind`` registered under a name (any thread)."""
    with sched._names_lock:
        return [(name, obj) for (k, name), obj in sched._names.items() if k == kind]


def router_of(sched: Pycos) -> Any:
    """The object that routes tasks and channels of other nodes for ``sched`` (None when not
    networked)."""
    return sched.router


def set_router(sched: Pycos, router: Any) -> None:
    """Install the router (the networked layer, once per scheduler)."""
    sched.router = router


def mailbox_size(task: Any) -> int:
    """Messages queued for a local task and not received yet (any thread; a snapshot)."""
    msgs = task._msgs
    return len(msgs) if msgs is not None else 0


def remove_monitor(task: Any, monitor: Any) -> None:
    """Stop telling ``monitor`` about the end of the local ``task`` (scheduler thread)."""
    monitors = task._monitors
    if not monitors:
        return
    monitors.pop(monitor, None)


def task_result(task: Any) -> Any:
    """The result of a local task that has ended (its return value, or its ``MonitorStatus``
    when it failed); None while it runs (any thread)."""
    return None if task._gen is not None else task._value


def add_monitor(task: Any, monitor: Any) -> int:
    """Scheduler thread: ``monitor.send(status)`` is called when the local ``task`` ends
    (``monitor`` may be any object with ``send``). 0, or -1 if it has ended already."""
    return int(task._add_monitor(monitor))


def is_alive(task: Any) -> bool:
    """True until a local task ends (any thread)."""
    return task._gen is not None


__all__ += ["poller_of", "mailbox_size", "is_alive", "remove_monitor", "task_result",
            "add_monitor", "Handle"]


# ---------------------------------------------------------------------- census
def live_tasks(sched: Pycos) -> list[Any]:
    """The tasks of ``sched`` that have not ended (any thread: a copy taken at once, which
    may be a moment old when another thread reads it)."""
    return list(sched._live)


def task_waiting(task: Any) -> bool:
    """True while ``task`` waits (for a message, a timer, I/O, ...) rather than being ready
    to run (any thread; a reading of the moment)."""
    return task._wait is not None


def task_daemon(task: Any) -> bool:
    """True when ``task`` is a daemon: the scheduler does not wait for it at exit (any
    thread)."""
    return bool(task._daemon)


__all__ += ["live_tasks", "task_waiting", "task_daemon", "registered_names"]
