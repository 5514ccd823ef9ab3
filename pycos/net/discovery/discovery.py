"""Peer discovery by UDP: announcements, answers, host fan-out and relays.

Owns :class:`Discovery`, the UDP side of a node. Imports the standard library, ``pycos.core``,
``pycos.errors``, ``pycos.proto`` (announcements and envelopes) and ``interfaces``. What a
node says about itself is always a ``pycos.proto.announce`` datagram (fixed binary,
HMAC-SHA256 keyed by the secret, protocol version range), sometimes inside an envelope (below);
nothing is ever pickled. A datagram failing any check is dropped, counted in ``dropped`` /
``drop_reasons`` and logged at warning level (once a minute per kind of failure; the others at
debug level).

Several nodes on one host share the UDP port (``SO_REUSEADDR`` + ``SO_REUSEPORT``). The kernel
gives a broadcast or multicast datagram to *every* socket on the port, but a unicast one to only
*one* of them. So:

* the receive loop learns each datagram's destination address (``IP_PKTINFO`` /
  ``IPV6_PKTINFO``). A datagram with the announcement magic that arrived by **unicast** is
  passed on to the other sockets of this host in a *host envelope* naming its origin, broadcast
  on the loopback interface (``127.255.255.255``): the kernel delivers that to every socket
  bound to the port in this network namespace, and it never leaves the host. It is passed on
  even when this node cannot verify it, since its addressee may be a node with another secret.
  A host envelope is accepted only from a loopback source and never passed on again;
* a node answers an announcement that asks for it - a broadcast/multicast ``ANNOUNCE``, a
  ``PEER`` or a ``RELAY``, also one received in an envelope - with a unicast ``ANNOUNCE`` to its
  origin, at most once per ``REPLY_INTERVAL`` per peer incarnation. An answer that lands on a
  sibling of the node it was meant for is passed on like any unicast datagram, so every node of
  both hosts learns of the others. A unicast ``ANNOUNCE`` (an answer) is never answered, so a
  contact ends after a bounded number of datagrams;
* a ``RELAY`` received directly is also sent on this node's networks (broadcast / multicast,
  as its announcements) in a *relay envelope* naming the contacter, authenticated with an HMAC
  keyed by the secret; the nodes there answer the contacter.

The envelopes are defined in ``pycos.proto.envelope`` (layout there and in
``doc/discovery.rst``).

Threads: ``start``, ``announce``, ``contact`` and ``close`` may be called from any thread; the
receive tasks, ``on_peer`` calls and all bookkeeping run on the given scheduler's thread.
"""

from __future__ import annotations

import errno
import ipaddress
import logging
import re
import socket
import struct
import threading
import time
from collections.abc import Callable, Generator
from typing import Any

from ...core import lowlevel
from ...core.poller import READ
from ...core.scheduler import Pycos as _Scheduler
from ...core.traps import WaitIO
from ...errors import RemoteProtocolError
from ...proto.announce import (
    ANNOUNCE_MAGIC,
    AnnounceKind,
    Announcement,
    decode_announcement,
    encode_announcement,
)
from ...proto.auth import INCARNATION_SIZE
from ...proto.envelope import (
    HOST_MAGIC,
    MAX_DATAGRAM,
    RELAY_MAGIC,
    host_envelope,
    open_host,
    open_relay,
    relay_envelope,
    relay_key,
)
from .interfaces import Interface, interface_of, is_loopback, list_interfaces
from .sockaddr import ANC_SIZE, IP_PKTINFO, SockAddr, destination, host_str, sockaddr

__all__ = ["Discovery", "IPV6_GROUP", "IPV4_GROUP", "REPLY_INTERVAL", "LOOPBACK_BROADCAST"]

logger = logging.getLogger(__name__)

#: Link-local IPv6 multicast group of announcements.
IPV6_GROUP = "ff02::1:9705"
#: Organisation-local IPv4 multicast group (used when ``multicast=True``).
IPV4_GROUP = "239.255.97.5"
#: A node answers one peer incarnation (and relays for it) at most once per this many seconds.
REPLY_INTERVAL = 1.0
#: Seconds between two warnings for drops of the same kind.
WARN_INTERVAL = 60.0
LOOPBACK_BROADCAST = "127.255.255.255"

_RECV_SIZE = MAX_DATAGRAM + 1
_BURST = 32
_MAX_MEMORY = 4096

OnPeer = Callable[[str, int, bytes, str], None]


def _check_port(value: Any, what: str, allow_zero: bool) -> int:
    low = 0 if allow_zero else 1
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= 65535:
        raise ValueError(f"{what} must be an int in {low}..65535, got {value!r}")
    return value


class Discovery:
    """The UDP discovery endpoint of one node.

    Args:
        sched: scheduler that runs the receive task and calls ``on_peer``.
        secret: shared secret; announcements of nodes with another secret are dropped.
        name: this node's name (1..255 UTF-8 bytes).
        incarnation: this node's 16-byte incarnation id; datagrams carrying it are our own.
        tcp_port: the TCP port peers connect to.
        udp_port: the discovery port, shared by the nodes of a host (0: any free port; the
            port bound is then in ``udp_port`` after ``start``).
        bind_addrs: the node's addresses (``choose_addresses``); announcements go out on their
            interfaces and name them as the address to connect to.
        ext_host: address or name to announce instead (a node behind NAT), or None.
        on_peer: ``on_peer(host, tcp_port, incarnation, name)`` for each valid announcement of
            another node, on ``sched``'s thread. It may come more than once for one peer.
        broadcast: announce by IPv4 broadcast on each interface and IPv6 multicast.
        multicast: also announce by IPv4 multicast (IPv6 multicast is used either way).

    Attributes:
        udp_port: the UDP port (the one bound, after ``start``).
        dropped: number of datagrams dropped because they failed a check.
        drop_reasons: those drops by reason (numbers in reasons replaced by ``#``).
    """

    def __init__(self, sched: Any, *, secret: str | bytes, name: str, incarnation: bytes,
                 tcp_port: int, udp_port: int, bind_addrs: list[str], ext_host: str | None,
                 on_peer: OnPeer, broadcast: bool = True, multicast: bool = False) -> None:
        if not isinstance(sched, _Scheduler):
            raise TypeError(f"sched must be a pycos scheduler, not {type(sched).__name__}")
        if not isinstance(incarnation, bytes) or len(incarnation) != INCARNATION_SIZE:
            raise ValueError(f"incarnation must be {INCARNATION_SIZE} bytes, got {incarnation!r}")
        if not isinstance(secret, str | bytes):
            raise TypeError(f"secret must be a str or bytes, not {type(secret).__name__}")
        if not callable(on_peer):
            raise TypeError(f"on_peer must be callable, not {type(on_peer).__name__}")
        if ext_host is not None and not isinstance(ext_host, str):
            raise TypeError(f"ext_host must be a str or None, not {type(ext_host).__name__}")
        self._sched = sched
        self._secret = secret
        self._name = name
        self._incarnation = incarnation
        self._tcp_port = _check_port(tcp_port, "tcp_port", False)
        self.udp_port = _check_port(udp_port, "udp_port", True)
        self._bind = self._check_addrs(bind_addrs)
        self._ext_host = ext_host or None
        self._on_peer = on_peer
        self._broadcast = bool(broadcast)
        self._multicast = bool(multicast)
        self._relay_key = relay_key(secret.encode("utf-8") if isinstance(secret, str) else secret)
        self._datagram(AnnounceKind.ANNOUNCE, ext_host or "")  # validates name, secret, host
        self._loopback_only = all(is_loopback(a) for a in self._bind)
        self._socks: dict[int, socket.socket] = {}
        self._tasks: list[Any] = []
        self._send_lock = threading.Lock()
        self._replied: dict[bytes, float] = {}
        self._relayed: dict[bytes, float] = {}
        self._warned: dict[str, list[float]] = {}
        self._bcasts: frozenset[str] = frozenset()
        self._started = False
        self._closed = False
        self.dropped = 0
        self.drop_reasons: dict[str, int] = {}

    @staticmethod
    def _check_addrs(addrs: Any) -> list[str]:
        if isinstance(addrs, str) or not isinstance(addrs, list | tuple) or not addrs:
            raise TypeError(f"bind_addrs must be a non-empty list of IP addresses, got {addrs!r}")
        for addr in addrs:
            try:
                ipaddress.ip_address(str(addr).partition("%")[0])
            except ValueError:
                raise ValueError(f"bind_addrs must hold IP addresses, got {addr!r}") from None
        return [str(a) for a in addrs]

    # ------------------------------------------------------------------ life cycle
    def start(self) -> None:
        """Plain call: open the shared UDP port and start the receive task on the scheduler.

        Raises:
            RuntimeError: already started, or closed.
            OSError: the port cannot be bound (e.g. a program without ``SO_REUSEPORT`` holds it).
        """
        if self._started or self._closed:
            raise RuntimeError("Discovery.start() may be called once, before close()")
        self._started = True
        ifaces = list_interfaces()
        self._bcasts = self._broadcast_set(ifaces)
        try:
            self._open(socket.AF_INET, "0.0.0.0")
            if any(":" in a for a in self._bind):
                self._open(socket.AF_INET6, "::")
            self._join_groups(ifaces)
        except OSError:
            self._close_sockets()
            raise
        logger.info("discovery on UDP port %d (%s) for node %r", self.udp_port,
                    ", ".join(self._bind), self._name)
        lowlevel.call(self._sched, self._spawn)

    def _open(self, family: int, wildcard: str) -> None:
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if hasattr(socket, "SO_REUSEPORT"):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            if family == socket.AF_INET:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
                if IP_PKTINFO is not None:
                    sock.setsockopt(socket.IPPROTO_IP, IP_PKTINFO, 1)
            else:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVPKTINFO, 1)
            try:
                sock.bind((wildcard, self.udp_port))
            except OSError as exc:
                raise OSError(exc.errno, f"cannot bind discovery UDP port {self.udp_port} "
                              f"({wildcard}): {exc.strerror}; is another program using it "
                              "without SO_REUSEPORT?") from exc
            sock.setblocking(False)
        except BaseException:
            sock.close()
            raise
        self.udp_port = sock.getsockname()[1]
        self._socks[family] = sock

    def _join_groups(self, ifaces: list[Interface]) -> None:
        for iface in self._bind_ifaces(ifaces):
            if iface.loopback or not iface.multicast:
                continue
            try:
                if iface.family == socket.AF_INET6 and (self._broadcast or self._multicast):
                    mreq6 = socket.inet_pton(socket.AF_INET6, IPV6_GROUP)
                    self._socks[socket.AF_INET6].setsockopt(
                        socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP,
                        mreq6 + struct.pack("@I", iface.index))
                elif iface.family == socket.AF_INET and self._multicast:
                    mreq = socket.inet_aton(IPV4_GROUP) + socket.inet_aton(iface.address)
                    self._socks[socket.AF_INET].setsockopt(
                        socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreq)
            except OSError as exc:
                if exc.errno != errno.EADDRINUSE:  # already joined on that interface
                    logger.warning("discovery: cannot join multicast group on %s: %s",
                                   iface.name, exc)

    def _spawn(self) -> None:
        if self._closed:
            return
        for sock in self._socks.values():
            self._tasks.append(lowlevel.spawn_daemon(self._receive, sock))

    def close(self) -> None:
        """Plain call (any thread): stop the receive task and close the sockets. Idempotent."""
        if self._closed:
            return
        self._closed = True
        sched = self._sched
        if lowlevel.in_thread(sched) or not sched.is_alive():
            self._close_sockets()
            return
        done = threading.Event()

        def close_there() -> None:
            try:
                self._close_sockets()
            finally:
                done.set()

        if not lowlevel.call_soon(sched, close_there) or not done.wait(5.0):
            self._close_sockets()

    def _close_sockets(self) -> None:
        socks, self._socks = self._socks, {}
        for sock in socks.values():
            if lowlevel.in_thread(self._sched):
                lowlevel.close_fd(self._sched, sock, OSError(errno.EBADF, "discovery closed"))
            sock.close()

    # ------------------------------------------------------------------ sending
    def announce(self) -> None:
        """Plain call (any thread): announce this node on every interface of ``bind_addrs``.

        IPv4: the interface's broadcast address (``127.255.255.255`` for loopback), and the
        IPv4 multicast group when ``multicast``; IPv6: the link-local multicast group on the
        interface. Does nothing when ``broadcast`` and ``multicast`` are both False.
        """
        if self._closed or not self._started:
            raise RuntimeError("announce() needs a started, open Discovery")
        ifaces = list_interfaces()
        self._bcasts = self._broadcast_set(ifaces)
        for host, target, via in self._targets(ifaces):
            self._send(self._datagram(AnnounceKind.ANNOUNCE, self._ext_host or host), target, via)

    def contact(self, host: str, udp_port: int, relay: bool = False) -> None:
        """Plain call (any thread): send this node's announcement to one host by unicast.

        The node there (or, through the host fan-out, every node sharing that port there)
        answers, so both sides learn of each other. With ``relay`` it is asked to announce us on
        its own networks as well. A host name is resolved in a helper thread.

        Raises:
            TypeError, ValueError: ``host`` is not a str or ``udp_port`` is not a port number.
            RuntimeError: not started, or closed.
        """
        if not isinstance(host, str) or not host:
            raise TypeError(f"host must be a non-empty str, got {host!r}")
        _check_port(udp_port, "udp_port", False)
        if self._closed or not self._started:
            raise RuntimeError("contact() needs a started, open Discovery")
        kind = AnnounceKind.RELAY if relay else AnnounceKind.PEER
        text = host.strip("[]")
        try:
            ipaddress.ip_address(text.partition("%")[0])
        except ValueError:
            threading.Thread(target=self._contact_name, args=(text, udp_port, kind),
                             name="pycos-discovery-resolve", daemon=True).start()
            return
        self._contact_addr(text, udp_port, kind)

    def _contact_name(self, host: str, udp_port: int, kind: AnnounceKind) -> None:
        try:
            infos = socket.getaddrinfo(host, udp_port, type=socket.SOCK_DGRAM)
        except OSError as exc:
            logger.warning("discovery: cannot contact %r: %s", host, exc)
            return
        addrs = [host_str(i[4]) for i in infos if i[0] in self._socks]
        if not addrs:
            logger.warning("discovery: %r has no address of a family this node uses", host)
            return
        self._contact_addr(addrs[0], udp_port, kind)

    def _contact_addr(self, host: str, udp_port: int, kind: AnnounceKind) -> None:
        family, target = sockaddr(host, udp_port)
        if family not in self._socks:
            logger.warning("discovery: cannot contact %s: no %s socket (bind_addrs %s)", host,
                           "IPv6" if family == socket.AF_INET6 else "IPv4", self._bind)
            return
        self._send(self._datagram(kind, self._host_toward(target)), target)

    def _send(self, data: bytes, target: SockAddr, via: str | None = None) -> None:
        family = socket.AF_INET6 if len(target) == 4 else socket.AF_INET
        sock = self._socks.get(family)
        if sock is None:
            return
        try:
            with self._send_lock:
                if via is not None:
                    sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF,
                                    socket.inet_aton(via))
                sock.sendto(data, target)
        except OSError as exc:
            self._warn_once(f"send {exc.errno}", "discovery: datagram to %s not sent: %s",
                            host_str(target), exc)

    def _datagram(self, kind: AnnounceKind, host: str) -> bytes:
        ann = Announcement(self._name, self._incarnation, (self._tcp_port,), host, kind)
        return encode_announcement(ann, self._secret)

    def _bind_ifaces(self, ifaces: list[Interface]) -> list[Interface]:
        out = []
        for addr in self._bind:
            if addr in ("0.0.0.0", "::"):
                fam = socket.AF_INET if addr == "0.0.0.0" else socket.AF_INET6
                out += [i for i in ifaces if i.family == fam and i.up and not i.loopback]
                continue
            iface = interface_of(addr, ifaces)
            if iface is None:
                self._warn_once(f"noiface {addr}", "discovery: no interface has address %s; "
                                "not announcing on it", addr)
            elif iface.up:
                out.append(iface)
        return out

    def _targets(self, ifaces: list[Interface]) -> list[tuple[str, SockAddr, str | None]]:
        """(host to announce, destination, IPv4 multicast interface) of each announcement."""
        out: list[tuple[str, SockAddr, str | None]] = []
        for iface in self._bind_ifaces(ifaces):
            host = "" if iface.link_local else iface.address
            if iface.family == socket.AF_INET:
                if self._broadcast:
                    bcast = LOOPBACK_BROADCAST if iface.loopback else iface.broadcast
                    if bcast:
                        out.append((host, (bcast, self.udp_port), None))
                if self._multicast and iface.multicast and not iface.loopback:
                    out.append((host, (IPV4_GROUP, self.udp_port), iface.address))
            elif (self._broadcast or self._multicast) and iface.multicast and not iface.loopback:
                out.append((host, (IPV6_GROUP, self.udp_port, 0, iface.index), None))
        return out

    def _host_toward(self, target: SockAddr) -> str:
        """The address to announce to ``target``: ``ext_host``, else the bind address the
        route to it leaves from (or the first of its family); "" (use the datagram's source)
        for an IPv6 link-local one."""
        if self._ext_host:
            return self._ext_host
        family = socket.AF_INET6 if len(target) == 4 else socket.AF_INET
        same = [a for a in self._bind if (":" in a) == (family == socket.AF_INET6)]
        try:
            with socket.socket(family, socket.SOCK_DGRAM) as probe:
                probe.connect(target)
                source = host_str(probe.getsockname())
        except OSError:
            source = ""
        chosen = source if source in same else (same[0] if same else "")
        if chosen in ("0.0.0.0", "::") or (chosen and ipaddress.ip_address(
                chosen.partition("%")[0]).is_link_local):
            return ""
        return chosen

    @staticmethod
    def _broadcast_set(ifaces: list[Interface]) -> frozenset[str]:
        found = {LOOPBACK_BROADCAST, "255.255.255.255"}
        for iface in ifaces:
            if iface.family == socket.AF_INET:
                if iface.broadcast:
                    found.add(iface.broadcast)
                net = ipaddress.IPv4Network(f"{iface.address}/{iface.prefixlen}", strict=False)
                found.add(str(net.broadcast_address))
        return frozenset(found)

    # ------------------------------------------------------------------ receiving
    def _receive(self, sock: socket.socket, task: Any = None) -> Generator[Any, Any, None]:
        """The receive task of one socket: handle datagrams until the socket is closed."""
        burst = 0
        while True:
            try:
                data, anc, flags, src = sock.recvmsg(_RECV_SIZE, ANC_SIZE)
            except (BlockingIOError, InterruptedError):
                burst = 0
                try:
                    yield WaitIO(sock, READ, None)
                except (OSError, ValueError):
                    return
                continue
            except OSError as exc:
                if sock.fileno() < 0 or self._closed:
                    return
                logger.debug("discovery: receive error ignored: %s", exc)
                yield None
                continue
            try:
                self._handle(data, anc, flags, src)
            except Exception:  # noqa: BLE001 - one bad datagram must not stop discovery
                logger.exception("discovery: error handling a datagram from %s", src)
            burst += 1
            if burst >= _BURST:
                burst = 0
                yield None

    def _handle(self, data: bytes, anc: list[Any], flags: int, src: SockAddr) -> None:
        src_host = host_str(src)
        if flags & socket.MSG_TRUNC or len(data) > MAX_DATAGRAM:
            self._drop(f"oversized datagram (more than {MAX_DATAGRAM} bytes)", src_host)
            return
        dst = destination(anc)
        unicast = dst is None or self._is_unicast(dst)
        magic = data[:4]
        forwarded = magic in (HOST_MAGIC, RELAY_MAGIC)
        try:
            if magic == HOST_MAGIC:
                if not is_loopback(src_host):
                    raise RemoteProtocolError("host fan-out datagram from another host")
                origin, inner = open_host(data)
            elif magic == RELAY_MAGIC:
                origin, inner = open_relay(data, self._relay_key)
            else:
                origin, inner = src, data
                if unicast and magic == ANNOUNCE_MAGIC:
                    self._fan_out(src, data)
        except RemoteProtocolError as exc:
            self._drop(str(exc), src_host)
            return
        try:
            ann = decode_announcement(inner, self._secret)
        except RemoteProtocolError as exc:
            if magic == HOST_MAGIC:  # counted by the node that received it, if it is ours
                logger.debug("discovery: passed-on datagram from %s ignored: %s",
                             host_str(origin), exc)
            else:
                self._drop(str(exc), src_host)
            return
        if ann.incarnation != self._incarnation and self._accept(ann, origin, forwarded):
            if ann.kind != AnnounceKind.ANNOUNCE or (not forwarded and (dst is None
                                                                        or not unicast)):
                self._reply(origin, ann.incarnation)
            if ann.kind == AnnounceKind.RELAY and not forwarded:
                self._relay(origin, inner, ann.incarnation)

    def _accept(self, ann: Announcement, origin: SockAddr, forwarded: bool) -> bool:
        """Check where an announcement comes from and tell the node; False if dropped."""
        origin_host = host_str(origin)
        host = ann.host or origin_host
        if origin_host in self._bcasts:
            self._drop(f"origin {origin_host} is a broadcast address", origin_host)
            return False
        if self._loopback_only and not is_loopback(origin_host):
            if forwarded:  # passed on by a node of this host that uses other interfaces
                logger.debug("discovery: %s (%r) ignored: this node uses loopback only",
                             origin_host, ann.name)
            else:
                self._drop("datagram from another host, but this node uses loopback only",
                           origin_host)
            return False
        if is_loopback(host) and not is_loopback(origin_host):
            self._drop("another host announces a loopback address", origin_host)
            return False
        try:
            self._on_peer(host, ann.tcp_ports[0], ann.incarnation, ann.name)
        except Exception:  # noqa: BLE001 - the node's callback must not stop discovery
            logger.exception("discovery: on_peer failed for %s (%r)", host, ann.name)
        return True

    def _is_unicast(self, dst: str) -> bool:
        ip = ipaddress.ip_address(dst)
        return not ip.is_multicast and dst not in self._bcasts

    def _fan_out(self, origin: SockAddr, data: bytes) -> None:
        """Give a unicast datagram to the other sockets sharing the port on this host."""
        if socket.AF_INET in self._socks:
            self._send(host_envelope(origin, data), (LOOPBACK_BROADCAST, self.udp_port))

    def _due(self, memory: dict[bytes, float], incarnation: bytes) -> bool:
        now = time.monotonic()
        last = memory.get(incarnation)
        if last is not None and now - last < REPLY_INTERVAL:
            return False
        if len(memory) >= _MAX_MEMORY:
            for key in [k for k, t in memory.items() if now - t >= REPLY_INTERVAL]:
                del memory[key]
            if len(memory) >= _MAX_MEMORY:
                memory.clear()
        memory[incarnation] = now
        return True

    def _reply(self, origin: SockAddr, incarnation: bytes) -> None:
        if self._due(self._replied, incarnation):
            self._send(self._datagram(AnnounceKind.ANNOUNCE, self._host_toward(origin)), origin)

    def _relay(self, origin: SockAddr, data: bytes, incarnation: bytes) -> None:
        if not (self._broadcast or self._multicast):
            logger.info("discovery: relay request from %s ignored: this node does not "
                        "broadcast", host_str(origin))
            return
        if len(origin) == 4 and ipaddress.ip_address(origin[0]).is_link_local:
            logger.info("discovery: relay request from link-local %s ignored",
                        host_str(origin))
            return
        if self._due(self._relayed, incarnation):
            envelope = relay_envelope(origin, data, self._relay_key)
            for _host, target, via in self._targets(list_interfaces()):
                self._send(envelope, target, via)

    # ------------------------------------------------------------------ drops
    def _drop(self, reason: str, src: str) -> None:
        self.dropped += 1
        # The kind of drop, without addresses or numbers in it: one warning per kind and
        # interval however many distinct origins (IPv4 or IPv6) send bad datagrams.
        key = re.sub(r"[0-9A-Fa-f]*[.:][0-9A-Fa-f.:%]+|\d+", "#", reason)
        if key not in self.drop_reasons and len(self.drop_reasons) >= 64:
            key = "other"
        self.drop_reasons[key] = self.drop_reasons.get(key, 0) + 1
        self._warn_once(key, "discovery: dropped a datagram from %s: %s", src, reason)

    def _warn_once(self, key: str, msg: str, *args: Any) -> None:
        """Log at warning level at most once per ``WARN_INTERVAL`` per key; else at debug."""
        now = time.monotonic()
        state = self._warned.get(key)
        if state is None and len(self._warned) >= 64:
            self._warned.clear()
        if state is None or now - state[0] >= WARN_INTERVAL:
            suppressed = int(state[1]) if state is not None else 0
            more = f" ({suppressed} more like it not shown)" if suppressed else ""
            logger.warning(msg + "%s", *args, more)
            self._warned[key] = [now, 0]
        else:
            state[1] += 1
            logger.debug(msg, *args)
