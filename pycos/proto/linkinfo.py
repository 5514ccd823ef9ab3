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


_SCOPE_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.")
_MAX_SCOPE = 32
_BROADCAST = ipaddress.IPv4Address("255.255.255.255")


def _check_name(name: str) -> str | None:
    """Why ``name`` is not a node name, or None."""
    if not 1 <= len(name.encode("utf-8", "surrogatepass")) <= 255 or not name.isprintable():
        return "the name must be 1..255 printable bytes"
    return None


def _check_addr(addr: str) -> tuple[str | None, str]:
    """(why ``addr`` is not an address a node can be reached at, or None; its canonical
    form). Only IP literals (a node info never causes a name lookup), unicast, with an
    optional short interface scope (``fe80::1%eth0``; dropped for IPv4)."""
    if not 1 <= len(addr) <= 64 or not addr.isascii():
        return "the address must be 1..64 ASCII characters", ""
    text, percent, scope = addr.partition("%")
    if percent and not (0 < len(scope) <= _MAX_SCOPE and _SCOPE_CHARS.issuperset(scope)):
        return "the address has a malformed scope id", ""
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return "the address is not an IP address", ""
    if ip.is_multicast or ip.is_unspecified or ip == _BROADCAST:
        return "the address is not a unicast address", ""
    return None, (f"{ip.compressed}%{scope}" if scope and ip.version == 6 else ip.compressed)


@dataclass(frozen=True, slots=True)
class LinkInfo:
    """Who a node is: its name, the address and TCP port peers reach it at, and whether it is
    hidden (not listed to others, not relayed)."""

    name: str
    addr: str
    port: int
    hidden: bool = False

    def encode(self) -> bytes:
        """The INFO payload (plain call).

        Raises:
            TypeError: a field has the wrong type.
            ValueError: a field is one that every peer's :meth:`decode` refuses (out of
                range, not printable, not a unicast IP literal).
        """
        for value, what, kind in ((self.name, "name", str), (self.addr, "address", str),
                                  (self.port, "port", int)):
            if not isinstance(value, kind) or isinstance(value, bool):
                raise TypeError(f"node info: the {what} must be a {kind.__name__}, not "
                                f"{type(value).__name__}")
        why = _check_name(self.name)
        if why is None:
            why = _check_addr(self.addr)[0]
        if why is not None:
            raise ValueError(f"node info: {why}")
        if not 1 <= self.port <= 65535:
            raise ValueError(f"node info: port {self.port} is out of range")
        name = self.name.encode("utf-8")
        addr = self.addr.encode("ascii")
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
        why = _check_name(name)
        if why is not None:
            raise RemoteProtocolError(f"node info: {why}")
        if not 1 <= port <= 65535:
            raise RemoteProtocolError(f"node info: port {port} is out of range")
        why, canonical = _check_addr(addr)
        if why is not None:
            raise RemoteProtocolError(f"node info: {why}")
        return cls(name, canonical, port, bool(flags & FLAG_HIDDEN))
