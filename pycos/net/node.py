"""A node: one network identity (name, port, peers, services) served by a scheduler.

Owns ``Node``: its listener, peer table, dialer, keeper, handler table, router, discovery and
file transfers, and the distributed API of SPEC §3.1 on it; and ``PerNode``, what the packages
above keep per node. A process may host several nodes on
one scheduler (EXTRAS §0.1); the networked scheduler ``pycos.netpycos.Pycos`` has a default one
and forwards the SPEC's methods to it. Imports the standard library, ``pycos.core``,
``pycos.asyncsocket``, ``pycos.errors``, ``pycos.proto`` and its own package.

Threads: everything a node does runs on its scheduler's thread — links are read there and
requests answered there, so a message reaches a waiting task with no thread hand-off — except
the heartbeats the service scheduler sends while that scheduler is busy (``link.keeper``), file
transfers and ``run="thread"`` handlers (threads of their own). The public generator methods
(``peer``, ``locate`` …) are used with ``yield`` by tasks; plain code runs them with
``pycos.run``. ``location``, ``name``, ``incarnation``, ``stats`` and ``peers()`` may be read
from any thread.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import weakref
from collections.abc import Callable, Generator
from typing import Any, Generic, TypeVar

from ..asyncsocket import AsyncSocket
from ..core import lowlevel
from ..core.blocking import yield_or_block
from ..proto.auth import new_incarnation
from ..proto.linkinfo import LinkInfo
from . import latency
from .config import NodeConfig, make_config
from .discovery.interfaces import choose_addresses
from .hub import Hub
from .link.accept import Acceptor
from .link.dial import Dialer, adopt
from .link.keeper import Keeper
from .link.peers import STAT_KEYS, PeerTable
from .location import Location, location_from_address, normalize_host
from .pending import Pending
from .remote import handlers as remote_handlers
from .remote import rci as remote_rci
from .remote.router import Router
from .requests import HandlerTable

__all__ = ["Node", "PerNode"]

logger = logging.getLogger("pycos.net.node")
_T = TypeVar("_T")


class PerNode(Generic[_T]):
    """One object per node, made on first use (any thread) and forgotten with the node: how a
    package keeps what it installs on a node (its services, gateways, client side)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_node: weakref.WeakKeyDictionary[Any, _T] = weakref.WeakKeyDictionary()

    def get(self, node: Any, make: Callable[[Any], _T]) -> _T:
        """The object of ``node``: ``make(node)`` the first time."""
        with self._lock:
            found = self._by_node.get(node)
            if found is None:
                found = self._by_node[node] = make(node)
            return found

    def items(self) -> list[tuple[Any, _T]]:
        """(node, object) for every node that has one now."""
        with self._lock:
            return list(self._by_node.items())


class Node:
    """One node of a distributed program (see ``pycos.netpycos.Pycos`` for the arguments,
    which are the same; ``scheduler`` is the scheduler it runs on, by default the running
    one).

    Raises:
        TypeError, ValueError: an argument is invalid (the message says what was expected).
        OSError: the TCP port (or the discovery UDP port) cannot be bound.
    """

    def __init__(self, *args: Any, scheduler: Any = None, default: bool = False,
                 **kwargs: Any) -> None:
        config = kwargs.pop("config", None) or make_config(*args, **kwargs)
        self.config: NodeConfig = config
        self.sched = scheduler if scheduler is not None else lowlevel.current_scheduler()
        self.hub = Hub.of(self.sched)
        self.incarnation = new_incarnation()
        self.started = self.now()
        self.started_wall = time.time()
        self.stats: dict[str, int] = dict.fromkeys(STAT_KEYS, 0)
        self.addrs = choose_addresses(config.host)
        self.listener = self._bind(config)
        port = self.listener.getsockname()[1]
        self.location = location_from_address(config.ext_host or self.addrs[0],
                                              config.ext_port or port)
        self.name = config.name or repr(self.location)
        self._dest_path = config.dest_path
        self.stopping = False
        self._stopped: threading.Event | None = None
        hb = config.heartbeat_interval
        # Liveness is checked once per tick: a silent peer is Offline at most one tick after
        # peer_timeout, and a heartbeat leaves at most one tick late.
        self.tick = max(0.005, min(hb / 4, config.peer_timeout / 10,
                                   config.handshake_timeout / 4))
        self.handlers = HandlerTable(self)
        self.peers = PeerTable(self)
        self.dialer = Dialer(self)
        self.keeper = Keeper(self)
        self.router = Router(self)
        self.peers.hooks.append(self.router.on_peer)
        self.discovery: Any = None
        remote_handlers.install(self)
        remote_rci.install(self)
        from .files import api as files_api

        files_api.install(self)
        try:
            self._make_dest_path()
            self._start_discovery(announce=False)
        except BaseException:
            self.listener.close()
            raise
        self.hub.add(self, default)
        lowlevel.call(self.sched, self._start)

    def __repr__(self) -> str:
        return f"<Node {self.name!r} at {self.location!r}>"

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
        """The node's clock (its scheduler's), in seconds (any thread)."""
        return lowlevel.now(self.sched)

    def service_scheduler(self) -> Any:
        """The scheduler of the node's service thread."""
        return self.hub.service()

    def link_info(self) -> LinkInfo:
        """What this node tells every new connection about itself."""
        return LinkInfo(self.name, self.location.addr, self.location.port, self.config.hidden)

    def describe(self) -> dict[str, Any]:
        """For ``node_info``: name, location, incarnation, version, TLS, hidden, when it
        started (wall clock) and for how long, its peers as (name, Location, smoothed RTT or
        None), and ``features``: the request kinds it serves."""
        from .._version import __version__

        peers = []
        for peer in list(self.peers.by_inc.values()):
            if not peer.hidden:
                figures = peer.rtt.snapshot() if peer.rtt is not None else None
                peers.append((peer.name, peer.location,
                              figures.srtt if figures is not None else None))
        return {"name": self.name, "location": self.location,
                "incarnation": self.incarnation.hex(), "version": __version__,
                "tls": self.config.tls, "hidden": self.config.hidden,
                "started": self.started_wall, "uptime": self.now() - self.started,
                "peers": peers,
                "features": sorted(k for k in self.handlers.requests if not k.startswith("_"))}

    def _start(self) -> None:
        Acceptor(self, self.listener).start()
        self.keeper.start()
        latency.Sampler(self).start()
        self.service_scheduler()
        if self.discovery is not None and self.config.discover_peers:
            self.discovery.announce()
        for item in self.config.peers:
            if isinstance(item, Location) and item.port:
                self.dialer.wanted.add(item)
                self.dialer.dial(item, None)
            else:
                host = item.addr if isinstance(item, Location) else item
                lowlevel.spawn_daemon(self._contact, host, self.config.udp_port, False, None)

    def _make_dest_path(self) -> None:
        try:
            os.makedirs(self._dest_path, exist_ok=True)
        except OSError as exc:
            logger.warning("cannot create dest_path %r: %s", self._dest_path, exc)

    # ------------------------------------------------------------------ discovery
    def _start_discovery(self, announce: bool) -> None:
        """Open the UDP port (once) and optionally announce this node. The port is opened
        even with ``discover_peers=False``, so that other nodes can reach this one with
        ``peer(host, udp_port=...)``; it then only answers, never announces by itself."""
        if self.discovery is None:
            from .discovery.discovery import Discovery

            cfg = self.config
            if cfg.hidden or not cfg.udp_port:
                return
            self.discovery = Discovery(
                self.sched, secret=cfg.secret, name=self.name, incarnation=self.incarnation,
                tcp_port=self.location.port, udp_port=cfg.udp_port, bind_addrs=self.addrs,
                ext_host=cfg.ext_host, on_peer=self._discovered,
                multicast=cfg.ipv4_udp_multicast)
            try:
                self.discovery.start()
            except OSError as exc:
                self.discovery = None
                if cfg.discover_peers:
                    raise
                logger.info("discovery UDP port %d not opened (%s); peer(host) from other "
                            "nodes will not reach this one", cfg.udp_port, exc)
                return
        if announce:
            self.discovery.announce()

    def _discovered(self, host: str, tcp_port: int, incarnation: bytes, name: str) -> None:
        """Discovery heard of a node: connect to it unless it is known."""
        if incarnation == self.incarnation or incarnation in self.peers.by_inc or self.stopping:
            return
        try:
            loc = location_from_address(host, tcp_port)
        except ValueError:
            return
        self.dialer.dial(loc, None)

    def _contact(self, host: str, udp_port: int, relay: bool, pending: Pending | None,
                 task: Any = None) -> Any:
        """Ask the node(s) at ``host`` by UDP to connect to us (``peer(host)``)."""
        from .._offload import ThreadCall

        try:
            addr = yield ThreadCall(normalize_host, host)
            self._start_discovery(announce=False)
            if self.discovery is None:
                raise OSError("this node has no discovery UDP port")
            self.discovery.contact(addr, udp_port, relay=relay)
        except (OSError, ValueError) as exc:
            logger.warning("cannot contact %r on UDP port %d: %s", host, udp_port, exc)
            if pending is not None:
                pending.resolve(-1)
            return
        if pending is not None:
            pending.resolve(0)

    def discover_peers(self) -> None:
        """Plain call: announce this node by UDP on its networks (opening the discovery port
        first if needed)."""
        lowlevel.call(self.sched, self._start_discovery, True)

    # ------------------------------------------------------------------ SPEC §3.1
    @property
    def udp_port(self) -> int:
        """The discovery UDP port."""
        if self.discovery is not None:
            return int(self.discovery.udp_port)
        return self.config.udp_port

    @property
    def dest_path(self) -> str:
        """Directory where files sent by peers are saved (created at start; assignable)."""
        return self._dest_path

    @dest_path.setter
    def dest_path(self, path: Any) -> None:
        if not isinstance(path, str | os.PathLike):
            raise TypeError(f"dest_path must be a path, got {path!r}")
        self._dest_path = os.path.abspath(os.fspath(path))
        self._make_dest_path()

    @property
    def max_file_size(self) -> int | None:
        """Largest file accepted from a peer (None: no limit)."""
        return self.config.max_file_size

    @property
    def addresses(self) -> list[str]:
        """The addresses of this machine the node serves on (and announces on)."""
        return list(self.addrs)

    def peers_list(self, hidden: bool = False) -> list[Location]:
        """Plain call: Locations of the current peers (hidden ones only with ``hidden``)."""
        return [loc for loc, _name, is_hidden in self.peers.snapshot if hidden or not is_hidden]

    def peer(self, loc: Location | str, udp_port: int | None = None, stream_send: bool = False,
             broadcast: bool = False) -> Generator[Any, Any, int]:
        """Use with yield: ``status = yield node.peer(loc)`` makes the node at ``loc`` a peer.
        See ``pycos.netpycos.Pycos.peer``."""
        if not isinstance(loc, Location | str):
            raise TypeError(f"peer() needs a Location or a host name, got {loc!r}")
        port = self.udp_port if udp_port is None else udp_port
        if isinstance(port, bool) or not isinstance(port, int) or not 0 < port <= 65535:
            raise ValueError(f"udp_port must be a port number in 1..65535, got {udp_port!r}")
        cfg = self.config
        pending = Pending(2 * cfg.handshake_timeout + cfg.peer_timeout, -1)
        if isinstance(loc, Location) and loc.port:
            self.dialer.wanted.add(loc)
            lowlevel.call(self.sched, self.dialer.dial, loc, pending)
        else:
            host = loc.addr if isinstance(loc, Location) else loc
            lowlevel.call(self.sched, lowlevel.spawn_daemon, self._contact, host, port,
                          bool(broadcast), pending)
        result: int = yield pending
        return result

    def peer_status(self, task: Any) -> None:
        """Plain call: ``task`` receives a ``PeerStatus`` for every current peer (Online) and
        then for every change; ``peer_status(None)`` stops all such messages."""
        from ..core.task import Task

        if task is not None and not isinstance(task, Task):
            raise TypeError(f"peer_status() needs a Task or None, got {task!r}")
        lowlevel.call(self.sched, self.peers.add_status_task, task)

    def close_peer(self, loc: Location, timeout: float | None = None) -> Generator[Any, Any, int]:
        """Use with yield: close the connection to the peer at ``loc`` (it goes Offline; it
        is told with a goodbye). Returns 0, or -1 if ``loc`` is not a peer."""
        if not isinstance(loc, Location):
            raise TypeError(f"close_peer() needs a Location, got {loc!r}")
        lowlevel.check_timeout(timeout)
        pending = Pending(timeout, -1)

        def close() -> None:
            self.dialer.wanted.discard(loc)
            link = self.peers.link_to(loc)
            if link is None:
                pending.resolve(-1)
                return
            link.close("closed by this node")
            pending.resolve(0)

        lowlevel.call(self.sched, close)
        result: int = yield pending
        return result

    def locate(self, name: str, timeout: float | None = None) -> Generator[Any, Any, Any]:
        """Use with yield: ``loc = yield node.locate(name, timeout)``: the Location of the
        node called ``name`` (this one or a peer); waits up to ``timeout`` (None: until one
        appears) for it to come online. None when the timeout passes."""
        if not isinstance(name, str):
            raise TypeError(f"locate() needs a node name (str), got {name!r}")
        lowlevel.check_timeout(timeout)
        if name == self.name:
            return self.location
        for loc, peer_name, _hidden in self.peers.snapshot:
            if peer_name == name:
                return loc
        pending = Pending(timeout, None)
        lowlevel.call(self.sched, self.peers.locate, name, pending)
        return (yield pending)

    @yield_or_block
    def request(self, loc: Location, kind: str, payload: Any = None,
                timeout: float | None = None) -> Generator[Any, Any, Any]:
        """Yield or block: send a request of ``kind`` to the peer at ``loc`` (connecting first
        if it is not a peer) and return the reply's value.

        Raises:
            PeerLost: ``loc`` cannot be reached, or the connection closed before the reply.
            RemoteRequestFailed: the peer refused the request.
            TimeoutError: no reply within ``timeout`` seconds.
            SerializationError: ``payload`` cannot be sent.
            Exception: whatever the peer's handler raised.
        """
        from ..errors import PeerLost

        if not isinstance(loc, Location):
            raise TypeError(f"request() needs a Location, got {loc!r}")
        lowlevel.check_timeout(timeout)
        link = self.peers.link_to(loc)
        if link is None:
            dialed = Pending(2 * self.config.handshake_timeout, -1)
            lowlevel.call(self.sched, self.dialer.dial, loc, dialed)
            if (yield dialed) != 0:
                raise PeerLost(f"{loc!r} is not a peer of {self.name} and cannot be reached")
            link = self.peers.require(loc)
        return (yield from self.router.request(link, kind, payload, timeout))

    def serve(self, kind: str, fn: Any, run: str = "main", threads: int | None = None) -> None:
        """Plain call: answer requests of ``kind`` with ``fn(ctx, payload)``. See
        ``pycos.net.requests`` for the run modes and how to answer."""
        self.handlers.serve(kind, fn, run, threads)

    @yield_or_block
    def ping(self, loc: Location, size: int = 0, count: int = 1,
             timeout: float | None = None) -> Generator[Any, Any, float]:
        """Yield or block: ``count`` round trips of a ``size``-byte payload to the peer at
        ``loc`` (connecting first if needed); returns the median round-trip time in seconds.
        Each sample also feeds ``latency(loc)``.

        Raises:
            PeerLost, TimeoutError: as ``request``; ValueError: ``size`` or ``count`` out of
            range (0 <= size <= 16 MiB, 1 <= count <= 10,000).
        """
        if isinstance(size, bool) or not isinstance(size, int) or not 0 <= size <= 16 << 20:
            raise ValueError(f"ping size must be an int in 0..16 MiB, got {size!r}")
        if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= 10000:
            raise ValueError(f"ping count must be an int in 1..10000, got {count!r}")
        payload = bytes(size)
        samples = []
        for _ in range(count):
            start = self.now()
            echo = yield self.request(loc, "ping", payload, timeout)
            rtt = self.now() - start
            if echo != payload:
                from ..errors import RemoteError

                raise RemoteError(f"{loc!r} answered a ping with something else")
            samples.append(rtt)
            peer = self.peers.by_loc.get(loc)
            if peer is not None:
                latency.record(peer, rtt)
        samples.sort()
        return samples[len(samples) // 2]

    def latency(self, loc: Location | None = None) -> Any:
        """Plain call: the measured round trips (``pycos.net.latency.Latency``) to the peer at
        ``loc``, or None before any sample; without ``loc``, a dict of every peer's that has
        samples."""
        if loc is None:
            out = {}
            for peer in list(self.peers.by_inc.values()):
                figures = peer.rtt.snapshot() if peer.rtt is not None else None
                if figures is not None:
                    out[peer.location] = figures
            return out
        one = self.peers.by_loc.get(loc)
        return one.rtt.snapshot() if one is not None and one.rtt is not None else None

    @yield_or_block
    def open_stream(self, loc: Location, kind: str, payload: Any = None,
                    timeout: float | None = None) -> Generator[Any, Any, Any]:
        """Yield or block: a ``StreamConn`` to the node at ``loc``, handed there to the
        handler of streams of ``kind`` (``serve_stream``) with ``payload``. A dedicated,
        authenticated connection (TLS when the node uses it) for bulk data, blocking: use it
        from a thread. ``timeout`` bounds opening it (default ``handshake_timeout``).

        Raises:
            StreamError: the node refused the stream (no handler for ``kind``, busy).
            OSError: it cannot be reached.
        """
        from .._offload import ThreadCall
        from .streams import dial

        if not isinstance(loc, Location):
            raise TypeError(f"open_stream() needs a Location, got {loc!r}")
        if not isinstance(kind, str) or not kind:
            raise ValueError(f"a stream kind is a non-empty str, got {kind!r}")
        lowlevel.check_timeout(timeout)
        bound = self.config.handshake_timeout if timeout is None else timeout
        return (yield ThreadCall(dial, self.config, loc.sockaddr(), loc.family, kind, payload,
                                 bound))

    def serve_stream(self, kind: str, fn: Any, check: Any = None) -> None:
        """Plain call: answer streams of ``kind`` with ``fn(stream, payload)`` on a thread of
        its own; ``check(payload, who)`` may refuse one first with a reason (see
        ``pycos.net.streams``)."""
        from .streams import serve_stream

        serve_stream(self, kind, fn, check)

    def adopt_established(self, sock: Any, addr: Any, conn: Any, established: Any,
                          first: Any) -> None:
        """The acceptor authenticated a connection that asks to be a peer link: the link
        continues on this node's scheduler (its thread)."""
        if self.stopping:
            sock.close()
            return
        from ..proto import Role

        adopt(self, AsyncSocket(sock), Role.SERVER, addr, None, conn, established, first)

    def start_stream(self, kind: str, sock: Any, conn: Any, payload: bytes, who: str) -> None:
        """A connection asked to carry a stream of ``kind``: hand it to its handler, on a
        thread of its own (node's scheduler thread)."""
        handler = self.handlers.streams.get(kind)
        if handler is None:
            sock.close()
            return

        def run() -> None:
            try:
                handler(self, sock, conn, payload, who)
            except Exception:  # noqa: BLE001 - the handler owns the socket; say what happened
                logger.exception("stream handler of kind %r failed", kind)
                try:
                    sock.close()
                except OSError:
                    pass

        threading.Thread(target=run, name=f"pycos-stream-{kind}", daemon=True).start()

    def stats_snapshot(self) -> dict[str, int]:
        """Plain call: counters of the node (connections, handshakes, bad input by kind,
        timeouts …), ``peers`` (current peers) and ``datagrams_dropped``."""
        result = dict(self.stats)
        result["peers"] = len(self.peers.snapshot)
        result["datagrams_dropped"] = int(getattr(self.discovery, "dropped", 0) or 0)
        return result

    # ------------------------------------------------------------------ stopping
    def link_gone(self) -> None:
        """A link's socket closed (while stopping: maybe the last one)."""
        if self.stopping and not self.peers.links and self._stopped is not None:
            self._stopped.set()

    def close(self, timeout: float = 2.0) -> None:
        """Plain call: tell every peer goodbye, close everything, stop this node (any thread
        but the scheduler's waits up to ``timeout`` for the goodbyes to be written)."""
        if self.stopping:
            return
        if lowlevel.in_thread(self.sched) or not lowlevel.alive(self.sched):
            self._close(None)
            return
        done = threading.Event()
        if lowlevel.call_soon(self.sched, self._close, done):
            done.wait(timeout)

    def _close(self, done: threading.Event | None) -> None:
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
        self.peers.close_all("the node is shutting down")
        self.router.close()
        self.handlers.close()
        self.hub.remove(self)
        if not self.peers.links and done is not None:
            done.set()
        self.hub.stop_service()
