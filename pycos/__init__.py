"""pycos: concurrent, asynchronous and distributed programming with generator tasks.

This facade re-exports layers L0-L2 (errors, logging, the scheduler and tasks, synchronisation,
channels, thread pools). ``import pycos.netpycos`` adds the networked node.
"""

from ._log import Logger, logger
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
from .proto.serialize import serialize_allow
from .sync import Condition, Event, Lock, RLock, Semaphore
from .threadpool import AsyncDBCursor, AsyncThreadPool

__version__ = "5.0.0.dev0"

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
