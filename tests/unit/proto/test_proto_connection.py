"""Connection pairs: handshake, message exchange, refusals, and misuse (no sockets)."""

from __future__ import annotations

import pytest
from proto_helpers import Link, bytewise, drain, feed, raw_frame, whole

import pycos.proto.connection as connection_mod
from pycos.errors import PycosError
from pycos.proto import (
    HANDSHAKE_FRAME_LIMIT,
    NEED_DATA,
    Bye,
    Connection,
    ConnectionClosed,
    Established,
    Heartbeat,
    LocalProtocolError,
    MessageType,
    Oneway,
    Refuse,
    RefuseCode,
    Refused,
    RemoteProtocolError,
    Reply,
    Request,
    Role,
    State,
    UndecodablePayload,
    UnpicklingRefused,
)
from pycos.proto.frame import HEADER_SIZE, pack_header

SPLITS = {"whole": whole, "bytewise": bytewise}


class Unlisted:
    """A class the restricted unpickler refuses (not allowed anywhere)."""

    def __init__(self, v: int) -> None:
        self.v = v


# ---------------------------------------------------------------- handshake
@pytest.mark.parametrize("split", SPLITS.values(), ids=SPLITS.keys())
@pytest.mark.parametrize("secret", ["s3cret", ""])
def test_pair_reaches_open_and_exchanges_requests(split, secret):
    link = Link.make(secret=secret, split=split).start()
    assert link.a.state is State.OPEN and link.b.state is State.OPEN
    (est_a,) = link.take("a", Established)
    (est_b,) = link.take("b", Established)
    assert est_a.peer_incarnation == link.b.incarnation
    assert est_b.peer_incarnation == link.a.incarnation
    assert est_a.version == est_b.version == 1
    assert est_a.authenticated is est_b.authenticated is bool(secret)
    assert link.a.authenticated is bool(secret)

    link.send("a", Request(7, "locate", {"name": "worker", "n": [1, 2.5]}))
    link.send("a", Oneway("send", ("msg", b"\x00\xff")))
    link.send("a", Heartbeat())
    link.run()
    assert link.events["b"][1:] == [Request(7, "locate", {"name": "worker", "n": [1, 2.5]}),
                                    Oneway("send", ("msg", b"\x00\xff")), Heartbeat()]
    link.send("b", Reply(7, None))
    link.run()
    assert link.events["a"][-1] == Reply(7, None)


def test_handshake_frames_are_exactly_hello_auth_auth_ok():
    link = Link.make().start()
    a_stream = b"".join(link.wire["a"])
    types = []
    while a_stream:
        h = a_stream[:HEADER_SIZE]
        flags, length = h[6], int.from_bytes(h[8:12], "big")
        size = HEADER_SIZE + (32 if flags & 1 else 0) + length
        types.append((MessageType(h[5]), bool(flags & 1), int.from_bytes(h[12:20], "big")))
        a_stream = a_stream[size:]
    assert types == [(MessageType.HELLO, False, 0), (MessageType.AUTH, False, 1),
                     (MessageType.AUTH_OK, True, 2)]


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
    link.start()
    assert link.a.peer_max_frame_size == 4096 and link.a.version == 1
    assert link.a.our_role is Role.CLIENT


# ---------------------------------------------------------------- feeding
def test_many_frames_in_one_chunk_and_trailing_partial_frame():
    link = Link.make().start()
    f1 = link.a.send(Request(1, "k", "one"))
    f2 = link.a.send(Request(2, "k", "two"))
    f3 = link.a.send(Request(3, "k", "three"))
    b = link.b
    b.receive_data(f1 + f2 + f3[:5])
    assert drain(b) == [Request(1, "k", "one"), Request(2, "k", "two")]
    assert b.next_event() is NEED_DATA
    b.receive_data(f3[5:])
    assert drain(b) == [Request(3, "k", "three")]


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
    frame = link.a.send(Request(1, "k", "x"))
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
    monkeypatch.setattr(connection_mod, "SUPPORTED_VERSIONS", (2, 3))
    b = Connection(Role.SERVER, secret="k")
    link = Link(a, b).start()
    (ra,) = link.take("a", Refused)
    (rb,) = link.take("b", Refused)
    assert ra.code is rb.code is RefuseCode.VERSION_MISMATCH
    assert ra.reason == ("protocol version mismatch: this node speaks version 1, "
                         "the peer versions 2..3")
    assert rb.reason == ("protocol version mismatch: this node speaks versions 2..3, "
                         "the peer version 1")
    assert a.state is b.state is State.CLOSED


def test_version_mismatch_reaches_a_peer_that_only_listens(monkeypatch):
    """The refusing side's REFUSE is readable by the other side, which then logs it."""
    monkeypatch.setattr(connection_mod, "SUPPORTED_VERSIONS", (2, 2))
    future = Connection(Role.CLIENT)
    monkeypatch.undo()
    b = Connection(Role.SERVER)
    refused, closed = feed(b, future.initiate())
    assert refused.code is RefuseCode.VERSION_MISMATCH and closed == ConnectionClosed()
    answer = feed(future, b.data_to_send())
    assert answer == [Refused(RefuseCode.VERSION_MISMATCH,
                              "protocol version mismatch: we speak version 1, you speak "
                              "version 2", by_peer=True), ConnectionClosed()]


def test_negotiates_highest_common_version(monkeypatch):
    monkeypatch.setattr(connection_mod, "SUPPORTED_VERSIONS", (1, 3))
    a = Connection(Role.CLIENT)
    monkeypatch.setattr(connection_mod, "SUPPORTED_VERSIONS", (1, 2))
    b = Connection(Role.SERVER)
    Link(a, b).start()
    assert a.version == b.version == 2 and a.state is State.OPEN


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
    with pytest.raises(LocalProtocolError, match="cannot send REQUEST in state START"):
        a.send(Request(1, "k"))
    a.initiate()
    with pytest.raises(LocalProtocolError, match="wait for the Established event"):
        a.send(Heartbeat())
    assert a.state is State.HELLO_SENT and a.data_to_send() == b""
    with pytest.raises(LocalProtocolError, match="cannot send HELLO"):
        a.initiate()


def test_send_after_close_is_local_error():
    link = Link.make().start()
    link.send("a", Bye())
    with pytest.raises(LocalProtocolError, match="CLOSED"):
        link.a.send(Request(1, "k"))


def test_frame_larger_than_peer_accepts_is_local_error():
    link = Link.make(max_frame_size=2048).start()
    with pytest.raises(LocalProtocolError, match="exceeds the peer's limit of 2048"):
        link.a.send(Oneway("blob", b"x" * 4096))
    link.send("a", Oneway("blob", b"x" * 1500))
    link.run()
    assert link.events["b"][-1] == Oneway("blob", b"x" * 1500)


@pytest.mark.parametrize("bad, exc", [
    (Request(-1, "k"), ValueError), (Request(2**64, "k"), ValueError),
    (Request("1", "k"), TypeError), (Oneway("", None), ValueError),
    (Oneway("k" * 256, None), ValueError), (Oneway(3, None), TypeError),
    ("not a message", TypeError), (Oneway("k", lambda: 0), PycosError),
])
def test_bad_message_fields_are_rejected_without_state_change(bad, exc):
    link = Link.make().start()
    with pytest.raises(exc):
        link.a.send(bad)
    assert link.a.data_to_send() == b""
    link.send("a", Request(1, "ok"))
    link.run()
    assert link.events["b"][-1] == Request(1, "ok")


@pytest.mark.parametrize("kwargs, exc", [
    ({"secret": 5}, TypeError), ({"incarnation": b"short"}, ValueError),
    ({"max_frame_size": 10}, ValueError), ({"max_frame_size": 2**32}, ValueError),
    ({"max_frame_size": "big"}, TypeError),
])
def test_constructor_validates_arguments(kwargs, exc):
    with pytest.raises(exc):
        Connection(Role.CLIENT, **kwargs)
    with pytest.raises(TypeError, match="Role"):
        Connection("client")  # type: ignore[arg-type]


# ---------------------------------------------------------------- the peer's faults
def test_oversized_frame_refused_from_header_before_body():
    link = Link.make(max_frame_size=1024).start()
    header = pack_header(1, MessageType.ONEWAY, 1, 1025, 3)
    link.b.receive_data(header)  # no MAC and no body yet: the header alone decides
    with pytest.raises(RemoteProtocolError, match="exceeds the limit of 1024"):
        link.b.next_event()


def test_large_frame_before_authentication_refused_from_header():
    b = Connection(Role.SERVER)
    b.initiate()
    b.receive_data(pack_header(1, MessageType.HELLO, 0, HANDSHAKE_FRAME_LIMIT + 1, 0))
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


def test_refused_class_in_payload_keeps_connection_open():
    link = Link.make().start()
    link.send("a", Request(5, "call", Unlisted(1)))
    link.send("a", Oneway("k", Unlisted(2)))
    link.send("b", Reply(9, Unlisted(3)))
    link.run()
    bad_b = link.take("b", UndecodablePayload)
    assert [(e.message_type, e.request_id, e.kind) for e in bad_b] == [
        (MessageType.REQUEST, 5, "call"), (MessageType.ONEWAY, None, "k")]
    assert isinstance(bad_b[0].error, UnpicklingRefused)
    assert "Unlisted" in str(bad_b[0].error) and "serialize_allow" in str(bad_b[0].error)
    (bad_a,) = link.take("a", UndecodablePayload)
    assert bad_a.request_id == 9
    assert link.a.state is link.b.state is State.OPEN


def test_allow_all_connection_accepts_any_class():
    link = Link.make(allow_all=True).start()
    link.send("a", Oneway("k", Unlisted(4)))
    link.run()
    assert link.events["b"][-1].payload.v == 4


def test_heartbeat_with_body_is_remote_error():
    link = Link.make(secret="").start()
    link.b.receive_data(raw_frame(MessageType.HEARTBEAT, b"x", 3))
    with pytest.raises(RemoteProtocolError, match="HEARTBEAT body must be empty"):
        link.b.next_event()


def test_refuse_with_unknown_code_is_reported_as_other():
    b = Connection(Role.SERVER)
    b.initiate()
    events = feed(b, raw_frame(MessageType.REFUSE, b"\xc8go away", 0))
    assert events == [Refused(RefuseCode.OTHER, "go away", by_peer=True), ConnectionClosed()]


def test_frame_in_another_version_after_agreement_is_remote_error():
    link = Link.make(secret="").start()
    link.b.receive_data(raw_frame(MessageType.HEARTBEAT, b"", 3, version=2))
    with pytest.raises(RemoteProtocolError, match="written in protocol version 2, but version 1"):
        link.b.next_event()


def test_frame_with_mac_before_keys_is_remote_error():
    b = Connection(Role.SERVER, secret="k")
    b.initiate()
    b.receive_data(raw_frame(MessageType.HELLO, bytes(58), 0, key=b"k" * 32))
    with pytest.raises(RemoteProtocolError, match="carries a MAC before keys were agreed"):
        b.next_event()
