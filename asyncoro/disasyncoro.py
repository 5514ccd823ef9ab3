"""asyncoro's ``asyncoro.disasyncoro``: the distributed names.

``import asyncoro.disasyncoro as asyncoro`` gives a program every name of ``asyncoro`` plus the
networked ones: ``AsynCoro`` (the networked node, with asyncoro's constructor spellings and
defaults), ``Location``, ``PeerStatus`` and ``RCI``. Tasks (``Coro``) and channels are pycos's;
once a node runs they work across nodes (``register``, ``locate``, ``send``, ``deliver``,
``monitor`` …).

Importing this module makes the networked node the scheduler every program part gets, as
``import pycos.netpycos`` does, but with asyncoro's defaults: a task created before any
``AsynCoro(...)`` call starts ``AsynCoro()`` (UDP port 51350, discovery on). Imports the public
``pycos.netpycos`` facade (and the modules it re-exports from) and the ``asyncoro`` package.
"""

from __future__ import annotations

import os
import tempfile
from typing import Any

import pycos.netpycos as _netpycos
from pycos.core.scheduler import Pycos as _CorePycos
from pycos.net import PeerStatus
from pycos.net.remote.rci import RCI

from . import (
    AsyncDBCursor,
    AsynCoroSocket,
    AsyncSocket,
    AsyncThreadPool,
    CategorizeMessages,
    Channel,
    Condition,
    Coro,
    Event,
    HotSwapException,
    Location,
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
    unserialize,
)

#: asyncoro's UDP port for discovery, used when ``udp_port`` is 0 or None.
DEFAULT_UDP_PORT = 51350

__all__ = [
    "AsyncSocket", "AsynCoroSocket", "Coro", "AsynCoro", "Lock", "RLock", "Event", "Condition",
    "Semaphore", "HotSwapException", "MonitorException", "MonitorStatus", "Location", "Channel",
    "CategorizeMessages", "AsyncThreadPool", "AsyncDBCursor", "Singleton", "logger", "Logger",
    "serialize", "deserialize", "unserialize", "PeerStatus", "RCI", "DEFAULT_UDP_PORT",
]


class _AsynCoroType(type(_netpycos.Pycos)):  # type: ignore[misc]
    """Every networked node is an ``AsynCoro``: ``isinstance(node, AsynCoro)`` holds for a
    ``pycos.netpycos.Pycos`` too, so ``AsynCoro()`` / ``AsynCoro.instance()`` return the
    running node whichever of the two names created it."""

    def __instancecheck__(cls, obj: Any) -> bool:
        return isinstance(obj, _netpycos.Pycos)


class AsynCoro(_netpycos.Pycos, metaclass=_AsynCoroType):
    """The networked node under asyncoro's name and with asyncoro's defaults.

    One per process: calling it again returns the running node. Create it before any task when
    it needs arguments. Every argument of ``pycos.netpycos.Pycos`` is accepted too (by keyword:
    ``host``, ``ext_host``, ``dest_path``, ``cafile``, ``heartbeat_interval`` …).

    Args:
        node: address or host name to serve on (pycos: ``host``).
        udp_port: discovery port shared by the nodes of a host; 0 or None: 51350.
        tcp_port: this node's TCP port (0: any free port).
        ext_ip_addr: address peers should use, e.g. a NAT gateway's (pycos: ``ext_host``).
        name: this node's name (default ``"addr:tcp_port"``).
        discover_peers: announce this node by UDP broadcast at start.
        peers: Locations or host names to contact at start.
        secret: only nodes with the same secret become peers.
        certfile, keyfile: TLS certificate and key for every connection.
        notifier: accepted; no effect.
        dest_path_prefix: directory for files sent by peers (pycos: ``dest_path``); default
            ``<tmp>/asyncoro``.
        max_file_size: largest file accepted from a peer (None or 0: no limit).

    Raises:
        TypeError, ValueError: an argument is invalid (the message says what was expected).
        OSError: the TCP port cannot be bound.
    """

    def __init__(self, node: str | None = None, udp_port: int | None = None,
                 tcp_port: int = 0, ext_ip_addr: str | None = None, name: str | None = None,
                 discover_peers: bool = True, peers: Any = (), secret: str = "",
                 certfile: Any = None, keyfile: Any = None, notifier: Any = None,
                 dest_path_prefix: Any = None, max_file_size: int | None = None,
                 **kwargs: Any) -> None:
        if udp_port is None or udp_port == 0:
            udp_port = DEFAULT_UDP_PORT
        if dest_path_prefix is None and kwargs.get("dest_path") is None:
            dest_path_prefix = os.path.join(tempfile.gettempdir(), "asyncoro")
        super().__init__(udp_port=udp_port, tcp_port=tcp_port, name=name,
                         discover_peers=discover_peers, peers=peers, secret=secret,
                         certfile=certfile, keyfile=keyfile, max_file_size=max_file_size,
                         node=node, ext_ip_addr=ext_ip_addr, dest_path_prefix=dest_path_prefix,
                         notifier=notifier, **kwargs)

    #: asyncoro's name of ``Pycos.cur_task``: the task running now (None outside tasks).
    cur_coro = staticmethod(_netpycos.Pycos.cur_task)


# Tasks created before any AsynCoro(...) call start an AsynCoro with asyncoro's defaults.
_CorePycos._default_class = AsynCoro
