"""pycos: concurrent, asynchronous and distributed programming with generator tasks.

This facade re-exports layers L0-L2 (errors, logging, the scheduler and tasks, synchronisation,
channels, thread pools). ``import pycos.netpycos`` adds the networked node; the names in
``_LAZY`` are imported on first use instead (PEP 562 ``__getattr__``), so ``pycos.netpycos``
works even when the program forgot that import.
"""

import importlib
from typing import Any

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
    Pycos,
    SystemClock,
    Task,
    WaitQueue,
)
from .errors import (
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

#: asyncoro's names.
Coro = Task
AsynCoro = Pycos
AsynCoro.cur_coro = Pycos.cur_task  # type: ignore[attr-defined]

__all__ = [
    "logger", "Logger", "Pycos", "Task", "MonitorStatus", "MonitorException", "WaitQueue", "Clock",
    "SystemClock", "FakeClock",
    "READ", "WRITE", "ConcurrentWaitError", "PycosError", "InternalError", "ContextError",
    "HotSwapException", "PeerLost", "Coro", "AsynCoro", "__version__",
    "Lock", "RLock", "Condition", "Event", "Semaphore", "Channel", "CategorizeMessages",
    "AsyncThreadPool", "AsyncDBCursor", "serialize_allow", "SerializationError",
    "UnpicklingRefused",
    "AsyncSocket",
]

#: Names this module provides on first use: name -> (module, attribute of it or None for the
#: module itself).
_LAZY: dict[str, tuple[str, str | None]] = {
    "netpycos": ("pycos.netpycos", None),
}


def __getattr__(name: str) -> Any:
    """PEP 562: import what ``_LAZY`` names on first access (``pycos.netpycos`` without
    ``import pycos.netpycos``); any other name is an AttributeError as usual."""
    entry = _LAZY.get(name)
    if entry is None:
        raise AttributeError(f"module 'pycos' has no attribute {name!r}")
    module = importlib.import_module(entry[0])
    return module if entry[1] is None else getattr(module, entry[1])
