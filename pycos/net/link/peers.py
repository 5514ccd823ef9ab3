"""The peer table of a node: which links exist, which peer each leads to, who is Online.

Owns ``PeerTable``: every link of the node, the one active link per peer incarnation, the
arbiter's decisions, the binding of a peer's identity (name, location) to its connection, the
Online/Offline notifications (``peer_status`` tasks and the node's hooks), the tasks waiting in
``locate(name)``, admission of new connections (``SourceGate``) and the counting and
rate-limited logging of bad input. Imports the standard library, ``pycos.core``,
``pycos.proto`` and its own package. Everything runs on the node's scheduler thread;
``snapshot`` (replaced, never mutated) and ``stats`` may be read from any thread.

Invariants: a peer is Online exactly while it is in ``by_inc`` (and its location in
``by_loc``); every Online is followed by exactly one Offline for the same peer. A newcomer
claiming the name or the location of a connected peer that is still alive is refused; it
replaces that peer only once the old link has been silent long enough to be presumed gone.
"""

from __future__ import annotations

import logging
import ssl
from typing import Any

from ...errors import PeerLost
from ...proto import RefuseCode, Refused
from ...proto.linkinfo import LinkInfo
from ..limits import RateLog, escape
from ..location import Location, PeerStatus, location_from_address
from ..pending import Pending
from .link import Link, LinkState

__all__ = ["PeerTable", "Peer", "STAT_KEYS"]

logger = logging.getLogger("pycos.net.peers")

STAT_KEYS = (
    "connections_accepted", "connections_dialed", "dial_failures", "handshakes",
    "handshake_timeouts", "refused_auth", "refused_version", "refused_other", "refused_by_peer",
    "protocol_errors", "oversized_frames", "undecodable_payloads", "tls_errors",
    "connection_errors", "connections_lost", "peer_timeouts", "byes_received",
    "duplicate_links", "unknown_kinds", "heartbeats_received", "rejected_busy",
    "rejected_source", "rejected_throttled", "identity_conflicts", "links_paused",
    "stalled_frames",
)
#: Dials again (after a short pause) when the arbiter refuses a connection to a peer this node
#: has no connection with.
MAX_REDIALS = 4


class Peer:
    """A peer node as this node knows it (the node's scheduler thread).

    Attributes:
        incarnation: the peer's incarnation id (16 random bytes per start of that node).
        name: its node name.
        location: the ``Location`` it advertised.
        link: its active ``Link``.
        hidden: it asked not to be listed to others.
        since: the time it came online (the node's clock).
    """

    __slots__ = ("incarnation", "name", "location", "link", "hidden", "since", "rtt")

    def __init__(self, incarnation: bytes, name: str, location: Any, link: Link,
                 hidden: bool, since: float) -> None:
        self.incarnation = incarnation
        self.name = name
        self.location = location
        self.link = link
        self.hidden = hidden
        self.since = since
        self.rtt: Any = None

    def __repr__(self) -> str:
        return f"<Peer {self.name!r} at {self.location!r}>"


class PeerTable:
    """Links and peers of one node.

    Args:
        node: the node (``pycos.net.node.Node``).
    """

    def __init__(self, node: Any) -> None:
        self.node = node
        self.links: set[Link] = set()
        self.unsettled: set[Link] = set()
        self.by_inc: dict[bytes, Peer] = {}
        self.by_loc: dict[Location, Peer] = {}
        self.snapshot: tuple[tuple[Location, str, bool], ...] = ()
        self.dialing: dict[Location, list[Pending]] = {}
        self.status_tasks: list[Any] = []
        #: ``hook(peer, PeerStatus.Online/Offline)``, run before the status tasks are told.
        self.hooks: list[Any] = []
        self.name_waiters: dict[str, list[Pending]] = {}
        #: arbiter: the link approved for a peer incarnation, waiting for the peer's verdict
        self.approving: dict[bytes, Link] = {}
        self.log = RateLog(logger, node.now)

    # ------------------------------------------------------------------ link exchange
    def location_of(self, info: LinkInfo) -> Location:
        """The Location a peer's node info names (an address literal, never looked up)."""
        return location_from_address(info.addr, info.port)

    def on_info(self, link: Link) -> None:
        """The peer's node info arrived on ``link``. Each side checks the identity the other
        claims and says so with a VERDICT; the arbiter's also decides between two links of the
        same pair. The link is active once both verdicts say yes."""
        problem = self._identity_problem(link)
        if problem is not None:
            self.node.stats["identity_conflicts"] += 1
            self.log.event("identity", "refused a connection from %s: %s", link.describe,
                           problem)
            link.send_verdict(False)
            link.close(problem)
            return
        if link.arbiter:
            inc = link.peer_incarnation
            assert inc is not None
            peer = self.by_inc.get(inc)
            other = peer.link if peer is not None else self.approving.get(inc)
            if other is not None and other is not link and not other.closed:
                quiet = 2 * self.node.config.heartbeat_interval
                if peer is None or self.node.now() - other.live.last_frame < quiet:
                    self.node.stats["duplicate_links"] += 1
                    link.send_verdict(False)
                    self._hand_over(link, other)  # its callers wait for the kept one
                    link.close("duplicate connection; the existing one is kept")
                    return
            self.approving[inc] = link
        link.verdict_sent = True
        link.send_verdict(True)
        if link.verdict_received:
            self.activate(link)

    def _identity_problem(self, link: Link) -> str | None:
        """Why ``link``'s peer may not have the name and location it claims, or None."""
        node = self.node
        info = link.info
        assert info is not None
        if link.location == node.location or info.name == node.name:
            return "it claims this node's own name or location"
        now = node.now()
        quiet = 2 * node.config.heartbeat_interval
        for peer in list(self.by_inc.values()):
            if peer.incarnation == link.peer_incarnation:
                continue
            if peer.location == link.location or peer.name == info.name:
                if now - peer.link.live.last_frame < quiet and not peer.link.closed:
                    return (f"a live peer ({escape(peer.name, 60)} at {peer.location!r}) "
                            "already has that name or location")
                logger.info("the node at %r is presumed restarted (its old connection was "
                            "silent); the new one replaces it", peer.location)
                peer.link.close("replaced: the node restarted")
        return None

    def on_verdict(self, link: Link, accepted: bool) -> None:
        """The peer's verdict on ``link``. The arbiter's refusal while this node has no
        connection to that peer means it still holds one this node has just dropped
        (``close_peer`` then ``peer`` at once): dial again shortly, keeping the callers
        waiting."""
        if accepted:
            link.verdict_received = True
            if link.verdict_sent:
                self.activate(link)
            return
        if link.arbiter:  # the other side refused the identity this node claims
            link.close("the peer refused this node's identity", bye=False)
            return
        self.node.stats["duplicate_links"] += 1
        sibling = self._sibling(link)
        if sibling is not None:  # both dialed at once: the peer keeps the other connection
            self._hand_over(link, sibling)
            link.close("duplicate connection; the peer keeps another one", bye=False)
            return
        retry = (link.target is not None and link.peer_incarnation not in self.by_inc
                 and link.attempt < MAX_REDIALS and not self.node.stopping)
        waiters = link.waiters
        if retry:
            link.waiters = []
        link.close("duplicate connection; the peer keeps another one", bye=False)
        if retry:
            self.node.dialer.redial(link.target, waiters, link.attempt + 1)

    def activate(self, link: Link) -> None:
        """Make ``link`` its peer's active connection; Online if the peer is new."""
        self.unsettled.discard(link)
        if self.approving.get(link.peer_incarnation) is link:  # type: ignore[arg-type]
            del self.approving[link.peer_incarnation]  # type: ignore[arg-type]
        link.state = LinkState.ACTIVE
        inc = link.peer_incarnation
        info = link.info
        assert inc is not None and info is not None and link.location is not None
        peer = self.by_inc.get(inc)
        if peer is not None:
            old, peer.link = peer.link, link
            link.peer = peer
            if old is not link:
                old.close("replaced by a newer connection to the same node")
        else:
            peer = link.peer = Peer(inc, info.name, link.location, link, info.hidden,
                                    self.node.now())
            self.by_inc[inc] = peer
            self.by_loc[peer.location] = peer
            self._changed()
            logger.info("peer %s (%r) is online", escape(peer.name, 60), peer.location)
            self._notify(peer, PeerStatus.Online)
            for pending in self.name_waiters.pop(peer.name, ()):
                pending.resolve(peer.location)
        self._settle(link, 0)

    # ------------------------------------------------------------------ closing
    def link_closed(self, link: Link) -> None:
        """``link`` closed: Offline if it was a peer's active connection."""
        self.unsettled.discard(link)
        if self.approving.get(link.peer_incarnation) is link:  # type: ignore[arg-type]
            del self.approving[link.peer_incarnation]  # type: ignore[arg-type]
        peer: Peer | None = link.peer
        if peer is not None and peer.link is link:
            del self.by_inc[peer.incarnation]
            if self.by_loc.get(peer.location) is peer:
                del self.by_loc[peer.location]
            self._changed()
            logger.info("peer %s (%r) is offline: %s", escape(peer.name, 60), peer.location,
                        link.close_reason)
            self._notify(peer, PeerStatus.Offline)
        self._settle(link, 0 if link.peer_incarnation in self.by_inc else -1)

    def link_gone(self, link: Link) -> None:
        """``link``'s socket is closed (or handed over as a stream)."""
        self.links.discard(link)
        self.unsettled.discard(link)
        self.node.link_gone()

    def _sibling(self, link: Link) -> Link | None:
        """Another live connection with the same peer incarnation (the active one first)."""
        inc = link.peer_incarnation
        peer = self.by_inc.get(inc) if inc is not None else None
        if peer is not None and peer.link is not link and not peer.link.closed:
            return peer.link
        for other in self.links:
            if other is not link and other.peer_incarnation == inc and not other.closed:
                return other
        return None

    def _hand_over(self, link: Link, other: Link) -> None:
        """The callers waiting for ``link`` to settle wait for ``other`` instead."""
        waiters, link.waiters = link.waiters, []
        if link.target is not None and self.dialing.get(link.target) is waiters:
            del self.dialing[link.target]
        if other.state is LinkState.ACTIVE:
            for pending in waiters:
                pending.resolve(0)
        else:
            other.waiters.extend(waiters)

    def _settle(self, link: Link, value: int) -> None:
        waiters, link.waiters = link.waiters, []
        if link.target is not None and self.dialing.get(link.target) is waiters:
            del self.dialing[link.target]
        for pending in waiters:
            pending.resolve(value)

    def close_all(self, reason: str) -> None:
        """Close every link (the node is stopping)."""
        for link in list(self.links):
            link.close(reason)
        for waiters in list(self.dialing.values()):
            for pending in waiters:
                pending.resolve(-1)
        self.dialing.clear()
        for pendings in self.name_waiters.values():
            for pending in pendings:
                pending.resolve(None)
        self.name_waiters.clear()

    # ------------------------------------------------------------------ failures
    def bad_input(self, link: Link, counter: str, message: str, closing: bool = True) -> None:
        """Count bad input received on ``link``; log it (rate-limited, peer text escaped)."""
        stats = self.node.stats
        stats[counter] = stats.get(counter, 0) + 1
        if counter == "protocol_errors" and "exceeds the limit" in message:
            stats["oversized_frames"] += 1
        self.log.event(counter, "bad input from %s: %s%s", link.describe, escape(message, 200),
                       "; connection closed" if closing else "")

    def refused(self, link: Link, ev: Refused) -> None:
        """A handshake was refused, by the peer or by this side (counted, rate-limited)."""
        stats = self.node.stats
        if ev.by_peer:
            stats["refused_by_peer"] += 1
            self.log.event("refused_by_peer", "%s refused the connection: %s", link.describe,
                           escape(ev.reason))
            return
        counter = {RefuseCode.AUTH_FAILED: "refused_auth",
                   RefuseCode.VERSION_MISMATCH: "refused_version"}.get(ev.code, "refused_other")
        stats[counter] += 1
        self.log.event(counter, "refused the connection with %s: %s", link.describe,
                       escape(ev.reason))

    def connection_failed(self, link: Link, exc: OSError) -> None:
        """Reading or writing ``link`` failed."""
        stats = self.node.stats
        if isinstance(exc, ssl.SSLError) or isinstance(exc.__cause__, ssl.SSLError):
            stats["tls_errors"] += 1
            self.log.event("tls_errors", "TLS with %s failed: %s", link.describe, exc)
        elif link.state is LinkState.ACTIVE:
            stats["connections_lost"] += 1
            logger.info("connection to %s lost: %s", link.describe, exc)
        else:
            stats["connection_errors"] += 1
            self.log.event("connection_errors", "connection with %s failed during its "
                           "handshake: %s", link.describe, exc)
        link.close(f"connection failed: {exc}", bye=False)

    # ------------------------------------------------------------------ status
    def _changed(self) -> None:
        self.snapshot = tuple(sorted((loc, p.name, p.hidden) for loc, p in self.by_loc.items()))

    def _notify(self, peer: Peer, status: int) -> None:
        for hook in list(self.hooks):
            try:
                hook(peer, status)
            except Exception:  # a hook's bug must not stop the notifications
                logger.exception("peer hook %r failed", hook)
        if peer.hidden:
            return
        msg = PeerStatus(peer.location, peer.name, status)
        for task in list(self.status_tasks):
            if task.send(msg) != 0:
                self.status_tasks.remove(task)

    def add_status_task(self, task: Any) -> None:
        """``peer_status(task)``: Online for every current peer now, then every change."""
        if task is None:
            self.status_tasks.clear()
            return
        if task not in self.status_tasks:
            self.status_tasks.append(task)
        for peer in list(self.by_loc.values()):
            if not peer.hidden:
                task.send(PeerStatus(peer.location, peer.name, PeerStatus.Online))

    def locate(self, name: str, pending: Pending) -> None:
        """Resolve ``pending`` with the Location of the peer called ``name`` (now or when it
        comes online)."""
        if name == self.node.name:
            pending.resolve(self.node.location)
            return
        for peer in self.by_inc.values():
            if peer.name == name:
                pending.resolve(peer.location)
                return
        waiters = self.name_waiters.setdefault(name, [])
        waiters[:] = [w for w in waiters if not (w.done or w.cancelled)]
        waiters.append(pending)

    def link_to(self, loc: Location) -> Link | None:
        """The active link to the peer at ``loc``, or None."""
        peer = self.by_loc.get(loc)
        return None if peer is None else peer.link

    def require(self, loc: Location) -> Link:
        """The active link to the peer at ``loc``; ``PeerLost`` if it is not a peer."""
        link = self.link_to(loc)
        if link is None:
            raise PeerLost(f"{loc!r} is not a peer of {self.node.name}")
        return link
