"""Location and PeerStatus: values, name resolution, pickling without lookups."""

from __future__ import annotations

import pickle
import socket

import pytest

from pycos.net.location import Location, PeerStatus, location_from_address, normalize_host
from pycos.proto.codec import decode, encode
from pycos.proto.wirecheck import WireError


def test_location_is_a_hashable_value() -> None:
    a, b = Location("127.0.0.1", 9000), Location("127.0.0.1", 9000)
    assert a == b and hash(a) == hash(b) and {a: 1}[b] == 1
    assert a != Location("127.0.0.1", 9001) and a != Location("127.0.0.2", 9000)
    assert a != ("127.0.0.1", 9000)
    assert (a.addr, a.port, a.host, a.tcp_port) == ("127.0.0.1", 9000, "127.0.0.1", 9000)
    assert repr(a) == "127.0.0.1:9000" and a.sockaddr() == ("127.0.0.1", 9000)
    assert sorted([Location("127.0.0.2", 1), a]) == [a, Location("127.0.0.2", 1)]


def test_location_is_immutable() -> None:
    loc = Location("127.0.0.1", 1)
    with pytest.raises(AttributeError):
        loc.port = 2
    with pytest.raises(AttributeError):
        del loc.addr


def test_host_names_resolve_to_addresses() -> None:
    assert Location("localhost", 5) == Location("127.0.0.1", 5)
    assert Location(" 127.0.0.1 ", 5).addr == "127.0.0.1"


def test_ipv6_addresses_are_canonical() -> None:
    loc = Location("0:0:0:0:0:0:0:1", 7)
    assert loc == Location("::1", 7) == Location("[::1]", 7)
    assert repr(loc) == "[::1]:7" and loc.family == socket.AF_INET6
    assert Location("127.0.0.1", 7).family == socket.AF_INET


@pytest.mark.parametrize("host, port, exc", [
    (None, 1, TypeError), (b"127.0.0.1", 1, TypeError), ("", 1, ValueError),
    ("127.0.0.1", "x", TypeError), ("127.0.0.1", True, TypeError),
    ("127.0.0.1", -1, ValueError), ("127.0.0.1", 65536, ValueError),
    ("no-such-host.invalid", 1, ValueError),
])
def test_bad_arguments(host: object, port: object, exc: type[Exception]) -> None:
    with pytest.raises(exc):
        Location(host, port)  # type: ignore[arg-type]


def test_normalize_host() -> None:
    assert normalize_host("localhost") == "127.0.0.1"
    assert normalize_host("::ffff:0:1") == "::ffff:0:1"
    with pytest.raises(ValueError, match="cannot resolve"):
        normalize_host("no-such-host.invalid")


def test_travels_through_the_wire_codec() -> None:
    loc = Location("::1", 80)
    assert decode(encode(loc)) == loc
    status = PeerStatus(loc, "node", PeerStatus.Online)
    back = decode(encode(status))
    assert back == status and back.location == loc and repr(back).endswith("Online)")
    assert Location("127.0.0.1", "9705") == Location("127.0.0.1", 9705)  # pycos's string port


def test_decoding_never_resolves_names() -> None:
    """A payload naming a host (only a forged one can) is refused, never looked up; and the
    class itself is not a global a payload may name."""
    forged = encode(location_from_address("127.0.0.1", 1)).replace(b"127.0.0.1", b"evil.test")
    with pytest.raises(ValueError):
        decode(forged)
    with pytest.raises(WireError):
        decode(pickle.dumps(("a", pickle.loads(pickle.dumps(Location("127.0.0.1", 1)))),
                            protocol=4).replace(b"pycos.proto._w", b"pycos.net.location"))
    with pytest.raises(ValueError):
        location_from_address("localhost", 1)
    assert location_from_address("10.1.2.3", 4) == Location("10.1.2.3", 4)


def test_peer_status() -> None:
    loc = Location("127.0.0.1", 1)
    online = PeerStatus(loc, "a", PeerStatus.Online)
    assert (online.location, online.name, online.status) == (loc, "a", 1)
    assert PeerStatus.Offline == 0 and online != PeerStatus(loc, "a", PeerStatus.Offline)
    with pytest.raises(ValueError):
        PeerStatus(loc, "a", 2)
    with pytest.raises(AttributeError):
        online.status = 0
