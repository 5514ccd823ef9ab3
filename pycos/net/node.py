"""The node's network service: listener, dialing, peer table, liveness, status notifications.

Owns ``Service``, which runs on a private scheduler (its own thread) so that heartbeats, reading
connections and answering peers go on while a user task computes without yielding. User-visible
effects are handed to tasks on the main scheduler with ``Task.send`` / ``Pending`` (both
thread-safe). Imports the standard library, ``pycos.core``, ``pycos.errors``, ``pycos.proto``,
``pycos.asyncsocket`` and its own package. Private module: nothing here can be built from a
peer's payload.

Invariants: every attribute is touched only on the service thread, except ``location``,
``name``, ``incarnation``, ``stats`` (read-only elsewhere; fixed keys) and ``peer_snapshot``
(replaced, never mutated). A peer is Online exactly while it is in ``by_inc`` (and ``by_loc``);
every Online is followed by exactly one Offline for the same peer. Bad input costs one warning
line and one counter increment, and never stops the service.
"""

from __future__ import annotations

import errno
import logging
import socket
import ssl
import threading
from typing import Any

from ..asyncsocket import AsyncSocket
from ..core.scheduler import Pycos as CorePycos
from ..core.task import Task
from ..errors import PeerLost
from ..proto import RefuseCode, Refused, Role
from ..proto.auth import new_incarnation
from ._config import NodeConfig
from .bridge import Pending
from .handlers import HANDLERS
from .interfaces import choose_addresses
from .location import Location, PeerStatus, location_from_address
from .peer import Link, LinkState, Peer

__all__ = ["Service", "STAT_KEYS"]

logger = logging.getLogger("pycos.net")

STAT_KEYS = (
    "connections_accepted", "connections_dialed", "dial_failures", "handshakes",
    "handshake_timeouts", "refused_auth", "refused_version", "refused_other", "refused_by_peer",
    "protocol_errors", "oversized_frames", "undecodable_payloads", "tls_errors",
    "connection_errors", "connections_lost", "peer_timeouts", "byes_received",
    "duplicate_links", "unknown_kinds", "heartbeats_received", "rejected_busy",
)
#: Connections still in their handshake beyond this many are refused at once.
MAX_UNSETTLED = 256
#: Dials again (after a short pause) when the arbiter refuses a connection to a peer this
#: node has no connection with.
MAX_REDIALS = 4
#: Seconds a closing connection may take to flush its last frames.
FLUSH_TIMEOUT = 1.0
_BUSY_ERRNOS = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}


class Service:
    """Network service of one node (created by the node's constructor).

    Binds the TCP listener at once (so ``location`` is known when the constructor returns);
    ``start`` begins accepting, dialing ``peers`` and discovery on the private scheduler.
    """

    def __init__(self, node: Any, config: NodeConfig) -> None:
        self.node = node
        self.config = config
        self.handlers = HANDLERS
        self.incarnation = new_incarnation()
        self.stats: dict[str, int] = dict.fromkeys(STAT_KEYS, 0)
        self.addrs = choose_addresses(config.host)
        self.listener = self._bind(config)
        port = self.listener.getsockname()[1]
        self.location = location_from_address(config.ext_host or self.addrs[0], port)
        self.name = config.name or repr(self.location)
        self.links: set[Link] = set()
        self.unsettled: set[Link] = set()
        self.by_inc: dict[bytes, Peer] = {}
        self.by_loc: dict[Location, Peer] = {}
        self.peer_snapshot: tuple[tuple[Location, str], ...] = ()
        self.dialing: dict[Location, list[Pending]] = {}
        self.status_tasks: list[Any] = []
        #: Called on the service thread as ``hook(peer, PeerStatus.Online/Offline)`` before the
        #: status tasks are told (the router's outlets open and fail here).
        self.peer_hooks: list[Any] = []
        self.name_waiters: dict[str, list[Pending]] = {}
        self.discovery: Any = None
        self.stopping = False
        self._stopped: threading.Event | None = None
        hb = config.heartbeat_interval
        # Liveness is checked once per tick: a silent peer is Offline at most one tick after
        # peer_timeout, and a heartbeat leaves at most one tick late.
        self.tick = max(0.005, min(hb / 4, config.peer_timeout / 10,
                                   config.handshake_timeout / 4))
        self.sched = CorePycos.private()  # stopped by the node itself, after telling peers

    # ------------------------------------------------------------------ basics
    def _bind(self, config: NodeConfig) -> AsyncSocket:
        primary = self.addrs[0]
        family = socket.AF_INET6 if ":" in primary else socket.AF_INET
        wildcard = not (config.host or "").strip() or config.host in ("0.0.0.0", "::")
        addr = ("::" if family == socket.AF_INET6 else "0.0.0.0") if wildcard else primary
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((addr, config.tcp_port))
            sock.listen(128)
        except OSError:
            sock.close()
            raise
        return AsyncSocket(sock, ssl_context=config.server_ctx)

    def now(self) -> float:
        """The service clock (seconds, monotonic)."""
        return self.sched._clock.time()

    def call_soon(self, fn: Any, *args: Any) -> None:
        """Run ``fn(*args)`` on the service thread (now, when already there)."""
        self.sched._call(fn, *args)

    def spawn(self, fn: Any, *args: Any) -> None:
        """Start ``fn(*args)`` as a service task (service thread)."""
        Task(fn, *args)

    def info_payload(self) -> dict[str, Any]:
        """What this node tells every new connection about itself."""
        return {"name": self.name, "addr": self.location.addr, "port": self.location.port}

    def describe(self) -> dict[str, Any]:
        """Name, location and peers of this node (for the ``node_info`` request)."""
        return {"name": self.name, "location": self.location,
                "peers": [(name, loc) for loc, name in self.peer_snapshot]}

    def start(self) -> None:
        """Begin serving (the node's constructor). The discovery port, if used, is bound
        here, so a failure to bind it is raised to the constructor's caller."""
        if self.config.discover_peers:
            self.start_discovery(announce=False)
        self.sched._post(self._start)

    def _start(self) -> None:
        Task(self._accept_loop)
        Task(self._tick_loop)
        if self.discovery is not None:
            self.discovery.announce()
        for item in self.config.peers:
            if isinstance(item, Location) and item.port:
                self.dial(item, None)
            else:
                host = item.addr if isinstance(item, Location) else item
                Task(self._contact, host, self.config.udp_port, False, None)

    # ------------------------------------------------------------------ tasks
    def _accept_loop(self, task: Any = None) -> Any:
        task.set_daemon()
        listener = self.listener
        while not self.stopping:
            try:
                sock, addr = yield listener.accept()
            except OSError as exc:
                if self.stopping:
                    return
                if exc.errno in _BUSY_ERRNOS:
                    logger.warning("cannot accept connections: %s; retrying", exc)
                    yield task.sleep(0.1)
                    continue
                self.stats["connection_errors"] += 1
                logger.warning("accepting a connection failed: %s", exc)
                continue
            self.stats["connections_accepted"] += 1
            if len(self.unsettled) >= MAX_UNSETTLED:
                self.stats["rejected_busy"] += 1
                logger.warning("refused a connection from %s: %d connections are already in "
                               "their handshake", addr, MAX_UNSETTLED)
                sock.close()
                continue
            self._adopt(sock, Role.SERVER, addr, None)

    def _adopt(self, sock: AsyncSocket, role: Role, addr: Any, target: Location | None) -> Link:
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass
        link = Link(self, sock, role, addr, target)
        self.links.add(link)
        self.unsettled.add(link)
        link.start()
        return link

    def _tick_loop(self, task: Any = None) -> Any:
        task.set_daemon()
        cfg = self.config
        while not self.stopping or self.links:  # when stopping: until the goodbyes are out
            yield task.sleep(self.tick)
            now = self.now()
            for link in [lk for lk in self.unsettled if now - lk.created > cfg.handshake_timeout]:
                self.stats["handshake_timeouts"] += 1
                logger.warning("connection with %s did not finish its handshake within %.3g s; "
                               "closed", link.describe, cfg.handshake_timeout)
                link.close("handshake timed out")
            for peer in list(self.by_inc.values()):
                self._check_peer(peer.link, now)
            for link in [lk for lk in self.links if lk.closing_since is not None
                         and now - lk.closing_since > FLUSH_TIMEOUT]:
                link.force_close()
            for name in [n for n, ws in self.name_waiters.items()
                         if all(w.done or w.cancelled for w in ws)]:
                del self.name_waiters[name]

    def _check_peer(self, link: Link, now: float) -> None:
        cfg = self.config
        silent = now - link.last_recv
        if silent > cfg.peer_timeout:
            self.stats["peer_timeouts"] += 1
            logger.warning("nothing received from %s for %.3g s; declaring it offline",
                           link.describe, silent)
            link.close(f"nothing received for {silent:.3g} s")
            return
        if now - link.last_send >= cfg.heartbeat_interval:
            link.heartbeat()
        if link._requests:
            link.expire_requests(now)

    # ------------------------------------------------------------------ dialing
    def dial(self, loc: Location, pending: Pending | None) -> None:
        """Connect to the node at ``loc`` unless it is already a peer or being dialed;
        ``pending`` gets 0 once it is a peer, -1 if that fails (service thread)."""
        if self.stopping or loc == self.location:
            if pending is not None:
                if loc == self.location:
                    logger.warning("peer(%r): that is this node's own location", loc)
                pending.resolve(-1)
            return
        if loc in self.by_loc:
            if pending is not None:
                pending.resolve(0)
            return
        waiters = self.dialing.get(loc)
        if waiters is None:
            waiters = self.dialing[loc] = []
            Task(self._dial_task, loc, waiters)
        if pending is not None:
            waiters.append(pending)

    def _dial_task(self, loc: Location, waiters: list[Pending], attempt: int = 0,
                   task: Any = None) -> Any:
        task.set_daemon()
        sock = AsyncSocket(socket.socket(loc.family, socket.SOCK_STREAM),
                           ssl_context=self.config.client_ctx)
        sock.settimeout(self.config.handshake_timeout)
        self.stats["connections_dialed"] += 1
        try:
            yield sock.connect(loc.sockaddr())
        except OSError as exc:
            sock.close()
            is_tls = _is_tls_error(exc)
            self.stats["tls_errors" if is_tls else "dial_failures"] += 1
            logger.warning("cannot connect to %r: %s%s", loc, "TLS handshake failed: "
                           if is_tls else "", exc)
            self._resolve_dial(loc, waiters, -1)
            return
        sock.settimeout(None)
        if self.stopping:
            sock.close()
            self._resolve_dial(loc, waiters, -1)
            return
        link = self._adopt(sock, Role.CLIENT, loc.sockaddr(), loc)
        link.waiters = waiters
        link.attempt = attempt

    def _contact(self, host: str, udp_port: int, relay: bool, pending: Pending | None,
                 task: Any = None) -> Any:
        """Ask the node(s) at ``host`` by UDP to connect to us (``peer(host)``)."""
        from .._offload import ThreadCall
        from .location import normalize_host

        task.set_daemon()
        try:
            addr = yield ThreadCall(normalize_host, host)
            self.start_discovery(announce=False)
            self.discovery.contact(addr, udp_port, relay=relay)
        except (OSError, ValueError) as exc:
            logger.warning("cannot contact %r on UDP port %d: %s", host, udp_port, exc)
            if pending is not None:
                pending.resolve(-1)
            return
        if pending is not None:
            pending.resolve(0)

    # ------------------------------------------------------------------ discovery
    def start_discovery(self, announce: bool) -> None:
        """Open the UDP port (once) and optionally announce this node (service thread, or the
        constructor before the service runs)."""
        if self.discovery is None:
            from .discovery import Discovery

            cfg = self.config
            self.discovery = Discovery(
                self.sched, secret=cfg.secret, name=self.name, incarnation=self.incarnation,
                tcp_port=self.location.port, udp_port=cfg.udp_port, bind_addrs=self.addrs,
                ext_host=cfg.ext_host, on_peer=self.on_discovered,
                multicast=cfg.ipv4_udp_multicast)
            self.discovery.start()
        if announce:
            self.discovery.announce()

    def on_discovered(self, host: str, tcp_port: int, incarnation: bytes, name: str) -> None:
        """Discovery heard of a node: connect to it unless it is known (service thread)."""
        if incarnation == self.incarnation or incarnation in self.by_inc or self.stopping:
            return
        try:
            loc = location_from_address(host, tcp_port)
        except ValueError:
            logger.debug("announcement of %r carries a host that is not an address: %r",
                         name, host)
            return
        self.dial(loc, None)

    # ------------------------------------------------------------------ link events
    def on_info(self, link: Link) -> None:
        """The peer's node info arrived on ``link``; the arbiter decides (service thread)."""
        if not link.arbiter:
            return  # the peer decides; its verdict follows
        peer = self.by_inc.get(link.peer_incarnation)  # type: ignore[arg-type]
        if peer is not None and peer.link is not link:
            old = peer.link
            if self.now() - old.last_recv < 2 * self.config.heartbeat_interval:
                self.stats["duplicate_links"] += 1
                link.send_verdict(False)
                link.close("duplicate connection; the existing one is kept")
                return
        link.send_verdict(True)
        self.activate(link)

    def on_verdict(self, link: Link, accepted: bool) -> None:
        """The arbiter's verdict on ``link`` arrived (service thread).

        A refusal while this node has no connection to that peer means the arbiter still
        holds one this node has just dropped (``close_peer`` then ``peer`` at once, before the
        arbiter read the goodbye): dial again shortly, keeping the callers waiting."""
        if accepted:
            self.activate(link)
            return
        self.stats["duplicate_links"] += 1
        retry = (link.target is not None and link.peer_incarnation not in self.by_inc
                 and link.attempt < MAX_REDIALS and not self.stopping)
        waiters = link.waiters
        if retry:
            link.waiters = []  # ``dialing`` keeps them for the next attempt
        link.close("duplicate connection; the peer keeps another one", bye=False)
        if retry:
            Task(self._redial, link.target, waiters, link.attempt + 1)

    def _redial(self, loc: Location, waiters: list[Pending], attempt: int,
                task: Any = None) -> Any:
        task.set_daemon()
        yield task.sleep(self.tick * attempt)
        if self.stopping or loc in self.by_loc:
            self._resolve_dial(loc, waiters, 0 if loc in self.by_loc else -1)
            return
        Task(self._dial_task, loc, waiters, attempt)

    def _resolve_dial(self, loc: Location, waiters: list[Pending], value: int) -> None:
        if self.dialing.get(loc) is waiters:
            del self.dialing[loc]
        for pending in waiters:
            pending.resolve(value)

    def activate(self, link: Link) -> None:
        """Make ``link`` its peer's active connection; Online if the peer is new."""
        self.unsettled.discard(link)
        link.state = LinkState.ACTIVE
        inc = link.peer_incarnation
        assert inc is not None and link.name is not None and link.location is not None
        peer = self.by_inc.get(inc)
        if peer is not None:
            old, peer.link = peer.link, link
            link.peer = peer
            if old is not link:
                old.close("replaced by a newer connection to the same node")
        else:
            stale = self.by_loc.get(link.location)
            if stale is not None:
                logger.info("the node at %r restarted (new incarnation)", link.location)
                stale.link.close("the node at this location restarted")
            peer = link.peer = Peer(inc, link.name, link.location, link)
            self.by_inc[inc] = peer
            self.by_loc[peer.location] = peer
            self._peers_changed()
            logger.info("peer %s (%r) is online", peer.name, peer.location)
            self._notify(peer, PeerStatus.Online)
            for pending in self.name_waiters.pop(peer.name, ()):
                pending.resolve(peer.location)
        self._settle_waiters(link, 0)

    def link_closed(self, link: Link) -> None:
        """``link`` closed: Offline if it was a peer's active connection (service thread)."""
        self.unsettled.discard(link)
        peer = link.peer
        if peer is not None and peer.link is link:
            del self.by_inc[peer.incarnation]
            if self.by_loc.get(peer.location) is peer:
                del self.by_loc[peer.location]
            self._peers_changed()
            logger.info("peer %s (%r) is offline: %s", peer.name, peer.location,
                        link.close_reason)
            self._notify(peer, PeerStatus.Offline)
        self._settle_waiters(link, 0 if link.peer_incarnation in self.by_inc else -1)

    def link_gone(self, link: Link) -> None:
        """``link``'s socket is closed (service thread)."""
        self.links.discard(link)
        if self.stopping and not self.links and self._stopped is not None:
            self._stopped.set()

    def _settle_waiters(self, link: Link, value: int) -> None:
        waiters, link.waiters = link.waiters, []
        if link.target is not None and self.dialing.get(link.target) is waiters:
            del self.dialing[link.target]
        for pending in waiters:
            pending.resolve(value)

    # ------------------------------------------------------------------ failures
    def bad_input(self, link: Link, counter: str, message: str, closing: bool = True) -> None:
        """Count and log (one line) bad input received on ``link``."""
        self.stats[counter] += 1
        if counter == "protocol_errors" and "exceeds the limit" in message:
            self.stats["oversized_frames"] += 1
        logger.warning("bad input from %s: %s%s", link.describe, message,
                       "; connection closed" if closing else "")

    def refused(self, link: Link, ev: Refused) -> None:
        """A handshake was refused, by the peer or by this side (one line, one count)."""
        if ev.by_peer:
            self.stats["refused_by_peer"] += 1
            logger.warning("%s refused the connection: %s", link.describe, ev.reason)
            return
        counter = {RefuseCode.AUTH_FAILED: "refused_auth",
                   RefuseCode.VERSION_MISMATCH: "refused_version"}.get(ev.code, "refused_other")
        self.stats[counter] += 1
        logger.warning("refused the connection with %s: %s", link.describe, ev.reason)

    def connection_failed(self, link: Link, exc: OSError) -> None:
        """Reading or writing ``link`` failed."""
        if _is_tls_error(exc):
            self.stats["tls_errors"] += 1
            logger.warning("TLS with %s failed: %s", link.describe, exc)
        elif link.state is LinkState.ACTIVE:
            self.stats["connections_lost"] += 1
            logger.info("connection to %s lost: %s", link.describe, exc)
        else:
            self.stats["connection_errors"] += 1
            logger.warning("connection with %s failed during its handshake: %s",
                           link.describe, exc)
        link.close(f"connection failed: {exc}", bye=False)

    # ------------------------------------------------------------------ users' requests
    def _peers_changed(self) -> None:
        self.peer_snapshot = tuple(sorted((loc, p.name) for loc, p in self.by_loc.items()))

    def _notify(self, peer: Peer, status: int) -> None:
        for hook in list(self.peer_hooks):
            try:
                hook(peer, status)
            except Exception:  # a hook's bug must not stop the notifications
                logger.exception("peer hook %r failed", hook)
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
            task.send(PeerStatus(peer.location, peer.name, PeerStatus.Online))

    def locate(self, name: str, pending: Pending) -> None:
        """Resolve ``pending`` with the Location of the peer called ``name`` (now or when it
        comes online)."""
        if name == self.name:
            pending.resolve(self.location)
            return
        for peer in self.by_inc.values():
            if peer.name == name:
                pending.resolve(peer.location)
                return
        self.name_waiters.setdefault(name, []).append(pending)

    def close_peer(self, loc: Location, pending: Pending) -> None:
        """Close the connection to the peer at ``loc``; 0, or -1 if it is not a peer."""
        peer = self.by_loc.get(loc)
        if peer is None:
            pending.resolve(-1)
            return
        peer.link.close("closed by this node")
        pending.resolve(0)

    def request(self, loc: Location, kind: str, payload: Any, pending: Pending,
                timeout: float | None) -> None:
        """Send a request to the peer at ``loc``; ``pending`` gets the reply."""
        peer = self.by_loc.get(loc)
        if peer is None:
            # Not (yet) a peer — e.g. it has just dialed us and its connection is still being
            # settled, or a reference names a node we never met: connect first, then send.
            if self.stopping:
                pending.fail(PeerLost(f"{loc!r} is not a peer of this node"))
                return
            connected = Pending()

            def send_when_connected(done: Pending) -> None:
                if done.result() == 0 and loc in self.by_loc:
                    self.request(loc, kind, payload, pending, timeout)
                else:
                    pending.fail(PeerLost(f"{loc!r} is not a peer of this node and cannot be "
                                          "reached"))

            connected.add_callback(send_when_connected)
            self.dial(loc, connected)
            return
        deadline = None if timeout is None else self.now() + timeout + self.tick
        peer.link.request(kind, payload, pending, deadline)

    # ------------------------------------------------------------------ stopping
    def abort(self) -> None:
        """Undo a failed start: close the sockets and stop the service thread."""
        self.stopping = True
        if self.discovery is not None:
            self.discovery.close()
        self.listener.close()
        self.sched.terminate()

    def shutdown(self, timeout: float = 2.0) -> None:
        """Tell every peer goodbye, close everything and stop the service thread (any thread
        but the service thread waits up to ``timeout`` for the goodbyes to be written)."""
        if not self.sched._alive:
            return
        if self.sched._in_thread():
            self._shutdown(None)
            threading.Thread(target=self.sched.terminate, daemon=True).start()
            return
        done = threading.Event()
        if self.sched._post(self._shutdown, done):
            done.wait(timeout)
        self.sched.terminate()

    def _shutdown(self, done: threading.Event | None) -> None:
        if self.stopping:
            if done is not None:
                done.set()
            return
        self.stopping = True
        self._stopped = done
        if self.discovery is not None:
            try:
                self.discovery.close()
            except OSError as exc:
                logger.debug("closing discovery: %s", exc)
        self.listener.close()
        for link in list(self.links):
            link.close("the node is shutting down")
        for waiters in list(self.dialing.values()):
            for pending in waiters:
                pending.resolve(-1)
        self.dialing.clear()
        for pendings in self.name_waiters.values():
            for pending in pendings:
                pending.resolve(None)
        self.name_waiters.clear()
        if not self.links and done is not None:
            done.set()


def _is_tls_error(exc: BaseException) -> bool:
    return isinstance(exc, ssl.SSLError) or isinstance(exc.__cause__, ssl.SSLError)
