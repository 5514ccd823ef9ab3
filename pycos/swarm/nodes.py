"""Which node a gateway or a controller uses, and where a gateway is.

Owns ``node_for`` (the node given; else the running scheduler's node, or a new node on it at
another port; else a new ``pycos.netpycos.Pycos``, so ``Gateway(port=1857)`` works as in the
seed) and ``gateway_location`` (a ``Location``, ``"host:port"``, or a node's name). Nodes made
here do not announce themselves (``discover_peers=False``): a gateway is reached by address.
Imports the standard library, ``pycos.core.lowlevel`` and ``pycos.net``.
"""

from __future__ import annotations

from typing import Any

from ..core import lowlevel
from ..net import default_node
from ..net.location import Location
from ..net.node import Node
from ..net.scheduler import Pycos as NetPycos

__all__ = ["node_for", "gateway_location", "INHERITED"]

#: Settings a new node at another port takes from the process's default node when not given.
INHERITED = ("host", "secret", "certfile", "keyfile", "cafile")


def node_for(node: Any, port: int | None, kwargs: dict[str, Any]) -> tuple[Any, bool]:
    """(node, made): the node to use, and whether it was made here (its owner closes it).

    Raises:
        TypeError: ``node`` is not a node.
        OSError: a new node's port cannot be bound.
    """
    if node is not None:
        if kwargs or port is not None:
            raise TypeError("give either node= or the settings of a new node, not both")
        if isinstance(node, NetPycos):
            return node.node, False
        if isinstance(node, Node):
            return node, False
        raise TypeError(f"node must be a pycos.net.Node or a pycos.netpycos.Pycos, got "
                        f"{node!r}")
    if port is not None and (isinstance(port, bool) or not isinstance(port, int)
                             or not 0 <= port <= 65535):
        raise ValueError(f"port must be an int in 0..65535, got {port!r}")
    sched = lowlevel.running_scheduler()
    if port is None and not kwargs:
        return default_node(), False
    existing = getattr(sched, "node", None) if sched is not None else None
    if sched is None:
        settings = {"discover_peers": False, **kwargs}
        if port is not None:
            settings["tcp_port"] = port
        return NetPycos(**settings).node, False
    if existing is not None and not existing.stopping and (
            port in (None, 0, existing.location.port)) and _same(existing, kwargs):
        return existing, False
    settings = {"discover_peers": False, **kwargs}
    if existing is not None:
        for key in INHERITED:
            if key not in settings:
                value = getattr(existing.config, key, None)
                if value:
                    settings[key] = value
    if port is not None:
        settings["tcp_port"] = port
    return Node(scheduler=sched, **settings), True


def _same(node: Any, kwargs: dict[str, Any]) -> bool:
    """True when ``kwargs`` ask for nothing ``node`` does not already have."""
    config = node.config
    for key, value in kwargs.items():
        have = getattr(config, key, None)
        if key == "tcp_port":
            have = node.location.port
        if have != value and not (key == "host" and value in (node.location.addr,)):
            return False
    return True


def gateway_location(gateway: Any, node: Any, timeout: float | None) -> Location:
    """The ``Location`` of ``gateway``: a ``Location``, ``"host:port"`` (``":port"`` or
    ``"":port`` mean this machine, 127.0.0.1), or the name of a node, located through
    ``node`` within ``timeout``.

    Raises:
        ValueError: malformed, or no node of that name answered within ``timeout``.
    """
    if isinstance(gateway, Location):
        return gateway
    if not isinstance(gateway, str) or not gateway:
        raise TypeError(f"a gateway is a Location, 'host:port' or a node name, got {gateway!r}")
    host, sep, port = gateway.rpartition(":")
    if sep and port.isdigit():
        host = host.strip("[]") or "127.0.0.1"
        return Location(host, int(port))
    found = lowlevel_run_locate(node, gateway, timeout)
    if not isinstance(found, Location):
        raise ValueError(f"no node named {gateway!r} answered within {timeout} s")
    return found


def lowlevel_run_locate(node: Any, name: str, timeout: float | None) -> Any:
    """``node.locate(name, timeout)`` as a plain call (a thread's)."""
    from ..core.blocking import run

    return run(node.locate(name, timeout), None if timeout is None else timeout + 5)
