"""The console's frames, sans-IO: bytes in, events out; events in, bytes out.

Owns ``ConsoleConnection`` (one side of a console session: ``receive_data(bytes)``,
``next_event()``, ``send(event) -> bytes``), the event classes and ``ConsoleProtocolError``.
No sockets, threads or clocks: the server and the client move bytes between a socket and this
state machine, and the tests drive it directly (hypothesis).

A frame is a 7-byte header — payload length (4 bytes, big-endian), meta length (2), type (1) —
then the meta, a JSON object of small fields, then the payload, raw UTF-8 text (a cell, output,
a value's repr). Bounds: meta at most ``MAX_META`` bytes; a payload above ``max_payload`` is
not buffered but skipped and reported as ``Oversized`` (the session goes on), one above
``HARD_LIMIT`` is a protocol error. States: the client sends ``Hello`` and waits for
``Welcome`` (or ``Refused``); then it may send ``Run``, ``Complete``, ``Interrupt``, ``Bye``
and the server ``Output``, ``Result``, ``Completions``, ``Refused``, ``Bye``. Anything else —
an unknown type, a frame of the other role, malformed JSON, a missing or mistyped field — is a
``ConsoleProtocolError``, after which the connection is in ERROR and says nothing more. Imports
only the standard library.
"""

from __future__ import annotations

import enum
import json
import struct
from dataclasses import dataclass, field, fields
from typing import Any

__all__ = ["ConsoleConnection", "ConsoleProtocolError", "Role", "State", "NEED_DATA", "Closed",
           "Hello", "Welcome", "Run", "Output", "Result", "Complete", "Completions",
           "Interrupt", "Refused", "Bye", "Oversized", "VERSION", "MAX_META", "HARD_LIMIT",
           "DEFAULT_MAX_PAYLOAD"]

VERSION = 1
HEADER = struct.Struct(">IHB")
MAX_META = 16 * 1024
#: Payloads larger than this end the connection (smaller oversized ones are skipped).
HARD_LIMIT = 256 << 20
DEFAULT_MAX_PAYLOAD = (1 << 20) + (64 << 10)
_MAX_INT = 2**53


class ConsoleProtocolError(Exception):
    """The other side broke the console protocol (or this side tried to); the message says
    how."""


class Role(enum.Enum):
    CLIENT = "client"
    SERVER = "server"


class State(enum.Enum):
    START = "start"
    HANDSHAKE = "handshake"
    READY = "ready"
    CLOSED = "closed"
    ERROR = "error"


class _NeedData:
    __repr__ = lambda self: "NEED_DATA"  # noqa: E731


NEED_DATA: Any = _NeedData()


@dataclass(frozen=True)
class Closed:
    """The other side closed the byte stream."""


# ---------------------------------------------------------------------- events
@dataclass(frozen=True)
class Hello:
    """Client → server, first: protocol version and who the client is (free text)."""

    version: int = VERSION
    client: str = ""
    code = 1


@dataclass(frozen=True)
class Welcome:
    """Server → client: the session id, a banner, and the limits (cell, output, seconds)."""

    session: str = ""
    banner: str = ""
    max_cell: int = 0
    max_output: int = 0
    code = 2


@dataclass(frozen=True)
class Run:
    """Client → server: run ``source`` as cell ``cell``."""

    cell: int = 0
    source: str = field(default="", metadata={"payload": True})
    code = 3


@dataclass(frozen=True)
class Output:
    """Server → client: text the cell wrote to ``stream`` ("out" or "err")."""

    cell: int = 0
    stream: str = "out"
    text: str = field(default="", metadata={"payload": True})
    code = 4


@dataclass(frozen=True)
class Result:
    """Server → client: cell ``cell`` ended; ``status`` is "ok", "error", "interrupted" or
    "refused"; ``value`` is the repr of its last expression (or ""), ``error`` a traceback or
    reason; ``truncated`` bytes of output were dropped."""

    cell: int = 0
    status: str = "ok"
    has_value: bool = False
    truncated: int = 0
    value: str = field(default="", metadata={"payload": True})
    error: str = field(default="", metadata={"payload": True})
    code = 5


@dataclass(frozen=True)
class Complete:
    """Client → server: completions of ``text`` with the cursor at ``cursor``."""

    request: int = 0
    cursor: int = -1
    text: str = field(default="", metadata={"payload": True})
    code = 6


@dataclass(frozen=True)
class Completions:
    """Server → client: the answer to ``Complete`` ``request``."""

    request: int = 0
    matches: tuple[str, ...] = ()
    code = 7


@dataclass(frozen=True)
class Interrupt:
    """Client → server: interrupt cell ``cell`` (Ctrl-C)."""

    cell: int = 0
    code = 8


@dataclass(frozen=True)
class Refused:
    """Server → client: the session (or the handshake) is refused; the connection ends."""

    reason: str = ""
    code = 9


@dataclass(frozen=True)
class Bye:
    """Either side: the session ends."""

    reason: str = ""
    code = 10


@dataclass(frozen=True)
class Oversized:
    """A frame whose payload was larger than allowed was skipped (its meta is ``meta``)."""

    kind: str
    size: int
    cell: int = 0


_BY_CODE: dict[int, type] = {cls.code: cls for cls in (
    Hello, Welcome, Run, Output, Result, Complete, Completions, Interrupt, Refused, Bye)}
_FROM_CLIENT = {Hello, Run, Complete, Interrupt, Bye}
_FROM_SERVER = {Welcome, Output, Result, Completions, Refused, Bye}
_MAX_MATCHES = 1000


def _fields(cls: type) -> tuple[list[Any], list[Any]]:
    meta = [f for f in fields(cls) if not f.metadata.get("payload")]
    payload = [f for f in fields(cls) if f.metadata.get("payload")]
    return meta, payload


def encode_event(event: Any) -> bytes:
    """The frame of ``event``."""
    meta_fields, payload_fields = _fields(type(event))
    meta: dict[str, Any] = {f.name: getattr(event, f.name) for f in meta_fields}
    texts = [getattr(event, f.name).encode("utf-8", "surrogatepass") for f in payload_fields]
    if len(texts) > 1:
        meta["_split"] = [len(t) for t in texts[:-1]]
    if isinstance(event, Completions):
        meta["matches"] = list(event.matches)
    raw_meta = json.dumps(meta, separators=(",", ":")).encode("utf-8")
    payload = b"".join(texts)
    if len(raw_meta) > MAX_META:
        raise ConsoleProtocolError(f"{type(event).__name__}: meta of {len(raw_meta)} bytes")
    return HEADER.pack(len(payload), len(raw_meta), event.code) + raw_meta + payload


def _check(cond: bool, what: str) -> None:
    if not cond:
        raise ConsoleProtocolError(what)


def decode_event(code: int, raw_meta: bytes, payload: bytes) -> Any:
    """The event of one frame; ``ConsoleProtocolError`` for anything malformed."""
    cls = _BY_CODE.get(code)
    _check(cls is not None, f"unknown frame type {code}")
    assert cls is not None
    try:
        meta = json.loads(raw_meta.decode("utf-8")) if raw_meta else {}
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise ConsoleProtocolError(f"{cls.__name__}: meta is not JSON") from None
    _check(type(meta) is dict, f"{cls.__name__}: meta is not an object")
    meta_fields, payload_fields = _fields(cls)
    values: dict[str, Any] = {}
    for f in meta_fields:
        value = meta.get(f.name, f.default)
        values[f.name] = _typed(cls.__name__, f.name, value, type(f.default))
    if payload_fields:
        split = meta.get("_split", [])
        _check(type(split) is list and len(split) == len(payload_fields) - 1 and
               all(type(n) is int and n >= 0 for n in split) and sum(split) <= len(payload),
               f"{cls.__name__}: bad payload split")
        start = 0
        for f, size in zip(payload_fields, [*split, len(payload) - sum(split)], strict=True):
            values[f.name] = payload[start:start + size].decode("utf-8", "replace")
            start += size
    else:
        _check(not payload, f"{cls.__name__} carries no payload")
    return cls(**values)


def _typed(cls: str, name: str, value: Any, kind: type) -> Any:
    if kind is bool:
        _check(type(value) is bool, f"{cls}.{name} must be a boolean")
    elif kind is int:
        _check(type(value) is int and -1 <= value < _MAX_INT, f"{cls}.{name} must be an int")
    elif kind is str:
        _check(type(value) is str and len(value) <= MAX_META, f"{cls}.{name} must be a string")
    elif kind is tuple:
        _check(type(value) in (list, tuple) and len(value) <= _MAX_MATCHES and
               all(type(v) is str for v in value), f"{cls}.{name} must be a list of strings")
        value = tuple(value)
    return value


class ConsoleConnection:
    """One side of a console session.

    Args:
        role: ``Role.CLIENT`` or ``Role.SERVER``.
        max_payload: largest payload buffered (larger ones are skipped as ``Oversized``).
    """

    def __init__(self, role: Role, max_payload: int = DEFAULT_MAX_PAYLOAD) -> None:
        self.role = role
        self.max_payload = max_payload
        self.state = State.START
        self._buf = bytearray()
        self._skip = 0
        self._skipped: Oversized | None = None
        self._eof = False

    # ------------------------------------------------------------------ input
    def receive_data(self, data: bytes) -> None:
        """Bytes read from the other side (``b""``: it closed)."""
        if self.state in (State.ERROR, State.CLOSED):
            return
        if not data:
            self._eof = True
            return
        if self._skip:
            taken = min(self._skip, len(data))
            self._skip -= taken
            data = data[taken:]
        self._buf += data

    def next_event(self) -> Any:
        """The next event, ``NEED_DATA``, or ``Closed``.

        Raises:
            ConsoleProtocolError: the bytes break the protocol (the state is then ERROR).
        """
        if self.state is State.ERROR:
            raise ConsoleProtocolError("the connection is in its error state")
        try:
            return self._next()
        except ConsoleProtocolError:
            self.state = State.ERROR
            raise

    def _next(self) -> Any:
        if self.state is State.CLOSED:
            return Closed()
        if self._skip:
            return self._at_eof()
        if self._skipped is not None:
            event, self._skipped = self._skipped, None
            return event
        if len(self._buf) < HEADER.size:
            return self._at_eof()
        size, meta_size, code = HEADER.unpack_from(self._buf)
        _check(meta_size <= MAX_META, f"a frame's meta of {meta_size} bytes is too large")
        _check(size <= HARD_LIMIT, f"a frame of {size} bytes is far too large")
        cls = _BY_CODE.get(code)
        _check(cls is not None, f"unknown frame type {code}")
        self._allowed_in(cls)
        if size > self.max_payload:
            if len(self._buf) < HEADER.size + meta_size:
                return self._at_eof()
            meta = bytes(self._buf[HEADER.size:HEADER.size + meta_size])
            cell = _cell_of(meta)
            have = len(self._buf) - HEADER.size - meta_size
            del self._buf[:HEADER.size + meta_size + min(have, size)]
            self._skip = size - min(have, size)
            self._skipped = Oversized(cls.__name__, size, cell)  # type: ignore[union-attr]
            return self._next()
        end = HEADER.size + meta_size + size
        if len(self._buf) < end:
            return self._at_eof()
        meta = bytes(self._buf[HEADER.size:HEADER.size + meta_size])
        payload = bytes(self._buf[HEADER.size + meta_size:end])
        del self._buf[:end]
        event = decode_event(code, meta, payload)
        self._received(event)
        return event

    def _at_eof(self) -> Any:
        if self._eof:
            self.state = State.CLOSED
            return Closed()
        return NEED_DATA

    def _allowed_in(self, cls: Any) -> None:
        theirs = _FROM_SERVER if self.role is Role.CLIENT else _FROM_CLIENT
        _check(cls in theirs, f"{cls.__name__} may not come from the "
                              f"{'server' if self.role is Role.CLIENT else 'client'}")
        if self.role is Role.SERVER:
            _check((cls is Hello) == (self.state is State.START),
                   f"{cls.__name__} in state {self.state.value}")
        else:
            _check(self.state is not State.START, "a frame before Hello was sent")
            if self.state is State.HANDSHAKE:
                _check(cls in (Welcome, Refused, Bye), f"{cls.__name__} before Welcome")
            else:
                _check(cls is not Welcome, "a second Welcome")

    def _received(self, event: Any) -> None:
        if isinstance(event, Hello):
            _check(event.version == VERSION, f"console protocol version {event.version} is "
                                             f"not {VERSION}")
            self.state = State.HANDSHAKE
        elif isinstance(event, Welcome):
            self.state = State.READY
        elif isinstance(event, Refused | Bye):
            self.state = State.CLOSED

    # ------------------------------------------------------------------ output
    def send(self, event: Any) -> bytes:
        """The bytes of ``event``; ``ConsoleProtocolError`` if this side may not send it now
        (the state is unchanged then)."""
        cls = type(event)
        mine = _FROM_CLIENT if self.role is Role.CLIENT else _FROM_SERVER
        if cls not in mine:
            raise ConsoleProtocolError(f"the {self.role.value} does not send {cls.__name__}")
        if self.state in (State.ERROR, State.CLOSED):
            raise ConsoleProtocolError(f"cannot send {cls.__name__}: the connection is "
                                       f"{self.state.value}")
        if self.role is Role.CLIENT:
            if (cls is Hello) != (self.state is State.START):
                raise ConsoleProtocolError(f"{cls.__name__} in state {self.state.value}")
            if self.state is State.HANDSHAKE and cls is not Bye:
                raise ConsoleProtocolError(f"{cls.__name__} before Welcome")
        else:
            allowed = {State.START: (Refused,), State.HANDSHAKE: (Welcome, Refused, Bye)}.get(
                self.state)
            if (allowed is not None and cls not in allowed) or \
                    (self.state is State.READY and cls is Welcome):
                raise ConsoleProtocolError(f"{cls.__name__} in state {self.state.value}")
        data = encode_event(event)
        if cls is Hello:
            self.state = State.HANDSHAKE
        elif cls is Welcome:
            self.state = State.READY
        elif cls in (Refused, Bye):
            self.state = State.CLOSED
        return data


def _cell_of(meta: bytes) -> int:
    try:
        value = json.loads(meta.decode("utf-8")).get("cell", 0)
    except (UnicodeDecodeError, ValueError, AttributeError, RecursionError):
        return 0
    return value if type(value) is int and 0 <= value < _MAX_INT else 0
