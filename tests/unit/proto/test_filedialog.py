"""The file-transfer dialogue (``pycos.proto.filedialog``): OFFER, ANSWER and TRAILER in their
documented layouts, round trips of every answer code, and the refusal of malformed messages
with ``RemoteProtocolError`` only (hypothesis: arbitrary and altered bytes). The digest of a
transfer is keyed by ``Connection.derive_key(KEY_LABEL)``: both ends compute the same key, and
a digest made under another connection's key does not match."""

from __future__ import annotations

import hashlib
import hmac
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from proto_helpers import Link

from pycos.proto import RemoteProtocolError
from pycos.proto.filedialog import (
    DIGEST_SIZE,
    KEY_LABEL,
    MAX_NAME_BYTES,
    Answer,
    AnswerCode,
    Offer,
    Trailer,
)

SETTINGS = settings(max_examples=300, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow])
OFFER = Offer("report.txt", "sub/dir", 1234, 1_700_000_000_123_456_789, -5, 0o644, True)


# ---------------------------------------------------------------- layouts
def test_offer_layout_is_the_documented_one():
    data = OFFER.encode()
    head = struct.pack(">QqqHB", 1234, 1_700_000_000_123_456_789, -5, 0o644, 1)
    assert data == head + b"\x00\x0areport.txt" + b"\x00\x07sub/dir"
    no_dir = Offer("a", None, 0, 0, 0, 0o100755, False).encode()
    assert no_dir == struct.pack(">QqqHB", 0, 0, 0, 0o755, 0) + b"\x00\x01a\xff\xff"


def test_answer_and_trailer_layouts():
    assert Answer(AnswerCode.SEND).encode() == b"\x00"
    assert Answer(AnswerCode.DONE).encode() == b"\x04"
    stat = (0o100644, 10, 1, 2, 3)
    assert Answer(AnswerCode.EXISTS, stat).encode() == b"\x02" + struct.pack(">IQqqq", *stat)
    assert Answer(AnswerCode.REFUSED, reason="no").encode() == b"\x03no"
    assert Trailer(7, b"d" * 32).encode() == struct.pack(">Q", 7) + b"d" * 32
    assert DIGEST_SIZE == 32 and KEY_LABEL == b"pycos/file"


# ---------------------------------------------------------------- round trips
@pytest.mark.parametrize("offer", [
    OFFER,
    Offer("a", None, 0, 0, 0, 0, False),
    Offer("ünïcode ☃.bin", "", 2**63 - 1, -(2**63), 2**63 - 1, 0o7777, False),
    Offer("n" * MAX_NAME_BYTES, "d" * MAX_NAME_BYTES, 1, 1, 1, 0o600, True),
])
def test_offer_round_trip(offer):
    assert Offer.decode(offer.encode()) == offer


def test_offer_keeps_only_permission_bits():
    sent = Offer("f", None, 1, 0, 0, 0o104777, False)  # a regular set-uid file
    assert Offer.decode(sent.encode()).mode == 0o4777


@pytest.mark.parametrize("answer", [
    Answer(AnswerCode.SEND), Answer(AnswerCode.SAME), Answer(AnswerCode.DONE),
    Answer(AnswerCode.EXISTS, (0o100600, 2**64 - 1, -1, 0, 2**63 - 1)),
    Answer(AnswerCode.REFUSED, reason="outside dest_path: ../x"),
    Answer(AnswerCode.REFUSED, reason=""),
])
def test_answer_round_trip(answer):
    assert Answer.decode(answer.encode()) == answer


def test_long_refusal_reason_is_cut_on_a_character_boundary():
    answer = Answer(AnswerCode.REFUSED, reason="é" * 400)  # 800 bytes of UTF-8
    out = Answer.decode(answer.encode())
    assert out.reason == "é" * 256 and len(answer.encode()) == 1 + 512


def test_trailer_round_trip():
    trailer = Trailer(2**64 - 1, bytes(range(32)))
    assert Trailer.decode(trailer.encode()) == trailer


# ---------------------------------------------------------------- malformed
def _offer(name: bytes = b"f", dir_: bytes | None = None, size: int = 1, mode: int = 0o644,
           flags: int = 0, name_len: int | None = None) -> bytes:
    head = struct.pack(">QqqHB", size, 0, 0, mode, flags)
    dir_part = b"\xff\xff" if dir_ is None else struct.pack(">H", len(dir_)) + dir_
    n = len(name) if name_len is None else name_len
    return head + struct.pack(">H", n) + name + dir_part


@pytest.mark.parametrize("data", [
    b"", OFFER.encode()[:10], OFFER.encode()[:-1], OFFER.encode() + b"\x00",
    _offer(size=2**63), _offer(mode=0o10000), _offer(flags=2), _offer(flags=0x81),
    _offer(name=b"\xff\xfe"), _offer(dir_=b"\xc3"), _offer(name_len=200),
    _offer(name=b"abc", name_len=2), _offer()[:-1],
])
def test_malformed_offer_is_refused(data):
    with pytest.raises(RemoteProtocolError, match="malformed file offer"):
        Offer.decode(data)


@pytest.mark.parametrize("data, match", [
    (b"", "empty"), (b"\x05", "unknown file-transfer answer 5"), (b"\xff", "unknown"),
    (b"\x00\x00", "malformed"), (b"\x01x", "malformed"), (b"\x04\x00", "malformed"),
    (b"\x02" + bytes(35), "malformed"), (b"\x02" + bytes(37), "malformed"),
    (b"\x03" + b"r" * 513, "too long"),
])
def test_malformed_answer_is_refused(data, match):
    with pytest.raises(RemoteProtocolError, match=match):
        Answer.decode(data)


def test_refusal_reason_that_is_not_utf8_is_kept_readable():
    assert Answer.decode(b"\x03bad \xff byte").reason == "bad \ufffd byte"


@pytest.mark.parametrize("data", [b"", bytes(39), bytes(41), bytes(8)])
def test_malformed_trailer_is_refused(data):
    with pytest.raises(RemoteProtocolError, match="malformed file-transfer trailer"):
        Trailer.decode(data)


@pytest.mark.parametrize("make", [
    lambda: Offer("f", None, -1, 0, 0, 0o644, False).encode(),
    lambda: Offer("f", None, 2**64, 0, 0, 0o644, False).encode(),
    lambda: Answer(AnswerCode.EXISTS).encode(),
    lambda: Trailer(1, b"short").encode(),
    lambda: Trailer(1, b"x" * 33).encode(),
], ids=["negative-size", "size-2**64", "exists-without-stat", "short-digest", "long-digest"])
def test_encoders_refuse_bad_fields_with_type_or_value_error(make):
    """SPEC §6: wrong arguments are TypeError / ValueError, never a struct.error, an
    AssertionError, or a digest silently padded with zeros (which no receiver verifies)."""
    with pytest.raises((TypeError, ValueError)):
        make()


# ---------------------------------------------------------------- the digest key
def test_digest_key_is_shared_by_both_ends_and_bound_to_the_connection():
    link, other = Link.make(secret="k").start(), Link.make(secret="k").start()
    content = b"file content" * 100
    key = link.a.derive_key(KEY_LABEL)
    digest = hmac.digest(key, content, hashlib.sha256)
    trailer = Trailer.decode(Trailer(len(content), digest).encode())
    assert hmac.compare_digest(trailer.digest,
                               hmac.digest(link.b.derive_key(KEY_LABEL), content, "sha256"))
    assert trailer.digest != hmac.digest(other.b.derive_key(KEY_LABEL), content, "sha256")
    assert trailer.digest != hmac.digest(link.b.derive_key(b"pycos/other"), content, "sha256")


# ---------------------------------------------------------------- hypothesis
OFFERS = st.builds(
    Offer, st.text(max_size=30), st.none() | st.text(max_size=30), st.integers(0, 2**63 - 1),
    st.integers(-(2**63), 2**63 - 1), st.integers(-(2**63), 2**63 - 1),
    st.integers(0, 0o7777), st.booleans())


@SETTINGS
@given(offer=OFFERS)
def test_generated_offers_round_trip(offer):
    assert Offer.decode(offer.encode()) == offer


@SETTINGS
@given(data=st.binary(max_size=80) | OFFERS.map(lambda o: o.encode()).flatmap(
    lambda b: st.tuples(st.just(b), st.integers(0, len(b) - 1), st.integers(1, 255)).map(
        lambda t: t[0][: t[1]] + bytes([t[0][t[1]] ^ t[2]]) + t[0][t[1] + 1 :])))
def test_arbitrary_bytes_only_raise_remote_protocol_error(data):
    for parse in (Offer.decode, Answer.decode, Trailer.decode):
        try:
            parse(data)
        except RemoteProtocolError:
            pass
