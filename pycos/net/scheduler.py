"""The networked scheduler: ``pycos.netpycos.Pycos``, a scheduler with a node of its own.

Owns the class pycos programs create (``pycos.netpycos.Pycos(...)``, or ``pycos.Pycos()`` once
``pycos.netpycos`` is imported): a core scheduler (``pycos.core``) that also starts a default
``Node`` with the same arguments and offers the node's API of SPEC §3.1 as its own methods.
Imports the standard library, ``pycos.core`` and its own package.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Generator
from typing import Any

from ..core.scheduler import Pycos as CorePycos
from ..proto import DEFAULT_MAX_FRAME_SIZE
from .config import (
    DEFAULT_HANDSHAKE_TIMEOUT,
    DEFAULT_HEARTBEAT_INTERVAL,
    DEFAULT_LINK_BUFFER,
    make_config,
)
from .location import Location
from .node import Node

__all__ = ["Pycos", "UPPER_OPTIONS"]

#: The constructor's options served by packages above this layer, by name: ``start(node,
#: value)`` returns what the option started. The facade ``pycos.netpycos`` fills it
#: (``dashboard``: ``pycos.dashboard``).
UPPER_OPTIONS: dict[str, Callable[[Any, Any], Any]] = {}


class Pycos(CorePycos):
    """A scheduler that is also a node of a distributed program (one per process).

    ``pycos.Pycos.instance()`` returns it once ``pycos.netpycos`` is imported. Create it before
    any task if it needs arguments other than the defaults.

    Args:
        host: address or name to run network services on. None: every usable interface, and
            this node never falls back to 127.0.0.1 silently (the addresses used are logged).
        udp_port: UDP port of discovery, shared by all nodes of a host (0 or None:
            ``pycos.config.NetPort``, 9705).
        tcp_port: TCP port of this node (0: any free port).
        ext_host: address (or name) peers should use to reach this node, e.g. a NAT gateway's.
        name: this node's name (default ``"addr:tcp_port"``, unique per node); peers find a
            node's location by it with ``locate``.
        discover_peers: announce this node by UDP broadcast at start. False: it does not
            announce itself, but still answers other nodes' ``peer(host, udp_port=...)``.
        peers: Locations to connect to, or host names to contact by UDP, at start.
        secret: shared secret; only nodes with the same secret become peers.
        certfile, keyfile: certificate and key; every connection of the node then uses TLS.
        cafile: CA certificate; with it, peers verify each other's certificates against it
            (mutual TLS). Without it, every node must use the same certificate (pycos's model).
        dest_path: directory for files sent by peers (default ``<tmp>/pycos``); created at
            start, and assignable later (``node.dest_path = path``).
        max_file_size: largest file accepted from a peer, in bytes (None or 0: no limit).
        heartbeat_interval: seconds of silence after which a connection carries a heartbeat.
        peer_timeout: seconds without anything from a peer before it is declared Offline
            (default 2.25 heartbeat intervals).
        handshake_timeout: seconds a new connection may take to authenticate.
        max_frame_size: largest frame accepted from a peer, in bytes.
        allow_unsafe_pickle: decode peers' payloads as unrestricted pickle (fully trusted
            meshes only; by default payloads are checked to build only allowed values).
        ipv4_udp_multicast: announce by IPv4 multicast too.
        ext_port: the TCP port peers should use to reach this node, when it differs from the
            one bound (a port forwarded by a NAT or a proxy); 0: the bound one.
        hidden: never announce this node, never relay for it, and peers list it only when
            asked (``peers(hidden=True)``); for command-line tools and consoles.
        max_peers: refuse connections beyond this many peers (None: no cap).
        reconnect: when a peer added with ``peer(Location)`` or ``peers=[...]`` drops without
            a goodbye, dial it again up to this many times, with backoff.
        link_buffer: bytes that may wait to be written to one peer (and sent by it and not
            yet received here) before the link pushes back.
        file_idle: seconds a file being received may go without progress before this node
            abandons it (the receiver's own limit, whatever the sender says).
        latency_interval: seconds between the round-trip samples taken of every peer
            (``latency()``; times a random factor of 1 to 1.5); 0: none.
        dashboard: ``"HOST:PORT"`` (or True: ``"127.0.0.1:8765"``): start a read-only web
            dashboard of this node there (``pycos[dashboard]``; see ``pycos.dashboard.start``),
            kept as ``self.dashboard``; it closes with the node. None (default): none.
        node, ext_ip_addr, dest_path_prefix: asyncoro's spellings of ``host``, ``ext_host``,
            ``dest_path``.
        notifier, socket_family: accepted for compatibility; no effect.

    Raises:
        TypeError, ValueError: an argument is invalid (the message says what was expected).
        OSError: the TCP port cannot be bound.
    """

    def __init__(self, host: str | None = None, udp_port: int | None = None,
                 tcp_port: int = 0, ext_host: str | None = None, name: str | None = None,
                 discover_peers: bool = True, peers: Any = (), secret: str = "",
                 certfile: Any = None, keyfile: Any = None, cafile: Any = None,
                 dest_path: Any = None, max_file_size: int | None = None, *,
                 heartbeat_interval: float = DEFAULT_HEARTBEAT_INTERVAL,
                 peer_timeout: float | None = None,
                 handshake_timeout: float = DEFAULT_HANDSHAKE_TIMEOUT,
                 max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
                 allow_unsafe_pickle: bool = False, ipv4_udp_multicast: bool = False,
                 ext_port: int = 0, hidden: bool = False, max_peers: int | None = None,
                 reconnect: int = 0, link_buffer: int = DEFAULT_LINK_BUFFER,
                 file_idle: float = 30.0, latency_interval: float = 5.0,
                 node: str | None = None, ext_ip_addr: str | None = None,
                 dest_path_prefix: Any = None, notifier: Any = None, socket_family: Any = None,
                 clock: Any = None, dashboard: Any = None) -> None:
        if dashboard is not None and not isinstance(dashboard, str | bool):
            raise TypeError(f"dashboard must be 'HOST:PORT', True or None, got {dashboard!r}")
        config = make_config(
            host, udp_port, tcp_port, ext_host, name, discover_peers, peers, secret, certfile,
            keyfile, cafile, dest_path, max_file_size, heartbeat_interval=heartbeat_interval,
            peer_timeout=peer_timeout, handshake_timeout=handshake_timeout,
            max_frame_size=max_frame_size, allow_unsafe_pickle=allow_unsafe_pickle,
            ipv4_udp_multicast=ipv4_udp_multicast, node=node, ext_ip_addr=ext_ip_addr,
            dest_path_prefix=dest_path_prefix, ext_port=ext_port, hidden=hidden,
            max_peers=max_peers, reconnect=reconnect, link_buffer=link_buffer,
            file_idle=file_idle, latency_interval=latency_interval)
        super().__init__(clock=clock)
        try:
            self.node = Node(config=config, scheduler=self, default=True)
            #: The node's web dashboard (``pycos.dashboard.Dashboard``), or None.
            self.dashboard = self._start_dashboard(dashboard)
        except BaseException:
            # The scheduler is being created under the lock its own shutdown needs: stop it
            # from a thread of its own, which waits until this constructor has failed.
            threading.Thread(target=CorePycos.terminate, args=(self,), daemon=True,
                             name="pycos-failed-start").start()
            raise

    def _start_dashboard(self, bind: Any) -> Any:
        if bind is None or bind is False:
            return None
        start = UPPER_OPTIONS.get("dashboard")
        try:
            if start is None:
                raise RuntimeError("dashboard= is served by pycos.dashboard: create the node "
                                   "as pycos.netpycos.Pycos (import pycos.netpycos)")
            return start(self.node, bind)
        except BaseException:
            self.node.close()
            raise

    def __repr__(self) -> str:
        return f"<pycos.netpycos.Pycos {self.node.name!r} at {self.node.location!r}>"

    # ------------------------------------------------------------------ identity
    @property
    def location(self) -> Location:
        """This node's ``Location`` (its advertised address and TCP port)."""
        return self.node.location

    @property
    def name(self) -> str:
        """This node's name."""
        return self.node.name

    @property
    def incarnation(self) -> bytes:
        """16 random bytes, new at every start of a node; peers tell restarts apart by it."""
        return self.node.incarnation

    @property
    def udp_port(self) -> int:
        """The discovery UDP port."""
        return self.node.udp_port

    @property
    def dest_path(self) -> str:
        """Directory where files sent by peers are saved (it exists once the node has
        started; assign it to move it, as pycos programs do)."""
        return self.node.dest_path

    @dest_path.setter
    def dest_path(self, path: Any) -> None:
        self.node.dest_path = path

    @property
    def max_file_size(self) -> int | None:
        """Largest file accepted from a peer (None: no limit)."""
        return self.node.max_file_size

    @property
    def addresses(self) -> list[str]:
        """The addresses of this machine the node serves on (and announces on)."""
        return self.node.addresses

    @property
    def locations(self) -> list[Location]:
        """pycos's name: the Locations this node can be reached at."""
        return [self.node.location]

    # ------------------------------------------------------------------ the node's API
    def peers(self, hidden: bool = False) -> list[Location]:
        """Plain call: Locations of the current peers (hidden nodes only with ``hidden``)."""
        return self.node.peers_list(hidden)

    def peer(self, loc: Location | str, udp_port: int | None = None, stream_send: bool = False,
             broadcast: bool = False) -> Generator[Any, Any, int]:
        """Use with yield: ``status = yield node.peer(loc)`` makes the node at ``loc`` a peer.

        Args:
            loc: a ``Location``: connect over TCP (and TLS) and authenticate; a host name or
                address (or a Location with port 0): ask the node(s) there by UDP, on
                ``udp_port``, to connect to this node, across subnets too.
            udp_port: the peer host's discovery port (default: this node's).
            stream_send: accepted for compatibility; connections are always persistent.
            broadcast: also ask that host to announce this node on its network.

        Returns:
            0 when the node at ``loc`` is a peer (for a host: when the request was sent),
            -1 on failure (the reason is logged).
        """
        return self.node.peer(loc, udp_port, stream_send, broadcast)

    def peer_status(self, task: Any) -> None:
        """Plain call: ``task`` receives a ``PeerStatus`` message for every current peer
        (Online) and then for every change; ``peer_status(None)`` stops all such messages."""
        self.node.peer_status(task)

    def close_peer(self, loc: Location, timeout: float | None = None) -> Generator[Any, Any, int]:
        """Use with yield: close the connection to the peer at ``loc`` (it goes Offline; it
        is told with a goodbye). Returns 0, or -1 if ``loc`` is not a peer."""
        return self.node.close_peer(loc, timeout)

    def locate(self, name: str, timeout: float | None = None) -> Generator[Any, Any, Any]:
        """Use with yield: ``loc = yield node.locate(name, timeout)``. The Location of the
        node called ``name``; waits up to ``timeout`` for it to appear; None then."""
        return self.node.locate(name, timeout)

    def discover_peers(self) -> None:
        """Plain call: announce this node by UDP on its networks."""
        self.node.discover_peers()

    def send_file(self, location: Location, file: Any, dir: Any = None, overwrite: bool = False,
                  timeout: float | None = None, progress: Any = None) -> Generator[Any, Any, Any]:
        """Use with yield: ``status = yield node.send_file(location, file, dir)``: copy
        ``file`` to the node at ``location``, into its ``dest_path`` (+ ``dir``, relative).

        Returns 0 when sent; 1 when the same file (size, mode, mtime) is there already; that
        node's ``os.stat_result`` when a different file is there and ``overwrite`` is False;
        -1 on error. ``timeout``: seconds without progress before giving up; ``progress``:
        ``fn(sent, total)`` called on this node's scheduler. See ``pycos.net.files``.
        """
        from .files import api

        return api.send_file(self.node, location, file, dir, overwrite, timeout, progress)

    def del_file(self, location: Location, file: Any, dir: Any = None,
                 timeout: float | None = None) -> Generator[Any, Any, int]:
        """Use with yield: delete a file ``send_file`` saved at the node at ``location`` (same
        ``file`` and ``dir``) and the directories that leaves empty. 0, or -1 on error."""
        from .files import api

        return api.del_file(self.node, location, file, dir, timeout)

    def request(self, loc: Location, kind: str, payload: Any = None,
                timeout: float | None = None) -> Any:
        """Yield or block: send a request of ``kind`` to the peer at ``loc`` and return the
        reply's value. See ``Node.request``."""
        return self.node.request(loc, kind, payload, timeout)

    _request = request

    def serve(self, kind: str, fn: Any, run: str = "main", threads: int | None = None) -> None:
        """Plain call: answer requests of ``kind`` with ``fn(ctx, payload)``."""
        self.node.serve(kind, fn, run, threads)

    def ping(self, loc: Location, size: int = 0, count: int = 1,
             timeout: float | None = None) -> Any:
        """Yield or block: the median round-trip time, in seconds, of ``count`` pings of
        ``size`` bytes to the peer at ``loc``. See ``Node.ping``."""
        return self.node.ping(loc, size, count, timeout)

    def latency(self, loc: Location | None = None) -> Any:
        """Plain call: round-trip figures (``Latency``) of the peer at ``loc``, or of every
        peer (a dict) without ``loc``. See ``Node.latency``."""
        return self.node.latency(loc)

    def open_stream(self, loc: Location, kind: str, payload: Any = None,
                    timeout: float | None = None) -> Any:
        """Yield or block: a dedicated connection (``StreamConn``) to the handler of streams
        of ``kind`` at ``loc``. See ``Node.open_stream``."""
        return self.node.open_stream(loc, kind, payload, timeout)

    def serve_stream(self, kind: str, fn: Any) -> None:
        """Plain call: answer streams of ``kind`` with ``fn(stream, payload)`` on a thread."""
        self.node.serve_stream(kind, fn)

    def stats(self) -> dict[str, int]:
        """Plain call: counters of the node's network service and ``peers``."""
        return self.node.stats_snapshot()

    def describe(self) -> dict[str, Any]:
        """Plain call: name, location, incarnation, version, TLS, peers of this node."""
        return self.node.describe()

    # ------------------------------------------------------------------ stopping
    def terminate(self) -> None:
        """Stop now: peers are told at once (goodbye on every connection), then every task
        is closed. Callable from any thread or task."""
        node = getattr(self, "node", None)
        if node is not None:
            node.close()
        super().terminate()
