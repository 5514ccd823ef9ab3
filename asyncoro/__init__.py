"""asyncoro's names for pycos's local layer: ``import asyncoro``.

Programs written for asyncoro 4.x import ``asyncoro`` (tasks, the scheduler, synchronisation,
channels, sockets on one machine), ``asyncoro.disasyncoro`` (the same plus the networked node,
remote tasks, channels and RCI) and ``asyncoro.asyncfile`` (asynchronous files and pipes). This
package maps each of asyncoro's public names onto the pycos object that does that job, so those
programs run unchanged; it adds no behaviour of its own except ``Singleton`` and the
``serialize`` helpers, which asyncoro exported as utilities.

Imports only the public ``pycos`` facade (and ``pycos.net.location`` for ``Location``, a plain
value type); importing this package starts nothing and changes no pycos setting.
"""

from __future__ import annotations

import threading
from typing import Any

import pycos
from pycos import (
    AsyncDBCursor,
    AsyncSocket,
    AsyncThreadPool,
    CategorizeMessages,
    Channel,
    Condition,
    Event,
    HotSwapException,
    Lock,
    Logger,
    MonitorException,
    MonitorStatus,
    RLock,
    Semaphore,
    logger,
)
from pycos.net.location import Location
from pycos.proto.codec import decode as _loads
from pycos.proto.codec import encode as _dumps

__all__ = [
    "AsyncSocket", "AsynCoroSocket", "Coro", "AsynCoro", "Lock", "RLock", "Event", "Condition",
    "Semaphore", "HotSwapException", "MonitorException", "MonitorStatus", "Location", "Channel",
    "CategorizeMessages", "AsyncThreadPool", "AsyncDBCursor", "Singleton", "logger", "Logger",
    "serialize", "deserialize", "unserialize",
]

#: asyncoro's name of a task: ``asyncoro.Coro(fn, *args)``; ``coro=None`` receives the task.
Coro = pycos.Task
#: asyncoro's name of the (local) scheduler; ``AsynCoro.cur_coro()`` is ``Pycos.cur_task()``.
AsynCoro = pycos.AsynCoro
#: asyncoro's second name of the asynchronous socket.
AsynCoroSocket = AsyncSocket


class Singleton(type):
    """Metaclass of classes with one instance per process (plain use: ``metaclass=Singleton``).

    Calling such a class returns the instance created by the first call; the arguments of
    later calls are ignored. The scheduler classes do not need it: ``AsynCoro()`` already
    returns the running scheduler.
    """

    _instances: dict[type, Any] = {}
    _lock = threading.Lock()

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        with Singleton._lock:
            inst = Singleton._instances.get(cls)
            if inst is None:
                inst = super().__call__(*args, **kwargs)
                Singleton._instances[cls] = inst
            return inst


def serialize(obj: Any) -> bytes:
    """Plain call: pickle ``obj`` the way the networked layer sends values.

    Raises:
        pycos.SerializationError: ``obj`` cannot be pickled.
    """
    return _dumps(obj)


def deserialize(data: bytes) -> Any:
    """Plain call: the value ``serialize`` made, decoded with the restricted unpickler.

    Only the types the networked layer accepts from peers are rebuilt (builtin and standard
    value types, pycos's own value types, and what ``pycos.serialize_allow`` names); asyncoro
    used unrestricted :mod:`pickle` here, which runs code named by the data.

    Raises:
        pycos.UnpicklingRefused: the data names a type that is not allowed (the message says
            how to allow it).
        pycos.SerializationError: ``data`` is not a valid pickle.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise TypeError(f"deserialize() needs bytes, got {type(data).__name__}")
    return _loads(bytes(data))


#: asyncoro's other spelling of ``deserialize``.
unserialize = deserialize
