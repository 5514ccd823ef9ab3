"""The dialogue of one swarm connection (a Handler and its Client), sans-IO.

Owns the record layout, the events, and both ends' state machines: ``HandlerSide`` (the
gateway's) and ``ClientSide`` (the controller's). Bytes in, events out: nothing here touches a
socket, a thread or a clock, so every rule is tested without one (``tests/unit/
test_swarm_protocol.py``, with Hypothesis). Values inside records are encoded by the data-only
codec (``pycos.proto.codec``). Imports the standard library, ``pycos.errors`` and
``pycos.proto.codec``.

A *chunk* is the body of one authenticated frame (``pycos.proto`` BATCH) and holds records back
to back, each ``op u8, id u32`` then, by op (big-endian)::

    REQ     1  len u32, codec((op, name, args, kwargs, window_items, window_bytes))
    ITEM    2  ident i64, enc u8, len u32, data        enc: 0 raw bytes, 1 codec, 2 None
    CREDIT  3  items u32, nbytes u64                   what the consumer took since its last
    EOS     4  reason u8                               0 end, 1 abort
    ERR     5  len u32, codec(exception)               ends the request (reason "error")
    CANCEL  6                                          the consumer gives up
    RESULT  7  enc u8, len u32, data                   the one answer of a non-stream request
    FILE    8  len u32, codec(meta), inline u8 [, len u32, content]
    TRAILER 9  status u8, digest 32 bytes              after a FILE's raw section

A FILE that is not inline must end its chunk: exactly ``meta.size`` raw bytes follow the
frame, then a chunk starting with its TRAILER, whose digest is an HMAC-SHA256 of the content
under a key of this connection (``pycos.proto.Connection.derive_key``) and the file's number
on the connection, checked before the file is renamed into place.

Flow control: a stream's consumer grants a window (items and bytes) in its REQ; the producer
may have at most that many items (and bytes, one item always allowed) sent and not yet
credited. Each end checks it: a producer that overruns is a protocol error, a credit beyond
what was sent is clamped (and counted). Out-of-place records that can happen in a race (a
CREDIT or CANCEL for a request that just ended, items in flight after a CANCEL) are counted
and dropped; records that cannot (an ITEM from the client, a second REQ with a live id,
garbage) raise ``RemoteProtocolError``, after which the connection is closed.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ..errors import LocalProtocolError, RemoteError, RemoteProtocolError, SerializationError
from ..proto.codec import decode, encode

__all__ = [
    "REQ", "ITEM", "CREDIT", "EOS", "ERR", "CANCEL", "RESULT", "FILE", "TRAILER", "OPS",
    "END", "ABORT", "ERROR", "REASONS", "RAW", "CODEC", "NONE", "DIGEST_SIZE", "MAX_ID",
    "MAX_IDENT", "CHUNK_TARGET", "MAX_OPEN", "Request", "Item", "Credit", "End", "Failure",
    "Cancel", "Result", "FileStart", "Trailer", "FileMeta", "Window", "OutStream",
    "HandlerSide", "ClientSide", "encode_value", "decode_value", "exception_payload",
    "clamp_window", "file_record", "trailer_record", "MAX_PUT_FILES",
]

REQ, ITEM, CREDIT, EOS, ERR, CANCEL, RESULT, FILE, TRAILER = range(1, 10)
OPS = {REQ: "REQ", ITEM: "ITEM", CREDIT: "CREDIT", EOS: "EOS", ERR: "ERR", CANCEL: "CANCEL",
       RESULT: "RESULT", FILE: "FILE", TRAILER: "TRAILER"}
#: End-of-stream reasons (``ERROR`` is what an ERR record means).
END, ABORT, ERROR = "end", "abort", "error"
_REASON_CODES = {END: 0, ABORT: 1}
REASONS = {0: END, 1: ABORT}
#: Value encodings.
RAW, CODEC, NONE = 0, 1, 2
DIGEST_SIZE = 32
MAX_ID = 2**32 - 1
MAX_IDENT = 2**63 - 1
#: Records are gathered into chunks of about this size before a frame is written.
CHUNK_TARGET = 256 * 1024
#: Requests a client may have open (sent and not ended) on one connection.
MAX_OPEN = 16
#: FILE records one ``put`` request may carry.
MAX_PUT_FILES = 1024
#: Bounds of a window a consumer may ask for.
MAX_WINDOW_ITEMS = 1 << 20
MAX_WINDOW_BYTES = 1 << 34

_HEAD = struct.Struct(">BI")
_LEN = struct.Struct(">I")
_ITEM = struct.Struct(">BIqBI")
_ITEM_BODY = struct.Struct(">qBI")
_CREDIT = struct.Struct(">BIIQ")
_EOS = struct.Struct(">BIB")
_RESULT = struct.Struct(">BIBI")
_TRAILER = struct.Struct(f">BIB{DIGEST_SIZE}s")
_U8 = struct.Struct(">B")


# ---------------------------------------------------------------------- events
@dataclass(frozen=True, slots=True)
class Window:
    """A stream's window: items and bytes sent and not yet credited."""

    items: int
    nbytes: int


@dataclass(frozen=True, slots=True)
class Request:
    """REQ: run ``op`` (``stream``, ``batch``, ``sink``, ``list``, ``get``, ``put``, ``offer``,
    ``ping``, ``close``, ``close_gateway``) on subroutine or folder ``name``."""

    id: int
    op: str
    name: Any
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    window: Window


@dataclass(frozen=True, slots=True)
class Item:
    """ITEM: one ``(ident, value)`` of a stream; ``size`` is its length on the wire."""

    id: int
    ident: int
    value: Any
    size: int


@dataclass(frozen=True, slots=True)
class Credit:
    """CREDIT: the consumer took ``items`` more items (``nbytes`` bytes)."""

    id: int
    items: int
    nbytes: int


@dataclass(frozen=True, slots=True)
class End:
    """The request ended: ``reason`` is ``end`` or ``abort`` (reported once per request)."""

    id: int
    reason: str


@dataclass(frozen=True, slots=True)
class Failure:
    """ERR: the request failed with ``exc`` (never reported as an end)."""

    id: int
    exc: BaseException


@dataclass(frozen=True, slots=True)
class Cancel:
    """CANCEL: the consumer gives the request up."""

    id: int


@dataclass(frozen=True, slots=True)
class Result:
    """RESULT: the one answer of a non-stream request."""

    id: int
    value: Any


@dataclass(frozen=True, slots=True)
class FileMeta:
    """What a FILE record announces: ``path`` relative and ``/``-separated; ``error`` set (and
    ``size`` -1) when the sender could not send it."""

    path: str
    size: int
    mtime_ns: int
    mode: int
    error: str | None = None

    def encode(self) -> bytes:
        return encode((self.path, self.size, self.mtime_ns, self.mode, self.error))

    @classmethod
    def decode(cls, data: Any) -> FileMeta:
        try:
            fields = decode(data)
        except SerializationError as exc:
            raise RemoteProtocolError(f"malformed FILE record: {exc}") from None
        ok = (isinstance(fields, tuple) and len(fields) == 5 and type(fields[0]) is str
              and all(type(f) is int for f in fields[1:4])
              and (fields[4] is None or type(fields[4]) is str))
        if not ok or not -1 <= fields[1] <= 2**62 or not 0 <= fields[3] <= 0o177777:
            raise RemoteProtocolError("malformed FILE record")
        if (fields[1] < 0) != (fields[4] is not None):
            raise RemoteProtocolError("malformed FILE record (size and error disagree)")
        return cls(*fields)


@dataclass(frozen=True, slots=True)
class FileStart:
    """FILE: ``content`` is the file's bytes when inline, else None: ``meta.size`` raw bytes
    follow the frame (read them, call ``raw_done()``), then its ``Trailer``."""

    id: int
    meta: FileMeta
    content: bytes | None


@dataclass(frozen=True, slots=True)
class Trailer:
    """TRAILER: ``ok`` False when the file changed while it was sent (discard it)."""

    id: int
    ok: bool
    digest: bytes


# ---------------------------------------------------------------------- values
def encode_value(value: Any) -> tuple[int, bytes]:
    """(enc, data) of a value: ``bytes`` raw, None as nothing, the rest by the codec."""
    if type(value) is bytes:
        return RAW, value
    if value is None:
        return NONE, b""
    if isinstance(value, bytearray | memoryview):
        return RAW, bytes(value)
    return CODEC, encode(value)


def decode_value(enc: int, data: Any, trusted: bool = False) -> Any:
    """The value of (enc, data); ``SerializationError`` for a refused one."""
    if enc == RAW:
        return bytes(data)
    if enc == CODEC:
        return decode(data, trusted=trusted)
    if enc == NONE:
        return None
    raise RemoteProtocolError(f"unknown value encoding {enc}")


def exception_payload(exc: BaseException) -> bytes:
    """``exc`` for an ERR record: as itself when the codec can send it, else as a
    ``RemoteError`` naming its class and message."""
    if not isinstance(exc, Exception):
        exc = RemoteError(type(exc).__qualname__, str(exc))
    try:
        return encode(exc)
    except (SerializationError, TypeError, ValueError, RecursionError):
        name = f"{type(exc).__module__}.{type(exc).__qualname__}"
        return encode(RemoteError(name, str(exc)[:2000]))


def _decode_exception(data: Any, trusted: bool) -> BaseException:
    try:
        exc = decode(data, trusted=trusted)
    except SerializationError as err:
        return RemoteError("unreadable", str(err))
    if not isinstance(exc, Exception):
        return RemoteError(type(exc).__name__, "the gateway sent a failure that is not an "
                                               "exception")
    return exc


def clamp_window(items: Any, nbytes: Any, max_items: int, max_bytes: int) -> Window:
    """A window asked for, checked and kept within the producer's bounds."""
    if type(items) is not int or type(nbytes) is not int or items < 1 or nbytes < 1:
        raise ValueError(f"a window is (items >= 1, bytes >= 1), got ({items!r}, {nbytes!r})")
    return Window(min(items, max_items, MAX_WINDOW_ITEMS), min(nbytes, max_bytes,
                                                               MAX_WINDOW_BYTES))



# ---------------------------------------------------------------------- parsing
def _view(chunk: Any) -> memoryview:
    view = chunk if isinstance(chunk, memoryview) else memoryview(chunk)
    return view if view.format == "B" and view.ndim == 1 else view.cast("B")


def _records(chunk: Any) -> Iterator[tuple[int, int, memoryview, int, int]]:
    """(op, id, view, start, end) of every record of ``chunk``; the body is view[start:end].
    Raises ``RemoteProtocolError`` for anything malformed."""
    view = _view(chunk)
    size = len(view)
    pos = 0
    while pos < size:
        op, rid, start, pos = _record_at(view, pos, size)
        yield op, rid, view, start, pos


def _record_at(view: memoryview, pos: int, size: int) -> tuple[int, int, int, int]:
    """(op, id, start, end) of the record at ``pos``: its body is view[start:end]."""
    if size - pos < 5:
        raise RemoteProtocolError("truncated record header")
    op, rid = _HEAD.unpack_from(view, pos)
    pos += 5
    start = pos
    if op == ITEM:
        need = 13
        if size - pos < need:
            raise RemoteProtocolError("truncated ITEM")
        pos += need + _LEN.unpack_from(view, pos + 9)[0]
    elif op in (REQ, ERR):
        if size - pos < 4:
            raise RemoteProtocolError(f"truncated {OPS[op]}")
        pos += 4 + _LEN.unpack_from(view, pos)[0]
    elif op == RESULT:
        if size - pos < 5:
            raise RemoteProtocolError("truncated RESULT")
        pos += 5 + _LEN.unpack_from(view, pos + 1)[0]
    elif op == CREDIT:
        pos += 12
    elif op == EOS:
        pos += 1
    elif op == CANCEL:
        pass
    elif op == TRAILER:
        pos += 1 + DIGEST_SIZE
    elif op == FILE:
        if size - pos < 4:
            raise RemoteProtocolError("truncated FILE")
        pos += 4 + _LEN.unpack_from(view, pos)[0]
        if pos >= size:
            raise RemoteProtocolError("truncated FILE")
        inline = view[pos]
        pos += 1
        if inline:
            if size - pos < 4:
                raise RemoteProtocolError("truncated FILE")
            pos += 4 + _LEN.unpack_from(view, pos)[0]
    else:
        raise RemoteProtocolError(f"unknown record type {op}")
    if pos > size:
        raise RemoteProtocolError(f"truncated {OPS[op]}")
    if rid == 0:
        raise RemoteProtocolError(f"{OPS[op]} record with request id 0")
    return op, rid, start, pos


def _parse_request(rid: int, body: memoryview, trusted: bool, limits: tuple[int, int]) -> Request:
    try:
        fields = decode(body[4:], trusted=trusted)
    except SerializationError as exc:
        raise RemoteProtocolError(f"REQ {rid}: {exc}") from None
    if not (isinstance(fields, tuple) and len(fields) == 6 and type(fields[0]) is str
            and isinstance(fields[2], tuple) and isinstance(fields[3], dict)
            and all(type(k) is str for k in fields[3])):
        raise RemoteProtocolError(f"REQ {rid} is malformed")
    try:
        window = clamp_window(fields[4], fields[5], *limits)
    except ValueError as exc:
        raise RemoteProtocolError(f"REQ {rid}: {exc}") from None
    return Request(rid, fields[0], fields[1], fields[2], fields[3], window)


def _parse_file(rid: int, body: memoryview, end: int, at_end: bool) -> FileStart:
    n = _LEN.unpack_from(body, 0)[0]
    meta = FileMeta.decode(body[4:4 + n])
    inline = body[4 + n]
    if inline:
        content = bytes(body[9 + n:])
        if meta.size != len(content):
            raise RemoteProtocolError(f"FILE {meta.path!r}: {len(content)} bytes inline, "
                                      f"{meta.size} announced")
        return FileStart(rid, meta, content)
    if meta.error is None and not at_end:
        raise RemoteProtocolError("a FILE with a raw section must end its chunk")
    return FileStart(rid, meta, None)


def file_record(rid: int, meta: FileMeta, content: bytes | None) -> bytes:
    """A FILE record of request ``rid``: inline when ``content`` is given, else announcing a
    raw section (or, with ``meta.error``, saying why the file is not sent)."""
    data = meta.encode()
    head = _HEAD.pack(FILE, rid) + _LEN.pack(len(data)) + data
    if content is None:
        return head + _U8.pack(0)
    return head + _U8.pack(1) + _LEN.pack(len(content)) + content


def trailer_record(rid: int, ok: bool, digest: bytes) -> bytes:
    """A TRAILER record (after a raw section): ``ok`` False when the file changed."""
    return _TRAILER.pack(TRAILER, rid, 0 if ok else 1, digest)


# ---------------------------------------------------------------------- the producer's side
class OutStream:
    """One stream being produced: the window and what was sent and credited."""

    __slots__ = ("id", "window", "sent_items", "sent_bytes", "acked_items", "acked_bytes")

    def __init__(self, rid: int, window: Window) -> None:
        self.id = rid
        self.window = window
        self.sent_items = self.sent_bytes = self.acked_items = self.acked_bytes = 0

    def room(self, size: int) -> bool:
        """True when one more item of ``size`` bytes fits in the window."""
        out_items = self.sent_items - self.acked_items
        if out_items >= self.window.items:
            return False
        out_bytes = self.sent_bytes - self.acked_bytes
        return out_bytes == 0 or out_bytes + size <= self.window.nbytes

    @property
    def outstanding(self) -> tuple[int, int]:
        return self.sent_items - self.acked_items, self.sent_bytes - self.acked_bytes


class HandlerSide:
    """The gateway's end of one connection.

    ``receive(chunk)`` parses what the client sent into events (``Request``, ``Credit``,
    ``Cancel``, ``FileStart``, ``Trailer``); the ``item``/``end``/``fail``/``result``/``file``
    methods write records (bytes to put in a chunk). ``stats`` counts dropped records.

    Args:
        trusted: decode values as unrestricted pickle (the node's ``allow_unsafe_pickle``).
        max_window: the largest window (items, bytes) granted to a stream.
    """

    def __init__(self, trusted: bool = False, max_window: tuple[int, int] = (4096, 64 << 20)
                 ) -> None:
        self.trusted = trusted
        self.max_window = max_window
        self.open: set[int] = set()  # requests received and not yet ended
        self.streams: dict[int, OutStream] = {}
        self.files_expected: dict[int, int] = {}  # put request -> FILE records still to come
        self.raw: tuple[int, int] | None = None  # (id, size) of a raw section to be read
        self.trailer_for: int | None = None
        self.stats: dict[str, int] = {"stale_credit": 0, "clamped_credit": 0,
                                      "stale_cancel": 0}

    # -- input
    def receive(self, chunk: Any) -> list[Any]:
        """Events of one chunk from the client."""
        if self.raw is not None:
            raise LocalProtocolError("a raw section is being read; call raw_done() first")
        events: list[Any] = []
        size = len(chunk)
        for op, rid, view, start, end in _records(chunk):
            if self.trailer_for is not None and op != TRAILER:
                raise RemoteProtocolError(f"{OPS[op]} where the TRAILER of request "
                                          f"{self.trailer_for} was due")
            if op == CREDIT:
                _, _, items, nbytes = _CREDIT.unpack_from(view, start - 5)
                self._credit(rid, items, nbytes, events)
            elif op == REQ:
                if rid in self.open:
                    raise RemoteProtocolError(f"REQ {rid} while request {rid} is open")
                if len(self.open) >= MAX_OPEN:
                    raise RemoteProtocolError(f"more than {MAX_OPEN} requests open")
                req = _parse_request(rid, view[start:end], self.trusted, self.max_window)
                if req.op == "put":
                    count = req.args[0] if req.args else None
                    if type(count) is not int or not 0 <= count <= MAX_PUT_FILES:
                        raise RemoteProtocolError(f"REQ {rid}: a put carries 0..{MAX_PUT_FILES} "
                                                  "files")
                    self.files_expected[rid] = count
                self.open.add(rid)
                events.append(req)
            elif op == CANCEL:
                if rid in self.open:
                    events.append(Cancel(rid))
                else:
                    self.stats["stale_cancel"] += 1
            elif op == FILE:
                left = self.files_expected.get(rid, 0)
                if left <= 0:
                    raise RemoteProtocolError(f"FILE for request {rid}, which expects none")
                start_ev = _parse_file(rid, view[start:end], end, end == size)
                self.files_expected[rid] = left - 1
                if start_ev.content is None and start_ev.meta.error is None:
                    self.raw = (rid, start_ev.meta.size)
                events.append(start_ev)
            elif op == TRAILER:
                if self.trailer_for != rid:
                    raise RemoteProtocolError(f"TRAILER for request {rid} out of place")
                _, _, status, digest = _TRAILER.unpack_from(view, start - 5)
                self.trailer_for = None
                events.append(Trailer(rid, status == 0, digest))
            else:
                raise RemoteProtocolError(f"{OPS[op]} records are not sent by clients")
        return events

    def raw_done(self) -> None:
        """The raw section announced by the last FILE was read: its TRAILER is next."""
        if self.raw is None:
            raise LocalProtocolError("no raw section is being read")
        self.trailer_for, self.raw = self.raw[0], None

    def _credit(self, rid: int, items: int, nbytes: int, events: list[Any]) -> None:
        stream = self.streams.get(rid)
        if stream is None:
            self.stats["stale_credit"] += 1
            return
        new_items = stream.acked_items + items
        new_bytes = stream.acked_bytes + nbytes
        if new_items > stream.sent_items or new_bytes > stream.sent_bytes:
            self.stats["clamped_credit"] += 1
            new_items = min(new_items, stream.sent_items)
            new_bytes = min(new_bytes, stream.sent_bytes)
        stream.acked_items, stream.acked_bytes = new_items, new_bytes
        events.append(Credit(rid, items, nbytes))

    # -- output
    def start_stream(self, rid: int, window: Window) -> OutStream:
        """Request ``rid`` (open) becomes a stream with ``window``."""
        if rid not in self.open:
            raise LocalProtocolError(f"request {rid} is not open")
        stream = self.streams[rid] = OutStream(rid, window)
        return stream

    def item(self, stream: OutStream, ident: int, value: Any) -> list[bytes]:
        """The parts of an ITEM record (the caller checked ``stream.room``).

        Raises:
            LocalProtocolError: no room in the window, or the ident is out of range.
            SerializationError: the value cannot be sent.
        """
        enc, data = encode_value(value)
        if not -MAX_IDENT - 1 <= ident <= MAX_IDENT:
            raise LocalProtocolError(f"an ident must fit in 64 bits, got {ident}")
        size = len(data)
        if not stream.room(size):
            raise LocalProtocolError(f"stream {stream.id}: no room in the window")
        stream.sent_items += 1
        stream.sent_bytes += size
        return [_ITEM.pack(ITEM, stream.id, ident, enc, size), data]

    def end(self, rid: int, reason: str = END) -> bytes:
        """EOS: request ``rid`` ended (``end`` or ``abort``)."""
        self._close(rid)
        return _EOS.pack(EOS, rid, _REASON_CODES[reason])

    def fail(self, rid: int, exc: BaseException) -> bytes:
        """ERR: request ``rid`` failed with ``exc``."""
        self._close(rid)
        data = exception_payload(exc)
        return _HEAD.pack(ERR, rid) + _LEN.pack(len(data)) + data

    def result(self, rid: int, value: Any) -> bytes:
        """RESULT: the answer of request ``rid``, which ends it."""
        enc, data = encode_value(value)
        self._close(rid)
        return _RESULT.pack(RESULT, rid, enc, len(data)) + data

    def _close(self, rid: int) -> None:
        if rid not in self.open:
            raise LocalProtocolError(f"request {rid} is not open")
        self.open.discard(rid)
        self.streams.pop(rid, None)
        self.files_expected.pop(rid, None)


# ---------------------------------------------------------------------- the consumer's side
class _InStream:
    __slots__ = ("window", "got_items", "got_bytes", "taken_items", "taken_bytes",
                 "granted_items", "granted_bytes", "cancelled", "stream")

    def __init__(self, window: Window, stream: bool) -> None:
        self.window = window
        self.stream = stream
        self.got_items = self.got_bytes = 0
        self.taken_items = self.taken_bytes = 0  # consumed by the user
        self.granted_items = self.granted_bytes = 0  # credited to the producer
        self.cancelled = False


class ClientSide:
    """The controller's end of one connection.

    ``request(...)`` writes a REQ; ``receive(chunk)`` parses the handler's records into events
    (``Item``, ``End``, ``Failure``, ``Result``, ``FileStart``, ``Trailer``), checking that no
    stream exceeds its window; ``consumed`` returns a CREDIT when half a window was taken;
    ``cancel`` a CANCEL; ``lost()`` ends every open request with a failure. Each request ends
    exactly once (``End``, ``Failure`` or ``Result``); records of a cancelled request that were
    in flight are dropped, other out-of-place ones counted in ``stats`` and dropped.

    Args:
        trusted: decode values as unrestricted pickle.
    """

    def __init__(self, trusted: bool = False) -> None:
        self.trusted = trusted
        self.next_id = 1
        self.open: dict[int, _InStream] = {}
        self.raw: tuple[int, int] | None = None
        self.trailer_for: int | None = None
        self.stats: dict[str, int] = {"late": 0, "out_of_place": 0}
        self.taken = (0, 0)

    # -- output
    def request(self, op: str, name: Any, args: tuple[Any, ...] = (),
                kwargs: dict[str, Any] | None = None,
                window: Window = Window(64, 4 << 20)) -> tuple[int, bytes]:
        """(id, REQ record) of a new request.

        Raises:
            LocalProtocolError: ``MAX_OPEN`` requests are open already.
            SerializationError: an argument cannot be sent (nothing changed).
        """
        if len(self.open) >= MAX_OPEN:
            raise LocalProtocolError(f"{MAX_OPEN} requests are open on this connection")
        data = encode((op, name, tuple(args), dict(kwargs or {}), window.items, window.nbytes))
        rid = self.next_id
        self.next_id = rid + 1 if rid < MAX_ID else 1
        self.open[rid] = _InStream(window, op in ("stream", "list"))
        return rid, _HEAD.pack(REQ, rid) + _LEN.pack(len(data)) + data

    def consumed(self, rid: int, items: int, nbytes: int) -> bytes | None:
        """The user took ``items`` items (``nbytes`` bytes) of stream ``rid``: a CREDIT record
        once half of a window is owed, else None."""
        state = self.open.get(rid)
        if state is None or state.cancelled:
            return None
        state.taken_items += items
        state.taken_bytes += nbytes
        owed_items = state.taken_items - state.granted_items
        owed_bytes = state.taken_bytes - state.granted_bytes
        if owed_items * 2 >= state.window.items or owed_bytes * 2 >= state.window.nbytes:
            state.granted_items, state.granted_bytes = state.taken_items, state.taken_bytes
            return _CREDIT.pack(CREDIT, rid, owed_items, owed_bytes)
        return None

    def cancel(self, rid: int) -> bytes | None:
        """A CANCEL of request ``rid`` (None if it is not open or already cancelled). Its
        ``End("abort")`` still comes, once the handler stopped."""
        state = self.open.get(rid)
        if state is None or state.cancelled:
            return None
        state.cancelled = True
        return _HEAD.pack(CANCEL, rid)

    # -- input
    def receive(self, chunk: Any, items_for: int = 0, out: list[Any] | None = None
                ) -> list[Any]:
        """Events of one chunk from the handler. The ITEMs of stream ``items_for`` go to
        ``out`` as ``(ident, value)`` pairs instead (the hot path; ``taken`` then holds their
        count and bytes)."""
        if self.raw is not None:
            raise LocalProtocolError("a raw section is being read; call raw_done() first")
        events: list[Any] = []
        view = _view(chunk)
        size = len(view)
        pos = 0
        open_ = self.open
        fast = open_.get(items_for) if out is not None and self.trailer_for is None else None
        if fast is not None and (fast.cancelled or not fast.stream):
            fast = None
        count = nbytes = 0
        unpack_item = _ITEM.unpack_from
        trusted = self.trusted
        while pos < size:
            if fast is not None and view[pos] == ITEM and size - pos >= 18:
                _op, rid, ident, enc, n = unpack_item(view, pos)
                if rid == items_for:
                    start = pos + 18
                    pos = start + n
                    if pos > size:
                        raise RemoteProtocolError("truncated ITEM")
                    window = fast.window
                    out_bytes = fast.got_bytes - fast.granted_bytes
                    if fast.got_items - fast.granted_items >= window.items or (
                            out_bytes and out_bytes + n > window.nbytes):
                        raise RemoteProtocolError(
                            f"stream {rid} exceeded its window of {window.items} items / "
                            f"{window.nbytes} bytes")
                    fast.got_items += 1
                    fast.got_bytes += n
                    count += 1
                    nbytes += n
                    if enc == RAW:
                        out.append((ident, bytes(view[start:pos])))  # type: ignore[union-attr]
                    elif enc == NONE:
                        out.append((ident, None))  # type: ignore[union-attr]
                    else:
                        try:
                            value = decode_value(enc, view[start:pos], trusted)
                        except SerializationError as exc:
                            events.append(Item(rid, ident, exc, n))  # the consumer raises it
                            continue
                        out.append((ident, value))  # type: ignore[union-attr]
                    continue
            op, rid, start, end = _record_at(view, pos, size)
            pos = end
            self._slow(op, rid, view, start, end, size, events)
        self.taken = (count, nbytes)
        return events

    def _slow(self, op: int, rid: int, view: memoryview, start: int, end: int, size: int,
              events: list[Any]) -> None:
        if self.trailer_for is not None and op != TRAILER:
            raise RemoteProtocolError(f"{OPS[op]} where the TRAILER of request "
                                      f"{self.trailer_for} was due")
        open_ = self.open
        state = open_.get(rid)
        if op == ITEM:
            self._item(rid, state, view, start, end, events)
        elif op in (EOS, ERR, RESULT):
            if state is None:
                self.stats["out_of_place"] += 1
                return
            del open_[rid]
            if op == EOS:
                reason = REASONS.get(view[start])
                if reason is None:
                    raise RemoteProtocolError(f"EOS reason {view[start]} is unknown")
                events.append(End(rid, ABORT if state.cancelled else reason))
            elif state.cancelled:  # the user gave it up: an abort, whatever happened
                events.append(End(rid, ABORT))
            elif op == ERR:
                events.append(Failure(rid, _decode_exception(view[start + 4:end],
                                                             self.trusted)))
            else:
                events.append(Result(rid, self._result(view, start, end)))
        elif op == FILE:
            if state is None or state.stream:
                raise RemoteProtocolError(f"FILE for request {rid}, which expects none")
            ev = _parse_file(rid, view[start:end], end, end == size)
            if ev.content is None and ev.meta.error is None:
                self.raw = (rid, ev.meta.size)
            events.append(ev)
        elif op == TRAILER:
            if self.trailer_for != rid:
                raise RemoteProtocolError(f"TRAILER for request {rid} out of place")
            _, _, status, digest = _TRAILER.unpack_from(view, start - 5)
            self.trailer_for = None
            events.append(Trailer(rid, status == 0, digest))
        else:
            raise RemoteProtocolError(f"{OPS[op]} records are not sent by handlers")

    def _item(self, rid: int, state: _InStream | None, view: memoryview, start: int, end: int,
              events: list[Any]) -> None:
        if state is None or not state.stream:
            self.stats["out_of_place"] += 1
            return
        size = end - start - 13
        out_items = state.got_items - state.granted_items
        out_bytes = state.got_bytes - state.granted_bytes
        if out_items >= state.window.items or (
                out_bytes and out_bytes + size > state.window.nbytes):
            raise RemoteProtocolError(f"stream {rid} exceeded its window of "
                                      f"{state.window.items} items / {state.window.nbytes} "
                                      "bytes")
        state.got_items += 1
        state.got_bytes += size
        if state.cancelled:
            self.stats["late"] += 1  # in flight when the CANCEL left: dropped, never delivered
            return
        ident, enc, _n = _ITEM_BODY.unpack_from(view, start)
        try:
            value = decode_value(enc, view[start + 13:end], self.trusted)
        except SerializationError as exc:
            events.append(Item(rid, ident, exc, size))  # the consumer raises it
            return
        events.append(Item(rid, ident, value, size))

    def _result(self, view: memoryview, start: int, end: int) -> Any:
        enc = view[start]
        try:
            return decode_value(enc, view[start + 5:end], self.trusted)
        except SerializationError as exc:
            return exc

    def raw_done(self) -> None:
        """The raw section announced by the last FILE was read: its TRAILER is next."""
        if self.raw is None:
            raise LocalProtocolError("no raw section is being read")
        self.trailer_for, self.raw = self.raw[0], None

    def lost(self, why: BaseException) -> list[Any]:
        """The connection is gone: a ``Failure`` for every open request (cancelled ones end
        as aborted)."""
        events: list[Any] = []
        for rid, state in list(self.open.items()):
            events.append(End(rid, ABORT) if state.cancelled else Failure(rid, why))
        self.open.clear()
        return events
