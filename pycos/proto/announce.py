"""Discovery datagrams: a fixed binary format authenticated by an HMAC keyed by the secret.

Owns :class:`Announcement` and its codec. Imports only the standard library and
``pycos.proto``. Announcements are never pickled. :func:`decode_announcement` checks the size,
magic and version, then the HMAC, and only then parses the fields; any failure is a
:class:`RemoteProtocolError` (the node drops the datagram and counts it).

Layout (big-endian)::

    offset size field
    0      4    magic        b"\\xa7pca"
    4      1    min_version  lowest protocol version the sender speaks
    5      1    max_version  highest protocol version the sender speaks
    6      1    kind         AnnounceKind
    7      1    reserved     must be 0
    8      16   incarnation  the sender's incarnation id
    24     1    name_len     1..255
    25     N    name         UTF-8
    .      1    host_len     0..255 (0: use the datagram's source address)
    .      H    host         UTF-8 address or name to connect to (``ext_host`` behind NAT)
    .      1    port_count   1..8
    .      2*P  tcp ports    u16 each, 1..65535
    .      32   hmac         HMAC-SHA256(key, every preceding byte)

``key = HKDF(secret, salt=b"pycos/announce", label=b"announce")`` so it is never the key of a
connection proof. A replayed announcement can at most make a node try to connect to the
announced address, where the handshake's fresh nonces decide.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass

from ..errors import RemoteProtocolError
from .auth import INCARNATION_SIZE, digest_equal, hkdf, mac
from .frame import MAC_SIZE, SUPPORTED_VERSIONS

__all__ = ["Announcement", "AnnounceKind", "encode_announcement", "decode_announcement",
           "ANNOUNCE_MAGIC", "MAX_ANNOUNCEMENT_SIZE", "MAX_PORTS"]

ANNOUNCE_MAGIC = b"\xa7pca"
MAX_ANNOUNCEMENT_SIZE = 1024
MAX_PORTS = 8
_FIXED = struct.Struct(">4sBBBB16s")
_MIN_SIZE = _FIXED.size + 2 + 1 + 1 + 2 + MAC_SIZE  # a one-byte name, no host, one port


class AnnounceKind(enum.IntEnum):
    """What the sender asks of the receiver."""

    #: "I am here" (periodic or start-up broadcast / multicast).
    ANNOUNCE = 1
    #: Unicast to one node: "please connect to me" (``peer(host)`` across subnets).
    PEER = 2
    #: Unicast to one node: "please connect to me and announce me on your network".
    RELAY = 3


@dataclass(frozen=True, slots=True)
class Announcement:
    """The content of a discovery datagram."""

    name: str
    incarnation: bytes
    tcp_ports: tuple[int, ...]
    host: str = ""
    kind: AnnounceKind = AnnounceKind.ANNOUNCE
    min_version: int = SUPPORTED_VERSIONS[0]
    max_version: int = SUPPORTED_VERSIONS[1]


def _key(secret: str | bytes) -> bytes:
    if isinstance(secret, str):
        secret = secret.encode("utf-8")
    if not isinstance(secret, bytes):
        raise TypeError(f"secret must be str or bytes, not {type(secret).__name__}")
    return hkdf(secret, b"pycos/announce", b"announce")


def _short_text(text: object, what: str, min_len: int) -> bytes:
    if not isinstance(text, str):
        raise TypeError(f"{what} must be a str, not {type(text).__name__}")
    raw = text.encode("utf-8")
    if not min_len <= len(raw) <= 255:
        raise ValueError(f"{what} must be {min_len}..255 UTF-8 bytes, got {len(raw)}")
    return bytes([len(raw)]) + raw


def encode_announcement(ann: Announcement, secret: str | bytes) -> bytes:
    """The datagram for ``ann``, authenticated with ``secret`` (plain call).

    Raises:
        TypeError, ValueError: a field does not fit the format.
    """
    if not isinstance(ann.incarnation, bytes) or len(ann.incarnation) != INCARNATION_SIZE:
        raise ValueError(f"incarnation must be {INCARNATION_SIZE} bytes")
    ports = tuple(ann.tcp_ports)
    if not 1 <= len(ports) <= MAX_PORTS:
        raise ValueError(f"an announcement carries 1..{MAX_PORTS} tcp ports, got {len(ports)}")
    for port in ports:
        if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
            raise ValueError(f"tcp port must be an int in 1..65535, got {port!r}")
    if not 1 <= ann.min_version <= ann.max_version <= 255:
        raise ValueError(f"invalid version range {ann.min_version}..{ann.max_version}")
    data = (_FIXED.pack(ANNOUNCE_MAGIC, ann.min_version, ann.max_version,
                        AnnounceKind(ann.kind), 0, ann.incarnation)
            + _short_text(ann.name, "name", 1) + _short_text(ann.host, "host", 0)
            + bytes([len(ports)]) + struct.pack(f">{len(ports)}H", *ports))
    return data + mac(_key(secret), data)


def decode_announcement(data: bytes, secret: str | bytes) -> Announcement:
    """Check and parse a received datagram (plain call).

    Raises:
        RemoteProtocolError: wrong size or magic, no common protocol version (the message says
            which versions), a bad HMAC (different secret or altered), or malformed fields.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise TypeError(f"data must be bytes, not {type(data).__name__}")
    data = bytes(data)
    if not _MIN_SIZE <= len(data) <= MAX_ANNOUNCEMENT_SIZE:
        raise RemoteProtocolError(f"announcement of {len(data)} bytes has an impossible size")
    magic, lo, hi, kind, reserved, incarnation = _FIXED.unpack_from(data)
    if magic != ANNOUNCE_MAGIC:
        raise RemoteProtocolError("not a pycos announcement (bad magic bytes)")
    ours = SUPPORTED_VERSIONS
    if max(lo, ours[0]) > min(hi, ours[1]):
        raise RemoteProtocolError(
            f"announcement speaks protocol versions {lo}..{hi}, this node {ours[0]}..{ours[1]}")
    body, tag = data[:-MAC_SIZE], data[-MAC_SIZE:]
    if not digest_equal(mac(_key(secret), body), tag):
        raise RemoteProtocolError("announcement HMAC does not verify (different secret?)")
    if reserved:
        raise RemoteProtocolError("announcement reserved byte is not zero")
    try:
        kind = AnnounceKind(kind)
    except ValueError:
        raise RemoteProtocolError(f"announcement has unknown kind {kind}") from None
    name, offset = _read_text(body, _FIXED.size, "name")
    if not name:
        raise RemoteProtocolError("announcement has an empty name")
    host, offset = _read_text(body, offset, "host")
    ports = _read_ports(body, offset)
    return Announcement(name, incarnation, ports, host, kind, lo, hi)


def _read_text(body: bytes, offset: int, what: str) -> tuple[str, int]:
    if offset >= len(body):
        raise RemoteProtocolError(f"announcement is truncated at {what}")
    end = offset + 1 + body[offset]
    if end > len(body):
        raise RemoteProtocolError(f"announcement is truncated at {what}")
    try:
        return body[offset + 1 : end].decode("utf-8"), end
    except UnicodeDecodeError:
        raise RemoteProtocolError(f"announcement {what} is not valid UTF-8") from None


def _read_ports(body: bytes, offset: int) -> tuple[int, ...]:
    if offset >= len(body):
        raise RemoteProtocolError("announcement is truncated at its ports")
    count = body[offset]
    if not 1 <= count <= MAX_PORTS or len(body) != offset + 1 + 2 * count:
        raise RemoteProtocolError("announcement port list is malformed")
    ports = struct.unpack_from(f">{count}H", body, offset + 1)
    if 0 in ports:
        raise RemoteProtocolError("announcement carries tcp port 0")
    return tuple(ports)
