"""Discovery datagrams: fixed format, HMAC, version check, strict parsing, never pickle."""

from __future__ import annotations

import pickle
from unittest import mock

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import pycos.proto.announce as announce_mod
from pycos.proto import (
    AnnounceKind,
    Announcement,
    RemoteProtocolError,
    decode_announcement,
    encode_announcement,
)

SETTINGS = settings(max_examples=100, deadline=None)
INC = bytes(range(16))
ANN = Announcement("node-1", INC, (51350, 51351), "203.0.113.7", AnnounceKind.RELAY)


def test_roundtrip_and_layout():
    data = encode_announcement(ANN, "secret")
    assert data[:4] == b"\xa7pca" and data[4:8] == bytes([2, 2, AnnounceKind.RELAY, 0])
    assert data[8:24] == INC and data[24] == len("node-1")
    assert len(data) == 24 + 1 + 6 + 1 + 11 + 1 + 4 + 32
    assert decode_announcement(data, "secret") == ANN
    assert decode_announcement(bytearray(data), b"secret") == ANN


def test_defaults_and_unicode_name():
    ann = Announcement("nœud", INC, (9706,))
    out = decode_announcement(encode_announcement(ann, ""), "")
    assert out == ann and out.host == "" and out.kind is AnnounceKind.ANNOUNCE


def test_wrong_secret_is_refused():
    data = encode_announcement(ANN, "one")
    with pytest.raises(RemoteProtocolError, match="different secret"):
        decode_announcement(data, "two")
    with pytest.raises(RemoteProtocolError, match="different secret"):
        decode_announcement(encode_announcement(ANN, ""), "two")


def test_version_mismatch_is_reported_clearly(monkeypatch):
    monkeypatch.setattr(announce_mod, "SUPPORTED_VERSIONS", (3, 4))
    with pytest.raises(RemoteProtocolError, match=r"speaks protocol versions 2\.\.2, this node "
                                                   r"3\.\.4"):
        decode_announcement(encode_announcement(ANN, "k"), "k")


def test_overlapping_version_ranges_are_accepted():
    ann = Announcement("n", INC, (1,), min_version=1, max_version=5)
    assert decode_announcement(encode_announcement(ann, "k"), "k").max_version == 5


def test_announcement_of_a_version_1_node_is_refused():
    old = Announcement("n", INC, (1,), min_version=1, max_version=1)
    with pytest.raises(RemoteProtocolError, match=r"versions 1\.\.1, this node 2\.\.2"):
        decode_announcement(encode_announcement(old, "k"), "k")


@SETTINGS
@given(pos=st.integers(0, 10_000), xor=st.integers(1, 255))
def test_any_altered_byte_is_refused(pos, xor):
    data = bytearray(encode_announcement(ANN, "k"))
    data[pos % len(data)] ^= xor
    with pytest.raises(RemoteProtocolError):
        decode_announcement(bytes(data), "k")


@SETTINGS
@given(data=st.binary(max_size=1200) | st.binary(max_size=200).map(lambda b: b"\xa7pca\x02\x02"
                                                                     + b))
def test_arbitrary_datagrams_only_raise_remote_protocol_error(data):
    with mock.patch.object(pickle, "loads", side_effect=AssertionError("unpickled")):
        with pytest.raises(RemoteProtocolError):
            decode_announcement(data, "k")


def test_size_limits():
    with pytest.raises(RemoteProtocolError, match="impossible size"):
        decode_announcement(b"\xa7pca" + bytes(2000), "")
    with pytest.raises(RemoteProtocolError, match="impossible size"):
        decode_announcement(encode_announcement(ANN, "")[:-40], "")


def test_authenticated_but_malformed_fields_are_refused():
    key = announce_mod._key("k")

    def signed(body: bytes) -> bytes:
        return body + announce_mod.mac(key, body)

    head = b"\xa7pca\x02\x02\x01\x00" + INC
    cases = {
        "port list": head + b"\x01n\x00\x01\x00\x01\x00",  # trailing byte after ports
        "port 0": head + b"\x01n\x00\x01\x00\x00",
        "empty name": head + b"\x00\x00\x01\x00\x01" + b"\x00",
        "unknown kind": b"\xa7pca\x02\x02\x09\x00" + INC + b"\x01n\x00\x01\x00\x01",
        "reserved": b"\xa7pca\x02\x02\x01\x05" + INC + b"\x01n\x00\x01\x00\x01",
        "UTF-8": head + b"\x01\xff\x00\x01\x00\x01",
        "truncated": head + b"\x09nnnnnnnn",
    }
    for what, body in cases.items():
        with pytest.raises(RemoteProtocolError, match=what):
            decode_announcement(signed(body), "k")


@pytest.mark.parametrize("ann, exc", [
    (Announcement("", INC, (1,)), ValueError),
    (Announcement("x" * 256, INC, (1,)), ValueError),
    (Announcement("n", b"short", (1,)), ValueError),
    (Announcement("n", INC, ()), ValueError),
    (Announcement("n", INC, tuple(range(1, 10))), ValueError),
    (Announcement("n", INC, (0,)), ValueError),
    (Announcement("n", INC, (70000,)), ValueError),
    (Announcement("n", INC, (1,), host=5), TypeError),  # type: ignore[arg-type]
    (Announcement("n", INC, (1,), kind=9), ValueError),  # type: ignore[arg-type]
])
def test_encode_validates_fields(ann, exc):
    with pytest.raises(exc):
        encode_announcement(ann, "k")
    with pytest.raises(TypeError):
        encode_announcement(Announcement("n", INC, (1,)), 5)  # type: ignore[arg-type]
