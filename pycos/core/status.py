"""``MonitorStatus``: how the end of a task is reported.

A plain value (no scheduler state), so it pickles and crosses the network unchanged. It is an
``Exception`` subclass only to keep asyncoro's ``MonitorException`` shape; it is sent as a
message, never raised.
"""

from __future__ import annotations

from typing import Any

__all__ = ["MonitorStatus", "MonitorException", "TracebackText"]


class TracebackText(str):
    """The formatted traceback of a failed task (a ``str``) that also keeps the exception's
    arguments as text in ``args``, as asyncoro programs read ``status.value.args[0]``."""

    args: tuple[str, ...]

    def __new__(cls, text: str, args: tuple[Any, ...] = ()) -> TracebackText:
        obj = super().__new__(cls, text)
        obj.args = tuple(str(a) for a in args)
        return obj

    def __reduce__(self) -> tuple[Any, ...]:
        return (TracebackText, (str(self), self.args))


class MonitorException(Exception):  # noqa: N818 - asyncoro's name
    """asyncoro's shape of an end-of-task report: ``args == (task, (type, value))``.

    Every ``MonitorStatus`` is one, so asyncoro programs that test
    ``isinstance(msg, MonitorException)`` and unpack ``msg.args`` keep working.
    """


class MonitorStatus(MonitorException):
    """The message a monitor receives when a task it watches ends.

    Attributes:
        info: the task that ended (a reference, for remote tasks).
        type: what happened:

            * ``StopIteration`` — normal end; ``value`` is the task's return value;
            * an exception class — the task raised it; ``value`` is the formatted traceback (a
              ``TracebackText``: a ``str`` whose ``args`` are the exception's arguments);
            * ``GeneratorExit`` — the task was terminated (``task.terminate()``); ``value`` is
              None;
            * ``pycos.PeerLost`` — the node hosting the (remote) task went away; ``value`` is a
              description of the lost peer.
        value: see ``type``.

    It is also a ``MonitorException`` whose ``args`` are ``(info, (type, value))``.
    """

    def __init__(self, info: Any, type: Any, value: Any = None) -> None:  # noqa: A002
        super().__init__(info, (type, value))
        self.info = info
        self.type = type
        self.value = value

    def __reduce__(self) -> tuple[Any, ...]:
        return (MonitorStatus, (self.info, self.type, self.value))

    def __repr__(self) -> str:
        name = getattr(self.type, "__name__", self.type)
        return f"MonitorStatus({self.info!r}, {name}, {self.value!r})"

    __str__ = __repr__
