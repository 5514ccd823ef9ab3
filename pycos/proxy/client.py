"""``proxy()``: find a node that serves a module and return a ``ModuleProxy`` for it.

Owns ``proxy`` (yield or block) and the search behind it: with ``location=`` it asks that node;
without, it asks every peer at once (and every peer that comes online while it waits), the
first node that serves the module wins, and the answer is None — with a warning, as the seed's
"Module scipy not found in the connected edges" — once every peer asked has said no (after the
node's first ``SETTLE`` seconds when it discovers peers or was given some, which may still be
connecting) or when ``timeout`` passes. Imports the standard library, ``pycos.core``,
``pycos.errors``, ``pycos.net`` and its own package.
"""

from __future__ import annotations

import logging
from collections.abc import Generator
from typing import Any

from ..core import lowlevel
from ..errors import AccessDenied, RemoteError
from ..net import default_node, yield_or_block
from ..net.location import Location, PeerStatus
from ..net.node import Node
from ..net.pending import Pending
from ..net.scheduler import Pycos as NetPycos
from .allowlist import check_name
from .proxies import ModuleProxy
from .session import ClientSide

__all__ = ["proxy", "SETTLE", "PROBE_TIMEOUT"]

logger = logging.getLogger("pycos.proxy")

#: Seconds after a node's start during which its peers may still be connecting.
SETTLE = 2.0
#: Bound of each peer's answer when ``proxy()`` has no timeout of its own.
PROBE_TIMEOUT = 30.0
_TIMED_OUT = object()


def client_node(node: Any) -> Any:
    """The ``pycos.net.Node`` to call from (``node``, or the default node)."""
    if node is None:
        return default_node()
    if isinstance(node, NetPycos):
        return node.node
    if not isinstance(node, Node):
        raise TypeError(f"node must be a pycos.net.Node or a pycos.netpycos.Pycos, got {node!r}")
    return node


@yield_or_block
def proxy(module: str, location: Location | None = None, timeout: float | None = None,
          service: str = "modules", node: Any = None) -> Generator[Any, Any, Any]:
    """Yield or block: a ``ModuleProxy`` for ``module`` (a dotted name) served by a peer.

    Args:
        module: the module (or object, or attribute prefix) to use, e.g. ``"numpy"``.
        location: ask only the node at this ``Location`` (connecting first if needed).
        timeout: seconds to wait for an answer (None: until every peer has answered).
        service: the name of the ``ModuleService`` on the serving node.
        node: the node to call from (default: the process's default node).

    Returns:
        the proxy, or None when no peer serves ``module`` (a warning is logged).

    Raises:
        TypeError, ValueError: a bad argument.
        AccessDenied: the node at ``location`` refuses this node (``allow_from``).
        PeerLost: the node at ``location`` cannot be reached.
    """
    check_name(module, "module name")
    if not isinstance(service, str):
        raise TypeError(f"service must be a str, got {service!r}")
    me = client_node(node)
    lowlevel.check_timeout(timeout)
    payload = (service, module, me.config.max_frame_size)
    if location is not None:
        if not isinstance(location, Location):
            raise TypeError(f"location must be a Location, got {location!r}")
        if location == me.location:
            raise ValueError(f"{location!r} is this node: use the module directly")
        info = yield me.request(location, "pmod.probe", payload, timeout)
        where = repr(location)
    else:
        info = yield from _search(me, payload, timeout)
        where = "the connected peers"
    if info is None:
        logger.warning("%s: module %s not found on %s", me.name, module, where)
        return None
    if not (type(info) is dict and isinstance(info.get("location"), Location)
            and type(info.get("incarnation")) is bytes and type(info.get("name")) is str):
        raise RemoteError("pycos.proxy", f"{where} answered the probe with something else")
    session = ClientSide.of(me).session(info, service)
    return ModuleProxy(session, tuple(module.split(".")))


class _Search:
    """Every peer asked at once; the first positive answer wins (the node's thread)."""

    def __init__(self, node: Any, payload: tuple[Any, ...], timeout: float | None) -> None:
        self.node = node
        self.payload = payload
        self.each = PROBE_TIMEOUT if timeout is None else timeout
        self.done = Pending(timeout, _TIMED_OUT)
        self.asked: set[Location] = set()
        self.answered = 0
        self.denied = 0
        # peers may still be connecting to a node that discovers them or was given some
        busy = node.config.discover_peers or bool(node.config.peers)
        self.settle_at = node.started + SETTLE if busy else 0.0

    def ask(self, loc: Location) -> None:
        if self.done.done or loc in self.asked or loc == self.node.location:
            return
        self.asked.add(loc)
        lowlevel.spawn_daemon(self._one, loc)

    def _one(self, loc: Location, task: Any = None) -> Any:
        try:
            info = yield self.node.request(loc, "pmod.probe", self.payload, self.each)
        except AccessDenied:
            self.denied += 1
            info = None
        except Exception as exc:  # noqa: BLE001 - a failed answer counts as "no"
            logger.debug("probe of %r failed: %s", loc, exc)
            info = None
        self.answered += 1
        if info is not None:
            self.done.resolve(info)
        else:
            self.settled()

    def settled(self) -> None:
        """Every peer asked said no: None, once the node has had ``SETTLE`` seconds."""
        if self.done.done or self.answered < len(self.asked):
            return
        left = self.settle_at - self.node.now()
        if left <= 0:
            self.done.resolve(None)
        else:
            lowlevel.call_later(self.node.sched, left, self.settled)

    def hook(self, peer: Any, status: int) -> None:
        if status == PeerStatus.Online:
            self.ask(peer.location)


def _search(node: Any, payload: tuple[Any, ...], timeout: float | None
            ) -> Generator[Any, Any, Any]:
    search = _Search(node, payload, timeout)
    node.peers.hooks.append(search.hook)
    try:
        for loc in node.peers_list(hidden=True):
            search.ask(loc)
        search.settled()
        found = yield search.done
    finally:
        try:
            node.peers.hooks.remove(search.hook)
        except ValueError:
            pass
    if found is _TIMED_OUT:
        return None
    if found is None and search.denied:
        logger.warning("%s: %d peers refused this node", node.name, search.denied)
    return found
