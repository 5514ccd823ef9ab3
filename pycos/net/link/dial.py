"""Making links: dialing peers, and redialing (accepting is ``accept``).

Owns ``Dialer`` (outgoing connections: one dial at a time per location, the callers of ``peer``
waiting on it; redials after an arbiter's refusal; the node's ``reconnect`` policy for peers
that were added explicitly and dropped without a goodbye). Imports the standard library,
``pycos.core``, ``pycos.asyncsocket``, ``pycos.proto`` and its own package. Tasks run on the
node's scheduler.
"""

from __future__ import annotations

import logging
import random
import socket
import ssl
from typing import Any

from ...asyncsocket import AsyncSocket
from ...core import lowlevel
from ...proto import Role
from ..location import Location
from ..pending import Pending
from .link import Link

__all__ = ["Dialer", "adopt"]

logger = logging.getLogger("pycos.net.dial")

#: Reconnect backoff: first wait, largest wait (seconds); each wait is jittered ×1–1.5.
BACKOFF_FIRST, BACKOFF_MAX = 0.1, 10.0


def adopt(node: Any, sock: AsyncSocket, role: Role, addr: Any, target: Location | None,
          conn: Any = None, established: Any = None, first: Any = None) -> Link:
    """Make a link of a connected socket and start it (node's scheduler thread); ``conn``,
    ``established`` and ``first`` for a connection the acceptor already authenticated."""
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except OSError:
        pass
    link = Link(node, sock, role, addr, target, conn, established)
    node.peers.links.add(link)
    node.peers.unsettled.add(link)
    link.start(first)
    return link


class Dialer:
    """Outgoing connections of one node."""

    def __init__(self, node: Any) -> None:
        self.node = node
        #: Locations added with ``peer(Location)`` or ``peers=[...]``: redialed by the
        #: reconnect policy when they drop without a goodbye.
        self.wanted: set[Location] = set()

    def dial(self, loc: Location, pending: Pending | None) -> None:
        """Connect to the node at ``loc`` unless it is a peer or being dialed; ``pending``
        gets 0 once it is a peer, -1 if that fails (node's scheduler thread)."""
        node = self.node
        if node.stopping or loc == node.location:
            if pending is not None:
                if loc == node.location:
                    logger.warning("peer(%r): that is this node's own location", loc)
                pending.resolve(-1)
            return
        if loc in node.peers.by_loc:
            if pending is not None:
                pending.resolve(0)
            return
        dialing = node.peers.dialing
        waiters = dialing.get(loc)
        if waiters is None:
            waiters = dialing[loc] = []
            lowlevel.spawn_daemon(self._dial_task, loc, waiters)
        if pending is not None:
            waiters.append(pending)

    def _dial_task(self, loc: Location, waiters: list[Pending], attempt: int = 0,
                   task: Any = None) -> Any:
        node = self.node
        cfg = node.config
        sock = AsyncSocket(socket.socket(loc.family, socket.SOCK_STREAM),
                           ssl_context=cfg.client_ctx)
        sock.settimeout(cfg.handshake_timeout)
        node.stats["connections_dialed"] += 1
        try:
            yield sock.connect(loc.sockaddr())
        except OSError as exc:
            sock.close()
            is_tls = isinstance(exc, ssl.SSLError) or isinstance(exc.__cause__, ssl.SSLError)
            node.stats["tls_errors" if is_tls else "dial_failures"] += 1
            node.peers.log.event(f"dial:{loc!r}", "cannot connect to %r: %s%s", loc,
                                 "TLS handshake failed: " if is_tls else "", exc)
            self._resolve(loc, waiters, -1)
            return
        sock.settimeout(None)
        if node.stopping:
            sock.close()
            self._resolve(loc, waiters, -1)
            return
        link = adopt(node, sock, Role.CLIENT, loc.sockaddr(), loc)
        link.waiters = waiters
        link.attempt = attempt

    def redial(self, loc: Location, waiters: list[Pending], attempt: int) -> None:
        """Dial ``loc`` again after a short pause (the arbiter refused a connection)."""
        lowlevel.spawn_daemon(self._redial, loc, waiters, attempt)

    def _redial(self, loc: Location, waiters: list[Pending], attempt: int,
                task: Any = None) -> Any:
        node = self.node
        yield task.sleep(node.tick * attempt)
        if node.stopping or loc in node.peers.by_loc:
            self._resolve(loc, waiters, 0 if loc in node.peers.by_loc else -1)
            return
        lowlevel.spawn_daemon(self._dial_task, loc, waiters, attempt)

    def _resolve(self, loc: Location, waiters: list[Pending], value: int) -> None:
        dialing = self.node.peers.dialing
        if dialing.get(loc) is waiters:
            del dialing[loc]
        for pending in waiters:
            pending.resolve(value)

    # ------------------------------------------------------------------ reconnect policy
    def lost(self, loc: Location, said_goodbye: bool) -> None:
        """A peer at ``loc`` went Offline: redial it with backoff when the policy says so."""
        node = self.node
        tries = node.config.reconnect
        if tries and not said_goodbye and loc in self.wanted and not node.stopping:
            lowlevel.spawn_daemon(self._reconnect, loc, tries)

    def _reconnect(self, loc: Location, tries: int, task: Any = None) -> Any:
        node = self.node
        delay = BACKOFF_FIRST
        for _ in range(tries):
            yield task.sleep(delay * random.uniform(1.0, 1.5))
            if node.stopping or loc not in self.wanted:
                return
            if loc in node.peers.by_loc:
                return
            done = Pending()
            self.dial(loc, done)
            if (yield done) == 0:
                logger.info("reconnected to %r", loc)
                return
            delay = min(BACKOFF_MAX, delay * 2)
        logger.warning("gave up reconnecting to %r after %d attempts", loc, tries)
