"""Exception types raised by pycos.

Owns every exception class the package raises on purpose. Imports nothing but the standard
library (layer L0). Internally failures are exceptions with these types; return codes (0 / -1 / 1,
None) appear only at the public edge where the documented API asks for them.
"""

from __future__ import annotations

__all__ = [
    "PycosError",
    "InternalError",
    "ContextError",
    "HotSwapException",
    "PeerLost",
]


class PycosError(Exception):
    """Base class of the errors raised by pycos itself."""


class InternalError(PycosError):
    """A bug inside the scheduler (not in a user task).

    The scheduler logs it at CRITICAL level with its traceback and keeps serving the other tasks;
    it is never confused with an exception raised by a task.
    """


class ContextError(PycosError, RuntimeError):
    """A call made from the wrong context.

    For example ``task.value()`` called inside a task (it would block the scheduler), or
    ``set_daemon`` called on a task other than the running one.
    """


class HotSwapException(Exception):
    """Thrown into a task to replace its generator (see ``Task.hot_swap``).

    ``args[0]`` is the new generator. A task that lets it propagate (or re-raises it) is swapped
    at that point; its message queue is kept.
    """


class PeerLost(PycosError, ConnectionError):
    """Marker type of a ``MonitorStatus`` whose task was on a node that went away.

    Also raised by remote operations that were pending when the connection to the hosting node
    was lost.
    """
