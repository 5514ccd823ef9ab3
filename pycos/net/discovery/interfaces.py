"""Network interfaces of this machine, and the addresses a node uses.

Owns :class:`Interface`, :func:`list_interfaces` and :func:`choose_addresses`. Imports only the
standard library (``psutil`` is used when installed, and only on systems other than Linux).

On Linux, IPv4 addresses come from the ``SIOCGIFCONF`` ioctl (one entry per address label,
aliases included) with ``SIOCGIFFLAGS`` / ``SIOCGIFNETMASK`` / ``SIOCGIFBRDADDR`` per entry, and
IPv6 addresses from ``/proc/net/if_inet6``. Elsewhere ``psutil`` is used if present, else the
addresses the host name resolves to (without broadcast information).

Invariant of :func:`choose_addresses`: it returns a loopback address only when the caller asked
for one (``host`` is a loopback address or ``localhost``) or when the machine has no other
usable interface, and then it warns. It always logs the addresses it chose.
"""

from __future__ import annotations

import array
import ipaddress
import logging
import socket
import struct
import sys
from dataclasses import dataclass

__all__ = ["Interface", "list_interfaces", "choose_addresses", "is_loopback", "interface_of"]

logger = logging.getLogger(__name__)

_SIOCGIFFLAGS = 0x8913
_SIOCGIFCONF = 0x8912
_SIOCGIFBRDADDR = 0x8919
_SIOCGIFNETMASK = 0x891B
_IFF_UP = 0x1
_IFF_BROADCAST = 0x2
_IFF_LOOPBACK = 0x8
_IFF_RUNNING = 0x40
_IFF_MULTICAST = 0x1000
_IFNAMSIZ = 16
# struct ifreq: the name, then a union whose largest member is struct ifmap.
_IFREQ_SIZE = _IFNAMSIZ + struct.calcsize("@LLHBBB0L")
_MAX_IFCONF = 512
# /proc/net/if_inet6 address flags that make an address unusable.
_IFA_F_DADFAILED = 0x08
_IFA_F_TENTATIVE = 0x40
_LOCALHOST_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"}


@dataclass(frozen=True, slots=True)
class Interface:
    """One address of one network interface.

    Attributes:
        name: interface name (an IPv4 alias keeps its label, e.g. ``eth0:1``).
        index: interface index (``socket.if_nametoindex``); 0 when unknown.
        address: the address; IPv6 link-local addresses carry ``%name``.
        prefixlen: network prefix length.
        broadcast: IPv4 broadcast address, or None (IPv6, point-to-point, unknown).
        up, running, loopback, multicast: interface flags.
    """

    name: str
    index: int
    address: str
    prefixlen: int
    broadcast: str | None
    up: bool = True
    running: bool = True
    loopback: bool = False
    multicast: bool = True

    @property
    def family(self) -> socket.AddressFamily:
        """``AF_INET`` or ``AF_INET6``."""
        return socket.AF_INET6 if ":" in self.address else socket.AF_INET

    @property
    def link_local(self) -> bool:
        """True for IPv6 link-local (fe80::/10) and IPv4 169.254/16 addresses."""
        return _ip(self.address).is_link_local


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    return ipaddress.ip_address(text.partition("%")[0])


def is_loopback(address: str) -> bool:
    """Plain call: True when ``address`` (an IP literal) is a loopback address."""
    try:
        ip = _ip(address)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped.is_loopback
    return ip.is_loopback


def interface_of(address: str, interfaces: list[Interface] | None = None) -> Interface | None:
    """Plain call: the interface entry holding ``address``, or None."""
    try:
        wanted = _ip(address)
    except ValueError:
        return None
    for iface in interfaces if interfaces is not None else list_interfaces():
        if _ip(iface.address) == wanted:
            return iface
    return None


# ---------------------------------------------------------------------- reading interfaces
def _ifreq(sock: socket.socket, request: int, name: bytes) -> bytes:
    import fcntl

    return fcntl.ioctl(sock.fileno(), request, struct.pack(f"{_IFREQ_SIZE}s", name))


def _ioctl_addr(sock: socket.socket, request: int, name: bytes) -> str | None:
    try:
        raw = _ifreq(sock, request, name)
    except OSError:
        return None
    return socket.inet_ntoa(raw[_IFNAMSIZ + 4 : _IFNAMSIZ + 8])


def _flags(sock: socket.socket, name: str) -> int:
    try:
        raw = _ifreq(sock, _SIOCGIFFLAGS, name.encode())
    except OSError:
        return 0
    return int(struct.unpack_from("H", raw, _IFNAMSIZ)[0])


def _index(name: str) -> int:
    try:
        return socket.if_nametoindex(name.partition(":")[0])
    except OSError:
        return 0


def _make(name: str, address: str, prefixlen: int, broadcast: str | None,
          flags: int) -> Interface:
    return Interface(name, _index(name), address, prefixlen, broadcast,
                     up=bool(flags & _IFF_UP), running=bool(flags & _IFF_RUNNING),
                     loopback=bool(flags & _IFF_LOOPBACK),
                     multicast=bool(flags & _IFF_MULTICAST))


def _ipv4_linux(sock: socket.socket) -> list[Interface]:
    import fcntl

    buf = array.array("B", bytes(_IFREQ_SIZE * _MAX_IFCONF))
    ifconf = struct.pack("iP", len(buf), buf.buffer_info()[0])
    used = struct.unpack("iP", fcntl.ioctl(sock.fileno(), _SIOCGIFCONF, ifconf))[0]
    raw = buf.tobytes()[:used]
    found = []
    for offset in range(0, used, _IFREQ_SIZE):
        name_b = raw[offset : offset + _IFNAMSIZ].split(b"\0", 1)[0]
        address = socket.inet_ntoa(raw[offset + _IFNAMSIZ + 4 : offset + _IFNAMSIZ + 8])
        name = name_b.decode(errors="replace")
        flags = _flags(sock, name)
        mask = _ioctl_addr(sock, _SIOCGIFNETMASK, name_b) or "255.255.255.255"
        prefixlen = ipaddress.IPv4Network(f"0.0.0.0/{mask}").prefixlen
        bcast = _ioctl_addr(sock, _SIOCGIFBRDADDR, name_b) if flags & _IFF_BROADCAST else None
        if bcast == "0.0.0.0":
            bcast = None
        found.append(_make(name, address, prefixlen, bcast, flags))
    return found


def _ipv6_linux(sock: socket.socket) -> list[Interface]:
    try:
        with open("/proc/net/if_inet6", encoding="ascii") as fh:
            lines = fh.read().splitlines()
    except OSError:
        return []
    found = []
    for line in lines:
        fields = line.split()
        if len(fields) != 6:
            continue
        hexaddr, _index_hex, plen_hex, _scope, aflags_hex, name = fields
        if int(aflags_hex, 16) & (_IFA_F_TENTATIVE | _IFA_F_DADFAILED):
            continue
        text = str(ipaddress.IPv6Address(bytes.fromhex(hexaddr)))
        if ipaddress.IPv6Address(text).is_link_local:
            text = f"{text}%{name}"
        found.append(_make(name, text, int(plen_hex, 16), None, _flags(sock, name)))
    return found


def _from_psutil() -> list[Interface] | None:
    try:
        import psutil
    except ImportError:
        return None
    stats = psutil.net_if_stats()
    found = []
    for name, addrs in psutil.net_if_addrs().items():
        st = stats.get(name)
        for a in addrs:
            if a.family not in (socket.AF_INET, socket.AF_INET6) or not a.netmask:
                continue
            address = a.address if "%" in a.address or a.family == socket.AF_INET else (
                f"{a.address}%{name}" if _ip(a.address).is_link_local else a.address)
            plen = ipaddress.ip_network(f"{_ip(address)}/{a.netmask}", strict=False).prefixlen
            flags = (_IFF_UP | _IFF_RUNNING | _IFF_MULTICAST) if st is None or st.isup else 0
            if _ip(address).is_loopback:
                flags = (flags | _IFF_LOOPBACK) & ~_IFF_MULTICAST
            found.append(_make(name, address, plen, a.broadcast or None, flags))
    return found


def _from_hostname() -> list[Interface]:
    found = [Interface("lo", _index("lo"), "127.0.0.1", 8, None, loopback=True,
                       multicast=False)]
    try:
        infos = socket.getaddrinfo(socket.gethostname(), None, type=socket.SOCK_DGRAM)
    except OSError:
        return found
    for family, _t, _p, _c, sockaddr in infos:
        address = str(sockaddr[0])
        if not is_loopback(address):
            plen = 32 if family == socket.AF_INET else 128
            found.append(Interface("?", 0, address, plen, None))
    return found


def list_interfaces() -> list[Interface]:
    """Plain call: every IPv4 and IPv6 address of every interface, read afresh.

    IPv4 entries come first. Addresses still being checked for duplicates (IPv6 tentative) are
    left out.
    """
    if sys.platform.startswith("linux"):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            try:
                return _ipv4_linux(sock) + _ipv6_linux(sock)
            except OSError as exc:
                logger.warning("cannot read network interfaces (%s); using the host name", exc)
                return _from_hostname()
    return _from_psutil() or _from_hostname()


# ---------------------------------------------------------------------- choosing addresses
def _usable(interfaces: list[Interface], family: int) -> list[str]:
    """Non-loopback addresses of ``family`` on interfaces that are up, running ones first and
    link-local IPv6 ones last."""
    cands = [i for i in interfaces if i.family == family and i.up and not i.loopback
             and not (family == socket.AF_INET and i.link_local)]
    cands.sort(key=lambda i: (not i.running, i.link_local))
    out: list[str] = []
    for i in cands:
        if i.address not in out:
            out.append(i.address)
    return out


def _all_addresses(interfaces: list[Interface], why: str) -> list[str]:
    chosen = _usable(interfaces, socket.AF_INET) or _usable(interfaces, socket.AF_INET6)
    if chosen:
        logger.info("node addresses (%s): %s", why, ", ".join(chosen))
        return chosen
    logger.warning("no network interface other than loopback is up; this node uses 127.0.0.1 "
                   "and only processes on this machine can reach it")
    return ["127.0.0.1"]


def _is_local(address: str, interfaces: list[Interface]) -> bool:
    if interface_of(address, interfaces) is not None or is_loopback(address):
        return True
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as probe:
            probe.bind((address, 0))
    except OSError:
        return False
    return True


def _resolve(host: str) -> list[str]:
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_DGRAM)
    except socket.gaierror as exc:
        raise ValueError(f"host {host!r} cannot be resolved: {exc}") from None
    out: list[str] = []
    for family, _t, _p, _c, sockaddr in sorted(infos, key=lambda i: i[0] != socket.AF_INET):
        address = str(sockaddr[0])
        if family == socket.AF_INET6 and len(sockaddr) > 3 and sockaddr[3] and "%" not in address:
            address = f"{address}%{socket.if_indextoname(int(sockaddr[3]))}"
        if address not in out:
            out.append(address)
    return out


def choose_addresses(host: str | None, interfaces: list[Interface] | None = None) -> list[str]:
    """Plain call: the addresses a node binds to and announces itself on.

    Args:
        host: None or ``""`` (every usable IPv4 interface; IPv6 ones if there is no IPv4),
            ``"0.0.0.0"`` / ``"::"`` (every usable interface of that family), an address of
            this machine (exactly that one; a loopback address is honoured since it was asked
            for), or a host name (its addresses that belong to this machine; a name that
            resolves only to loopback, such as a host name mapped to 127.0.1.1, but is not
            ``localhost`` is taken to mean "reachable" and gives the interface addresses, with
            a warning).
        interfaces: the interface list to choose from (default: :func:`list_interfaces`).

    Returns:
        A non-empty list of addresses, IPv4 first; IPv6 link-local ones carry ``%ifname``.

    Raises:
        TypeError: ``host`` is not a str or None.
        ValueError: ``host`` cannot be resolved, or is not an address of this machine.
    """
    if host is not None and not isinstance(host, str):
        raise TypeError(f"host must be a str (address or name) or None, not {type(host).__name__}")
    ifaces = list_interfaces() if interfaces is None else interfaces
    text = (host or "").strip().strip("[]")
    if not text:
        return _all_addresses(ifaces, "all interfaces")
    if text in ("0.0.0.0", "::"):
        family = socket.AF_INET if text == "0.0.0.0" else socket.AF_INET6
        chosen = _usable(ifaces, family)
        if not chosen:
            return _all_addresses(ifaces, f"no {text} interface, so any")
        logger.info("node addresses (every interface for %s): %s", text, ", ".join(chosen))
        return chosen
    resolved = _resolve(text)
    local = [a for a in resolved if _is_local(a, ifaces)]
    if not local:
        raise ValueError(f"host {host!r} ({', '.join(resolved)}) is not an address of this "
                         f"machine; its addresses are: "
                         f"{', '.join(i.address for i in ifaces) or 'none'}")
    if all(is_loopback(a) for a in local) and not _is_loopback_request(text):
        logger.warning("host %r resolves only to the loopback address %s; using the interface "
                       "addresses instead so other machines can reach this node", host, local[0])
        return _all_addresses(ifaces, f"instead of loopback for {host!r}")
    logger.info("node addresses (host %r): %s", host, ", ".join(local))
    return local


def _is_loopback_request(text: str) -> bool:
    return text.lower() in _LOCALHOST_NAMES or is_loopback(text)
