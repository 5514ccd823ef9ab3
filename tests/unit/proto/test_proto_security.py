"""Attacks on the wire: garbage, tampering, replay, reordering, and code-executing pickles.

The connection never decodes a payload: it hands authenticated BATCH bodies on as bytes, and
only ``pycos.proto.codec`` (whose dialect check runs before any unpickling) turns a payload
into a value. These tests check both halves: nothing reaches the node before the peer has
proved the secret, nothing altered, replayed or reordered passes, and a code-executing pickle
that does pass (from an authenticated peer) is refused by the decoder without running.
"""

from __future__ import annotations

import os
import pickle
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from proto_helpers import Link, drain, events_until_error, feed, raw_frame, request_batch

from pycos.proto import (
    Batch,
    Connection,
    ConnectionClosed,
    Established,
    MessageType,
    RefuseCode,
    Refused,
    RemoteProtocolError,
    Role,
    SerializationError,
    State,
    WireError,
)
from pycos.proto import batch as wire
from pycos.proto.codec import decode
from pycos.proto.frame import MAGIC
from pycos.proto.messages import Hello

SETTINGS = settings(max_examples=100, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])

#: Every call of ``mark`` lands here: evidence that unpickling ran code.
EXECUTED: list[str] = []


def mark(tag: str) -> str:
    EXECUTED.append(tag)
    return tag


class Evil:
    """Pickles to "call mark('ran')" — harmless, but observable."""

    def __reduce__(self):
        return (mark, ("ran",))


class OsEvil:
    def __reduce__(self):
        return (os.system, ("true",))


EVIL = pickle.dumps(Evil())
EVIL_BATCH = wire.request(1, "x", EVIL) + wire.send(2, EVIL)


@pytest.fixture(autouse=True)
def _clear_marker():
    EXECUTED.clear()
    yield
    EXECUTED.clear()


@pytest.fixture
def no_unpickling():
    """Fails the test if anything is unpickled while it is active."""
    boom = AssertionError("unpickled")
    with mock.patch.object(pickle, "loads", side_effect=boom), \
            mock.patch.object(pickle, "load", side_effect=boom), \
            mock.patch.object(pickle, "Unpickler", side_effect=boom):
        yield


# ---------------------------------------------------------------- the marker really works
def test_marker_detects_execution_with_unrestricted_pickle():
    assert pickle.loads(EVIL) == "ran" and EXECUTED == ["ran"]
    EXECUTED.clear()
    assert decode(EVIL, trusted=True) == "ran" and EXECUTED == ["ran"]  # the explicit opt-in


# ---------------------------------------------------------------- code-executing pickles
def test_decoder_refuses_code_executing_pickles_before_unpickling():
    attacks = (EVIL, pickle.dumps(OsEvil()), pickle.dumps(OsEvil(), protocol=0))
    with mock.patch.object(os, "system", side_effect=AssertionError("os.system ran")):
        for data in attacks:
            with pytest.raises(WireError, match="refused"):
                decode(data)
    assert EXECUTED == []


@pytest.mark.parametrize("secret", ["k", ""])
def test_evil_batch_as_first_frame_is_refused_unread(secret, no_unpickling):
    b = Connection(Role.SERVER, secret=secret)
    b.initiate()
    b.receive_data(raw_frame(MessageType.BATCH, EVIL_BATCH, 0))
    with pytest.raises(RemoteProtocolError, match="BATCH while this side is in state HELLO_SENT"):
        b.next_event()
    assert b.state is State.ERROR and EXECUTED == []


def test_evil_batch_after_hello_without_auth_is_refused(no_unpickling):
    a, b = Connection(Role.CLIENT, secret="k"), Connection(Role.SERVER, secret="k")
    b.initiate()
    attack = a.initiate() + raw_frame(MessageType.BATCH, EVIL_BATCH, 1)
    b.receive_data(attack)
    with pytest.raises(RemoteProtocolError, match="BATCH while this side is in state"):
        drain(b)
    assert EXECUTED == []


def test_evil_batch_from_wrong_secret_peer_is_never_read(no_unpickling):
    link = Link.make(secret="good", secret_b="bad").start()
    # The attacker (a, wrong secret) pushes a batch with a valid-looking MAC under its key.
    evil = raw_frame(MessageType.BATCH, EVIL_BATCH, 3, key=link.a._send_key)
    assert feed(link.b, evil) == [ConnectionClosed()]
    assert link.b.state is State.CLOSED and EXECUTED == []


@pytest.mark.parametrize("secret", ["k", ""])
def test_evil_batch_from_authenticated_peer_is_refused_by_the_decoder(secret):
    link = Link.make(secret=secret).start()
    frame = raw_frame(MessageType.BATCH, EVIL_BATCH, 3, key=link.a._send_key)
    (event,) = feed(link.b, frame)
    assert event == Batch(EVIL_BATCH) and link.b.state is State.OPEN
    messages = wire.parse(event.body)
    assert [(m.op, m.a) for m in messages] == [(wire.REQUEST, 1), (wire.SEND, 2)]
    for m in messages:
        with pytest.raises(WireError, match="a global other than pycos's builders"):
            decode(m.payload)
    assert EXECUTED == []


# ---------------------------------------------------------------- arbitrary bytes
GARBAGE = st.one_of(
    st.binary(max_size=400),
    st.binary(max_size=400).map(lambda b: MAGIC + b),
    st.tuples(st.integers(0, 255), st.integers(0, 255), st.binary(max_size=300)).map(
        lambda t: MAGIC + bytes([2, t[0], t[1] & 1, 0]) + len(t[2]).to_bytes(4, "big")
        + bytes(8) + t[2]),
)


def _only_remote_errors(conn: Connection, data: bytes, cuts: list[int]) -> None:
    chunks, prev = [], 0
    for cut in sorted(set(c % (len(data) + 1) for c in cuts)) + [len(data)]:
        chunks.append(data[prev:cut])
        prev = cut
    try:
        for chunk in chunks:
            if chunk:
                conn.receive_data(chunk)
            for event in drain(conn):
                assert isinstance(event, Refused | ConnectionClosed), event
        conn.receive_data(b"")
        drain(conn)
    except RemoteProtocolError:
        assert conn.state is State.ERROR


@SETTINGS
@given(data=GARBAGE, cuts=st.lists(st.integers(0, 10_000), max_size=6),
       initiated=st.booleans(), secret=st.sampled_from(["k", ""]))
def test_arbitrary_bytes_only_raise_remote_protocol_error(data, cuts, initiated, secret):
    conn = Connection(Role.SERVER, secret=secret)
    if initiated:
        conn.initiate()
    with mock.patch.object(pickle, "loads", side_effect=AssertionError("unpickled")):
        _only_remote_errors(conn, data, cuts)
    assert conn.state is not State.OPEN


@SETTINGS
@given(data=GARBAGE, secret=st.sampled_from(["k", ""]))
def test_arbitrary_bytes_on_open_connection_only_raise_remote_protocol_error(data, secret):
    link = Link.make(secret=secret).start()
    b = link.b
    events: list[object] = []
    try:
        if data:
            b.receive_data(data)
        events = drain(b)
        b.receive_data(b"")
        events += drain(b)
    except RemoteProtocolError:
        assert b.state is State.ERROR
    else:
        # With a secret nothing forged gets through; without one a lucky frame may pass, and
        # its payloads still meet only the decoder's dialect check.
        if secret:
            assert events == [ConnectionClosed()]
        for event in events:
            if isinstance(event, Batch):
                try:
                    for m in wire.parse(event.body):
                        try:
                            decode(m.payload)
                        except SerializationError:
                            pass
                except RemoteProtocolError:
                    pass
    assert EXECUTED == []


@SETTINGS
@given(pos=st.integers(0, 10_000), xor=st.integers(1, 255), side=st.sampled_from("ab"))
def test_altered_handshake_byte_never_establishes(pos, xor, side):
    """Flip one byte anywhere in one side's handshake stream: no connection comes up."""
    link = Link.make(secret="k")
    link.write("a", link.a.initiate())
    link.write("b", link.b.initiate())
    victim = "b" if side == "a" else "a"
    target = link.conns[victim]

    stream = bytearray(link.pending[side])
    pos %= len(stream)
    stream[pos] ^= xor
    link.pending[side] = stream
    try:
        link.run()
    except RemoteProtocolError:
        pass
    assert target.state is not State.OPEN
    assert not link.take(victim, Established)


# ---------------------------------------------------------------- tampering after the handshake
def _open_with_frames(n: int, secret: str = "k") -> tuple[Link, list[bytes], list[Batch]]:
    link = Link.make(secret=secret).start()
    messages = [request_batch(i, "op", {"i": i, "pad": "x" * (i * 7 % 40)}) for i in range(n)]
    frames = [link.a.send(m) for m in messages]
    return link, frames, messages


@SETTINGS
@given(index=st.integers(0, 3), pos=st.integers(0, 10_000), xor=st.integers(1, 255))
def test_any_altered_frame_is_refused(index, pos, xor):
    link, frames, messages = _open_with_frames(4)
    victim = bytearray(frames[index])
    victim[pos % len(victim)] ^= xor
    stream = b"".join(frames[:index]) + bytes(victim) + b"".join(frames[index + 1 :])
    link.b.receive_data(stream)
    link.b.receive_data(b"")
    events, error = events_until_error(link.b)
    assert isinstance(error, RemoteProtocolError)
    assert events == messages[:index]


@SETTINGS
@given(order=st.lists(st.integers(0, 4), min_size=1, max_size=8))
def test_replayed_reordered_or_dropped_frames_are_refused(order):
    link, frames, messages = _open_with_frames(5)
    in_order = 0
    while in_order < len(order) and order[in_order] == in_order:
        in_order += 1
    events: list[object] = []
    try:
        for i in order:
            link.b.receive_data(frames[i])
            events += drain(link.b)
    except RemoteProtocolError as exc:
        assert in_order < len(order), "a frame in sequence was refused"
        assert "sequence number" in str(exc)
    else:
        assert in_order == len(order), "an out-of-sequence frame was accepted"
    assert events == messages[:in_order]


def test_frame_from_another_connection_is_refused_even_at_the_right_sequence():
    _, frames1, _ = _open_with_frames(1)
    link2, _, _ = _open_with_frames(0)
    link2.b.receive_data(frames1[0])
    with pytest.raises(RemoteProtocolError, match="MAC does not verify"):
        link2.b.next_event()


def test_frame_reflected_back_to_its_sender_is_refused():
    link, frames, _ = _open_with_frames(1)
    link.a.receive_data(frames[0])
    with pytest.raises(RemoteProtocolError, match="MAC does not verify"):
        link.a.next_event()


def test_frame_with_mac_stripped_is_refused():
    link, frames, _ = _open_with_frames(1)
    frame = frames[0]
    stripped = frame[:6] + bytes([0]) + frame[7:20] + frame[52:]
    link.b.receive_data(stripped)
    with pytest.raises(RemoteProtocolError, match="lacks the MAC"):
        link.b.next_event()


def test_batch_body_swapped_between_frames_is_refused():
    """Same header, same length, another frame's body: the MAC covers the body."""
    link = Link.make(secret="k").start()
    one = link.a.send(Batch(wire.send(1, b"AAAA")))
    two = link.a.send(Batch(wire.send(1, b"BBBB")))
    assert len(one) == len(two)
    link.b.receive_data(one[:52] + two[52:])
    with pytest.raises(RemoteProtocolError, match="MAC does not verify"):
        link.b.next_event()


def test_without_secret_sequence_numbers_still_stop_replay():
    link, frames, messages = _open_with_frames(2, secret="")
    assert feed(link.b, frames[0]) == [messages[0]]
    link.b.receive_data(frames[0])
    with pytest.raises(RemoteProtocolError, match="sequence number"):
        link.b.next_event()


# ---------------------------------------------------------------- replayed handshakes
def test_recorded_handshake_replayed_to_new_connection_is_refused():
    link = Link.make(secret="k").start()
    assert link.b.state is State.OPEN
    recorded = b"".join(link.wire["a"])  # HELLO, AUTH, AUTH_OK of the genuine client
    fresh = Connection(Role.SERVER, secret="k")
    fresh.initiate()
    events = feed(fresh, recorded)
    assert isinstance(events[0], Refused) and events[0].code is RefuseCode.AUTH_FAILED
    assert "replayed handshake" in events[0].reason
    assert fresh.state is State.CLOSED and not any(isinstance(e, Established) for e in events)


def test_recorded_conversation_replayed_after_a_fresh_handshake_is_refused():
    """An attacker who recorded a whole session (handshake and batches) and replays the
    batches after the victim's new handshake gets nothing through: new keys, new MACs."""
    old, frames, _ = _open_with_frames(2)
    fresh = Link.make(secret="k").start()
    fresh.b.receive_data(frames[0])
    with pytest.raises(RemoteProtocolError, match="MAC does not verify"):
        fresh.b.next_event()


def test_reflected_hello_is_refused():
    b = Connection(Role.SERVER, secret="k")
    own = Hello.decode(b.initiate()[20:])
    mirror = Hello(own.min_version, own.max_version, Role.CLIENT, True, own.max_frame_size,
                   b"\x09" * 16, own.nonce)
    (refused, _) = feed(b, raw_frame(MessageType.HELLO, mirror.encode(), 0))
    assert refused.code is RefuseCode.PROTOCOL_ERROR and "nonce" in refused.reason
