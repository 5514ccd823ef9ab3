"""The sans-IO wire protocol of pycos nodes: bytes in, events out.

Owns nothing itself; re-exports the public names of its modules. Everything under
``pycos.proto`` imports only the standard library, ``pycos.errors`` and its own modules — never
sockets, selectors, ssl, threads or the scheduler — so it is tested without any I/O. The node
(``pycos.net``) moves bytes between sockets and :class:`Connection` objects, and sends
discovery datagrams made by :func:`encode_announcement`. See ``doc/protocol.rst``.

Modules: ``frame`` (frame layout, receive buffer), ``auth`` (keys, proofs, MACs), ``_state``
(the connection's transitions), ``messages`` (frame types, handshake bodies, events),
``connection`` (one connection: handshake, MACs, sequence numbers), ``batch`` (the messages
inside a BATCH frame), ``codec`` (payloads: encode, decode), ``wirecheck`` and ``_wirecheck``
(the payload dialect's checker, Python and compiled), ``wiretypes`` (what a payload may build:
the allow list and the registered types), ``wirecost`` (what decoding may cost: the builders'
memory budget, bounded texts of a payload's values), ``_w`` (the builders a payload may call),
``announce`` (discovery datagrams), ``envelope`` (discovery envelopes), ``linkinfo`` (the link
exchange: who a node is), ``filedialog`` (the file-transfer dialogue).
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
from .codec import decode, encode
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
    Batch,
    Bye,
    ConnectionClosed,
    Established,
    Event,
    Heartbeat,
    Message,
    MessageType,
    Refuse,
    RefuseCode,
    Refused,
    Role,
)
from .wirecheck import WireError
from .wiretypes import is_allowed, serialize_allow

__all__ = [
    "Connection", "State", "Role", "NEED_DATA", "NeedData", "PROTOCOL_VERSION",
    "SUPPORTED_VERSIONS", "DEFAULT_MAX_FRAME_SIZE", "MIN_MAX_FRAME_SIZE", "HANDSHAKE_FRAME_LIMIT",
    "MessageType", "MESSAGE_TABLE", "RefuseCode", "Message", "Event",
    "Batch", "Heartbeat", "Bye", "Refuse",
    "Established", "Refused", "ConnectionClosed",
    "ProtocolError", "LocalProtocolError", "RemoteProtocolError", "SerializationError",
    "UnpicklingRefused", "WireError",
    "encode", "decode", "serialize_allow", "is_allowed",
    "Announcement", "AnnounceKind", "encode_announcement", "decode_announcement",
]
