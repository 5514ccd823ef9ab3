"""Message types, the events a connection produces, and the body layout of every message.

Owns :class:`MessageType` with its table (:data:`MESSAGE_TABLE`), the value classes the node
sends and receives, and the codecs of message bodies. Imports only the standard library and
``pycos.errors``. Handshake bodies (HELLO, AUTH, AUTH_OK, REFUSE) have a fixed binary layout
and are never decoded as payloads; a BATCH body (``pycos.proto.batch``) is handed on as bytes,
and only once the peer has authenticated.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

from ..errors import RemoteProtocolError

__all__ = [
    "MessageType",
    "MessageInfo",
    "MESSAGE_TABLE",
    "RefuseCode",
    "Role",
    "Hello",
    "Batch",
    "Heartbeat",
    "Bye",
    "Refuse",
    "Established",
    "Refused",
    "ConnectionClosed",
    "Message",
    "Event",
    "MAX_REASON_BYTES",
    "message_type",
    "encode_body",
]

MAX_REASON_BYTES = 512


class MessageType(enum.IntEnum):
    """The ``type`` byte of a frame."""

    HELLO = 1
    AUTH = 2
    AUTH_OK = 3
    REFUSE = 4
    HEARTBEAT = 19
    BYE = 20
    BATCH = 21


class MessageInfo(NamedTuple):
    """One row of :data:`MESSAGE_TABLE`."""

    body: str
    pickled: bool
    meaning: str


#: What each message carries; ``doc/protocol.rst`` renders the same table.
MESSAGE_TABLE: dict[MessageType, MessageInfo] = {
    MessageType.HELLO: MessageInfo(
        "min_version u16, max_version u16, role u8, flags u8 (bit 0: secret set), "
        "max_frame_size u32, incarnation 16 bytes, nonce 32 bytes", False,
        "first frame of each side: versions spoken, identity, fresh nonce"),
    MessageType.AUTH: MessageInfo(
        "proof 32 bytes", False, "HMAC-SHA256 proof of the secret over both HELLO frames"),
    MessageType.AUTH_OK: MessageInfo(
        "empty", False, "peer's proof accepted; first frame under the per-connection MAC"),
    MessageType.REFUSE: MessageInfo(
        "code u8, reason UTF-8", False, "refusal with a reason, sent just before closing"),
    MessageType.HEARTBEAT: MessageInfo("empty", False, "liveness on an idle connection"),
    MessageType.BYE: MessageInfo("reason UTF-8", False, "graceful close; nothing follows"),
    MessageType.BATCH: MessageInfo(
        "messages (pycos.proto.batch): SEND, DELIVER, CSEND, REQUEST, REPLY, INFO, VERDICT, "
        "STREAM, each with its payload", True,
        "everything the nodes say to each other once authenticated"),
}


class RefuseCode(enum.IntEnum):
    """Why a connection was refused (the ``code`` byte of REFUSE)."""

    OTHER = 0
    VERSION_MISMATCH = 1
    AUTH_FAILED = 2
    PROTOCOL_ERROR = 3
    SELF_CONNECTION = 4


class Role(enum.IntEnum):
    """Which end of the TCP connection a side is: CLIENT connected, SERVER accepted."""

    CLIENT = 0
    SERVER = 1

    @property
    def peer(self) -> Role:
        """The opposite role."""
        return Role.SERVER if self is Role.CLIENT else Role.CLIENT


# ------------------------------------------------------------------ values sent and received
@dataclass(frozen=True, slots=True)
class Batch:
    """A batch of messages (the frame body, parsed by ``pycos.proto.batch.parse``)."""

    body: bytes


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """Liveness on an idle connection."""


@dataclass(frozen=True, slots=True)
class Bye:
    """Graceful close: the sender sends nothing more."""

    reason: str = ""


@dataclass(frozen=True, slots=True)
class Refuse:
    """Sent to refuse a peer (any time before BYE); the connection is closed afterwards."""

    code: RefuseCode
    reason: str


# ------------------------------------------------------------------ events only
@dataclass(frozen=True, slots=True)
class Established:
    """The handshake finished: both sides proved the secret and agreed on ``version``.

    ``authenticated`` is False when the secret is empty (no MACs on frames then).
    """

    peer_incarnation: bytes
    version: int
    authenticated: bool
    peer_max_frame_size: int


@dataclass(frozen=True, slots=True)
class Refused:
    """The connection was refused, by the peer (``by_peer``) or by this side during the
    handshake (version mismatch, failed authentication). The connection is CLOSED; send
    ``data_to_send()`` (the REFUSE for the peer) and close the socket."""

    code: RefuseCode
    reason: str
    by_peer: bool


@dataclass(frozen=True, slots=True)
class ConnectionClosed:
    """The connection is closed (after BYE, REFUSE, or the peer's end of stream)."""


Message = Batch | Heartbeat | Bye | Refuse
Event = Established | Batch | Heartbeat | Bye | Refused | ConnectionClosed


# ------------------------------------------------------------------ HELLO
_HELLO = struct.Struct(">HHBBI16s32s")
HELLO_FLAG_SECRET = 0x01


@dataclass(frozen=True, slots=True)
class Hello:
    """The decoded body of a HELLO frame."""

    min_version: int
    max_version: int
    role: Role
    secret_set: bool
    max_frame_size: int
    incarnation: bytes
    nonce: bytes

    def encode(self) -> bytes:
        """The fixed 58-byte body."""
        flags = HELLO_FLAG_SECRET if self.secret_set else 0
        return _HELLO.pack(self.min_version, self.max_version, self.role, flags,
                           self.max_frame_size, self.incarnation, self.nonce)

    @classmethod
    def decode(cls, body: bytes) -> Hello:
        """Parse a HELLO body; RemoteProtocolError if it is malformed."""
        if len(body) != _HELLO.size:
            raise RemoteProtocolError(f"HELLO body is {len(body)} bytes, expected {_HELLO.size}")
        lo, hi, role, flags, max_size, incarnation, nonce = _HELLO.unpack(body)
        if not 1 <= lo <= hi:
            raise RemoteProtocolError(f"HELLO has an invalid version range {lo}..{hi}")
        if role not in (Role.CLIENT, Role.SERVER):
            raise RemoteProtocolError(f"HELLO has an unknown role {role}")
        if flags & ~HELLO_FLAG_SECRET:
            raise RemoteProtocolError(f"HELLO has unknown flags 0x{flags:02x}")
        return cls(lo, hi, Role(role), bool(flags & HELLO_FLAG_SECRET), max_size,
                   incarnation, nonce)


# ------------------------------------------------------------------ checks for outgoing values
def encode_reason(reason: object) -> bytes:
    """The UTF-8 bytes of a BYE / REFUSE reason, cut to MAX_REASON_BYTES."""
    if not isinstance(reason, str):
        raise TypeError(f"reason must be a str, not {type(reason).__name__}")
    raw = reason.encode("utf-8")[:MAX_REASON_BYTES]
    return raw.decode("utf-8", "ignore").encode("utf-8")


# ------------------------------------------------------------------ bodies of received frames


def decode_text(raw: bytes, what: str) -> str:
    """Strict UTF-8 text of at most MAX_REASON_BYTES; RemoteProtocolError otherwise."""
    if len(raw) > MAX_REASON_BYTES:
        raise RemoteProtocolError(f"{what} is longer than {MAX_REASON_BYTES} bytes")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise RemoteProtocolError(f"{what} is not valid UTF-8") from None


# ------------------------------------------------------------------ bodies of sent messages
def encode_batch_body(m: Batch) -> bytes:
    """The frame body of a ``Batch``: its bytes (TypeError, ValueError when empty)."""
    if not isinstance(m.body, bytes | bytearray | memoryview):
        raise TypeError(f"a batch body must be bytes, not {type(m.body).__name__}")
    if not m.body:
        raise ValueError("an empty batch (the peer would refuse it as a protocol error)")
    return bytes(m.body)


def _encode_refuse(m: Refuse) -> bytes:
    return bytes([RefuseCode(m.code)]) + encode_reason(m.reason)


def _encode_heartbeat(m: Heartbeat) -> bytes:
    return b""


def _encode_bye(m: Bye) -> bytes:
    return encode_reason(m.reason)


_ENCODERS: dict[type, tuple[MessageType, Callable[[Any], bytes]]] = {
    Batch: (MessageType.BATCH, encode_batch_body),
    Heartbeat: (MessageType.HEARTBEAT, _encode_heartbeat),
    Bye: (MessageType.BYE, _encode_bye),
    Refuse: (MessageType.REFUSE, _encode_refuse),
}


def message_type(message: object) -> MessageType:
    """The frame type that carries ``message`` (plain call); TypeError if it is not sendable."""
    try:
        return _ENCODERS[type(message)][0]
    except KeyError:
        raise TypeError("send() takes Batch, Heartbeat, Bye or Refuse, "
                        f"not {type(message).__name__}") from None


def encode_body(message: Message) -> bytes:
    """The frame body of ``message`` (plain call).

    Raises:
        TypeError, ValueError: a field has the wrong type or range.
    """
    message_type(message)
    return _ENCODERS[type(message)][1](message)
