"""The file-transfer dialogue: offer, answers and trailer, each one BATCH frame on a stream.

Owns the three messages of one transfer and their fixed binary layouts (nothing here is a codec
payload). Imports only the standard library and ``pycos.errors``. The dialogue, on a dedicated
authenticated connection (``pycos.net.files``)::

    sender                                  receiver
    STREAM("file", OFFER)  ------------->   checks the name, the sandbox, what is there
                           <-------------   ANSWER: SEND | SAME | EXISTS(stat) | REFUSED(why)
    (SEND) exactly `size` raw bytes ---->
    TRAILER(size, digest)  ------------->   checks size and digest, renames into place
                           <-------------   ANSWER: DONE | REFUSED(why)

``digest`` is HMAC-SHA256 over the file's bytes under a key both ends derive from this
connection's handshake (``Connection.derive_key(b"pycos/file")``): with a secret only the two
nodes know the key, so bytes altered on the way are refused before the file is renamed into
place, with or without TLS.

Layouts (big-endian):

* OFFER: ``size u64, mtime_ns i64, atime_ns i64, mode u16, flags u8 (bit 0: overwrite),
  name_len u16, name, dir_len u16 (0xFFFF: no dir), dir`` (UTF-8; the receiver applies its
  own, stricter, limits on names and paths);
* ANSWER: ``code u8`` then, for EXISTS, ``mode u32, size u64, atime_ns i64, mtime_ns i64,
  ctime_ns i64``, for REFUSED the reason (UTF-8, at most 512 bytes);
* TRAILER: ``size u64, digest 32 bytes``.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass

from ..errors import RemoteProtocolError

__all__ = ["Offer", "Answer", "AnswerCode", "Trailer", "DIGEST_SIZE", "KEY_LABEL",
           "MAX_NAME_BYTES"]

DIGEST_SIZE = 32
KEY_LABEL = b"pycos/file"
MAX_NAME_BYTES = 65534
_OFFER = struct.Struct(">QqqHB")
_LEN = struct.Struct(">H")
_STAT = struct.Struct(">IQqqq")
_TRAILER = struct.Struct(">Q32s")
_NO_DIR = 0xFFFF
_MAX_REASON = 512
_MAX_I64 = 2**63 - 1


def _int_field(value: object, what: str, lo: int | None, hi: int | None) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{what} must be an int, not {type(value).__name__}")
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise ValueError(f"{what} must be in {lo}..{hi}, got {value}")


class AnswerCode(enum.IntEnum):
    """What the receiver says."""

    SEND = 0  #: send the bytes
    SAME = 1  #: the same file is there already
    EXISTS = 2  #: a different file is there and overwrite is False (its stat follows)
    REFUSED = 3  #: refused (the reason follows)
    DONE = 4  #: received, checked and in place


@dataclass(frozen=True, slots=True)
class Offer:
    """What the sender announces."""

    name: str
    dir: str | None
    size: int
    mtime_ns: int
    atime_ns: int
    mode: int
    overwrite: bool

    def encode(self) -> bytes:
        """The OFFER (plain call).

        Raises:
            TypeError: a field has the wrong type.
            ValueError: a field is out of the range the layout (and every receiver) allows.
        """
        if not isinstance(self.name, str) or not (self.dir is None or isinstance(self.dir, str)):
            raise TypeError("file name and directory must be str (directory: or None)")
        name = self.name.encode("utf-8")
        dir_raw = b"" if self.dir is None else self.dir.encode("utf-8")
        if len(name) > MAX_NAME_BYTES or len(dir_raw) > MAX_NAME_BYTES:
            raise ValueError("file name and directory must be at most 65534 UTF-8 bytes")
        _int_field(self.size, "file size", 0, _MAX_I64)
        _int_field(self.mtime_ns, "mtime_ns", -_MAX_I64 - 1, _MAX_I64)
        _int_field(self.atime_ns, "atime_ns", -_MAX_I64 - 1, _MAX_I64)
        _int_field(self.mode, "mode", None, None)
        head = _OFFER.pack(self.size, self.mtime_ns, self.atime_ns, self.mode & 0o7777,
                           1 if self.overwrite else 0)
        dir_part = (_LEN.pack(_NO_DIR) if self.dir is None
                    else _LEN.pack(len(dir_raw)) + dir_raw)
        return head + _LEN.pack(len(name)) + name + dir_part

    @classmethod
    def decode(cls, data: bytes | memoryview) -> Offer:
        """Raises RemoteProtocolError when malformed."""
        data = bytes(data)
        try:
            size, mtime, atime, mode, flags = _OFFER.unpack_from(data, 0)
            pos = _OFFER.size
            (n,) = _LEN.unpack_from(data, pos)
            name = bytes(data[pos + 2:pos + 2 + n]).decode("utf-8")
            pos += 2 + n
            (m,) = _LEN.unpack_from(data, pos)
            pos += 2
            if m == _NO_DIR:
                dir_ = None
            else:
                dir_ = bytes(data[pos:pos + m]).decode("utf-8")
                pos += m
        except (struct.error, UnicodeDecodeError):
            raise RemoteProtocolError("malformed file offer") from None
        if (pos != len(data) or flags & ~1 or len(name.encode("utf-8")) != n
                or size > 2**63 - 1 or mode > 0o7777):
            raise RemoteProtocolError("malformed file offer")
        return cls(name, dir_, size, mtime, atime, mode, bool(flags & 1))


@dataclass(frozen=True, slots=True)
class Answer:
    """What the receiver answers: a code, and the existing file's stat or the reason."""

    code: AnswerCode
    stat: tuple[int, int, int, int, int] | None = None  # mode, size, atime, mtime, ctime (ns)
    reason: str = ""

    def encode(self) -> bytes:
        """The ANSWER (plain call).

        Raises:
            TypeError / ValueError: EXISTS without a stat of five ints in the layout's ranges.
        """
        if self.code is AnswerCode.EXISTS:
            if not isinstance(self.stat, tuple) or len(self.stat) != 5:
                raise ValueError("an EXISTS answer needs the stat (mode, size, atime_ns, "
                                 "mtime_ns, ctime_ns) of the file that is there")
            mode, size, atime, mtime, ctime = self.stat
            _int_field(mode, "stat mode", 0, 2**32 - 1)
            _int_field(size, "stat size", 0, 2**64 - 1)
            for value, what in ((atime, "stat atime_ns"), (mtime, "stat mtime_ns"),
                                (ctime, "stat ctime_ns")):
                _int_field(value, what, -_MAX_I64 - 1, _MAX_I64)
            return bytes([self.code]) + _STAT.pack(*self.stat)
        if self.code is AnswerCode.REFUSED:
            raw = self.reason.encode("utf-8")[:_MAX_REASON]
            return bytes([self.code]) + raw.decode("utf-8", "ignore").encode("utf-8")
        return bytes([self.code])

    @classmethod
    def decode(cls, data: bytes | memoryview) -> Answer:
        """Raises RemoteProtocolError when malformed."""
        data = bytes(data)
        if not data:
            raise RemoteProtocolError("empty file-transfer answer")
        try:
            code = AnswerCode(data[0])
        except ValueError:
            raise RemoteProtocolError(f"unknown file-transfer answer {data[0]}") from None
        if code is AnswerCode.EXISTS:
            if len(data) != 1 + _STAT.size:
                raise RemoteProtocolError("malformed file-transfer answer")
            return cls(code, _STAT.unpack_from(data, 1))
        if code is AnswerCode.REFUSED:
            if len(data) > 1 + _MAX_REASON:
                raise RemoteProtocolError("file-transfer refusal reason too long")
            return cls(code, None, bytes(data[1:]).decode("utf-8", "replace"))
        if len(data) != 1:
            raise RemoteProtocolError("malformed file-transfer answer")
        return cls(code)


@dataclass(frozen=True, slots=True)
class Trailer:
    """What follows the bytes: how many were sent, and their digest."""

    size: int
    digest: bytes

    def encode(self) -> bytes:
        """The TRAILER (plain call).

        Raises:
            TypeError / ValueError: the size is not an int in 0..2**64-1, or the digest is not
                exactly 32 bytes (never padded or cut: a receiver would refuse the file).
        """
        _int_field(self.size, "file size", 0, 2**64 - 1)
        if not isinstance(self.digest, bytes | bytearray):
            raise TypeError(f"the digest must be bytes, not {type(self.digest).__name__}")
        if len(self.digest) != DIGEST_SIZE:
            raise ValueError(f"the digest must be {DIGEST_SIZE} bytes (HMAC-SHA256), got "
                             f"{len(self.digest)}")
        return _TRAILER.pack(self.size, self.digest)

    @classmethod
    def decode(cls, data: bytes | memoryview) -> Trailer:
        """Raises RemoteProtocolError when malformed."""
        data = bytes(data)
        if len(data) != _TRAILER.size:
            raise RemoteProtocolError("malformed file-transfer trailer")
        size, digest = _TRAILER.unpack(data)
        return cls(size, digest)
