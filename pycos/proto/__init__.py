"""The sans-IO wire protocol of pycos nodes: bytes in, events out.

Owns nothing itself; re-exports the public names of its modules. Everything under
``pycos.proto`` imports only the standard library, ``pycos.errors`` and its own modules — never
sockets, selectors, ssl, threads or the scheduler — so it is tested without any I/O. The node
(``pycos.net``) moves bytes between sockets and :class:`Connection` objects, and sends
discovery datagrams made by :func:`encode_announcement`. See ``doc/protocol.rst``.
"""

from ..errors import (
    LocalProtocolError,
    ProtocolError,
    RemoteProtocolError,
    SerializationError,
    UnpicklingRefused,
)
from ._state import State
from .announce import AnnounceKind, Announcement, decode_announcement, encode_announcement
from .connection import (
    DEFAULT_MAX_FRAME_SIZE,
    HANDSHAKE_FRAME_LIMIT,
    MIN_MAX_FRAME_SIZE,
    NEED_DATA,
    Connection,
    NeedData,
)
from .frame import PROTOCOL_VERSION, SUPPORTED_VERSIONS
from .messages import (
    MESSAGE_TABLE,
    Bye,
    ConnectionClosed,
    Established,
    Event,
    Heartbeat,
    Message,
    MessageType,
    Oneway,
    Refuse,
    RefuseCode,
    Refused,
    Reply,
    Request,
    Role,
    UndecodablePayload,
)
from .serialize import dumps, is_allowed, loads, serialize_allow

__all__ = [
    "Connection", "State", "Role", "NEED_DATA", "NeedData", "PROTOCOL_VERSION",
    "SUPPORTED_VERSIONS", "DEFAULT_MAX_FRAME_SIZE", "MIN_MAX_FRAME_SIZE", "HANDSHAKE_FRAME_LIMIT",
    "MessageType", "MESSAGE_TABLE", "RefuseCode", "Message", "Event",
    "Request", "Reply", "Oneway", "Heartbeat", "Bye", "Refuse",
    "Established", "Refused", "UndecodablePayload", "ConnectionClosed",
    "ProtocolError", "LocalProtocolError", "RemoteProtocolError", "SerializationError",
    "UnpicklingRefused",
    "dumps", "loads", "serialize_allow", "is_allowed",
    "Announcement", "AnnounceKind", "encode_announcement", "decode_announcement",
]
