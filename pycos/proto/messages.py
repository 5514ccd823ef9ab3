"""Message types, the events a connection produces, and the body layout of every message.

Owns :class:`MessageType` with its table (:data:`MESSAGE_TABLE`), the value classes the node
sends and receives, and the codecs of message bodies. Imports only the standard library and
``pycos.errors``. Handshake bodies (HELLO, AUTH, AUTH_OK, REFUSE) have a fixed binary layout
and are never pickled; only the ``payload`` of REQUEST, REPLY and ONEWAY is pickled, and the
connection unpickles it only after the peer has authenticated.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

from ..errors import RemoteProtocolError, SerializationError
from .serialize import dumps

__all__ = [
    "MessageType",
    "MessageInfo",
    "MESSAGE_TABLE",
    "RefuseCode",
    "Role",
    "Hello",
    "Request",
    "Reply",
    "Oneway",
    "Heartbeat",
    "Bye",
    "Refuse",
    "Established",
    "Refused",
    "UndecodablePayload",
    "ConnectionClosed",
    "Message",
    "Event",
    "MAX_KIND_BYTES",
    "MAX_REASON_BYTES",
    "message_type",
    "encode_body",
]

MAX_KIND_BYTES = 255
MAX_REASON_BYTES = 512
_MAX_ID = 2**64 - 1


class MessageType(enum.IntEnum):
    """The ``type`` byte of a frame."""

    HELLO = 1
    AUTH = 2
    AUTH_OK = 3
    REFUSE = 4
    REQUEST = 16
    REPLY = 17
    ONEWAY = 18
    HEARTBEAT = 19
    BYE = 20


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
    MessageType.REQUEST: MessageInfo(
        "request_id u64, kind_len u8, kind UTF-8, payload pickle", True,
        "a request; the peer answers with a REPLY of the same request_id"),
    MessageType.REPLY: MessageInfo(
        "request_id u64, payload pickle", True, "the answer to a REQUEST"),
    MessageType.ONEWAY: MessageInfo(
        "kind_len u8, kind UTF-8, payload pickle", True, "a message that expects no answer"),
    MessageType.HEARTBEAT: MessageInfo("empty", False, "liveness on an idle connection"),
    MessageType.BYE: MessageInfo("reason UTF-8", False, "graceful close; nothing follows"),
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
class Request:
    """A request: the peer answers with a :class:`Reply` carrying the same ``request_id``."""

    request_id: int
    kind: str
    payload: Any = None


@dataclass(frozen=True, slots=True)
class Reply:
    """The answer to the :class:`Request` with the same ``request_id``."""

    request_id: int
    payload: Any = None


@dataclass(frozen=True, slots=True)
class Oneway:
    """A message that expects no answer (task ``send`` and notifications)."""

    kind: str
    payload: Any = None


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
class UndecodablePayload:
    """An authenticated REQUEST / REPLY / ONEWAY whose payload could not be unpickled (for
    example a refused class). The connection stays OPEN."""

    message_type: MessageType
    request_id: int | None
    kind: str | None
    error: SerializationError


@dataclass(frozen=True, slots=True)
class ConnectionClosed:
    """The connection is closed (after BYE, REFUSE, or the peer's end of stream)."""


Message = Request | Reply | Oneway | Heartbeat | Bye | Refuse
Event = (Established | Request | Reply | Oneway | Heartbeat | Bye | Refused | UndecodablePayload
         | ConnectionClosed)


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
def check_request_id(request_id: object) -> int:
    """``request_id`` as an int in 0..2**64-1, else TypeError / ValueError."""
    if not isinstance(request_id, int) or isinstance(request_id, bool):
        raise TypeError(f"request_id must be an int, not {type(request_id).__name__}")
    if not 0 <= request_id <= _MAX_ID:
        raise ValueError(f"request_id must be in 0..2**64-1, got {request_id}")
    return request_id


def encode_kind(kind: object) -> bytes:
    """The UTF-8 bytes of a message kind (1..255 bytes), else TypeError / ValueError."""
    if not isinstance(kind, str):
        raise TypeError(f"kind must be a str, not {type(kind).__name__}")
    raw = kind.encode("utf-8")
    if not 1 <= len(raw) <= MAX_KIND_BYTES:
        raise ValueError(f"kind must be 1..{MAX_KIND_BYTES} UTF-8 bytes, got {len(raw)}")
    return raw


def encode_reason(reason: object) -> bytes:
    """The UTF-8 bytes of a BYE / REFUSE reason, cut to MAX_REASON_BYTES."""
    if not isinstance(reason, str):
        raise TypeError(f"reason must be a str, not {type(reason).__name__}")
    raw = reason.encode("utf-8")[:MAX_REASON_BYTES]
    return raw.decode("utf-8", "ignore").encode("utf-8")


# ------------------------------------------------------------------ bodies of received frames
_U64 = struct.Struct(">Q")


def decode_text(raw: bytes, what: str) -> str:
    """Strict UTF-8 text of at most MAX_REASON_BYTES; RemoteProtocolError otherwise."""
    if len(raw) > MAX_REASON_BYTES:
        raise RemoteProtocolError(f"{what} is longer than {MAX_REASON_BYTES} bytes")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise RemoteProtocolError(f"{what} is not valid UTF-8") from None


def split_kind(body: bytes, offset: int, what: str) -> tuple[str, int]:
    """Read ``kind_len u8, kind`` at ``offset``; returns (kind, offset after it)."""
    if len(body) <= offset:
        raise RemoteProtocolError(f"{what} body is truncated")
    n = body[offset]
    end = offset + 1 + n
    if n == 0 or len(body) < end:
        raise RemoteProtocolError(f"{what} has an empty or truncated kind")
    try:
        return body[offset + 1 : end].decode("utf-8"), end
    except UnicodeDecodeError:
        raise RemoteProtocolError(f"{what} kind is not valid UTF-8") from None


def split_request_id(body: bytes, what: str) -> tuple[int, int]:
    """Read the leading ``request_id u64``; returns (request_id, 8)."""
    if len(body) < _U64.size:
        raise RemoteProtocolError(f"{what} body is truncated")
    return _U64.unpack_from(body)[0], _U64.size


def pack_request_id(request_id: int) -> bytes:
    """The 8 bytes of a request id."""
    return _U64.pack(request_id)


# ------------------------------------------------------------------ bodies of sent messages
def _encode_request(m: Request) -> bytes:
    return pack_request_id(check_request_id(m.request_id)) + _with_kind(m.kind, m.payload)


def _encode_reply(m: Reply) -> bytes:
    return pack_request_id(check_request_id(m.request_id)) + dumps(m.payload)


def _encode_oneway(m: Oneway) -> bytes:
    return _with_kind(m.kind, m.payload)


def _with_kind(kind: str, payload: object) -> bytes:
    raw = encode_kind(kind)
    return bytes([len(raw)]) + raw + dumps(payload)


def _encode_refuse(m: Refuse) -> bytes:
    return bytes([RefuseCode(m.code)]) + encode_reason(m.reason)


def _encode_heartbeat(m: Heartbeat) -> bytes:
    return b""


def _encode_bye(m: Bye) -> bytes:
    return encode_reason(m.reason)


_ENCODERS: dict[type, tuple[MessageType, Callable[[Any], bytes]]] = {
    Request: (MessageType.REQUEST, _encode_request),
    Reply: (MessageType.REPLY, _encode_reply),
    Oneway: (MessageType.ONEWAY, _encode_oneway),
    Heartbeat: (MessageType.HEARTBEAT, _encode_heartbeat),
    Bye: (MessageType.BYE, _encode_bye),
    Refuse: (MessageType.REFUSE, _encode_refuse),
}


def message_type(message: object) -> MessageType:
    """The frame type that carries ``message`` (plain call); TypeError if it is not sendable."""
    try:
        return _ENCODERS[type(message)][0]
    except KeyError:
        raise TypeError("send() takes Request, Reply, Oneway, Heartbeat, Bye or Refuse, "
                        f"not {type(message).__name__}") from None


def encode_body(message: Message) -> bytes:
    """The frame body of ``message``, payload pickled (plain call).

    Raises:
        TypeError, ValueError: a field has the wrong type or range.
        SerializationError: the payload cannot be pickled.
    """
    message_type(message)
    return _ENCODERS[type(message)][1](message)
