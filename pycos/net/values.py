"""The core's value types on the wire: ``MonitorStatus`` and ``TracebackText``.

Owns their registration with the wire's codec (the core cannot import ``pycos.proto``). A
status whose type cannot be rebuilt on the receiving node arrives with ``Exception`` as its
type; one whose value cannot be sent is sent with the value's text (see the router). Imports
``pycos.core`` and ``pycos.proto``.
"""

from __future__ import annotations

from typing import Any

from ..core.status import MonitorStatus, TracebackText
from ..errors import SerializationError
from ..proto.wiretypes import register

__all__ = ["MONITORSTATUS", "TRACEBACKTEXT"]

MONITORSTATUS, TRACEBACKTEXT = 50, 51


def _build_status(info: Any, kind: Any, value: Any) -> MonitorStatus:
    if not isinstance(kind, type):
        raise SerializationError("malformed MonitorStatus in a payload")
    return MonitorStatus(info, kind, value)


def _build_traceback(text: Any, args: Any) -> TracebackText:
    if type(text) is not str or type(args) is not tuple or not all(
            type(a) is str for a in args):
        raise SerializationError("malformed traceback text in a payload")
    return TracebackText(text, args)


register(MONITORSTATUS, MonitorStatus, lambda s: (s.info, s.type, s.value), _build_status)
register(TRACEBACKTEXT, TracebackText, lambda t: (str(t), t.args), _build_traceback)
