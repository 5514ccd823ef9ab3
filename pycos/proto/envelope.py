"""Discovery envelopes: how a node passes on another node's announcement.

Owns the two envelopes' layout, encoders and parsers. Imports only the standard library,
``pycos.errors`` and its own package. Envelopes are fixed binary, never pickled; every
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
import struct
from typing import Any

from ..errors import RemoteProtocolError
from ..proto.announce import MAX_ANNOUNCEMENT_SIZE
from ..proto.auth import digest_equal, hkdf, mac

__all__ = ["HOST_MAGIC", "RELAY_MAGIC", "MAX_DATAGRAM", "SockAddr", "relay_key",
           "host_envelope", "relay_envelope", "open_host", "open_relay"]

#: First bytes of a host envelope (loopback only, no HMAC).
HOST_MAGIC = b"\xa7pch"
#: First bytes of a relay envelope (HMAC keyed by the secret).
RELAY_MAGIC = b"\xa7pcr"
_VERSION = 1
_HEADER = struct.Struct(">4sBBH16sI")
_MAC_SIZE = 32
#: The largest datagram discovery accepts (a relay envelope around the largest announcement).
MAX_DATAGRAM = _HEADER.size + MAX_ANNOUNCEMENT_SIZE + _MAC_SIZE

SockAddr = tuple[Any, ...]


def relay_key(secret: bytes) -> bytes:
    """The HMAC key of relay envelopes for ``secret`` (plain call)."""
    return hkdf(secret, b"pycos/discovery", b"relay")


def _header(magic: bytes, origin: SockAddr) -> bytes:
    if len(origin) == 4:
        raw, family, scope = ipaddress.IPv6Address(origin[0]).packed, 6, origin[3]
    else:
        raw, family, scope = ipaddress.IPv4Address(origin[0]).packed + bytes(12), 4, 0
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
    return _parse(data, HOST_MAGIC)


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
    return _parse(body, RELAY_MAGIC)


def _parse(data: bytes, expected: bytes) -> tuple[SockAddr, bytes]:
    if len(data) <= _HEADER.size:
        raise RemoteProtocolError("forwarded announcement is truncated")
    magic, version, family, port, raw, scope = _HEADER.unpack_from(data)
    if magic != expected:
        kind = "host" if expected == HOST_MAGIC else "relay"
        raise RemoteProtocolError(f"forwarded announcement is not a {kind} envelope "
                                  "(wrong magic)")
    if version != _VERSION:
        raise RemoteProtocolError(f"forward envelope version {version} is not supported")
    if port == 0 or family not in (4, 6) or (family == 4 and (any(raw[4:]) or scope)):
        raise RemoteProtocolError("forwarded announcement has a malformed origin")
    ip = ipaddress.ip_address(raw[:4] if family == 4 else raw)
    if ip.is_multicast or ip.is_unspecified:
        raise RemoteProtocolError(f"forwarded announcement names origin {ip}, which is not "
                                  "a node's address")
    if family == 4:
        return (str(ip), port), data[_HEADER.size :]
    return (str(ip), port, 0, scope), data[_HEADER.size :]
