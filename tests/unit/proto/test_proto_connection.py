"""Connection pairs: handshake, BATCH exchange, refusals, derived keys, and misuse (no sockets).

A connection hands batches on as raw bytes (``Batch(body)``); what is inside a batch is
``pycos.proto.batch`` and ``pycos.proto.codec`` (tested in their own files), so here a body is
just bytes that must arrive unchanged, in order, once the handshake is over.
"""

from __future__ import annotations

import pickle

import pytest
from proto_helpers import (
    Link,
    bytewise,
    call,
    drain,
    feed,
    integer,
    payload,
    raw_frame,
    request_batch,
    text,
    whole,
)

import pycos.proto.connection as connection_mod
from pycos.proto import (
    HANDSHAKE_FRAME_LIMIT,
    NEED_DATA,
    PROTOCOL_VERSION,
    Batch,
    Bye,
    Connection,
    ConnectionClosed,
    Established,
    Heartbeat,
    LocalProtocolError,
    MessageType,
    Refuse,
    RefuseCode,
    Refused,
    RemoteProtocolError,
    Role,
    State,
    UnpicklingRefused,
    WireError,
)
from pycos.proto import batch as wire
from pycos.proto.codec import decode, encode
from pycos.proto.frame import HEADER_SIZE, pack_header

SPLITS = {"whole": whole, "bytewise": bytewise}
V = PROTOCOL_VERSION


# ---------------------------------------------------------------- handshake
@pytest.mark.parametrize("split", SPLITS.values(), ids=SPLITS.keys())
@pytest.mark.parametrize("secret", ["s3cret", ""])
def test_pair_reaches_open_and_exchanges_batches(split, secret):
    link = Link.make(secret=secret, split=split).start()
    assert link.a.state is State.OPEN and link.b.state is State.OPEN
    (est_a,) = link.take("a", Established)
    (est_b,) = link.take("b", Established)
    assert est_a.peer_incarnation == link.b.incarnation
    assert est_b.peer_incarnation == link.a.incarnation
    assert est_a.version == est_b.version == PROTOCOL_VERSION == 2
    assert est_a.authenticated is est_b.authenticated is bool(secret)
    assert link.a.authenticated is bool(secret)

    ask = request_batch(7, "locate", {"name": "worker", "n": [1, 2.5]})
    one_way = Batch(wire.send(3, b"\x00\xff") + wire.csend(4, b""))
    link.send("a", ask)
    link.send("a", one_way)
    link.send("a", Heartbeat())
    link.run()
    assert link.events["b"][1:] == [ask, one_way, Heartbeat()]
    (msg,) = wire.parse(link.events["b"][1].body)
    assert (msg.op, msg.a, msg.kind) == (wire.REQUEST, 7, "locate")
    assert decode(msg.payload) == {"name": "worker", "n": [1, 2.5]}
    answer = Batch(wire.reply(7, False, b""))
    link.send("b", answer)
    link.run()
    assert link.events["a"][-1] == answer


def test_send_batch_is_send_of_a_batch():
    link = Link.make().start()
    body = wire.send(1, b"payload")
    data = link.a.send_batch(body)
    assert isinstance(data, bytes) and data.endswith(body)
    link.write("a", data)
    link.send("a", Batch(bytearray(body)))
    link.run()
    assert link.events["b"][1:] == [Batch(body), Batch(body)]
    assert link.a.data_to_send() == b""


def headers(stream: bytes) -> list[tuple[int, MessageType, bool, int]]:
    """(version, type, has MAC, sequence) of every frame in ``stream``."""
    out = []
    while stream:
        h = stream[:HEADER_SIZE]
        flags, length = h[6], int.from_bytes(h[8:12], "big")
        out.append((h[4], MessageType(h[5]), bool(flags & 1), int.from_bytes(h[12:20], "big")))
        stream = stream[HEADER_SIZE + (32 if flags & 1 else 0) + length :]
    return out


def test_a_refused_payload_spoils_only_its_message():
    """Payloads are decoded one by one by the receiver: a payload outside the dialect, or one
    naming a class the receiver does not allow, spoils that message only, and the connection
    carries on."""
    link = Link.make().start()
    outside = pickle.dumps(print, 5)  # a plain pickle naming a global
    not_allowed = payload(call("o", integer(1), text("os.system")))
    body = (wire.send(1, encode("before")) + wire.request(2, "call", outside)
            + wire.deliver(3, 4, not_allowed) + wire.send(5, encode("after")))
    link.send("a", Batch(body))
    link.run()
    first, bad1, bad2, last = wire.parse(link.events["b"][-1].body)
    assert decode(first.payload) == "before" and decode(last.payload) == "after"
    with pytest.raises(WireError):
        decode(bad1.payload)
    with pytest.raises(UnpicklingRefused):
        decode(bad2.payload)
    assert link.a.state is link.b.state is State.OPEN


def test_handshake_frames_are_exactly_hello_auth_auth_ok():
    link = Link.make().start()
    assert headers(b"".join(link.wire["a"])) == [
        (V, MessageType.HELLO, False, 0), (V, MessageType.AUTH, False, 1),
        (V, MessageType.AUTH_OK, True, 2)]


def test_responder_may_initiate_after_peer_hello():
    a = Connection(Role.CLIENT, secret="k")
    b = Connection(Role.SERVER, secret="k")
    link = Link(a, b)
    link.write("a", a.initiate())
    link.run()
    assert b.state is State.HELLO_RECEIVED and a.state is State.HELLO_SENT
    link.write("b", b.initiate())
    link.run()
    assert a.state is b.state is State.OPEN


def test_peer_limits_and_identity_are_exposed():
    link = Link.make(max_frame_size=4096)
    assert link.a.peer_incarnation is None and link.a.version is None
    assert link.a.peer_max_frame_size is None
    link.start()
    assert link.a.peer_max_frame_size == 4096 and link.a.version == PROTOCOL_VERSION
    assert link.a.our_role is Role.CLIENT and link.b.our_role is Role.SERVER
    assert link.a.peer_incarnation == link.b.incarnation


# ---------------------------------------------------------------- derived keys
@pytest.mark.parametrize("secret", ["k", ""])
def test_derive_key_is_equal_at_both_ends_and_differs_per_label(secret):
    link = Link.make(secret=secret).start()
    key = link.a.derive_key(b"pycos/file")
    assert len(key) == 32 and key == link.b.derive_key(b"pycos/file")
    assert link.a.derive_key(b"other") == link.b.derive_key(b"other") != key


def test_derive_key_differs_per_connection_even_with_the_same_secret():
    one, two = Link.make(secret="k").start(), Link.make(secret="k").start()
    assert one.a.derive_key(b"x") != two.a.derive_key(b"x")
    assert one.b.derive_key(b"x") != two.b.derive_key(b"x")


def test_derive_key_with_a_wrong_secret_is_never_available():
    link = Link.make(secret="right", secret_b="wrong").start()
    for conn in link.conns.values():
        with pytest.raises(LocalProtocolError, match="established"):
            conn.derive_key(b"x")


def test_derive_key_needs_an_open_connection():
    a, b = Connection(Role.CLIENT, secret="k"), Connection(Role.SERVER, secret="k")
    with pytest.raises(LocalProtocolError, match="established"):
        a.derive_key(b"x")
    link = Link(a, b)
    link.write("a", a.initiate())
    link.write("b", b.initiate())
    # Deliver only a's HELLO: b has keys (it sent AUTH) but is not OPEN yet.
    feed(b, bytes(link.pending["a"]))
    assert b.state is State.AUTHENTICATING
    with pytest.raises(LocalProtocolError, match="established"):
        b.derive_key(b"x")
    link.pending["a"].clear()
    link.run()
    assert a.derive_key(b"x") == b.derive_key(b"x")
    link.send("a", Bye())
    with pytest.raises(LocalProtocolError, match="established"):
        a.derive_key(b"x")


# ---------------------------------------------------------------- feeding
def test_many_frames_in_one_chunk_and_trailing_partial_frame():
    link = Link.make().start()
    batches = [Batch(wire.send(i, b"x" * i)) for i in (1, 2, 3)]
    f1, f2, f3 = (link.a.send(m) for m in batches)
    b = link.b
    b.receive_data(f1 + f2 + f3[:5])
    assert drain(b) == batches[:2]
    assert b.next_event() is NEED_DATA
    assert b.partial() is None  # only 5 header bytes: no header parsed yet
    b.receive_data(f3[5:30])
    assert b.next_event() is NEED_DATA
    assert b.partial() == (len(batches[2].body), 0)  # header read, MAC not complete
    b.receive_data(f3[30:])
    assert drain(b) == batches[2:]
    assert b.partial() is None


def test_partial_reports_a_large_frame_in_progress():
    link = Link.make().start()
    body = wire.info(b"z" * 5000)
    frame = link.a.send_batch(body)
    link.b.receive_data(frame[:1000])
    assert link.b.next_event() is NEED_DATA
    assert link.b.partial() == (len(body), 1000 - 52)


def test_data_after_bye_is_ignored():
    link = Link.make().start()
    data = link.a.send(Bye("finishing")) + b"trailing garbage"
    assert link.a.state is State.CLOSED
    assert feed(link.b, data) == [Bye("finishing"), ConnectionClosed()]
    assert link.b.state is State.CLOSED
    link.b.receive_data(b"more")
    assert link.b.next_event() == ConnectionClosed()


def test_end_of_stream_when_open_closes_cleanly():
    link = Link.make().start()
    link.b.receive_data(b"")
    assert link.b.next_event() == ConnectionClosed()
    assert link.b.state is State.CLOSED
    with pytest.raises(LocalProtocolError, match="after end of stream"):
        link.b.receive_data(b"x")


def test_end_of_stream_mid_frame_is_remote_error():
    link = Link.make().start()
    frame = link.a.send_batch(wire.send(1, b"x"))
    link.b.receive_data(frame[:-1])
    link.b.receive_data(b"")
    with pytest.raises(RemoteProtocolError, match="middle of a frame"):
        link.b.next_event()


def test_end_of_stream_during_handshake_is_remote_error():
    b = Connection(Role.SERVER)
    b.initiate()
    b.receive_data(b"")
    with pytest.raises(RemoteProtocolError, match="during the handshake"):
        b.next_event()


# ---------------------------------------------------------------- refusals
def test_wrong_secret_fails_at_both_ends():
    link = Link.make(secret="right", secret_b="wrong").start()
    for side in "ab":
        (refused,) = link.take(side, Refused)
        assert refused.code is RefuseCode.AUTH_FAILED and not refused.by_peer
        assert "different secret" in refused.reason
        assert not link.take(side, Established)
        assert link.conns[side].state is State.CLOSED


def test_secret_on_one_side_only_is_refused_with_clear_reason():
    link = Link.make(secret="x", secret_b="").start()
    (ra,) = link.take("a", Refused)
    (rb,) = link.take("b", Refused)
    assert "this node has a secret and the peer has none" in ra.reason
    assert "the peer has a secret and this node has none" in rb.reason


def test_version_mismatch_refused_at_both_ends(monkeypatch):
    a = Connection(Role.CLIENT, secret="k")
    monkeypatch.setattr(connection_mod, "SUPPORTED_VERSIONS", (3, 4))
    b = Connection(Role.SERVER, secret="k")
    link = Link(a, b).start()
    (ra,) = link.take("a", Refused)
    (rb,) = link.take("b", Refused)
    assert ra.code is rb.code is RefuseCode.VERSION_MISMATCH
    assert ra.reason == ("protocol version mismatch: this node speaks version 2, "
                         "the peer versions 3..4")
    assert rb.reason == ("protocol version mismatch: this node speaks versions 3..4, "
                         "the peer version 2")
    assert a.state is b.state is State.CLOSED


def test_version_1_peer_is_refused():
    """A peer of the previous protocol (REQUEST/REPLY/ONEWAY frames) cannot connect."""
    b = Connection(Role.SERVER)
    b.initiate()
    old = Connection(Role.CLIENT)
    hello = bytearray(old.initiate())
    hello[4] = 1  # frame version
    hello[20:24] = (1).to_bytes(2, "big") * 2  # HELLO: min_version 1, max_version 1
    refused, closed = feed(b, bytes(hello))
    assert refused.code is RefuseCode.VERSION_MISMATCH and closed == ConnectionClosed()
    assert "the peer version 1" in refused.reason


def test_version_mismatch_reaches_a_peer_that_only_listens(monkeypatch):
    """The refusing side's REFUSE is readable by the other side, which then logs it."""
    monkeypatch.setattr(connection_mod, "SUPPORTED_VERSIONS", (3, 3))
    future = Connection(Role.CLIENT)
    monkeypatch.undo()
    b = Connection(Role.SERVER)
    refused, closed = feed(b, future.initiate())
    assert refused.code is RefuseCode.VERSION_MISMATCH and closed == ConnectionClosed()
    answer = feed(future, b.data_to_send())
    assert answer == [Refused(RefuseCode.VERSION_MISMATCH,
                              "protocol version mismatch: we speak version 2, you speak "
                              "version 3", by_peer=True), ConnectionClosed()]


def test_negotiates_highest_common_version(monkeypatch):
    monkeypatch.setattr(connection_mod, "SUPPORTED_VERSIONS", (2, 4))
    a = Connection(Role.CLIENT)
    monkeypatch.setattr(connection_mod, "SUPPORTED_VERSIONS", (1, 3))
    b = Connection(Role.SERVER)
    link = Link(a, b).start()
    assert a.version == b.version == 3 and a.state is State.OPEN
    # Every frame after the HELLOs is written in the agreed version.
    link.send("a", Heartbeat())
    sent = headers(b"".join(link.wire["a"]))
    assert [(v, t) for v, t, _mac, _seq in sent] == [
        (4, MessageType.HELLO), (3, MessageType.AUTH), (3, MessageType.AUTH_OK),
        (3, MessageType.HEARTBEAT)]


def test_self_connection_refused():
    inc = b"\x01" * 16
    link = Link.make(incarnation=inc).start()
    for side in "ab":
        (r,) = link.take(side, Refused)
        assert r.code is RefuseCode.SELF_CONNECTION


def test_same_role_on_both_ends_refused():
    link = Link(Connection(Role.CLIENT), Connection(Role.CLIENT)).start()
    (r,) = link.take("a", Refused)
    assert r.code is RefuseCode.PROTOCOL_ERROR and "CLIENT role" in r.reason


def test_user_refuse_during_handshake_and_close_when_open():
    a, b = Connection(Role.CLIENT), Connection(Role.SERVER)
    b.initiate()
    data = a.initiate() + a.send(Refuse(RefuseCode.OTHER, "node is shutting down"))
    assert a.state is State.CLOSED
    assert feed(b, data) == [Refused(RefuseCode.OTHER, "node is shutting down", by_peer=True),
                             ConnectionClosed()]
    link = Link.make().start()
    assert feed(link.b, link.a.close("bye now")) == [Bye("bye now"), ConnectionClosed()]
    assert link.a.close() == b""


# ---------------------------------------------------------------- misuse (local errors)
def test_send_before_open_is_local_error_and_changes_nothing():
    a = Connection(Role.CLIENT)
    with pytest.raises(LocalProtocolError, match="cannot send BATCH in state START"):
        a.send(Batch(wire.send(1, b"")))
    with pytest.raises(LocalProtocolError, match="cannot send BATCH in state START"):
        a.send_batch(wire.send(1, b""))
    a.initiate()
    with pytest.raises(LocalProtocolError, match="wait for the Established event"):
        a.send(Heartbeat())
    with pytest.raises(LocalProtocolError, match="wait for the Established event"):
        a.send_batch(wire.send(1, b""))
    assert a.state is State.HELLO_SENT and a.data_to_send() == b""
    with pytest.raises(LocalProtocolError, match="cannot send HELLO"):
        a.initiate()


def test_send_after_close_is_local_error():
    link = Link.make().start()
    link.send("a", Bye())
    with pytest.raises(LocalProtocolError, match="CLOSED"):
        link.a.send(Batch(wire.send(1, b"")))
    with pytest.raises(LocalProtocolError, match="CLOSED"):
        link.a.send_batch(wire.send(1, b""))


def test_frame_larger_than_peer_accepts_is_local_error():
    link = Link.make(max_frame_size=2048).start()
    big = Batch(wire.info(b"x" * 4096))
    with pytest.raises(LocalProtocolError, match="exceeds the peer's limit of 2048"):
        link.a.send(big)
    with pytest.raises(LocalProtocolError, match="exceeds the peer's limit of 2048"):
        link.a.send_batch(big.body)
    assert link.a.data_to_send() == b""
    fits = Batch(wire.info(b"x" * 1500))
    link.send("a", fits)
    link.run()
    assert link.events["b"][-1] == fits


@pytest.mark.parametrize("bad, exc", [
    (Batch("text"), TypeError), (Batch(None), TypeError), (Batch(7), TypeError),
    ("not a message", TypeError), (b"raw bytes", TypeError),
    (Refuse(99, "x"), ValueError), (Bye(5), TypeError),
])
def test_bad_messages_are_rejected_without_state_change(bad, exc):
    link = Link.make().start()
    with pytest.raises(exc):
        link.a.send(bad)
    assert link.a.data_to_send() == b"" and link.a.state is State.OPEN
    ok = Batch(wire.send(1, b"ok"))
    link.send("a", ok)
    link.run()
    assert link.events["b"][-1] == ok


@pytest.mark.parametrize("body", ["text", None, 12, ["list"]])
def test_send_batch_of_a_non_bytes_body_leaves_the_connection_unchanged(body):
    """``send_batch`` promises the errors of ``send``: the connection is unchanged. A wrong
    body must not leave half a frame (a header without its body) in the outbox."""
    link = Link.make().start()
    with pytest.raises(TypeError):
        link.a.send_batch(body)
    assert link.a.data_to_send() == b""
    ok = Batch(wire.send(1, b"ok"))
    link.send("a", ok)
    link.run()
    assert link.events["b"][-1] == ok and link.b.state is State.OPEN


@pytest.mark.parametrize("how", ["send", "send_batch"])
def test_an_empty_batch_is_refused_locally(how):
    """The peer treats an empty BATCH as a protocol error and disconnects, so sending one is
    this side's mistake: a local error, before anything is written."""
    link = Link.make().start()
    with pytest.raises((LocalProtocolError, ValueError)):
        if how == "send":
            link.a.send(Batch(b""))
        else:
            link.a.send_batch(b"")
    assert link.a.data_to_send() == b""


@pytest.mark.parametrize("kwargs, exc", [
    ({"secret": 5}, TypeError), ({"incarnation": b"short"}, ValueError),
    ({"incarnation": "x" * 16}, ValueError),
    ({"max_frame_size": 10}, ValueError), ({"max_frame_size": 2**32}, ValueError),
    ({"max_frame_size": "big"}, TypeError), ({"max_frame_size": True}, TypeError),
])
def test_constructor_validates_arguments(kwargs, exc):
    with pytest.raises(exc):
        Connection(Role.CLIENT, **kwargs)
    with pytest.raises(TypeError, match="Role"):
        Connection("client")  # type: ignore[arg-type]


def test_receive_data_takes_bytes_only():
    conn = Connection(Role.SERVER)
    with pytest.raises(TypeError, match="bytes"):
        conn.receive_data("text")  # type: ignore[arg-type]
    conn.receive_data(bytearray(b"\xa7p"))
    conn.receive_data(memoryview(b"cs"))
    assert conn.next_event() is NEED_DATA


# ---------------------------------------------------------------- the peer's faults
def test_oversized_frame_refused_from_header_before_body():
    link = Link.make(max_frame_size=1024).start()
    header = pack_header(V, MessageType.BATCH, 1, 1025, 3)
    link.b.receive_data(header)  # no MAC and no body yet: the header alone decides
    with pytest.raises(RemoteProtocolError, match="exceeds the limit of 1024"):
        link.b.next_event()


def test_large_frame_before_authentication_refused_from_header():
    b = Connection(Role.SERVER)
    b.initiate()
    b.receive_data(pack_header(V, MessageType.HELLO, 0, HANDSHAKE_FRAME_LIMIT + 1, 0))
    with pytest.raises(RemoteProtocolError, match="exceeds the limit"):
        b.next_event()


def test_error_state_is_sticky_and_tells_the_peer():
    a, b = Connection(Role.CLIENT), Connection(Role.SERVER)
    a.initiate()
    b.receive_data(b"GET / HTTP/1.1\r\n\r\n")
    with pytest.raises(RemoteProtocolError, match="bad magic"):
        b.next_event()
    assert b.state is State.ERROR
    with pytest.raises(RemoteProtocolError, match="failed earlier"):
        b.next_event()
    with pytest.raises(LocalProtocolError):
        b.send(Heartbeat())
    (refused,) = feed(a, b.data_to_send())[:1]
    assert refused.code is RefuseCode.PROTOCOL_ERROR and "bad magic" in refused.reason


def test_empty_batch_from_the_peer_is_remote_error():
    link = Link.make(secret="").start()
    link.b.receive_data(raw_frame(MessageType.BATCH, b"", 3))
    with pytest.raises(RemoteProtocolError, match="BATCH body is empty"):
        link.b.next_event()


def test_batch_body_is_not_parsed_by_the_connection():
    """Whatever a BATCH body holds, the connection hands it on as bytes: malformed messages
    are the receiver's business (``batch.parse``), never a reason to kill the link here."""
    link = Link.make(secret="").start()
    junk = b"\xff not a batch \x00"
    assert feed(link.b, raw_frame(MessageType.BATCH, junk, 3)) == [Batch(junk)]
    assert link.b.state is State.OPEN


def test_heartbeat_with_body_is_remote_error():
    link = Link.make(secret="").start()
    link.b.receive_data(raw_frame(MessageType.HEARTBEAT, b"x", 3))
    with pytest.raises(RemoteProtocolError, match="HEARTBEAT body must be empty"):
        link.b.next_event()


@pytest.mark.parametrize("mtype", [5, 16, 17, 18, 22, 255])
def test_unknown_and_retired_frame_types_are_remote_errors(mtype):
    """16..18 were REQUEST, REPLY and ONEWAY in protocol 1: they no longer exist."""
    link = Link.make(secret="").start()
    link.b.receive_data(raw_frame(mtype, b"\x80\x05N.", 3))
    with pytest.raises(RemoteProtocolError, match=f"unknown frame type {mtype}"):
        link.b.next_event()


def test_refuse_with_unknown_code_is_reported_as_other():
    b = Connection(Role.SERVER)
    b.initiate()
    events = feed(b, raw_frame(MessageType.REFUSE, b"\xc8go away", 0))
    assert events == [Refused(RefuseCode.OTHER, "go away", by_peer=True), ConnectionClosed()]


def test_frame_in_another_version_after_agreement_is_remote_error():
    link = Link.make(secret="").start()
    link.b.receive_data(raw_frame(MessageType.HEARTBEAT, b"", 3, version=3))
    with pytest.raises(RemoteProtocolError, match="written in protocol version 3, but version 2"):
        link.b.next_event()


def test_frame_with_mac_before_keys_is_remote_error():
    b = Connection(Role.SERVER, secret="k")
    b.initiate()
    b.receive_data(raw_frame(MessageType.HELLO, bytes(58), 0, key=b"k" * 32))
    with pytest.raises(RemoteProtocolError, match="carries a MAC before keys were agreed"):
        b.next_event()
