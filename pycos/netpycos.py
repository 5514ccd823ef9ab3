"""Facade of the distributed layer: ``import pycos.netpycos``.

Re-exports everything ``pycos`` offers plus the networked node (``Pycos``, replacing the local
scheduler class in this namespace), ``Location``, ``PeerStatus``, remote task invocation
(``RCI``, with pycos's names ``RPS`` and ``RTI``) and the reference classes ``RemoteTask``,
``RemoteChannel`` and ``RemoteRCI``. Importing this module makes
``pycos.Pycos.instance()`` (and ``pycos.Pycos()``) create the networked node: the core scheduler
class picks the class it instantiates from ``_default_class``, so no name is rebound anywhere.
"""

from __future__ import annotations

from . import *  # noqa: F403 - this facade re-exports the whole local API
from . import __all__ as _local_all
from .core.scheduler import Pycos as _CorePycos
from .net import Location, Node, PeerStatus, RemoteRequestFailed, RequestError
from .net import scheduler as _scheduler
from .net.remote.rci import RCI, RPS, RTI, RemoteRCI
from .net.remote.refs import RemoteChannel, RemoteTask
from .net.scheduler import Pycos  # type: ignore[assignment]

_CorePycos._default_class = Pycos


def _start_dashboard(node: Node, bind: str | bool) -> object:
    from . import dashboard  # h11 only when a node asks for a dashboard

    return dashboard.start(node, dashboard.DEFAULT_BIND if bind is True else bind)


_scheduler.UPPER_OPTIONS["dashboard"] = _start_dashboard

#: asyncoro's name of the node class.
AsynCoro = Pycos  # type: ignore[misc]

__all__ = [name for name in _local_all if name not in ("Pycos", "AsynCoro")] + [
    "Pycos", "AsynCoro", "Node", "Location", "PeerStatus", "RequestError",
    "RemoteRequestFailed", "RCI", "RPS", "RTI", "RemoteTask", "RemoteChannel", "RemoteRCI",
]
