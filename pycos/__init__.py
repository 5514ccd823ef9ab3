"""pycos: concurrent, asynchronous and distributed programming with generator tasks.

This facade re-exports layers L0-L2 (errors, logging, the scheduler and tasks, synchronisation,
channels, thread pools, pycos 4.12's small helpers). The distributed layer is never imported by
the core: the names it provides here (``Location``, ``RPS``, ``RTI``, ``PeerStatus``,
``netpycos``) are in ``_LAZY`` and imported on first use (PEP 562 ``__getattr__``), so
``pycos.Location(...)`` works before ``import pycos.netpycos``, as in pycos 4.12. ``Pycos`` (and
asyncoro's ``AsynCoro``) is looked up the same way: the local scheduler class until
``pycos.netpycos`` has been imported, the networked node class after, so
``pycos.Pycos is pycos.netpycos.Pycos`` then holds without any module rebinding a name. Names
pycos 4.12 had that this package replaced raise an ``AttributeError`` saying what replaced them
(``_MOVED``).
"""

import importlib
import sys
from typing import TYPE_CHECKING, Any

from . import config
from ._log import Logger, logger
from ._version import __version__
from .asyncsocket import AsyncSocket
from .channel import Channel
from .core import (
    READ,
    WRITE,
    Clock,
    ConcurrentWaitError,
    FakeClock,
    MonitorException,
    MonitorStatus,
    SysTask,
    SystemClock,
    Task,
    WaitQueue,
)
from .core import Pycos as _LocalPycos
from .core.blocking import run
from .errors import (
    ClosedWhileWaiting,
    ContextError,
    HotSwapException,
    InternalError,
    PeerLost,
    PycosError,
    SerializationError,
    UnpicklingRefused,
)
from .messages import CategorizeMessages
from .proto.wiretypes import serialize_allow
from .sync import Condition, Event, Lock, RLock, Semaphore
from .threadpool import AsyncDBCursor, AsyncThreadPool
from .util import Singleton, Struct, deserialize, serialize

if TYPE_CHECKING:  # for type checkers; at run time ``__getattr__`` provides them
    from .core import Pycos
    from .core import Pycos as AsynCoro
    from .net.location import Location as Location
    from .net.location import PeerStatus as PeerStatus
    from .net.remote.rci import RPS as RPS
    from .net.remote.rci import RTI as RTI

#: asyncoro's names.
Coro = Task
_LocalPycos.cur_coro = _LocalPycos.cur_task  # type: ignore[attr-defined]

__all__ = [
    "logger", "Logger", "Pycos", "Task", "MonitorStatus", "MonitorException", "WaitQueue", "Clock",
    "SystemClock", "FakeClock",
    "READ", "WRITE", "ConcurrentWaitError", "PycosError", "InternalError", "ContextError",
    "HotSwapException", "PeerLost", "Coro", "AsynCoro", "__version__",
    "Lock", "RLock", "Condition", "Event", "Semaphore", "Channel", "CategorizeMessages",
    "AsyncThreadPool", "AsyncDBCursor", "serialize_allow", "SerializationError",
    "UnpicklingRefused", "ClosedWhileWaiting",
    "AsyncSocket", "SysTask", "Singleton", "Struct", "serialize", "deserialize", "config",
    "Location", "run",
]

#: Names this module provides on first use: name -> (module, attribute of it or None for the
#: module itself).
_LAZY: dict[str, tuple[str, str | None]] = {
    "netpycos": ("pycos.netpycos", None),
    "Location": ("pycos.net.location", "Location"),
    "PeerStatus": ("pycos.net.location", "PeerStatus"),
    "RPS": ("pycos.net.remote.rci", "RPS"),
    "RTI": ("pycos.net.remote.rci", "RTI"),
}

#: Names of pycos 4.12 that this package replaced: name -> what to use instead.
_MOVED: dict[str, str] = {
    "_AsyncSocket": "pycos.AsyncSocket",
    "_Peer": "the node's peer table is internal; use Pycos.peer_status() to follow peers",
    "_NetRequest": "remote operations are internal; use Task/RPS/Channel methods",
    "httpd": "the dashboard (python -m pycos dashboard)",
    "dispycos": "pycos.proxy and remote modules (doc/remote_modules.rst); dispycos is not part "
                "of this package",
}


def _scheduler_class() -> Any:
    """The class ``pycos.Pycos`` names: the node once ``pycos.netpycos`` is imported."""
    net = sys.modules.get("pycos.netpycos")
    return getattr(net, "Pycos", _LocalPycos) if net is not None else _LocalPycos


def __getattr__(name: str) -> Any:
    """PEP 562: ``Pycos``/``AsynCoro`` (see the module docstring), then what ``_LAZY`` names,
    imported on first access; a name in ``_MOVED`` or any other is an AttributeError."""
    if name == "Pycos" or name == "AsynCoro":
        return _scheduler_class()
    entry = _LAZY.get(name)
    if entry is None:
        moved = _MOVED.get(name)
        if moved is not None:
            raise AttributeError(f"pycos.{name} of pycos 4.12 is not in this package: use "
                                 f"{moved} (doc/migration.rst lists every change)")
        raise AttributeError(f"module 'pycos' has no attribute {name!r}")
    module = importlib.import_module(entry[0])
    return module if entry[1] is None else getattr(module, entry[1])
