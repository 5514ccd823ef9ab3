"""The networked node: ``pycos.netpycos.Pycos``.

Owns the public node class, a subclass of the core scheduler that adds the distributed API of
SPEC §3.1 (``peer``, ``peers``, ``peer_status``, ``close_peer``, ``locate``, ``discover_peers``)
and stops its network service at ``finish`` / ``terminate``. Every network operation is done by
the node's ``Service`` on its own scheduler thread; the methods here only check arguments, post
the work there and wait for the answer (``Pending``). Imports the standard library,
``pycos.core`` and its own package.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

from ..core.scheduler import Pycos as CorePycos
from ..core.scheduler import _check_timeout
from ..proto import DEFAULT_MAX_FRAME_SIZE
from . import files
from ._config import (
    DEFAULT_HANDSHAKE_TIMEOUT,
    DEFAULT_HEARTBEAT_INTERVAL,
    DEFAULT_UDP_PORT,
    make_config,
)
from ._service import Service
from .bridge import Pending
from .location import Location
from .router import Router

__all__ = ["Pycos"]


class Pycos(CorePycos):
    """A scheduler that is also a node of a distributed program (one per process).

    ``pycos.Pycos.instance()`` returns it once ``pycos.netpycos`` is imported. Create it before
    any task if it needs arguments other than the defaults.

    Args:
        host: address or name to run network services on. None: every usable interface, and
            this node never falls back to 127.0.0.1 silently (the addresses used are logged).
        udp_port: UDP port of discovery, shared by all nodes of a host (0 or None: 9705).
        tcp_port: TCP port of this node (0: any free port).
        ext_host: address (or name) peers should use to reach this node, e.g. a NAT gateway's.
        name: this node's name (default ``"addr:tcp_port"``, unique per node); peers find a
            node's location by it with ``locate``.
        discover_peers: announce this node by UDP broadcast at start (and listen for others).
            False: no UDP at all until ``discover_peers()`` or ``peer(host)`` is called.
        peers: Locations to connect to, or host names to contact by UDP, at start.
        secret: shared secret; only nodes with the same secret become peers.
        certfile, keyfile: certificate and key; every connection of the node then uses TLS.
        cafile: CA certificate; with it, peers verify each other's certificates against it
            (mutual TLS). Without it, every node must use the same certificate (pycos's model).
        dest_path: directory for files sent by peers (default ``<tmp>/pycos``).
        max_file_size: largest file accepted from a peer, in bytes (None or 0: no limit).
        heartbeat_interval: seconds of silence after which a connection carries a heartbeat.
        peer_timeout: seconds without anything from a peer before it is declared Offline
            (default 2.25 heartbeat intervals).
        handshake_timeout: seconds a new connection may take to authenticate.
        max_frame_size: largest frame accepted from a peer, in bytes.
        allow_unsafe_pickle: unpickle peers' payloads without restriction (trusted clusters
            only; the default accepts only the types listed in ``pycos.serialize_allow``).
        ipv4_udp_multicast: announce by IPv4 multicast too.
        node, ext_ip_addr, dest_path_prefix: asyncoro's spellings of ``host``, ``ext_host``,
            ``dest_path``.
        notifier, socket_family: accepted for compatibility; no effect.

    Raises:
        TypeError, ValueError: an argument is invalid (the message says what was expected).
        OSError: the TCP port cannot be bound.
    """

    def __init__(self, host: str | None = None, udp_port: int | None = DEFAULT_UDP_PORT,
                 tcp_port: int = 0, ext_host: str | None = None, name: str | None = None,
                 discover_peers: bool = True, peers: Any = (), secret: str = "",
                 certfile: Any = None, keyfile: Any = None, cafile: Any = None,
                 dest_path: Any = None, max_file_size: int | None = None, *,
                 heartbeat_interval: float = DEFAULT_HEARTBEAT_INTERVAL,
                 peer_timeout: float | None = None,
                 handshake_timeout: float = DEFAULT_HANDSHAKE_TIMEOUT,
                 max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
                 allow_unsafe_pickle: bool = False, ipv4_udp_multicast: bool = False,
                 node: str | None = None, ext_ip_addr: str | None = None,
                 dest_path_prefix: Any = None, notifier: Any = None, socket_family: Any = None,
                 clock: Any = None) -> None:
        config = make_config(
            host, udp_port, tcp_port, ext_host, name, discover_peers, peers, secret, certfile,
            keyfile, cafile, dest_path, max_file_size, heartbeat_interval=heartbeat_interval,
            peer_timeout=peer_timeout, handshake_timeout=handshake_timeout,
            max_frame_size=max_frame_size, allow_unsafe_pickle=allow_unsafe_pickle,
            ipv4_udp_multicast=ipv4_udp_multicast, node=node, ext_ip_addr=ext_ip_addr,
            dest_path_prefix=dest_path_prefix)
        service = Service(self, config)
        try:
            service.start()
        except BaseException:
            service.abort()
            raise
        self._service = service
        super().__init__(clock=clock)
        self.router = Router(self)  # tasks, channels and RCIs of other nodes (sched.router)

    # ------------------------------------------------------------------ identity
    @property
    def location(self) -> Location:
        """This node's ``Location`` (its advertised address and TCP port)."""
        return self._service.location

    @property
    def name(self) -> str:
        """This node's name."""
        return self._service.name

    @property
    def incarnation(self) -> bytes:
        """16 random bytes, new at every start of a node; peers tell restarts apart by it."""
        return self._service.incarnation

    @property
    def udp_port(self) -> int:
        """The discovery UDP port."""
        return self._service.config.udp_port

    @property
    def dest_path(self) -> str:
        """Directory where files sent by peers are saved."""
        return self._service.config.dest_path

    @property
    def max_file_size(self) -> int | None:
        """Largest file accepted from a peer (None: no limit)."""
        return self._service.config.max_file_size

    @property
    def addresses(self) -> list[str]:
        """The addresses of this machine the node serves on (and announces on)."""
        return list(self._service.addrs)

    # ------------------------------------------------------------------ peers
    def peers(self) -> list[Location]:
        """Plain call: Locations of the current peers."""
        return [loc for loc, _name in self._service.peer_snapshot]

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
        if not isinstance(loc, (Location, str)):
            raise TypeError(f"peer() needs a Location or a host name, got {loc!r}")
        port = self.udp_port if udp_port is None else udp_port
        if isinstance(port, bool) or not isinstance(port, int) or not 0 < port <= 65535:
            raise ValueError(f"udp_port must be a port number in 1..65535, got {udp_port!r}")
        svc = self._service
        cfg = svc.config
        pending = Pending(2 * cfg.handshake_timeout + cfg.peer_timeout, -1)
        if isinstance(loc, Location) and loc.port:
            svc.call_soon(svc.dial, loc, pending)
        else:
            host = loc.addr if isinstance(loc, Location) else loc
            svc.call_soon(svc.spawn, svc._contact, host, port, bool(broadcast), pending)
        result: int = yield pending
        return result

    def peer_status(self, task: Any) -> None:
        """Plain call: ``task`` receives a ``PeerStatus`` message for every current peer
        (Online) and then for every change; ``peer_status(None)`` stops all such messages.

        Raises:
            TypeError: ``task`` is neither a Task nor None.
        """
        from ..core.task import Task

        if task is not None and not isinstance(task, Task):
            raise TypeError(f"peer_status() needs a Task or None, got {task!r}")
        self._service.call_soon(self._service.add_status_task, task)

    def close_peer(self, loc: Location, timeout: float | None = None) -> Generator[Any, Any, int]:
        """Use with yield: close the connection to the peer at ``loc`` (it goes Offline; it
        is told with a goodbye). Returns 0, or -1 if ``loc`` is not a peer."""
        if not isinstance(loc, Location):
            raise TypeError(f"close_peer() needs a Location, got {loc!r}")
        _check_timeout(timeout)
        pending = Pending(timeout, -1)
        self._service.call_soon(self._service.close_peer, loc, pending)
        result: int = yield pending
        return result

    def locate(self, name: str, timeout: float | None = None) -> Generator[Any, Any, Any]:
        """Use with yield: ``loc = yield node.locate(name, timeout)``.

        The Location of the node called ``name`` (this node or a peer); if there is none, waits
        up to ``timeout`` seconds (None: until one appears) for it to come online. None when
        the timeout passes.
        """
        if not isinstance(name, str):
            raise TypeError(f"locate() needs a node name (str), got {name!r}")
        _check_timeout(timeout)
        svc = self._service
        if name == svc.name:
            return svc.location
        for loc, peer_name in svc.peer_snapshot:
            if peer_name == name:
                return loc
        pending = Pending(timeout, None)
        svc.call_soon(svc.locate, name, pending)
        return (yield pending)

    def discover_peers(self) -> None:
        """Plain call: announce this node by UDP on its networks (opening the discovery port
        first if ``discover_peers=False`` was given)."""
        self._service.call_soon(self._service.start_discovery, True)

    def send_file(self, location: Location, file: Any, dir: Any = None, overwrite: bool = False,
                  timeout: float | None = None, progress: Any = None) -> Generator[Any, Any, Any]:
        """Use with yield: ``status = yield node.send_file(location, file, dir)``: copy
        ``file`` to the node at ``location``, into its ``dest_path`` (+ ``dir``, relative).

        Returns 0 when sent; 1 when the same file (size, mode, mtime) is there already; that
        node's ``os.stat_result`` when a different file is there and ``overwrite`` is False;
        -1 on error. ``timeout``: seconds without progress before giving up; ``progress``:
        ``fn(sent, total)`` called on this node's scheduler. See ``pycos.net.files``.
        """
        return files.send_file(self, location, file, dir, overwrite, timeout, progress)

    def del_file(self, location: Location, file: Any, dir: Any = None,
                 timeout: float | None = None) -> Generator[Any, Any, int]:
        """Use with yield: ``status = yield node.del_file(location, file, dir)``: delete a
        file ``send_file`` saved there (same ``file`` and ``dir``) and the directories that
        leaves empty. Returns 0, or -1 on error. See ``pycos.net.files``."""
        return files.del_file(self, location, file, dir, timeout)

    def stats(self) -> dict[str, int]:
        """Plain call: counters of the node's network service (connections, handshakes, bad
        input by kind, timeouts …) and ``peers``, the number of current peers."""
        svc = self._service
        result = dict(svc.stats)
        result["peers"] = len(svc.peer_snapshot)
        discovery = svc.discovery
        result["datagrams_dropped"] = int(getattr(discovery, "dropped", 0) or 0)
        return result

    def _request(self, loc: Location, kind: str, payload: Any = None,
                 timeout: float | None = None) -> Generator[Any, Any, Any]:
        """Use with yield: send a request of ``kind`` to the peer at ``loc`` and return the
        reply's value (the building block of remote operations).

        Raises:
            PeerLost: ``loc`` is not a peer and cannot be connected to, or the connection
                closed before the reply.
            RemoteRequestFailed: the peer answered with a failure.
            TimeoutError: no reply within ``timeout`` seconds.
        """
        _check_timeout(timeout)
        pending = Pending(timeout, _TIMED_OUT)
        self._service.call_soon(self._service.request, loc, kind, payload, pending, timeout)
        value = yield pending
        if value is _TIMED_OUT:
            raise TimeoutError(f"no reply to {kind!r} from {loc!r} within {timeout} s")
        return value

    # ------------------------------------------------------------------ stopping
    def terminate(self) -> None:
        """Stop now: peers are told at once (goodbye on every connection), then every task
        is closed. Callable from any thread or task."""
        service = getattr(self, "_service", None)
        if service is not None:
            service.shutdown()
        super().terminate()


class _TimedOut:
    __repr__ = lambda self: "<timed out>"  # noqa: E731


_TIMED_OUT = _TimedOut()
