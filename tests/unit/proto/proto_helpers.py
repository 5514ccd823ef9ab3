"""Helpers for the protocol tests: two connections back to back, raw frames, batch bodies, a
tiny assembler for hand-made payloads (the attacks of the codec and wirecheck tests), and the
hypothesis strategies of values a payload may carry."""

from __future__ import annotations

import collections
import datetime
import ipaddress
import pathlib
from collections.abc import Callable, Iterable
from typing import Any

from hypothesis import strategies as st

from pycos.proto import (
    NEED_DATA,
    PROTOCOL_VERSION,
    Batch,
    Connection,
    ConnectionClosed,
    RemoteProtocolError,
    Role,
)
from pycos.proto import batch as wire
from pycos.proto.auth import mac
from pycos.proto.codec import encode
from pycos.proto.frame import FLAG_MAC, pack_header

Splitter = Callable[[bytes], Iterable[bytes]]


def whole(data: bytes) -> list[bytes]:
    return [data]


def bytewise(data: bytes) -> list[bytes]:
    return [data[i : i + 1] for i in range(len(data))]


def drain(conn: Connection) -> list[object]:
    """Every event available now (stops at NEED_DATA or after ConnectionClosed)."""
    out: list[object] = []
    while True:
        ev = conn.next_event()
        if ev is NEED_DATA:
            return out
        out.append(ev)
        if isinstance(ev, ConnectionClosed):
            return out


def feed(conn: Connection, data: bytes, split: Splitter = whole) -> list[object]:
    """Feed ``data`` in the chunks ``split`` makes, draining events after each chunk."""
    events: list[object] = []
    for chunk in split(data):
        conn.receive_data(chunk)
        events += drain(conn)
    return events


def raw_frame(mtype: int, body: bytes, seq: int, *, version: int = PROTOCOL_VERSION,
              key: bytes | None = None, flags: int | None = None) -> bytes:
    """A frame built by hand (for attacks and malformed input)."""
    if flags is None:
        flags = FLAG_MAC if key else 0
    header = pack_header(version, mtype, flags, len(body), seq)
    return header + (mac(key, header, body) if key else b"") + body


def request_batch(request_id: int, kind: str, value: Any) -> Batch:
    """A BATCH carrying one REQUEST whose payload is ``value`` encoded."""
    return Batch(wire.request(request_id, kind, encode(value)))


class Link:
    """Two connections wired back to back through byte queues.

    ``wire[side]`` records every byte string a side wrote, ``events[side]`` every event it got.
    """

    def __init__(self, a: Connection, b: Connection, split: Splitter = whole) -> None:
        self.conns = {"a": a, "b": b}
        self.pending = {"a": bytearray(), "b": bytearray()}
        self.wire: dict[str, list[bytes]] = {"a": [], "b": []}
        self.events: dict[str, list[object]] = {"a": [], "b": []}
        self.split = split

    @classmethod
    def make(cls, secret: str | bytes = "s", secret_b: str | bytes | None = None,
             split: Splitter = whole, **kw: Any) -> Link:
        a = Connection(Role.CLIENT, secret=secret, **kw)
        b = Connection(Role.SERVER, secret=secret if secret_b is None else secret_b,
                       **kw)
        return cls(a, b, split)

    @property
    def a(self) -> Connection:
        return self.conns["a"]

    @property
    def b(self) -> Connection:
        return self.conns["b"]

    def write(self, side: str, data: bytes) -> None:
        if data:
            self.pending[side] += data
            self.wire[side].append(data)

    def start(self) -> Link:
        self.write("a", self.a.initiate())
        self.write("b", self.b.initiate())
        self.run()
        return self

    def send(self, side: str, message: Any) -> bytes:
        data = self.conns[side].send(message)
        self.write(side, data)
        return data

    def run(self, rounds: int = 20) -> None:
        """Move bytes both ways until nothing is pending."""
        for _ in range(rounds):
            moved = False
            for side, other in (("a", "b"), ("b", "a")):
                self.write(side, self.conns[side].data_to_send())
                data = bytes(self.pending[side])
                self.pending[side].clear()
                if data:
                    moved = True
                    self.events[other] += feed(self.conns[other], data, self.split)
                    self.write(other, self.conns[other].data_to_send())
            if not moved:
                return
        raise AssertionError("connections kept talking")

    def take(self, side: str, kind: type) -> list[object]:
        """The events of ``kind`` that ``side`` received."""
        return [e for e in self.events[side] if isinstance(e, kind)]


def events_until_error(conn: Connection) -> tuple[list[object], Exception | None]:
    """Events up to NEED_DATA / ConnectionClosed, and the RemoteProtocolError that ended them."""
    events: list[object] = []
    while True:
        try:
            ev = conn.next_event()
        except RemoteProtocolError as exc:
            return events, exc
        if ev is NEED_DATA:
            return events, None
        events.append(ev)
        if isinstance(ev, ConnectionClosed):
            return events, None


# ---------------------------------------------------------------- hand-made payloads
# Opcodes of pickle protocol 5 used by the attacks (pickletools names).
PROTO, STOP, MARK, POP, POP_MARK = b"\x80", b".", b"(", b"0", b"1"
NONE, NEWTRUE, NEWFALSE = b"N", b"\x88", b"\x89"
EMPTY_TUPLE, TUPLE1, TUPLE2, TUPLE3, TUPLE = b")", b"\x85", b"\x86", b"\x87", b"t"
EMPTY_LIST, APPEND, APPENDS = b"]", b"a", b"e"
EMPTY_DICT, SETITEM, SETITEMS = b"}", b"s", b"u"
EMPTY_SET, ADDITEMS, FROZENSET = b"\x8f", b"\x90", b"\x91"
MEMOIZE, STACK_GLOBAL, REDUCE, BUILD = b"\x94", b"\x93", b"R", b"b"

#: The module whose four builders a payload may call.
BUILDERS_MODULE = "pycos.proto._w"


def text(s: str | bytes) -> bytes:
    """SHORT_BINUNICODE, or BINUNICODE for long strings."""
    raw = s.encode("utf-8") if isinstance(s, str) else s
    if len(raw) < 256:
        return b"\x8c" + bytes([len(raw)]) + raw
    return b"X" + len(raw).to_bytes(4, "little") + raw


def integer(n: int) -> bytes:
    """BININT1 / BININT / LONG1 / LONG4, as pickle writes ``n``."""
    if 0 <= n < 256:
        return b"K" + bytes([n])
    if -(2**31) <= n < 2**31:
        return b"J" + n.to_bytes(4, "little", signed=True)
    raw = n.to_bytes((n.bit_length() + 8) // 8, "little", signed=True)
    if len(raw) < 256:
        return b"\x8a" + bytes([len(raw)]) + raw
    return b"\x8b" + len(raw).to_bytes(4, "little") + raw


def get(index: int) -> bytes:
    """BINGET / LONG_BINGET of memo entry ``index``."""
    if index < 256:
        return b"h" + bytes([index])
    return b"j" + index.to_bytes(4, "little")


def global_(module: str, name: str) -> bytes:
    """STACK_GLOBAL naming ``module.name``."""
    return text(module) + text(name) + STACK_GLOBAL


def builder(name: str) -> bytes:
    """Push one of the builders (``o``, ``u``, ``e``, ``f``)."""
    return global_(BUILDERS_MODULE, name)


def call(name: str, *args: bytes) -> bytes:
    """``name(*args)`` with a builder: each arg is the bytes that push one value."""
    return builder(name) + MARK + b"".join(args) + TUPLE + REDUCE


def payload(*parts: bytes, proto: int = 5) -> bytes:
    """A whole payload: PROTO, the parts, STOP."""
    return PROTO + bytes([proto]) + b"".join(parts) + STOP


# ---------------------------------------------------------------- values, for hypothesis
try:
    import numpy as np
except ImportError:  # pragma: no cover - numpy is optional
    np = None

HASHABLE = (st.none() | st.booleans() | st.integers() | st.text(max_size=6)
            | st.binary(max_size=6) | st.fractions() | st.uuids() | st.dates()
            | st.frozensets(st.integers(), max_size=3))
TIMEZONES = st.one_of(
    st.just(datetime.UTC),
    st.builds(datetime.timezone,
              st.timedeltas(min_value=datetime.timedelta(hours=-23),
                            max_value=datetime.timedelta(hours=23))),
    st.builds(datetime.timezone,
              st.timedeltas(min_value=datetime.timedelta(hours=-23),
                            max_value=datetime.timedelta(hours=23)),
              st.text(min_size=1, max_size=10)),
)
PATHS = st.tuples(st.sampled_from([pathlib.PurePosixPath, pathlib.PureWindowsPath,
                                   pathlib.Path]),
                  st.text(st.characters(min_codepoint=33, max_codepoint=0x2FFF), max_size=20)
                  ).map(lambda t: t[0](t[1]))
IPS = st.one_of(
    st.ip_addresses(),
    st.ip_addresses().map(lambda a: ipaddress.ip_network(a)),
    st.tuples(st.ip_addresses(v=4), st.integers(0, 32)).map(
        lambda t: ipaddress.IPv4Interface(f"{t[0]}/{t[1]}")),
    st.tuples(st.ip_addresses(v=6), st.integers(0, 128)).map(
        lambda t: ipaddress.IPv6Interface(f"{t[0]}/{t[1]}")),
)
STANDARD = st.one_of(
    st.complex_numbers(), st.builds(range, st.integers(), st.integers(),
                                    st.integers().filter(bool)),
    st.just(...), st.just(NotImplemented),
    st.dates(), st.times(timezones=st.none() | TIMEZONES),
    st.datetimes(timezones=st.none() | TIMEZONES), st.timedeltas(), TIMEZONES,
    st.decimals(), st.fractions(), st.uuids(), PATHS, IPS,
)
LEAVES = (st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10)
          | st.binary(max_size=10) | st.binary(max_size=10).map(bytearray) | STANDARD)
if np is not None:
    from hypothesis.extra import numpy as hnp

    LEAVES = LEAVES | hnp.arrays(
        st.sampled_from([np.int8, np.int64, np.float32, np.float64, np.bool_, np.complex128]),
        hnp.array_shapes(min_dims=0, max_dims=3, max_side=4))
    LEAVES = LEAVES | hnp.from_dtype(np.dtype("float64")).map(np.float64)


def containers(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.lists(children, max_size=4), st.tuples(children, children),
        st.dictionaries(HASHABLE, children, max_size=4), st.sets(HASHABLE, max_size=4),
        st.frozensets(HASHABLE, max_size=4),
        st.builds(collections.deque, st.lists(children, max_size=3),
                  st.none() | st.integers(3, 6)),
        st.dictionaries(st.text(max_size=4), children, max_size=3).map(
            collections.OrderedDict),
        st.tuples(st.sampled_from([list, int, set, None]),
                  st.dictionaries(HASHABLE, children, max_size=3)).map(
            lambda t: collections.defaultdict(*t)),
        st.dictionaries(st.text(max_size=4), st.integers(), max_size=4).map(
            collections.Counter),
        st.lists(st.dictionaries(st.text(max_size=3), children, max_size=2), max_size=3).map(
            lambda maps: collections.ChainMap(*maps)),
        st.builds(slice, children, children, children),
        st.lists(children, max_size=3).map(lambda xs: [xs, xs]),  # shared references
    )


#: Values of every type a payload may carry (numpy too, when it imports), nested.
VALUES = st.recursive(LEAVES, containers, max_leaves=16)



def mutate(data: bytes, edits: list[tuple[int, int, int]]) -> bytes:
    """``data`` with each edit applied: (0 flip, 1 insert, 2 delete, position, byte)."""
    out = bytearray(data)
    for how, where, byte in edits:
        pos = where % (len(out) + 1)
        if how == 0 and pos < len(out):
            out[pos] ^= byte or 1
        elif how == 1:
            out[pos:pos] = bytes([byte])
        elif pos < len(out):
            del out[pos]
    return bytes(out)


#: Up to four edits for ``mutate``.
EDITS = st.lists(st.tuples(st.integers(0, 2), st.integers(0, 2**16), st.integers(0, 255)),
                 min_size=1, max_size=4)
