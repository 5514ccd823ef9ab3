"""The gateways of one node: their request kinds, their stream kind and the pool tickets.

Owns ``NodeGateways`` (installed on a node on first use: the ``swarm.ticket`` and
``swarm.release`` requests and the ``swarm`` stream kind; gateways found by name) and
``Pool`` (a gateway's handler slots). A client first asks for a *ticket* over the peer link —
where the node knows who asks, so ``allow_from`` is checked and a slot is reserved atomically:
of 100 concurrent ``get_client()`` calls exactly ``pool_size`` get one — then opens its
dedicated connection with the ticket; an unused ticket expires after ``TICKET_LIFETIME``
seconds and its slot comes back. Imports the standard library, ``pycos.errors``, ``pycos.net``
and the package's modules.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from typing import Any

from ..errors import AccessDenied
from ..net.limits import escape
from ..net.node import PerNode
from .errors import PoolFull
from .wire import Wire

__all__ = ["NodeGateways", "Pool", "TICKET_LIFETIME", "STREAM_KIND", "TICKET", "RELEASE",
           "local_registry"]

logger = logging.getLogger("pycos.swarm")

STREAM_KIND = "swarm"
TICKET, RELEASE = "swarm.ticket", "swarm.release"
#: Seconds a ticket may wait for its connection.
TICKET_LIFETIME = 10.0

_by_node: PerNode[NodeGateways] = PerNode()


class Pool:
    """The handler slots of one gateway (any thread)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.lock = threading.Lock()
        self.tickets: dict[bytes, tuple[float, str]] = {}
        self.active = 0

    def _purge(self, now: float) -> None:
        for token, (expires, _who) in list(self.tickets.items()):
            if expires <= now:
                del self.tickets[token]

    def reserve(self, who: str) -> bytes:
        """A ticket for one handler; PoolFull when every slot is taken."""
        with self.lock:
            self._purge(time.monotonic())
            if self.active + len(self.tickets) >= self.size:
                raise PoolFull(f"the handler pool is full ({self.size} handlers)")
            token = secrets.token_bytes(16)
            self.tickets[token] = (time.monotonic() + TICKET_LIFETIME, who)
            return token

    def redeem(self, token: Any) -> str | None:
        """The ticket's holder name when ``token`` is a live ticket (it becomes an active
        handler), else None."""
        if type(token) is not bytes:
            return None
        with self.lock:
            entry = self.tickets.pop(token, None)
            if entry is None or entry[0] <= time.monotonic():
                return None
            self.active += 1
            return entry[1]

    def cancel(self, token: Any) -> bool:
        with self.lock:
            return type(token) is bytes and self.tickets.pop(token, None) is not None

    def leave(self) -> None:
        with self.lock:
            self.active -= 1

    def clear(self) -> None:
        with self.lock:
            self.tickets.clear()

    @property
    def in_use(self) -> int:
        with self.lock:
            self._purge(time.monotonic())
            return self.active + len(self.tickets)


class NodeGateways:
    """Every gateway of one node."""

    def __init__(self, node: Any) -> None:
        self.node = node
        self.gateways: dict[str, Any] = {}
        self.lock = threading.Lock()
        node.serve(TICKET, self.on_ticket, "main")
        node.serve(RELEASE, self.on_release, "main")
        node.serve_stream(STREAM_KIND, self.on_stream)

    @classmethod
    def of(cls, node: Any) -> NodeGateways:
        """The gateways of ``node``, installed on first use (any thread)."""
        return _by_node.get(node, cls)

    def add(self, gateway: Any) -> None:
        with self.lock:
            other = self.gateways.get(gateway.name)
            if other is not None and other is not gateway:
                raise ValueError(f"node {self.node.name} already has a gateway named "
                                 f"{gateway.name!r}")
            self.gateways[gateway.name] = gateway

    def remove(self, gateway: Any) -> None:
        key = gateway.name
        with self.lock:
            if self.gateways.get(key) is gateway:
                del self.gateways[key]

    def find(self, name: Any) -> Any:
        gateway = self.gateways.get(name) if type(name) is str else None
        if gateway is None:
            raise AccessDenied(f"node {self.node.name} has no gateway named "
                               f"{escape(name, 40)!r}")
        return gateway

    # ------------------------------------------------------------------ requests
    def ticket(self, name: Any, who: str) -> tuple[bytes, dict[str, Any]]:
        """(token, gateway facts) for the node called ``who``."""
        gateway = self.find(name)
        gateway.check_client(who)
        token = gateway.pool.reserve(who)
        return token, gateway.facts()

    def on_ticket(self, ctx: Any, payload: Any) -> Any:
        name = payload[0] if isinstance(payload, tuple) and payload else None
        return self.ticket(name, ctx.peer.name)

    def on_release(self, ctx: Any, payload: Any) -> Any:
        if isinstance(payload, tuple) and len(payload) == 2:
            gateway = self.gateways.get(payload[0]) if type(payload[0]) is str else None
            if gateway is not None:
                return gateway.pool.cancel(payload[1])
        return False

    # ------------------------------------------------------------------ connections
    def on_stream(self, stream: Any, payload: Any) -> None:
        """A client's dedicated connection (on its own thread): serve it until it ends."""
        name, token = payload if isinstance(payload, tuple) and len(payload) == 2 else (None,
                                                                                          None)
        gateway = self.gateways.get(name) if type(name) is str else None
        who = gateway.pool.redeem(token) if gateway is not None else None
        if gateway is None or who is None:
            self.node.stats["rejected_busy"] = self.node.stats.get("rejected_busy", 0) + 1
            logger.info("swarm connection from %s refused: no such gateway or no valid "
                        "ticket", stream.peer)
            stream.close()
            return
        left = threading.Event()

        def leave() -> None:  # once: at close_handler (before its answer) or at the end
            if not left.is_set():
                left.set()
                gateway.pool.leave()

        try:
            gateway.serve(Wire(stream, gateway.io_timeout), who, leave)
        finally:
            leave()


def local_registry(location: Any) -> NodeGateways | None:
    """The gateways of a node of this process at ``location`` (None if there is none)."""
    for node, registry in _by_node.items():
        if node.location == location and not node.stopping:
            return registry
    return None
