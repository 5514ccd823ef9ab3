"""Discovery envelopes and socket-address helpers (private to ``pycos.net.discovery``).

Owns the two envelopes in which a node passes on another node's announcement, and small
helpers for UDP socket addresses and ``*_PKTINFO`` ancillary data. Imports only the standard
library, ``pycos.errors`` and ``pycos.proto``. Envelopes are fixed binary, never pickled; every
malformed one is a ``RemoteProtocolError``.

* A *host envelope* passes a datagram received by unicast to the other nodes sharing the UDP
  port on this host (broadcast on loopback). It has no HMAC: it is accepted only from a
  loopback source, and it may carry a datagram for a node with another secret.
* A *relay envelope* carries a contacter's ``RELAY`` announcement onto the relaying node's
  networks, with an HMAC keyed by ``HKDF(secret, salt=b"pycos/discovery", label=b"relay")``.

Layout (big-endian), then the enclosed datagram, then (relay only) a 32-byte HMAC-SHA256 over
all preceding bytes::

    offset size field
    0      4    magic      b"\\xa7pch" (host) or b"\\xa7pcr" (relay)
    4      1    version    1
    5      1    family     4 or 6
    6      2    port       the origin's UDP port (1..65535)
    8      16   address    the origin's address (IPv4: first 4 bytes, rest zero)
    24     4    scope      IPv6 scope id of the origin (0 for IPv4)

The origin must be a unicast address (not multicast, not unspecified).
"""

from __future__ import annotations

import ipaddress
import socket
import struct
import sys
from typing import Any

from ..errors import RemoteProtocolError
from ..proto.announce import MAX_ANNOUNCEMENT_SIZE
from ..proto.auth import digest_equal, hkdf, mac

__all__ = ["HOST_MAGIC", "RELAY_MAGIC", "MAX_DATAGRAM", "SockAddr", "relay_key",
           "host_envelope", "relay_envelope", "open_host", "open_relay", "host_str",
           "sockaddr", "destination", "IP_PKTINFO", "ANC_SIZE"]

#: First bytes of a host envelope (loopback only, no HMAC).
HOST_MAGIC = b"\xa7pch"
#: First bytes of a relay envelope (HMAC keyed by the secret).
RELAY_MAGIC = b"\xa7pcr"
_VERSION = 1
_HEADER = struct.Struct(">4sBBH16sI")
_MAC_SIZE = 32
#: The largest datagram discovery accepts (a relay envelope around the largest announcement).
MAX_DATAGRAM = _HEADER.size + MAX_ANNOUNCEMENT_SIZE + _MAC_SIZE
#: ``IP_PKTINFO`` (missing from the ``socket`` module of some Python versions).
IP_PKTINFO = getattr(socket, "IP_PKTINFO", 8 if sys.platform.startswith("linux") else None)
#: Ancillary buffer size for one IPv4 or IPv6 packet-info record.
ANC_SIZE = socket.CMSG_SPACE(20) * 2

SockAddr = tuple[Any, ...]


def relay_key(secret: bytes) -> bytes:
    """The HMAC key of relay envelopes for ``secret`` (plain call)."""
    return hkdf(secret, b"pycos/discovery", b"relay")


def _header(magic: bytes, origin: SockAddr) -> bytes:
    if len(origin) == 4:
        raw, family, scope = socket.inet_pton(socket.AF_INET6, origin[0]), 6, origin[3]
    else:
        raw, family, scope = socket.inet_aton(origin[0]) + bytes(12), 4, 0
    return _HEADER.pack(magic, _VERSION, family, origin[1], raw, scope)


def host_envelope(origin: SockAddr, data: bytes) -> bytes:
    """``data`` in a host envelope naming ``origin`` (plain call)."""
    return _header(HOST_MAGIC, origin) + data


def relay_envelope(origin: SockAddr, data: bytes, key: bytes) -> bytes:
    """``data`` in a relay envelope naming ``origin``, authenticated with ``key``."""
    body = _header(RELAY_MAGIC, origin) + data
    return body + mac(key, body)


def open_host(data: bytes) -> tuple[SockAddr, bytes]:
    """(origin, enclosed datagram) of a host envelope (plain call).

    Raises:
        RemoteProtocolError: the envelope is truncated or malformed.
    """
    return _parse(data)


def open_relay(data: bytes, key: bytes) -> tuple[SockAddr, bytes]:
    """(origin, enclosed datagram) of a relay envelope, once its HMAC is checked.

    Raises:
        RemoteProtocolError: truncated, wrong HMAC (another secret) or malformed.
    """
    if len(data) <= _HEADER.size + _MAC_SIZE:
        raise RemoteProtocolError("relayed announcement is truncated")
    body, tag = data[:-_MAC_SIZE], data[-_MAC_SIZE:]
    if not digest_equal(mac(key, body), tag):
        raise RemoteProtocolError("relayed announcement HMAC does not verify "
                                  "(different secret?)")
    return _parse(body)


def _parse(data: bytes) -> tuple[SockAddr, bytes]:
    if len(data) <= _HEADER.size:
        raise RemoteProtocolError("forwarded announcement is truncated")
    _magic, version, family, port, raw, scope = _HEADER.unpack_from(data)
    if version != _VERSION:
        raise RemoteProtocolError(f"forward envelope version {version} is not supported")
    if port == 0 or family not in (4, 6) or (family == 4 and any(raw[4:])):
        raise RemoteProtocolError("forwarded announcement has a malformed origin")
    ip = ipaddress.ip_address(raw[:4] if family == 4 else raw)
    if ip.is_multicast or ip.is_unspecified:
        raise RemoteProtocolError(f"forwarded announcement names origin {ip}, which is not "
                                  "a node's address")
    if family == 4:
        return (str(ip), port), data[_HEADER.size :]
    return (str(ip), port, 0, scope), data[_HEADER.size :]


def host_str(addr: SockAddr) -> str:
    """The address of a socket address as text; IPv6 link-local ones get ``%ifname``."""
    host = str(addr[0])
    if len(addr) > 3 and addr[3] and "%" not in host:
        try:
            host = f"{host}%{socket.if_indextoname(int(addr[3]))}"
        except OSError:
            host = f"{host}%{addr[3]}"
    return host


def sockaddr(host: str, port: int) -> tuple[int, SockAddr]:
    """(family, socket address) of an IP literal (``%scope`` allowed for IPv6)."""
    addr, _, scope = host.partition("%")
    ip = ipaddress.ip_address(addr)
    if ip.version == 4:
        return socket.AF_INET, (str(ip), port)
    index = 0
    if scope:
        index = int(scope) if scope.isdigit() else socket.if_nametoindex(scope)
    return socket.AF_INET6, (str(ip), port, 0, index)


def destination(anc: list[Any]) -> str | None:
    """The destination address of a datagram, from its ``*_PKTINFO`` ancillary data."""
    for level, kind, data in anc:
        if level == socket.IPPROTO_IP and kind == IP_PKTINFO and len(data) >= 12:
            return socket.inet_ntop(socket.AF_INET, data[8:12])
        if level == socket.IPPROTO_IPV6 and kind == socket.IPV6_PKTINFO and len(data) >= 16:
            return socket.inet_ntop(socket.AF_INET6, data[:16])
    return None
