"""The messages inside a BATCH frame (``pycos.proto.batch``): the documented layout of every op,
round trips of all of them, alone and mixed in one body, and the parser's refusals. A parser
fed a peer's bytes raises ``RemoteProtocolError`` and nothing else (hypothesis: arbitrary
bodies, and valid bodies cut or altered anywhere); payloads come back as raw bytes, never
decoded here."""

from __future__ import annotations

import struct
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pycos.proto.codec as codec
from pycos.proto import RemoteProtocolError
from pycos.proto import batch as wire
from pycos.proto.batch import Msg

SETTINGS = settings(max_examples=300, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow])
U64 = 2**64 - 1


# ---------------------------------------------------------------- layout
def test_op_codes_and_names():
    assert (wire.SEND, wire.DELIVER, wire.CSEND, wire.REQUEST, wire.REPLY, wire.INFO,
            wire.VERDICT, wire.STREAM) == (1, 2, 3, 4, 5, 6, 7, 8)
    assert wire.OP_NAMES[wire.STREAM] == "STREAM" and len(wire.OP_NAMES) == 8
    assert (wire.OK, wire.FAILED) == (0, 1)


def test_layout_of_every_op_is_the_documented_one():
    p = b"PAY"
    assert wire.send(0x0102, p) == b"\x01" + struct.pack(">QI", 0x0102, 3) + p
    assert wire.deliver(5, 6, p) == b"\x02" + struct.pack(">QQI", 5, 6, 3) + p
    assert wire.csend(7, p) == b"\x03" + struct.pack(">QI", 7, 3) + p
    assert wire.request(8, "ké", p) == (b"\x04" + struct.pack(">Q", 8) + b"\x03k\xc3\xa9"
                                        + struct.pack(">I", 3) + p)
    assert wire.reply(9, True, p) == b"\x05" + struct.pack(">QBI", 9, 1, 3) + p
    assert wire.reply(9, False, b"") == b"\x05" + struct.pack(">QBI", 9, 0, 0)
    assert wire.info(p) == b"\x06" + struct.pack(">I", 3) + p
    assert wire.verdict(True) == b"\x07\x01" and wire.verdict(False) == b"\x07\x00"
    assert wire.stream("file", p) == b"\x08\x04file" + struct.pack(">I", 3) + p


# ---------------------------------------------------------------- round trips
ONE_OF_EACH = [
    (wire.send(1, b"a"), Msg(wire.SEND, 1, 0, None, 0, b"a")),
    (wire.deliver(2, 3, b"bb"), Msg(wire.DELIVER, 2, 3, None, 0, b"bb")),
    (wire.csend(U64, b""), Msg(wire.CSEND, U64, 0, None, 0, b"")),
    (wire.request(0, "one-way", b"c"), Msg(wire.REQUEST, 0, 0, "one-way", 0, b"c")),
    (wire.request(U64, "k" * 255, b""), Msg(wire.REQUEST, U64, 0, "k" * 255, 0, b"")),
    (wire.reply(4, False, b"v"), Msg(wire.REPLY, 4, 0, None, wire.OK, b"v")),
    (wire.reply(5, True, b"e"), Msg(wire.REPLY, 5, 0, None, wire.FAILED, b"e")),
    (wire.info(b"who"), Msg(wire.INFO, 0, 0, None, 0, b"who")),
    (wire.verdict(True), Msg(wire.VERDICT, 0, 0, None, 1, b"")),
    (wire.verdict(False), Msg(wire.VERDICT, 0, 0, None, 0, b"")),
    (wire.stream("ü", b"s"), Msg(wire.STREAM, 0, 0, "ü", 0, b"s")),
]


@pytest.mark.parametrize("body, msg", ONE_OF_EACH, ids=lambda x: str(x)[:20])
def test_every_op_round_trips(body, msg):
    assert wire.parse(body) == [msg]
    assert wire.parse(memoryview(body)) == [msg]
    assert wire.parse(bytearray(body)) == [msg]


def test_many_messages_in_one_body_keep_their_order():
    body = b"".join(b for b, _ in ONE_OF_EACH) * 3
    assert wire.parse(body) == [m for _, m in ONE_OF_EACH] * 3


def test_payloads_are_returned_raw_and_decoded_only_on_request():
    value = {"task": [1, 2.5, "x"]}
    body = wire.send(9, codec.encode(value)) + wire.send(9, b"")
    with mock.patch.object(codec, "decode", side_effect=AssertionError("decoded")):
        first, empty = wire.parse(body)
    assert wire.payload_value(first.payload, codec.decode) == value
    assert wire.payload_value(empty.payload, codec.decode) is None


def test_an_empty_body_has_no_messages():
    assert wire.parse(b"") == []


MSGS = st.one_of(
    st.builds(lambda a, p: (wire.send(a, p), Msg(wire.SEND, a, 0, None, 0, p)),
              st.integers(0, U64), st.binary(max_size=40)),
    st.builds(lambda a, b, p: (wire.deliver(a, b, p), Msg(wire.DELIVER, a, b, None, 0, p)),
              st.integers(0, U64), st.integers(0, U64), st.binary(max_size=40)),
    st.builds(lambda a, p: (wire.csend(a, p), Msg(wire.CSEND, a, 0, None, 0, p)),
              st.integers(0, U64), st.binary(max_size=40)),
    st.builds(lambda a, k, p: (wire.request(a, k, p), Msg(wire.REQUEST, a, 0, k, 0, p)),
              st.integers(0, U64), st.text(min_size=1, max_size=60), st.binary(max_size=40)),
    st.builds(lambda a, f, p: (wire.reply(a, f, p), Msg(wire.REPLY, a, 0, None, int(f), p)),
              st.integers(0, U64), st.booleans(), st.binary(max_size=40)),
    st.builds(lambda p: (wire.info(p), Msg(wire.INFO, 0, 0, None, 0, p)),
              st.binary(max_size=40)),
    st.builds(lambda v: (wire.verdict(v), Msg(wire.VERDICT, 0, 0, None, int(v), b"")),
              st.booleans()),
    st.builds(lambda k, p: (wire.stream(k, p), Msg(wire.STREAM, 0, 0, k, 0, p)),
              st.text(min_size=1, max_size=60), st.binary(max_size=40)),
)


@SETTINGS
@given(messages=st.lists(MSGS, max_size=8))
def test_generated_batches_round_trip(messages):
    body = b"".join(b for b, _ in messages)
    assert wire.parse(body) == [m for _, m in messages]


# ---------------------------------------------------------------- malformed bodies
@pytest.mark.parametrize("body, match", [
    (b"\x00", "unknown message op 0"),
    (b"\x09", "unknown message op 9"),
    (b"\xff" + bytes(20), "unknown message op 255"),
    (wire.send(1, b"abc")[:-1], "runs past the end"),
    (wire.send(1, b"")[:-1], "truncated SEND"),
    (b"\x01", "truncated SEND"),
    (wire.deliver(1, 2, b"x")[:10], "truncated DELIVER"),
    (wire.csend(1, b"x")[:5], "truncated CSEND"),
    (wire.request(1, "kind", b"")[:9], "truncated kind"),
    (wire.request(1, "kind", b"")[:12], "empty or truncated kind"),
    (wire.request(1, "kind", b"")[:-1], "truncated REQUEST"),
    (b"\x04" + bytes(8) + b"\x00" + bytes(4), "empty or truncated kind"),
    (b"\x04" + bytes(8) + b"\x02\xff\xfe" + bytes(4), "not valid UTF-8"),
    (wire.reply(1, False, b"")[:-2], "truncated REPLY"),
    (b"\x05" + bytes(8) + b"\x02" + bytes(4), "unknown status 2"),
    (wire.info(b"x")[:3], "truncated INFO"),
    (b"\x06" + b"\xff\xff\xff\xff" + b"short", "runs past the end"),
    (b"\x07", "truncated VERDICT"),
    (b"\x07\x02", "unknown value 2"),
    (b"\x08", "truncated kind"),
    (b"\x08\x04fil", "empty or truncated kind"),
    (wire.stream("file", b"")[:-2], "truncated STREAM"),
    (wire.send(1, b"ok") + b"\x63", "unknown message op 99"),
])
def test_malformed_bodies_are_remote_protocol_errors(body, match):
    with pytest.raises(RemoteProtocolError, match=match):
        wire.parse(body)


@pytest.mark.parametrize("call, exc", [
    (lambda: wire.request(-1, "k", b""), ValueError),
    (lambda: wire.request(2**64, "k", b""), ValueError),
    (lambda: wire.request(True, "k", b""), ValueError),
    (lambda: wire.request(1, "", b""), ValueError),
    (lambda: wire.request(1, "k" * 256, b""), ValueError),
    (lambda: wire.request(1, "é" * 128, b""), ValueError),
    (lambda: wire.request(1, 5, b""), TypeError),
    (lambda: wire.stream("", b""), ValueError),
    (lambda: wire.stream(b"file", b""), TypeError),
])
def test_encoders_check_ids_and_kinds(call, exc):
    with pytest.raises(exc):
        call()


@pytest.mark.parametrize("call", [
    lambda: wire.send(-1, b""), lambda: wire.send(2**64, b""),
    lambda: wire.deliver(1, -2, b""), lambda: wire.deliver(2**64, 1, b""),
    lambda: wire.csend(-1, b""), lambda: wire.reply(2**64, False, b""),
    lambda: wire.send("1", b""),
], ids=["send-1", "send2**64", "deliver-task", "deliver-request", "csend-1", "reply2**64",
        "send-str"])
def test_every_encoder_refuses_bad_ids_with_type_or_value_error(call):
    """Public calls given wrong arguments raise TypeError / ValueError (SPEC §6), as
    ``request`` does; not ``struct.error``."""
    with pytest.raises((TypeError, ValueError)):
        call()


# ---------------------------------------------------------------- hypothesis: hostile bodies
def _parse_or_refuse(body: bytes) -> list[Msg] | None:
    try:
        out = wire.parse(body)
    except RemoteProtocolError:
        return None
    # What was accepted is consistent: re-encoding gives the same body back.
    again = b""
    for m in out:
        again += {
            wire.SEND: lambda m: wire.send(m.a, m.payload),
            wire.DELIVER: lambda m: wire.deliver(m.a, m.b, m.payload),
            wire.CSEND: lambda m: wire.csend(m.a, m.payload),
            wire.REQUEST: lambda m: wire.request(m.a, m.kind, m.payload),
            wire.REPLY: lambda m: wire.reply(m.a, bool(m.status), m.payload),
            wire.INFO: lambda m: wire.info(m.payload),
            wire.VERDICT: lambda m: wire.verdict(bool(m.status)),
            wire.STREAM: lambda m: wire.stream(m.kind, m.payload),
        }[m.op](m)
    assert again == bytes(body)
    return out


@SETTINGS
@given(body=st.binary(max_size=300)
       | st.binary(max_size=300).map(lambda b: bytes([b[0] % 9]) + b[1:] if b else b))
def test_arbitrary_bodies_only_raise_remote_protocol_error(body):
    _parse_or_refuse(body)


@SETTINGS
@given(messages=st.lists(MSGS, min_size=1, max_size=5), data=st.data())
def test_altered_or_cut_bodies_only_raise_remote_protocol_error(messages, data):
    body = bytearray(b"".join(b for b, _ in messages))
    how = data.draw(st.sampled_from(["cut", "flip", "insert"]))
    pos = data.draw(st.integers(0, len(body) - 1))
    if how == "cut":
        del body[pos:]
    elif how == "flip":
        body[pos] ^= data.draw(st.integers(1, 255))
    else:
        body[pos:pos] = data.draw(st.binary(min_size=1, max_size=8))
    out = _parse_or_refuse(bytes(body))
    if how == "cut" and out is not None:
        # Cutting at a message boundary leaves a shorter valid batch: a prefix of the original.
        assert out == [m for _, m in messages][: len(out)]
