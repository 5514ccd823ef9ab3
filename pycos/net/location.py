"""Where a node runs (``Location``) and what peer-status messages say (``PeerStatus``).

Owns two small immutable value types of the distributed API and their wire form. Imports the
standard library and ``pycos.proto`` (to register the two types with the wire's codec).
A ``Location`` always holds a numeric address (host names are resolved once, when it is made), so
two Locations of the same node compare equal however the host was spelled, and a Location that
arrives from a peer (pickled) never triggers a name lookup.
"""

from __future__ import annotations

import ipaddress
import socket
from typing import Any, ClassVar

from ..proto import _w
from ..proto.wiretypes import register

__all__ = ["Location", "PeerStatus", "normalize_host", "location_from_address"]


def _literal(host: str) -> str | None:
    """The canonical text of an IP address literal, or None if ``host`` is not one."""
    text = host.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    addr, sep, scope = text.partition("%")
    try:
        ip = ipaddress.ip_address(addr)
    except ValueError:
        return None
    return f"{ip.compressed}%{scope}" if sep and ip.version == 6 else ip.compressed


def normalize_host(host: str) -> str:
    """Plain call: the numeric address of ``host`` (an IP literal, or a name to resolve).

    Names are resolved with ``getaddrinfo``; an IPv4 address is preferred when the name has
    both kinds.

    Raises:
        TypeError: ``host`` is not a str.
        ValueError: ``host`` is empty or cannot be resolved.
    """
    if not isinstance(host, str):
        raise TypeError(f"host must be a str (name or IP address), got {host!r}")
    if not host.strip():
        raise ValueError("host must not be empty")
    literal = _literal(host)
    if literal is not None:
        return literal
    try:
        infos = socket.getaddrinfo(host, None, 0, socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise ValueError(f"cannot resolve host {host!r}: {exc}") from None
    addrs = [str(info[4][0]) for info in infos if info[0] == socket.AF_INET]
    addrs += [str(info[4][0]) for info in infos if info[0] == socket.AF_INET6]
    if not addrs:
        raise ValueError(f"host {host!r} has no IPv4 or IPv6 address")
    return _literal(addrs[0]) or addrs[0]


def _check_state(state: Any) -> tuple[str, int]:
    if not (isinstance(state, tuple) and len(state) == 2 and isinstance(state[0], str)
            and isinstance(state[1], int) and not isinstance(state[1], bool)
            and 0 <= state[1] <= 65535):
        raise ValueError(f"invalid Location state {state!r}")
    addr = _literal(state[0])
    if addr is None:
        raise ValueError(f"a Location must hold an IP address, got {state[0]!r}")
    return addr, state[1]


def location_from_address(addr: str, port: int) -> Location:
    """Plain call: a Location from an IP address literal and a port, never resolving a name.

    Raises:
        ValueError: ``addr`` is not an IP address or ``port`` is outside 0..65535.
    """
    loc = Location.__new__(Location)
    loc.__setstate__((addr, port))
    return loc


LOCATION, PEERSTATUS = 52, 53


class Location:
    """Address and TCP port of a node: a hashable, immutable value.

    ``Location(host, tcp_port)`` accepts a host name or an IPv4/IPv6 address; names are resolved
    here (plain call, may block on DNS). ``addr`` / ``port`` are pycos's attribute names;
    ``host`` / ``tcp_port`` are the same values.

    ``tcp_port`` may also be given as a string of digits (``Location(host, '9705')``), as
    pycos programs sometimes do.

    Raises:
        TypeError: ``host`` is not a str or ``tcp_port`` not an int.
        ValueError: ``host`` cannot be resolved or ``tcp_port`` is outside 0..65535.
    """

    __slots__ = ("addr", "port")

    addr: str
    port: int

    def __init__(self, host: str, tcp_port: int | str) -> None:
        if isinstance(tcp_port, str) and tcp_port.strip().isdigit():
            tcp_port = int(tcp_port)
        if isinstance(tcp_port, bool) or not isinstance(tcp_port, int):
            raise TypeError(f"tcp_port must be an int, got {tcp_port!r}")
        if not 0 <= tcp_port <= 65535:
            raise ValueError(f"tcp_port must be in 0..65535, got {tcp_port}")
        object.__setattr__(self, "addr", normalize_host(host))
        object.__setattr__(self, "port", int(tcp_port))

    @property
    def host(self) -> str:
        """The numeric address (same as ``addr``)."""
        return self.addr

    @property
    def tcp_port(self) -> int:
        """The TCP port (same as ``port``)."""
        return self.port

    @property
    def family(self) -> int:
        """``socket.AF_INET6`` for an IPv6 address, else ``socket.AF_INET``."""
        return socket.AF_INET6 if ":" in self.addr else socket.AF_INET

    def sockaddr(self) -> tuple[str, int]:
        """Plain call: ``(addr, port)`` for ``socket.connect``."""
        return (self.addr, self.port)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("Location is immutable")

    def __delattr__(self, name: str) -> None:
        raise AttributeError("Location is immutable")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Location):
            return NotImplemented
        return self.port == other.port and self.addr == other.addr

    def __lt__(self, other: Location) -> bool:
        if not isinstance(other, Location):
            return NotImplemented
        return (self.addr, self.port) < (other.addr, other.port)

    def __hash__(self) -> int:
        return hash((self.addr, self.port))

    def __repr__(self) -> str:
        if ":" in self.addr:
            return f"[{self.addr}]:{self.port}"
        return f"{self.addr}:{self.port}"

    # Sent as (addr, port) and rebuilt without calling __init__: a Location arriving from a
    # peer never causes a name lookup, and a host that is not an address is refused.
    def __reduce__(self) -> tuple[Any, ...]:
        return (_w.o, (LOCATION, self.addr, self.port))

    def __getstate__(self) -> tuple[str, int]:
        return (self.addr, self.port)

    def __setstate__(self, state: Any) -> None:
        addr, port = _check_state(state)
        object.__setattr__(self, "addr", addr)
        object.__setattr__(self, "port", port)


class PeerStatus:
    """A peer-status message, sent to the tasks registered with ``node.peer_status(task)``.

    Attributes:
        location: the peer's ``Location``.
        name: the peer's node name.
        status: ``PeerStatus.Online`` (1) or ``PeerStatus.Offline`` (0).
    """

    __slots__ = ("location", "name", "status")

    Online: ClassVar[int] = 1
    Offline: ClassVar[int] = 0

    location: Location
    name: str
    status: int

    def __init__(self, location: Location, name: str, status: int) -> None:
        if status not in (PeerStatus.Online, PeerStatus.Offline):
            raise ValueError(f"status must be PeerStatus.Online or PeerStatus.Offline, "
                             f"got {status!r}")
        object.__setattr__(self, "location", location)
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "status", status)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("PeerStatus is immutable")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PeerStatus):
            return NotImplemented
        return (self.location, self.name, self.status) == (other.location, other.name,
                                                           other.status)

    def __hash__(self) -> int:
        return hash((self.location, self.name, self.status))

    def __repr__(self) -> str:
        state = "Online" if self.status == PeerStatus.Online else "Offline"
        return f"PeerStatus({self.location!r}, {self.name!r}, {state})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (_w.o, (PEERSTATUS, self.location, self.name, self.status))

    def __getstate__(self) -> tuple[Location, str, int]:
        return (self.location, self.name, self.status)

    def __setstate__(self, state: Any) -> None:
        if not (isinstance(state, tuple) and len(state) == 3 and isinstance(state[0], Location)
                and isinstance(state[1], str) and state[2] in (0, 1)):
            raise ValueError(f"invalid PeerStatus state {state!r}")
        object.__setattr__(self, "location", state[0])
        object.__setattr__(self, "name", state[1])
        object.__setattr__(self, "status", state[2])


def _build_peer_status(location: Any, name: Any, status: Any) -> PeerStatus:
    status_obj = PeerStatus.__new__(PeerStatus)
    status_obj.__setstate__((location, name, status))
    return status_obj


register(LOCATION, Location, lambda loc: (loc.addr, loc.port), location_from_address)
register(PEERSTATUS, PeerStatus, lambda s: (s.location, s.name, s.status), _build_peer_status)
