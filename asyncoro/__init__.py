"""asyncoro's names for pycos's local layer: ``import asyncoro``.

Programs written for asyncoro 4.x import ``asyncoro`` (tasks, the scheduler, synchronisation,
channels, sockets on one machine), ``asyncoro.disasyncoro`` (the same plus the networked node,
remote tasks, channels and RCI) and ``asyncoro.asyncfile`` (asynchronous files and pipes). This
package maps each of asyncoro's public names onto the pycos object that does that job, so those
programs run unchanged; it adds no behaviour of its own. ``AsynCoro`` is the local scheduler
class until ``asyncoro.disasyncoro`` is imported and the networked node class after, as in
asyncoro (a module ``__getattr__``, the way ``pycos.Pycos`` works).

Imports only the public ``pycos`` facade (and ``pycos.net.location`` for ``Location``, a plain
value type); importing this package starts nothing and changes no pycos setting.
"""

from __future__ import annotations

import sys
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
    Singleton,
    deserialize,
    logger,
    serialize,
)
from pycos.core import Pycos as _LocalPycos
from pycos.net.location import Location

__all__ = [
    "AsyncSocket", "AsynCoroSocket", "Coro", "AsynCoro", "Lock", "RLock", "Event", "Condition",
    "Semaphore", "HotSwapException", "MonitorException", "MonitorStatus", "Location", "Channel",
    "CategorizeMessages", "AsyncThreadPool", "AsyncDBCursor", "Singleton", "logger", "Logger",
    "serialize", "deserialize", "unserialize",
]

#: asyncoro's name of a task: ``asyncoro.Coro(fn, *args)``; ``coro=None`` receives the task.
Coro = pycos.Task
#: asyncoro's second name of the asynchronous socket.
AsynCoroSocket = AsyncSocket


#: asyncoro's other spelling of ``deserialize``.
unserialize = deserialize


def __getattr__(name: str) -> Any:
    """``AsynCoro``: the local scheduler class (``AsynCoro.cur_coro()`` is
    ``Pycos.cur_task()``), or ``asyncoro.disasyncoro.AsynCoro`` once that is imported."""
    if name == "AsynCoro":
        net = sys.modules.get("asyncoro.disasyncoro")
        return getattr(net, "AsynCoro", _LocalPycos) if net is not None else _LocalPycos
    raise AttributeError(f"module 'asyncoro' has no attribute {name!r}")
