"""Discovery envelopes (``pycos.proto.envelope``): host envelopes (loopback, no HMAC) and relay
envelopes (HMAC keyed by the secret). Round trips for IPv4 and IPv6 origins, the documented
layout, a relay envelope under another secret or altered anywhere is refused, and every
malformed envelope (magic, version, family, port, origin that is not a unicast address,
truncation) is a ``RemoteProtocolError`` and nothing else."""

from __future__ import annotations

import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pycos.proto import AnnounceKind, Announcement, RemoteProtocolError, encode_announcement
from pycos.proto.auth import mac
from pycos.proto.envelope import (
    HOST_MAGIC,
    MAX_DATAGRAM,
    RELAY_MAGIC,
    host_envelope,
    open_host,
    open_relay,
    relay_envelope,
    relay_key,
)

SETTINGS = settings(max_examples=300, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow])
DATAGRAM = encode_announcement(Announcement("node", bytes(16), (9706,), kind=AnnounceKind.RELAY),
                               "s")
V4 = ("192.0.2.10", 9705)
V6 = ("fe80::1", 9705, 0, 3)
KEY = relay_key(b"s")


def header(magic: bytes = HOST_MAGIC, version: int = 1, family: int = 4, port: int = 9705,
           addr: bytes = bytes([192, 0, 2, 10]) + bytes(12), scope: int = 0) -> bytes:
    return struct.pack(">4sBBH16sI", magic, version, family, port, addr, scope)


def test_layout_is_the_documented_one():
    assert host_envelope(V4, b"data") == header() + b"data"
    six = host_envelope(V6, b"x")
    assert six[:8] == HOST_MAGIC + bytes([1, 6]) + (9705).to_bytes(2, "big")
    assert six[8:24] == bytes.fromhex("fe800000000000000000000000000001")
    assert six[24:28] == (3).to_bytes(4, "big") and six[28:] == b"x"
    relayed = relay_envelope(V4, b"data", KEY)
    assert relayed[:4] == RELAY_MAGIC and len(relayed) == 28 + 4 + 32
    assert MAX_DATAGRAM == 28 + 1024 + 32


@pytest.mark.parametrize("origin", [V4, V6, ("127.0.0.1", 1), ("2001:db8::7", 65535, 0, 0)])
def test_round_trips(origin):
    assert open_host(host_envelope(origin, DATAGRAM)) == (origin, DATAGRAM)
    assert open_relay(relay_envelope(origin, DATAGRAM, KEY), KEY) == (origin, DATAGRAM)


def test_relay_key_depends_on_the_secret_only():
    assert relay_key(b"s") == KEY and relay_key(b"t") != KEY and len(KEY) == 32


def test_relay_envelope_under_another_secret_is_refused():
    data = relay_envelope(V4, DATAGRAM, relay_key(b"other"))
    with pytest.raises(RemoteProtocolError, match="HMAC does not verify"):
        open_relay(data, KEY)


@SETTINGS
@given(pos=st.integers(0, 10_000), xor=st.integers(1, 255))
def test_any_altered_byte_of_a_relay_envelope_is_refused(pos, xor):
    data = bytearray(relay_envelope(V6, DATAGRAM, KEY))
    data[pos % len(data)] ^= xor
    with pytest.raises(RemoteProtocolError):
        open_relay(bytes(data), KEY)


def test_relay_envelope_with_its_hmac_cut_off_is_refused():
    data = relay_envelope(V4, DATAGRAM, KEY)
    for cut in (1, 32, 33, len(data) - 28):
        with pytest.raises(RemoteProtocolError):
            open_relay(data[:-cut], KEY)


@pytest.mark.parametrize("data, match", [
    (b"", "truncated"), (header(), "truncated"), (header()[:20], "truncated"),
    (header(version=2) + b"d", "version 2"),
    (header(family=5) + b"d", "malformed origin"), (header(family=0) + b"d", "malformed origin"),
    (header(port=0) + b"d", "malformed origin"),
    (header(addr=bytes([192, 0, 2, 10]) + b"\x01" + bytes(11)) + b"d", "malformed origin"),
    (header(addr=bytes(16)) + b"d", "not a node's address"),
    (header(addr=bytes([224, 0, 0, 1]) + bytes(12)) + b"d", "not a node's address"),
    (header(family=6, addr=bytes(16)) + b"d", "not a node's address"),
    (header(family=6, addr=b"\xff\x02" + bytes(13) + b"\x01") + b"d", "not a node's address"),
])
def test_malformed_host_envelopes_are_refused(data, match):
    with pytest.raises(RemoteProtocolError, match=match):
        open_host(data)


@pytest.mark.parametrize("data", [
    header(family=6, addr=bytes(16)) + b"d",
    header(port=0) + b"d",
    header(version=0) + b"d",
])
def test_malformed_origin_in_an_authentic_relay_envelope_is_refused(data):
    """The HMAC proves who wrapped it, not that the content is well formed."""
    body = RELAY_MAGIC + data[4:]
    with pytest.raises(RemoteProtocolError):
        open_relay(body + mac(KEY, body), KEY)


@pytest.mark.parametrize("magic", [b"XXXX", RELAY_MAGIC])
def test_host_envelope_with_another_magic_is_refused(magic):
    """The magic says what the datagram is: anything but a host envelope's is malformed for
    ``open_host`` (in particular a relay envelope, whose HMAC open_host never checks)."""
    with pytest.raises(RemoteProtocolError):
        open_host(header(magic=magic) + b"datagram")


def test_relay_envelope_with_a_host_magic_is_refused():
    body = header(magic=HOST_MAGIC) + b"datagram"
    with pytest.raises(RemoteProtocolError):
        open_relay(body + mac(KEY, body), KEY)


def test_ipv4_origin_with_a_scope_id_is_refused():
    """The scope field is 0 for IPv4 (documented layout)."""
    with pytest.raises(RemoteProtocolError, match="malformed origin"):
        open_host(header(scope=7) + b"d")


@SETTINGS
@given(data=st.binary(max_size=120)
       | st.binary(max_size=60).map(lambda b: HOST_MAGIC + b"\x01" + b)
       | st.builds(header, st.sampled_from([HOST_MAGIC, RELAY_MAGIC]), st.integers(0, 2),
                   st.integers(0, 7), st.integers(0, 65535), st.binary(min_size=16,
                                                                         max_size=16),
                   st.integers(0, 2**32 - 1)).map(lambda h: h + b"d"))
def test_arbitrary_bytes_only_raise_remote_protocol_error(data):
    try:
        origin, inner = open_host(data)
    except RemoteProtocolError:
        pass
    else:
        assert 1 <= origin[1] <= 65535 and len(origin) in (2, 4) and inner
    with pytest.raises(RemoteProtocolError):
        open_relay(data, KEY)  # no valid HMAC can appear by chance
