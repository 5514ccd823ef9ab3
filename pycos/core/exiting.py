"""How a scheduler ends when the interpreter exits (layer L1, part of ``pycos.core``).

Owns the exit policy: when the program's main thread ran to its end, the scheduler ``finish``es
(pycos's documented wait for non-daemon tasks, with one line naming them; Ctrl-C stops the
wait); after an uncaught exception or ``sys.exit`` the tasks are named and stopped instead, and
the exit never waits more than the scheduler's ``exit_timeout``. Imports L0 and ``core.traps``.
"""

from __future__ import annotations

from typing import Any

from .._log import logger
from .traps import main_ended_by

__all__ = ["at_interpreter_exit", "unfinished"]


def at_interpreter_exit(sched: Any) -> None:
    """``finish`` ``sched`` at interpreter exit, or stop it at once (see the module docstring)."""
    if not sched._alive:
        return
    try:
        try:
            how, tasks = main_ended_by(), unfinished(sched)
            if how is None:
                if tasks:
                    logger.debug("waiting at exit for %s; Ctrl-C stops them", tasks)
                sched.finish()
                return
            if tasks:
                logger.warning("the main thread ended by %s: not waiting for %s", how, tasks)
        except KeyboardInterrupt:
            logger.warning("interrupted at exit: not waiting for %s", unfinished(sched))
        # No helper thread: Python 3.12 refuses to start threads in atexit callbacks.
        sched._stop_timeout = sched.exit_timeout
        sched.terminate()  # runs the atexit functions first
        if not sched._stopped.is_set():
            logger.warning("the scheduler did not stop within %s s; exiting without it",
                           sched.exit_timeout)
    except KeyboardInterrupt:
        pass  # Ctrl-C again: leave at once (the scheduler thread is a daemon)


def unfinished(sched: Any) -> str:
    """The non-daemon tasks of ``sched`` still alive (or created and not yet admitted), named
    for a log line; "" if none. Any thread: copying the set and the inbox is atomic."""
    tasks = list(sched._live) + [a[0] for f, a in list(sched._inbox) if f == sched._spawn]
    tasks = [t for t in tasks if not t._daemon and t._gen is not None]
    if not tasks:
        return ""
    more = f" and {len(tasks) - 10} more" if len(tasks) > 10 else ""
    return (f"{len(tasks)} task{'s' if len(tasks) > 1 else ''} "
            f"({', '.join(repr(t) for t in tasks[:10])}{more})")
