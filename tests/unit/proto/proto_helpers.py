"""Helpers for the protocol tests: wiring two connections back to back, crafting raw frames."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from pycos.proto import NEED_DATA, Connection, ConnectionClosed, RemoteProtocolError, Role
from pycos.proto.auth import mac
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


def raw_frame(mtype: int, body: bytes, seq: int, *, version: int = 1, key: bytes | None = None,
              flags: int | None = None) -> bytes:
    """A frame built by hand (for attacks and malformed input)."""
    if flags is None:
        flags = FLAG_MAC if key else 0
    header = pack_header(version, mtype, flags, len(body), seq)
    return header + (mac(key, header, body) if key else b"") + body


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
