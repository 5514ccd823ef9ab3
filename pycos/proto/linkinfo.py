"""The link exchange: what a node says about itself on a new connection (the INFO message).

Owns ``LinkInfo`` and its fixed binary layout (never a codec payload, so nothing a peer sends
here is decoded by the general decoder). Imports only the standard library and
``pycos.errors``. After the handshake each side sends one INFO; the node with the smaller
incarnation id (the *arbiter*) then sends a VERDICT saying whether this connection becomes the
pair's one link (``pycos.net.link``); a client may instead send STREAM to turn the connection
into a dedicated stream. Layout (big-endian)::

    version u8 (1), flags u8 (bit 0: hidden node), port u16,
    name  : length u8 (1..255), UTF-8
    addr  : length u8 (1..64), ASCII IP address literal
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass

from ..errors import RemoteProtocolError

__all__ = ["LinkInfo", "FLAG_HIDDEN"]

_HEAD = struct.Struct(">BBH")
_VERSION = 1
FLAG_HIDDEN = 0x01


@dataclass(frozen=True, slots=True)
class LinkInfo:
    """Who a node is: its name, the address and TCP port peers reach it at, and whether it is
    hidden (not listed to others, not relayed)."""

    name: str
    addr: str
    port: int
    hidden: bool = False

    def encode(self) -> bytes:
        """The INFO payload (plain call); ValueError if a field is out of range."""
        name = self.name.encode("utf-8")
        addr = self.addr.encode("ascii")
        if not 1 <= len(name) <= 255 or not 1 <= len(addr) <= 64:
            raise ValueError("node name must be 1..255 UTF-8 bytes and address 1..64 bytes")
        if not 1 <= self.port <= 65535:
            raise ValueError(f"port {self.port} is out of range")
        flags = FLAG_HIDDEN if self.hidden else 0
        return (_HEAD.pack(_VERSION, flags, self.port) + bytes([len(name)]) + name
                + bytes([len(addr)]) + addr)

    @classmethod
    def decode(cls, data: bytes | memoryview) -> LinkInfo:
        """Parse an INFO payload (plain call).

        Raises:
            RemoteProtocolError: malformed, or a field out of range (the address must be an
                IP address literal: a peer's INFO never causes a name lookup).
        """
        data = bytes(data)
        try:
            version, flags, port = _HEAD.unpack_from(data, 0)
            pos = _HEAD.size
            n = data[pos]
            name = bytes(data[pos + 1:pos + 1 + n]).decode("utf-8")
            pos += 1 + n
            m = data[pos]
            addr = bytes(data[pos + 1:pos + 1 + m]).decode("ascii")
            pos += 1 + m
        except (struct.error, IndexError, UnicodeDecodeError):
            raise RemoteProtocolError("malformed node info") from None
        if version != _VERSION or flags & ~FLAG_HIDDEN or pos != len(data):
            raise RemoteProtocolError("malformed node info (version, flags or length)")
        if not 1 <= len(name.encode("utf-8")) <= 255 or not name.isprintable():
            raise RemoteProtocolError("node info: the name must be 1..255 printable bytes")
        if not 1 <= port <= 65535:
            raise RemoteProtocolError(f"node info: port {port} is out of range")
        text, _, scope = addr.partition("%")
        try:
            ip = ipaddress.ip_address(text)
        except ValueError:
            raise RemoteProtocolError("node info: the address is not an IP address") from None
        if ip.is_multicast or ip.is_unspecified:
            raise RemoteProtocolError("node info: the address is not a unicast address")
        canonical = f"{ip.compressed}%{scope}" if scope and ip.version == 6 else ip.compressed
        return cls(name, canonical, port, bool(flags & FLAG_HIDDEN))
