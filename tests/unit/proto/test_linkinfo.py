"""The link exchange's INFO payload (``pycos.proto.linkinfo``): the documented layout, round
trips (IPv4, IPv6 with scope, hidden flag, non-ASCII names), and the refusal of everything a
peer could use to make a node look up or dial something it should not: host names instead of
IP literals, non-unicast addresses, bad names, unknown flags or versions, trailing bytes.
Arbitrary bytes raise ``RemoteProtocolError`` and nothing else."""

from __future__ import annotations

import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pycos.proto import RemoteProtocolError
from pycos.proto.linkinfo import FLAG_HIDDEN, LinkInfo

SETTINGS = settings(max_examples=300, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow])


def raw(name: bytes = b"node", addr: bytes = b"192.0.2.7", port: int = 9705, flags: int = 0,
        version: int = 1, tail: bytes = b"") -> bytes:
    """An INFO payload written by hand."""
    return (struct.pack(">BBH", version, flags, port) + bytes([len(name)]) + name
            + bytes([len(addr)]) + addr + tail)


def test_layout_is_the_documented_one():
    info = LinkInfo("node", "192.0.2.7", 9705, hidden=True)
    assert info.encode() == raw(flags=FLAG_HIDDEN) == (b"\x01\x01\x25\xe9\x04node"
                                                       b"\x09192.0.2.7")


@pytest.mark.parametrize("info", [
    LinkInfo("node-1", "192.0.2.7", 9705),
    LinkInfo("n", "127.0.0.1", 1, hidden=True),
    LinkInfo("nœud ☃", "2001:db8::1", 65535),
    LinkInfo("x" * 255, "fe80::1%eth0", 51350),
    LinkInfo("é" * 127, "::1", 2),
])
def test_round_trip(info):
    assert LinkInfo.decode(info.encode()) == info
    assert LinkInfo.decode(bytearray(info.encode())) == info


def test_addresses_come_back_canonical():
    assert LinkInfo.decode(raw(addr=b"2001:0DB8:0:0::0001")).addr == "2001:db8::1"
    assert LinkInfo.decode(raw(addr=b"::ffff:10.0.0.1")).addr == "::ffff:a00:1"
    assert LinkInfo.decode(raw(addr=b"fe80::0001%3")).addr == "fe80::1%3"
    assert LinkInfo.decode(raw(addr=b"10.0.0.1%eth0")).addr == "10.0.0.1"  # no IPv4 scope


@pytest.mark.parametrize("addr", [
    b"localhost", b"example.com", b"node-1", b"0x7f000001", b"127.1", b"01.2.3.4",
    b" 1.2.3.4", b"1.2.3.4 ", b"1.2.3.4/24", b"[::1]", b"::1:", b"256.1.1.1", b"%eth0",
    b"1.2.3.4:80", b"",
])
def test_non_ip_addresses_are_refused(addr):
    """Only IP literals: a peer's INFO never causes a name lookup."""
    with pytest.raises(RemoteProtocolError, match="address"):
        LinkInfo.decode(raw(addr=addr))


@pytest.mark.parametrize("addr", [b"0.0.0.0", b"::", b"224.0.0.1", b"239.255.255.250",
                                  b"ff02::1", b"255.255.255.255"])
def test_non_unicast_addresses_are_refused(addr):
    """An address a node cannot be reached at (any, multicast, the limited broadcast)."""
    with pytest.raises(RemoteProtocolError, match="not a unicast address"):
        LinkInfo.decode(raw(addr=addr))


@pytest.mark.parametrize("addr", [b"fe80::1%\n", b"fe80::1%\x00", b"fe80::1%a\x1b[31m",
                                  b"fe80::1%eth0 evil"])
def test_scope_ids_with_control_characters_are_refused(addr):
    """The address is an "ASCII IP address literal": a scope id is an interface name or
    number, never a newline, NUL or terminal escape that ends up in the node's logs."""
    with pytest.raises(RemoteProtocolError):
        LinkInfo.decode(raw(addr=addr))


@pytest.mark.parametrize("name, match", [
    (b"", "name"), (b"\n", "printable"), (b"a\x00b", "printable"), (b"\x1b[2J", "printable"),
    (b"x\xe2\x80\x8b", "printable"),  # zero-width space
    (b"\xff\xfe", "malformed"),  # not UTF-8
])
def test_bad_names_are_refused(name, match):
    with pytest.raises(RemoteProtocolError, match=match):
        LinkInfo.decode(raw(name=name))


@pytest.mark.parametrize("data, match", [
    (raw(flags=0x02), "flags"), (raw(flags=0x81), "flags"),
    (raw(version=0), "version"), (raw(version=2), "version"),
    (raw(tail=b"\x00"), "length"), (raw()[:-1], "malformed"), (raw()[:3], "malformed"),
    (b"", "malformed"), (raw(port=0), "port 0"),
    (raw(addr="192.0.2.é".encode()), "malformed"),
])
def test_malformed_info_is_refused(data, match):
    with pytest.raises(RemoteProtocolError, match=match):
        LinkInfo.decode(data)


def test_hidden_flag():
    assert LinkInfo.decode(raw(flags=FLAG_HIDDEN)).hidden is True
    assert LinkInfo.decode(raw(flags=0)).hidden is False


@pytest.mark.parametrize("info", [
    LinkInfo("", "192.0.2.7", 1), LinkInfo("x" * 256, "192.0.2.7", 1),
    LinkInfo("n", "", 1), LinkInfo("n", "1" * 65, 1), LinkInfo("n", "192.0.2.7", 0),
    LinkInfo("n", "192.0.2.7", 65536), LinkInfo("n", "é", 1),
])
def test_encode_checks_ranges(info):
    with pytest.raises(ValueError):
        info.encode()


@pytest.mark.parametrize("info", [
    LinkInfo(5, "192.0.2.7", 1),  # type: ignore[arg-type]
    LinkInfo("n", b"192.0.2.7", 1),  # type: ignore[arg-type]
    LinkInfo("n", "192.0.2.7", "1"),  # type: ignore[arg-type]
    LinkInfo("n", "localhost", 1),
    LinkInfo("no-break\xa0space", "192.0.2.7", 1),  # not printable: decode refuses it
])
def test_encode_refuses_what_every_peer_would_refuse(info):
    """Wrong field types are TypeError / ValueError (SPEC §6), and a node never sends an INFO
    that every peer's ``decode`` refuses (a host name instead of an IP literal, a name that
    is not printable)."""
    with pytest.raises((TypeError, ValueError)):
        info.encode()


@SETTINGS
@given(data=st.binary(max_size=120) | st.builds(
    raw, st.binary(max_size=20), st.binary(max_size=40), st.integers(0, 65535),
    st.integers(0, 3), st.integers(0, 2), st.binary(max_size=2)))
def test_arbitrary_bytes_only_raise_remote_protocol_error(data):
    try:
        info = LinkInfo.decode(data)
    except RemoteProtocolError:
        return
    assert 1 <= info.port <= 65535 and info.name.isprintable()
    assert LinkInfo.decode(info.encode()) == info


@SETTINGS
@given(name=st.text(min_size=1, max_size=60).filter(
           lambda n: n.isprintable() and len(n.encode()) <= 255),
       addr=st.ip_addresses().filter(
           lambda ip: not (ip.is_multicast or ip.is_unspecified
                           or ip.packed == b"\xff" * len(ip.packed))),
       port=st.integers(1, 65535), hidden=st.booleans())
def test_generated_infos_round_trip(name, addr, port, hidden):
    info = LinkInfo(name, addr.compressed, port, hidden)
    assert LinkInfo.decode(info.encode()) == info
