"""Frame layout and the receive buffer: whole, byte by byte, random splits, trailing data, and
whole conversations of BATCH frames split at random points."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from proto_helpers import Link, bytewise, whole

from pycos.proto import PROTOCOL_VERSION, Batch, Heartbeat, MessageType, RemoteProtocolError
from pycos.proto import batch as wire
from pycos.proto.codec import encode
from pycos.proto.frame import (
    FLAG_MAC,
    HEADER_SIZE,
    MAC_SIZE,
    MAGIC,
    FrameReader,
    pack_header,
)

SETTINGS = settings(max_examples=100, deadline=None)


def frame(mtype: int, body: bytes, seq: int, mac: bytes | None = None) -> bytes:
    header = pack_header(PROTOCOL_VERSION, mtype, FLAG_MAC if mac else 0, len(body), seq)
    return header + (mac or b"") + body


def read_all(reader: FrameReader) -> list[tuple[int, int, bytes, bytes]]:
    out = []
    while (h := reader.peek_header()) is not None:
        f = reader.take(h)
        if f is None:
            break
        out.append((f.header.type, f.header.sequence, f.mac, f.body))
    return out


def test_header_layout_is_the_documented_one():
    raw = pack_header(2, MessageType.BATCH, FLAG_MAC, 0x01020304, 0x0A0B0C0D0E0F1011)
    assert HEADER_SIZE == 20 and MAC_SIZE == 32 and len(raw) == 20
    assert raw == (MAGIC + bytes([2, 21, 1, 0]) + bytes.fromhex("01020304")
                   + bytes.fromhex("0a0b0c0d0e0f1011"))
    assert struct.unpack(">4sBBBBIQ", raw)[1:] == (2, 21, 1, 0, 0x01020304, 0x0A0B0C0D0E0F1011)


def test_message_types_of_protocol_2():
    assert PROTOCOL_VERSION == 2
    assert {m.name: int(m) for m in MessageType} == {
        "HELLO": 1, "AUTH": 2, "AUTH_OK": 3, "REFUSE": 4, "HEARTBEAT": 19, "BYE": 20,
        "BATCH": 21}


@pytest.mark.parametrize("split", [whole, bytewise], ids=["whole", "bytewise"])
def test_reader_splits_frames_with_and_without_mac(split):
    stream = frame(1, b"hello", 0) + frame(21, b"", 1, b"m" * 32) + frame(19, b"x" * 300, 2)
    reader = FrameReader()
    got = []
    for chunk in split(stream):
        reader.feed(chunk)
        got += read_all(reader)
    assert got == [(1, 0, b"", b"hello"), (21, 1, b"m" * 32, b""), (19, 2, b"", b"x" * 300)]
    assert len(reader) == 0


def test_trailing_partial_frame_waits_for_the_rest():
    reader = FrameReader()
    second = frame(2, b"cdef", 1)
    reader.feed(frame(1, b"ab", 0) + second[:23])
    assert read_all(reader) == [(1, 0, b"", b"ab")]
    header = reader.peek_header()
    assert header is not None and header.length == 4 and reader.take(header) is None
    reader.feed(second[23:])
    assert read_all(reader) == [(2, 1, b"", b"cdef")]


def test_header_is_available_before_the_body():
    reader = FrameReader()
    reader.feed(pack_header(2, 21, 0, 10_000_000, 0))
    header = reader.peek_header()
    assert header is not None and header.length == 10_000_000
    assert reader.take(header) is None


@pytest.mark.parametrize("data, match", [
    (b"\x00", "bad magic"), (b"\xa7p\x00", "bad magic"), (b"GET / HTTP/1.1\r\n", "bad magic"),
    (MAGIC + bytes([2, 1, 2, 0]) + bytes(12), "unknown flags"),
    (MAGIC + bytes([2, 1, 0, 7]) + bytes(12), "reserved byte"),
])
def test_bad_headers_are_refused_as_early_as_possible(data, match):
    reader = FrameReader()
    reader.feed(data)
    with pytest.raises(RemoteProtocolError, match=match):
        reader.peek_header()


def test_many_small_frames_in_one_chunk():
    reader = FrameReader()
    reader.feed(b"".join(frame(19, b"", i) for i in range(5000)))
    assert [seq for _, seq, _, _ in read_all(reader)] == list(range(5000))


@SETTINGS
@given(bodies=st.lists(st.binary(max_size=200), min_size=1, max_size=8),
       cuts=st.lists(st.integers(0, 3000), max_size=12))
def test_frames_split_at_random_points_decode_the_same(bodies, cuts):
    stream = b"".join(frame(21, body, i) for i, body in enumerate(bodies))
    points = sorted({c % (len(stream) + 1) for c in cuts}) + [len(stream)]
    reader, got, prev = FrameReader(), [], 0
    for p in points:
        reader.feed(stream[prev:p])
        prev = p
        got += read_all(reader)
    assert [body for _, _, _, body in got] == bodies


VALUES = st.recursive(st.none() | st.integers() | st.text() | st.binary(),
                      lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(), c, max_size=3),
                      max_leaves=10)
ONE_MESSAGE = st.one_of(
    st.builds(wire.request, st.integers(0, 2**64 - 1), st.text(min_size=1, max_size=20),
              VALUES.map(encode)),
    st.builds(wire.reply, st.integers(0, 100), st.booleans(), st.binary(max_size=500)),
    st.builds(wire.send, st.integers(0, 2**64 - 1), st.floats(allow_nan=False).map(encode)),
    st.builds(wire.stream, st.sampled_from(["file", "ü"]), st.binary(max_size=50)),
)
MESSAGES = st.lists(st.one_of(
    st.lists(ONE_MESSAGE, min_size=1, max_size=3).map(lambda ms: Batch(b"".join(ms))),
    st.just(Heartbeat()),
), max_size=6)


@SETTINGS
@given(messages=MESSAGES, data=st.data(), secret=st.sampled_from(["k", ""]))
def test_whole_conversations_split_at_random_points_decode_the_same(messages, data, secret):
    def random_split(chunk: bytes) -> list[bytes]:
        sizes = data.draw(st.lists(st.integers(1, 64), max_size=10), label="chunk sizes")
        out, pos = [], 0
        for size in sizes:
            out.append(chunk[pos : pos + size])
            pos += size
        out.append(chunk[pos:])
        return [c for c in out if c]

    link = Link.make(secret=secret, split=random_split).start()
    for m in messages:
        link.send("a", m)
        if data.draw(st.booleans(), label="deliver now"):
            link.run()
    link.run()
    assert link.events["b"][1:] == messages
