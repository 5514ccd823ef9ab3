"""``MonitorStatus``: how the end of a task is reported.

A plain value type (no scheduler state), so it pickles and crosses the network unchanged.
"""

from __future__ import annotations

from typing import Any

__all__ = ["MonitorStatus"]


class MonitorStatus:
    """The message a monitor receives when a task it watches ends.

    Attributes:
        info: the task that ended (a reference, for remote tasks).
        type: what happened:

            * ``StopIteration`` — normal end; ``value`` is the task's return value;
            * an exception class — the task raised it; ``value`` is the formatted traceback;
            * ``GeneratorExit`` — the task was terminated (``task.terminate()``); ``value`` is
              None;
            * ``pycos.PeerLost`` — the node hosting the (remote) task went away; ``value`` is a
              description of the lost peer.
        value: see ``type``.
    """

    __slots__ = ("info", "type", "value")

    def __init__(self, info: Any, type: Any, value: Any = None) -> None:  # noqa: A002
        self.info = info
        self.type = type
        self.value = value

    def __getstate__(self) -> dict[str, Any]:
        return {"info": self.info, "type": self.type, "value": self.value}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.info = state["info"]
        self.type = state["type"]
        self.value = state["value"]

    def __repr__(self) -> str:
        name = getattr(self.type, "__name__", self.type)
        return f"MonitorStatus({self.info!r}, {name}, {self.value!r})"
