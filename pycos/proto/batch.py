"""The messages inside a BATCH frame: the one format of everything nodes say to each other.

Owns the layout of the messages a link carries after its handshake, their encoders and the
parser of a batch. Imports only the standard library and ``pycos.errors``. Payloads are
encoded by ``pycos.proto.codec`` once, by whoever makes the message; the parser returns them
as raw bytes, so each one is decoded on its own (a refused class spoils only its message) and
by the node that received it (references in it are bound to that node).

A BATCH frame body is a sequence of messages, each one::

    op u8, then by op (big-endian):
    SEND     1   task_id u64, payload              a message for a task
    DELIVER  2   request u64, task_id u64, payload the same, acknowledged by a REPLY
    CSEND    3   channel_id u64, payload           a message for a channel
    REQUEST  4   request u64, kind, payload        request 0 expects no reply (one-way)
    REPLY    5   request u64, status u8, payload   status 0: the value; 1: the failure
    INFO     6   payload                           the link exchange: who this node is
    VERDICT  7   accepted u8                       the arbiter's decision on this link
    STREAM   8   kind, payload                     asks that this connection carry one stream

    kind    = length u8 (1..255), UTF-8
    payload = length u32, bytes of ``pycos.proto.codec`` (length 0: None)

The link exchange (INFO, VERDICT, STREAM) and the rules about when each message is legal are
the link's (``pycos.net.link``); this module only writes and parses.
"""

from __future__ import annotations

import struct
from typing import Any, NamedTuple

from ..errors import RemoteProtocolError

__all__ = ["SEND", "DELIVER", "CSEND", "REQUEST", "REPLY", "INFO", "VERDICT", "STREAM",
           "OK", "FAILED", "Msg", "send", "deliver", "csend", "request", "reply", "info",
           "verdict", "stream", "parse", "parse_tuples", "MAX_KIND_BYTES", "OP_NAMES",
           "SEND_HEADER"]

SEND, DELIVER, CSEND, REQUEST, REPLY, INFO, VERDICT, STREAM = range(1, 9)
OP_NAMES = {SEND: "SEND", DELIVER: "DELIVER", CSEND: "CSEND", REQUEST: "REQUEST",
            REPLY: "REPLY", INFO: "INFO", VERDICT: "VERDICT", STREAM: "STREAM"}
#: REPLY status.
OK, FAILED = 0, 1
MAX_KIND_BYTES = 255
_MAX_U64 = 2**64 - 1
_MAX_U32 = 2**32 - 1

_S_SEND = struct.Struct(">BQI")
_S_DELIVER = struct.Struct(">BQQI")
_S_RID = struct.Struct(">BQ")
_S_REPLY = struct.Struct(">BQBI")
_S_LEN = struct.Struct(">I")
_S_OP = struct.Struct(">BI")
_S_VERDICT = struct.Struct(">BB")
#: The header of a SEND (op, task id, payload length): the hot path packs it itself.
SEND_HEADER = _S_SEND


class Msg(NamedTuple):
    """One parsed message. ``a``/``b`` are its ids (task, channel, request; 0 when unused),
    ``kind`` its kind (REQUEST, STREAM) or None, ``status`` the REPLY status or the VERDICT,
    ``payload`` the raw payload, a view of the batch's body (empty: None)."""

    op: int
    a: int
    b: int
    kind: str | None
    status: int
    payload: memoryview


def _id(value: int, what: str) -> int:
    if type(value) is not int or not 0 <= value <= _MAX_U64:
        raise ValueError(f"{what} must be an int in 0..2**64-1, got {value!r}")
    return value


def _kind(kind: str) -> bytes:
    if not isinstance(kind, str):
        raise TypeError(f"a message kind must be a str, not {type(kind).__name__}")
    raw = kind.encode("utf-8")
    if not 1 <= len(raw) <= MAX_KIND_BYTES:
        raise ValueError(f"a message kind must be 1..{MAX_KIND_BYTES} UTF-8 bytes, "
                         f"got {len(raw)}")
    return bytes([len(raw)]) + raw


# ---------------------------------------------------------------------- encoders (plain calls)
# The encoders pack first and check only when packing fails: no cost on the hot path, and a
# wrong argument is a TypeError / ValueError saying what was expected, never a struct.error.
def _refuse(exc: struct.error, ids: tuple[tuple[Any, str], ...], payload: Any) -> Exception:
    for value, what in ids:
        if not isinstance(value, int):
            return TypeError(f"{what} must be an int in 0..2**64-1, not "
                             f"{type(value).__name__}")
        if not 0 <= value <= _MAX_U64:
            return ValueError(f"{what} must be an int in 0..2**64-1, got {value!r}")
    try:
        size = len(payload)
    except TypeError:
        return TypeError(f"a payload must be bytes, not {type(payload).__name__}")
    if size > _MAX_U32:
        return ValueError(f"a payload must be at most {_MAX_U32} bytes, got {size}")
    return ValueError(f"cannot encode the message: {exc}")


def send(task_id: int, payload: bytes) -> bytes:
    """A SEND message."""
    try:
        return _S_SEND.pack(SEND, task_id, len(payload)) + payload
    except struct.error as exc:
        raise _refuse(exc, ((task_id, "task id"),), payload) from None


def deliver(request: int, task_id: int, payload: bytes) -> bytes:
    """A DELIVER message."""
    try:
        return _S_DELIVER.pack(DELIVER, request, task_id, len(payload)) + payload
    except struct.error as exc:
        raise _refuse(exc, ((request, "request id"), (task_id, "task id")), payload) from None


def csend(channel_id: int, payload: bytes) -> bytes:
    """A CSEND message."""
    try:
        return _S_SEND.pack(CSEND, channel_id, len(payload)) + payload
    except struct.error as exc:
        raise _refuse(exc, ((channel_id, "channel id"),), payload) from None


def request(request: int, kind: str, payload: bytes) -> bytes:
    """A REQUEST message (``request`` 0: one-way)."""
    head = _S_RID.pack(REQUEST, _id(request, "request id")) + _kind(kind)
    try:
        return head + _S_LEN.pack(len(payload)) + payload
    except struct.error as exc:
        raise _refuse(exc, (), payload) from None


def reply(request: int, failed: bool, payload: bytes) -> bytes:
    """A REPLY message."""
    try:
        return _S_REPLY.pack(REPLY, request, FAILED if failed else OK, len(payload)) + payload
    except struct.error as exc:
        raise _refuse(exc, ((request, "request id"),), payload) from None


def info(payload: bytes) -> bytes:
    """An INFO message."""
    try:
        return _S_OP.pack(INFO, len(payload)) + payload
    except struct.error as exc:
        raise _refuse(exc, (), payload) from None


def verdict(accepted: bool) -> bytes:
    """A VERDICT message."""
    return _S_VERDICT.pack(VERDICT, 1 if accepted else 0)


def stream(kind: str, payload: bytes) -> bytes:
    """A STREAM message."""
    head = bytes([STREAM]) + _kind(kind)
    try:
        return head + _S_LEN.pack(len(payload)) + payload
    except struct.error as exc:
        raise _refuse(exc, (), payload) from None


# ---------------------------------------------------------------------- parser
def parse(body: bytes | memoryview) -> list[Msg]:
    """The messages of a BATCH body, in order (plain call).

    Raises:
        RemoteProtocolError: the body is truncated or a message is malformed (nothing of the
            batch should be acted on).
    """
    return [Msg(*fields) for fields in parse_tuples(body)]


def parse_tuples(body: bytes | bytearray | memoryview) -> list[tuple[Any, ...]]:
    """``parse`` as plain tuples ``(op, a, b, kind, status, payload)`` whose payloads are
    memoryview slices of ``body`` (no copies): the node's hot path. Same errors."""
    out: list[tuple[Any, ...]] = []
    view = memoryview(body)
    end = len(view)
    pos = 0
    append = out.append
    unpack_send = _S_SEND.unpack_from
    while pos < end:
        op = view[pos]
        try:
            if op == SEND or op == CSEND:
                _op, a, n = unpack_send(view, pos)
                pos += 13
                if n > end - pos:
                    raise RemoteProtocolError("a payload runs past the end of its batch")
                append((op, a, 0, None, 0, view[pos:pos + n]))
                pos += n
                continue
            elif op == DELIVER:
                _op, a, b, n = _S_DELIVER.unpack_from(view, pos)
                pos += _S_DELIVER.size
                append((op, a, b, None, 0, _take(view, pos, n, end)))
            elif op == REPLY:
                _op, a, status, n = _S_REPLY.unpack_from(view, pos)
                if status not in (OK, FAILED):
                    raise RemoteProtocolError(f"REPLY with an unknown status {status}")
                pos += _S_REPLY.size
                append((op, a, 0, None, status, _take(view, pos, n, end)))
            elif op == REQUEST:
                _op, a = _S_RID.unpack_from(view, pos)
                pos += _S_RID.size
                kind, pos = _read_kind(view, pos, end)
                (n,) = _S_LEN.unpack_from(view, pos)
                pos += _S_LEN.size
                append((op, a, 0, kind, 0, _take(view, pos, n, end)))
            elif op == INFO:
                _op, n = _S_OP.unpack_from(view, pos)
                pos += _S_OP.size
                append((op, 0, 0, None, 0, _take(view, pos, n, end)))
            elif op == VERDICT:
                _op, status = _S_VERDICT.unpack_from(view, pos)
                if status > 1:
                    raise RemoteProtocolError(f"VERDICT with an unknown value {status}")
                pos += _S_VERDICT.size
                append((op, 0, 0, None, status, view[0:0]))
            elif op == STREAM:
                kind, pos = _read_kind(view, pos + 1, end)
                (n,) = _S_LEN.unpack_from(view, pos)
                pos += _S_LEN.size
                append((op, 0, 0, kind, 0, _take(view, pos, n, end)))
            else:
                raise RemoteProtocolError(f"unknown message op {op} in a batch")
        except struct.error:
            raise RemoteProtocolError(f"truncated {OP_NAMES.get(op, 'message')} in a batch"
                                      ) from None
        pos += len(out[-1][5])
    return out


def _take(view: memoryview, pos: int, n: int, end: int) -> memoryview:
    if n > end - pos:
        raise RemoteProtocolError("a payload runs past the end of its batch")
    return view[pos:pos + n]


def _read_kind(view: memoryview, pos: int, end: int) -> tuple[str, int]:
    if pos >= end:
        raise RemoteProtocolError("truncated kind in a batch")
    n = view[pos]
    stop = pos + 1 + n
    if n == 0 or stop > end:
        raise RemoteProtocolError("empty or truncated kind in a batch")
    try:
        return bytes(view[pos + 1:stop]).decode("utf-8"), stop
    except UnicodeDecodeError:
        raise RemoteProtocolError("a message kind is not valid UTF-8") from None


def payload_value(payload: bytes, decode: Any) -> Any:
    """``decode(payload)``, or None for an empty payload (plain call)."""
    return decode(payload) if payload else None
