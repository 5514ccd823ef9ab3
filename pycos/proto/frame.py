"""Frame layout: the fixed header, building frames, and splitting a byte stream into frames.

Owns the byte layout of a frame (see ``doc/protocol.rst``) and a receive buffer that accepts
arbitrary splits of the stream. Imports only the standard library and ``pycos.errors``.
Policy (which types, versions, sizes and MACs are acceptable in which state) belongs to the
connection: this module only parses, and the connection checks every header *before* the body is
buffered.

Layout (big-endian)::

    offset size field
    0      4    magic      b"\\xa7pcs"
    4      1    version    protocol version the frame is written in
    5      1    type       MessageType
    6      1    flags      bit 0: a 32-byte MAC follows the header; other bits must be 0
    7      1    reserved   must be 0
    8      4    length     body length in bytes
    12     8    sequence   0 for the first frame a side sends, then +1 per frame
    20     32   mac        HMAC-SHA256 over header bytes 0..19 + body (only if flags bit 0)
    20/52  ...  body
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from ..errors import RemoteProtocolError

__all__ = [
    "MAGIC",
    "PROTOCOL_VERSION",
    "SUPPORTED_VERSIONS",
    "HEADER_SIZE",
    "MAC_SIZE",
    "FLAG_MAC",
    "MAX_SEQUENCE",
    "FrameHeader",
    "Frame",
    "FrameReader",
    "pack_header",
]

MAGIC = b"\xa7pcs"
PROTOCOL_VERSION = 2
#: The (lowest, highest) protocol versions this implementation speaks.
SUPPORTED_VERSIONS = (2, 2)
_HEADER = struct.Struct(">4sBBBBIQ")
HEADER_SIZE = _HEADER.size  # 20
MAC_SIZE = 32
FLAG_MAC = 0x01
MAX_SEQUENCE = 2**64 - 1
_KNOWN_FLAGS = FLAG_MAC


@dataclass(frozen=True, slots=True)
class FrameHeader:
    """The decoded fixed header of a frame (the MAC, if any, is not part of it)."""

    version: int
    type: int
    flags: int
    length: int
    sequence: int
    raw: bytes

    @property
    def has_mac(self) -> bool:
        """Whether a MAC field follows the header."""
        return bool(self.flags & FLAG_MAC)

    @property
    def wire_size(self) -> int:
        """Header plus MAC field: where the body starts."""
        return HEADER_SIZE + (MAC_SIZE if self.has_mac else 0)


@dataclass(frozen=True, slots=True)
class Frame:
    """A complete frame taken from the stream."""

    header: FrameHeader
    mac: bytes
    body: bytes


def pack_header(version: int, mtype: int, flags: int, length: int, sequence: int) -> bytes:
    """The 20 header bytes of a frame (plain call). Values must fit their fields."""
    return _HEADER.pack(MAGIC, version, mtype, flags, 0, length, sequence)


class FrameReader:
    """Receive buffer: accumulates bytes and hands out frames one at a time.

    Use ``feed(data)``; then ``peek_header()`` parses the header as soon as its 20 bytes are
    present (so the caller can refuse a frame before its body arrives) and ``take(header)``
    returns the whole frame once its body is buffered. Consumed bytes are dropped lazily so that
    many small frames in one large chunk cost linear time.
    """

    __slots__ = ("_buf", "_pos", "_header")

    def __init__(self) -> None:
        self._buf = bytearray()
        self._pos = 0
        self._header: FrameHeader | None = None

    def __len__(self) -> int:
        return len(self._buf) - self._pos

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        """Append received bytes (plain call)."""
        if self._pos and self._pos * 2 >= len(self._buf):
            del self._buf[: self._pos]
            self._pos = 0
        self._buf += data

    def peek_header(self) -> FrameHeader | None:
        """The header of the next frame, or None until 20 bytes are buffered (plain call).

        Raises:
            RemoteProtocolError: bad magic, unknown flags or a non-zero reserved byte.
        """
        if self._header is not None:
            return self._header
        if len(self) < HEADER_SIZE:
            if not MAGIC.startswith(bytes(self._buf[self._pos : self._pos + len(MAGIC)])):
                raise RemoteProtocolError("not a pycos frame (bad magic bytes)")
            return None
        raw = bytes(self._buf[self._pos : self._pos + HEADER_SIZE])
        magic, version, mtype, flags, reserved, length, seq = _HEADER.unpack(raw)
        if magic != MAGIC:
            raise RemoteProtocolError("not a pycos frame (bad magic bytes)")
        if flags & ~_KNOWN_FLAGS:
            raise RemoteProtocolError(f"frame has unknown flags 0x{flags:02x}")
        if reserved:
            raise RemoteProtocolError("frame header's reserved byte is not zero")
        self._header = FrameHeader(version, mtype, flags, length, seq, raw)
        return self._header

    def partial(self) -> tuple[int, int] | None:
        """(declared body length, body bytes buffered) while a frame's header has been read
        but its body has not all arrived; else None (plain call)."""
        header = self._header
        if header is None:
            return None
        have = len(self) - header.wire_size
        return header.length, max(0, have)

    def take_plain(self, mtype: int, version: int, sequence: int,
                   limit: int) -> bytearray | None:
        """The body of the next frame when it is complete, carries no MAC and its header is
        exactly what is expected (``mtype``, ``version``, ``sequence``, at most ``limit``
        bytes); else None and nothing is consumed (plain call). The hot path of an OPEN
        connection without a secret: anything unusual goes the checked way (``peek_header``,
        ``take``), which gives the precise error."""
        if self._header is not None:
            return None
        buf = self._buf
        pos = self._pos
        if len(buf) - pos < HEADER_SIZE:
            return None
        magic, ver, kind, flags, reserved, length, seq = _HEADER.unpack_from(buf, pos)
        if (kind != mtype or seq != sequence or ver != version or flags or reserved
                or length > limit or magic != MAGIC):
            return None
        start = pos + HEADER_SIZE
        end = start + length
        if end > len(buf):
            return None
        self._pos = end
        return buf[start:end]

    def drop(self) -> None:
        """Forget everything buffered."""
        self._buf = bytearray()
        self._pos = 0
        self._header = None

    def take_raw(self, view: memoryview) -> int:
        """Copy buffered bytes that are not part of a frame into ``view`` (as many as fit) and
        consume them; returns how many (plain call). For a stream that carries raw bytes after
        its frames; there must be no frame header pending."""
        if self._header is not None:
            raise RemoteProtocolError("raw bytes asked for in the middle of a frame")
        n = min(len(view), len(self._buf) - self._pos)
        if n:
            view[:n] = self._buf[self._pos:self._pos + n]
            self._pos += n
        return n

    def take(self, header: FrameHeader) -> Frame | None:
        """The complete frame whose header ``peek_header`` returned, or None until its MAC and
        body are buffered (plain call)."""
        end = header.wire_size + header.length
        if len(self) < end:
            return None
        start = self._pos
        mac = bytes(self._buf[start + HEADER_SIZE : start + header.wire_size])
        body = bytes(self._buf[start + header.wire_size : start + end])
        self._pos += end
        self._header = None
        return Frame(header, mac, body)
