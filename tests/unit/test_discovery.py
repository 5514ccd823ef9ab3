"""Discovery and address choice (pycos.net.discovery), on loopback only.

Every datagram here goes to 127.0.0.0/8: unicast to 127.0.0.1, and the host fan-out /
loopback announcements to 127.255.255.255, which never leave the machine. Ordering comes from
events: datagrams from one socket to one socket on loopback arrive in order, so when the valid
datagram sent after a batch of bad ones reaches ``on_peer``, the bad ones have been handled.
"""

from __future__ import annotations

import logging
import pickle
import secrets
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import pycos
from pycos.net.discovery import interfaces as ifs
from pycos.net.discovery.discovery import Discovery
from pycos.proto import envelope as env
from pycos.proto.announce import AnnounceKind, Announcement, decode_announcement
from pycos.proto.announce import encode_announcement as encode
from pycos.proto.auth import hkdf, mac

SECRET = "unit-test-secret"
WAIT = 5.0


# ---------------------------------------------------------------------- helpers
class Seen:
    """What each Discovery learnt, with a condition to wait on."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.calls: dict[str, list[tuple[str, int, bytes, str]]] = {}
        self.threads: set[str] = set()

    def callback(self, me: str) -> Callable[[str, int, bytes, str], None]:
        def on_peer(host: str, tcp_port: int, incarnation: bytes, name: str) -> None:
            with self.cond:
                self.calls.setdefault(me, []).append((host, tcp_port, incarnation, name))
                self.threads.add(threading.current_thread().name)
                self.cond.notify_all()
        return on_peer

    def names(self, me: str) -> set[str]:
        with self.cond:
            return {c[3] for c in self.calls.get(me, [])}

    def wait(self, pred: Callable[[], bool], timeout: float = WAIT) -> bool:
        with self.cond:
            return self.cond.wait_for(pred, timeout)

    def wait_names(self, me: str, names: set[str]) -> None:
        assert self.wait(lambda: names <= {c[3] for c in self.calls.get(me, [])}), (
            f"{me} learnt only {self.names(me)}, expected {names}")


@pytest.fixture
def seen() -> Seen:
    return Seen()


@pytest.fixture
def make(sched: pycos.Pycos, seen: Seen) -> Iterator[Callable[..., Discovery]]:
    made: list[Discovery] = []

    def _make(name: str, udp_port: int = 0, tcp_port: int = 4000, **kw: Any) -> Discovery:
        kw.setdefault("broadcast", False)
        kw.setdefault("bind_addrs", ["127.0.0.1"])
        kw.setdefault("secret", SECRET)
        d = Discovery(sched, name=name, incarnation=secrets.token_bytes(16),
                      tcp_port=tcp_port, udp_port=udp_port, ext_host=kw.pop("ext_host", None),
                      on_peer=kw.pop("on_peer", None) or seen.callback(name), **kw)
        d.start()
        made.append(d)
        return d

    yield _make
    for d in made:
        d.close()


@pytest.fixture
def client() -> Iterator[socket.socket]:
    """A plain UDP socket on 127.0.0.1 standing for another node."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(WAIT)
    yield sock
    sock.close()


def datagram(name: str = "other", kind: AnnounceKind = AnnounceKind.PEER, host: str = "",
             secret: str = SECRET, incarnation: bytes | None = None, **kw: Any) -> bytes:
    ann = Announcement(name, incarnation or secrets.token_bytes(16), (5555,), host, kind, **kw)
    return encode(ann, secret)


def host_envelope(origin: tuple[Any, ...], inner: bytes) -> bytes:
    """What a node passes on to the other nodes of its host."""
    return env.host_envelope(origin, inner)


def relay_envelope(origin: tuple[Any, ...], inner: bytes, secret: str = SECRET) -> bytes:
    """What a node with ``secret`` sends on its networks for a RELAY request."""
    return env.relay_envelope(origin, inner, env.relay_key(secret.encode()))


def signed(body: bytes, secret: str = SECRET) -> bytes:
    """``body`` with a valid announcement HMAC (to reach the checks behind it)."""
    return body + mac(hkdf(secret.encode(), b"pycos/announce", b"announce"), body)


# ---------------------------------------------------------------------- address choice
def _iface(name: str, address: str, **kw: Any) -> ifs.Interface:
    plen = kw.pop("prefixlen", 24 if ":" not in address else 64)
    bcast = kw.pop("broadcast", None)
    return ifs.Interface(name, 1, address, plen, bcast, **kw)


LO = [_iface("lo", "127.0.0.1", prefixlen=8, loopback=True, multicast=False),
      _iface("lo", "::1", prefixlen=128, loopback=True, multicast=False)]
ETH = _iface("eth0", "192.0.2.10", broadcast="192.0.2.255")
DOWN = _iface("eth1", "198.51.100.10", broadcast="198.51.100.255", up=False)
NOCARRIER = _iface("docker0", "172.17.0.1", broadcast="172.17.255.255", running=False)
V6 = _iface("eth0", "2001:db8::10")
V6LL = _iface("eth0", "fe80::10%eth0")


def test_choose_all_interfaces_ipv4_running_first_no_loopback(caplog: Any) -> None:
    caplog.set_level(logging.INFO, "pycos.net.discovery.interfaces")
    got = ifs.choose_addresses(None, LO + [NOCARRIER, DOWN, ETH, V6])
    assert got == ["192.0.2.10", "172.17.0.1"]
    assert "192.0.2.10" in caplog.text and "172.17.0.1" in caplog.text


def test_choose_ipv6_when_no_ipv4_link_local_last() -> None:
    assert ifs.choose_addresses("", LO + [V6LL, V6]) == ["2001:db8::10", "fe80::10%eth0"]


def test_choose_loopback_only_when_nothing_else_warns(caplog: Any) -> None:
    caplog.set_level(logging.INFO, "pycos.net.discovery.interfaces")
    assert ifs.choose_addresses(None, LO + [DOWN]) == ["127.0.0.1"]
    assert any(r.levelno == logging.WARNING and "loopback" in r.getMessage()
               for r in caplog.records)


def test_choose_wildcards_by_family() -> None:
    assert ifs.choose_addresses("0.0.0.0", LO + [ETH, V6]) == ["192.0.2.10"]
    assert ifs.choose_addresses("::", LO + [ETH, V6]) == ["2001:db8::10"]


def test_choose_explicit_loopback_is_honoured(caplog: Any) -> None:
    caplog.set_level(logging.INFO, "pycos.net.discovery.interfaces")
    assert ifs.choose_addresses("127.0.0.1", LO + [ETH]) == ["127.0.0.1"]
    assert ifs.choose_addresses("localhost", LO + [ETH])[0] in ("127.0.0.1", "::1")
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_choose_explicit_interface_address() -> None:
    assert ifs.choose_addresses("192.0.2.10", LO + [ETH, NOCARRIER]) == ["192.0.2.10"]
    assert ifs.choose_addresses("[2001:db8::10]", LO + [ETH, V6]) == ["2001:db8::10"]


def test_choose_name_resolving_to_loopback_only_uses_interfaces(monkeypatch: Any,
                                                                caplog: Any) -> None:
    def fake_getaddrinfo(host: str, *a: Any, **kw: Any) -> list[Any]:
        assert host == "myhost"
        return [(socket.AF_INET, socket.SOCK_DGRAM, 17, "", ("127.0.1.1", 0))]

    monkeypatch.setattr(ifs.socket, "getaddrinfo", fake_getaddrinfo)
    caplog.set_level(logging.INFO, "pycos.net.discovery.interfaces")
    assert ifs.choose_addresses("myhost", LO + [ETH]) == ["192.0.2.10"]
    assert "127.0.1.1" in caplog.text and "WARNING" in {r.levelname for r in caplog.records}


def test_choose_rejects_foreign_address_and_bad_types() -> None:
    with pytest.raises(ValueError, match="not an address of this machine"):
        ifs.choose_addresses("203.0.113.77", LO + [ETH])
    with pytest.raises(ValueError, match="cannot be resolved"):
        ifs.choose_addresses("no-such-host.invalid", LO + [ETH])
    with pytest.raises(TypeError, match="host must be"):
        ifs.choose_addresses(5, LO)  # type: ignore[arg-type]


def test_list_interfaces_reads_this_machine() -> None:
    found = ifs.list_interfaces()
    lo = [i for i in found if i.address == "127.0.0.1"]
    assert lo and lo[0].loopback and lo[0].up
    assert all(i.family in (socket.AF_INET, socket.AF_INET6) for i in found)
    v4 = [i for i in found if i.family == socket.AF_INET]
    assert found[: len(v4)] == v4  # IPv4 first
    assert ifs.interface_of("127.0.0.1", found) == lo[0]
    assert ifs.interface_of("203.0.113.77", found) is None


def test_is_loopback() -> None:
    assert ifs.is_loopback("127.0.1.1") and ifs.is_loopback("::1")
    assert ifs.is_loopback("::ffff:127.0.0.1")
    assert not ifs.is_loopback("192.0.2.1") and not ifs.is_loopback("not-an-ip")


# ---------------------------------------------------------------------- construction
def test_constructor_validates(sched: pycos.Pycos) -> None:
    good: dict[str, Any] = dict(secret="s", name="n", incarnation=bytes(16), tcp_port=1,
                                udp_port=0, bind_addrs=["127.0.0.1"], ext_host=None,
                                on_peer=lambda *a: None)
    Discovery(sched, **good)
    bad = [({"tcp_port": 0}, ValueError), ({"udp_port": 70000}, ValueError),
           ({"tcp_port": True}, ValueError), ({"incarnation": b"short"}, ValueError),
           ({"bind_addrs": "127.0.0.1"}, TypeError), ({"bind_addrs": []}, TypeError),
           ({"bind_addrs": ["localhost"]}, ValueError), ({"name": "x" * 300}, ValueError),
           ({"on_peer": 3}, TypeError), ({"secret": 3}, TypeError),
           ({"ext_host": 5}, TypeError)]
    for change, exc in bad:
        with pytest.raises(exc):
            Discovery(sched, **{**good, **change})
    with pytest.raises(TypeError, match="scheduler"):
        Discovery(object(), **good)


def test_start_once_and_calls_need_start(make: Callable[..., Discovery],
                                         sched: pycos.Pycos) -> None:
    d = make("a")
    assert d.udp_port > 0
    with pytest.raises(RuntimeError):
        d.start()
    idle = Discovery(sched, secret="s", name="n", incarnation=bytes(16), tcp_port=1,
                     udp_port=0, bind_addrs=["127.0.0.1"], ext_host=None,
                     on_peer=lambda *a: None)
    with pytest.raises(RuntimeError):
        idle.announce()
    with pytest.raises(RuntimeError):
        idle.contact("127.0.0.1", 1)
    with pytest.raises(TypeError):
        d.contact(None, 1)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        d.contact("127.0.0.1", 0)


# ---------------------------------------------------------------------- datagram handling
def test_valid_datagram_calls_on_peer_and_is_answered(make: Callable[..., Discovery],
                                                       seen: Seen, client: socket.socket) -> None:
    d = make("a", tcp_port=4321)
    inc = secrets.token_bytes(16)
    client.sendto(datagram("other", incarnation=inc), ("127.0.0.1", d.udp_port))
    seen.wait_names("a", {"other"})
    host, tcp_port, incarnation, _ = seen.calls["a"][0]
    assert (host, tcp_port, incarnation) == ("127.0.0.1", 5555, inc)
    assert seen.threads == {"pycos-scheduler"}  # on the scheduler's thread
    reply = decode_announcement(client.recvfrom(2048)[0], SECRET)
    assert (reply.name, reply.tcp_ports, reply.kind) == ("a", (4321,), AnnounceKind.ANNOUNCE)
    assert reply.host == "127.0.0.1"
    assert d.dropped == 0


def test_announced_host_is_used(make: Callable[..., Discovery], seen: Seen,
                                client: socket.socket) -> None:
    d = make("a")
    client.sendto(datagram("natted", host="198.51.100.7", kind=AnnounceKind.ANNOUNCE),
                  ("127.0.0.1", d.udp_port))
    seen.wait_names("a", {"natted"})
    assert seen.calls["a"][0][0] == "198.51.100.7"


def _boom() -> None:
    raise AssertionError("a datagram was unpickled")


class _Evil:
    def __reduce__(self) -> Any:
        return (_boom, ())


BAD = {
    "bad hmac": (datagram(secret="another-secret"), "HMAC does not verify"),
    "wrong version": (datagram(min_version=200, max_version=200), "protocol versions"),
    "truncated": (datagram()[:-7], "impossible size"),
    "altered": (datagram()[:-40] + b"\x09" + datagram()[-39:], "HMAC does not verify"),
    "malformed fields": (signed(datagram()[:-32][:-3] + b"\x05\x00\x01"), "port list"),
    "too short": (b"\xa7pca\x01", "impossible size"),
    "empty": (b"", "impossible size"),
    "oversized": (b"\xa7pca" + bytes(4000), "oversized"),
    "pickle": (pickle.dumps([_Evil(), "x" * 100]), "bad magic"),
    "relay bad hmac": (relay_envelope(("127.0.0.1", 9), datagram(), "another-secret"),
                       "relayed announcement HMAC"),
    "relay truncated": (env.RELAY_MAGIC + bytes(40), "relayed announcement is truncated"),
    "host truncated": (env.HOST_MAGIC + bytes(20), "forwarded announcement is truncated"),
    "host bad version": (env.HOST_MAGIC + b"\x09" + host_envelope(("127.0.0.1", 9),
                                                                   datagram())[5:],
                         "envelope version"),
    "host bad origin": (host_envelope(("127.0.0.1", 0), datagram()), "malformed origin"),
    "host broadcast origin": (host_envelope(("127.255.255.255", 9), datagram()),
                              "is a broadcast address"),
    "host multicast origin": (host_envelope(("224.0.0.1", 9), datagram()),
                              "not a node's address"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_datagram_dropped_counted_and_loop_continues(case: str, make: Callable[..., Discovery],
                                                         seen: Seen, client: socket.socket,
                                                         monkeypatch: Any) -> None:
    monkeypatch.setattr(pickle, "loads", lambda *a, **k: _boom())
    monkeypatch.setattr(pickle, "load", lambda *a, **k: _boom())
    payload, reason = BAD[case]
    d = make("a")
    for _ in range(3):
        client.sendto(payload, ("127.0.0.1", d.udp_port))
    client.sendto(datagram("good"), ("127.0.0.1", d.udp_port))
    seen.wait_names("a", {"good"})
    assert d.dropped == 3
    assert seen.names("a") == {"good"}
    (key, count), = d.drop_reasons.items()
    assert count == 3 and reason in key


def test_drop_warning_is_rate_limited(make: Callable[..., Discovery], seen: Seen,
                                      client: socket.socket, caplog: Any) -> None:
    caplog.set_level(logging.DEBUG, "pycos.net.discovery")
    d = make("a")
    for _ in range(5):
        client.sendto(datagram(secret="wrong"), ("127.0.0.1", d.udp_port))
    client.sendto(b"junk-that-is-long-enough-to-look-at-the-magic-bytes-xxxxxxxxxxxxxxxxxx",
                  ("127.0.0.1", d.udp_port))
    client.sendto(datagram("good"), ("127.0.0.1", d.udp_port))
    seen.wait_names("a", {"good"})
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len([w for w in warnings if "HMAC" in w]) == 1
    assert len([w for w in warnings if "magic" in w]) == 1
    assert all("127.0.0.1" in w for w in warnings)
    assert d.dropped == 6


def test_own_announcement_ignored(make: Callable[..., Discovery], seen: Seen,
                                  client: socket.socket) -> None:
    d = make("a")
    client.sendto(datagram("me", incarnation=d._incarnation), ("127.0.0.1", d.udp_port))
    client.sendto(datagram("good"), ("127.0.0.1", d.udp_port))
    seen.wait_names("a", {"good"})
    assert seen.names("a") == {"good"} and d.dropped == 0


def _handle_on(sched: pycos.Pycos, d: Discovery, data: bytes, src: tuple[Any, ...]) -> None:
    """Hand ``d`` a datagram as if it came from ``src`` (on the scheduler thread)."""
    done = threading.Event()

    def handle() -> None:
        try:
            d._handle(data, [], 0, src)
        finally:
            done.set()

    sched._call(handle)
    assert done.wait(WAIT)


def test_loopback_only_node_drops_other_hosts(make: Callable[..., Discovery], seen: Seen,
                                              client: socket.socket,
                                              sched: pycos.Pycos) -> None:
    d = make("a")
    _handle_on(sched, d, datagram("far", kind=AnnounceKind.ANNOUNCE), ("198.51.100.9", 9705))
    assert "far" not in seen.names("a")
    assert d.dropped == 1 and "loopback only" in next(iter(d.drop_reasons))
    # Passed on by a node of this host that uses other interfaces: ignored, not counted.
    client.sendto(host_envelope(("198.51.100.9", 9705), datagram("far2")),
                  ("127.0.0.1", d.udp_port))
    client.sendto(datagram("good"), ("127.0.0.1", d.udp_port))
    seen.wait_names("a", {"good"})
    assert "far2" not in seen.names("a") and d.dropped == 1


def test_remote_host_announcing_loopback_dropped(make: Callable[..., Discovery], seen: Seen,
                                                 client: socket.socket) -> None:
    # Bound to a (documentation) address too, so it is not loopback-only; nothing is sent to it.
    d = make("a", bind_addrs=["127.0.0.1", "198.51.100.1"])
    client.sendto(host_envelope(("198.51.100.9", 9705), datagram("liar", host="127.0.0.1")),
                  ("127.0.0.1", d.udp_port))
    client.sendto(datagram("good"), ("127.0.0.1", d.udp_port))
    seen.wait_names("a", {"good"})
    assert "liar" not in seen.names("a")
    assert "announces a loopback address" in next(iter(d.drop_reasons))


def test_passed_on_datagram_for_another_secret_is_ignored_not_counted(
        make: Callable[..., Discovery], seen: Seen, client: socket.socket) -> None:
    d = make("a")
    client.sendto(host_envelope(("127.0.0.1", 9), datagram("x", secret="x")),
                  ("127.0.0.1", d.udp_port))
    client.sendto(datagram("good"), ("127.0.0.1", d.udp_port))
    seen.wait_names("a", {"good"})
    assert seen.names("a") == {"good"} and d.dropped == 0


def test_host_envelope_only_from_loopback(make: Callable[..., Discovery],
                                          sched: pycos.Pycos) -> None:
    d = make("a", bind_addrs=["127.0.0.1", "198.51.100.1"])
    _handle_on(sched, d, host_envelope(("127.0.0.1", 9), datagram("x")), ("198.51.100.9", 1))
    assert d.dropped == 1 and "from another host" in next(iter(d.drop_reasons))


def test_relay_envelope_is_accepted_and_answered(make: Callable[..., Discovery], seen: Seen,
                                                 client: socket.socket) -> None:
    d = make("a")
    origin = client.getsockname()
    client.sendto(relay_envelope(origin, datagram("c", kind=AnnounceKind.RELAY)),
                  ("127.0.0.1", d.udp_port))
    seen.wait_names("a", {"c"})
    reply = decode_announcement(client.recvfrom(2048)[0], SECRET)
    assert reply.name == "a"


def test_on_peer_exception_does_not_stop_discovery(make: Callable[..., Discovery], seen: Seen,
                                                   client: socket.socket, caplog: Any) -> None:
    calls: list[str] = []
    record = seen.callback("a")

    def on_peer(host: str, port: int, inc: bytes, name: str) -> None:
        calls.append(name)
        if name == "first":
            raise RuntimeError("node bug")
        record(host, port, inc, name)

    d = make("a", on_peer=on_peer)
    client.sendto(datagram("first", kind=AnnounceKind.ANNOUNCE), ("127.0.0.1", d.udp_port))
    client.sendto(datagram("second"), ("127.0.0.1", d.udp_port))
    seen.wait_names("a", {"second"})
    assert calls[0] == "first" and "node bug" in caplog.text


def test_answers_are_rate_limited_per_incarnation(make: Callable[..., Discovery], seen: Seen,
                                                  client: socket.socket) -> None:
    d = make("a")
    inc = secrets.token_bytes(16)
    for _ in range(3):
        client.sendto(datagram("p", incarnation=inc), ("127.0.0.1", d.udp_port))
    client.sendto(datagram("q"), ("127.0.0.1", d.udp_port))
    seen.wait_names("a", {"q"})
    client.settimeout(0.3)
    replies = []
    try:
        while True:
            replies.append(decode_announcement(client.recvfrom(2048)[0], SECRET))
    except TimeoutError:
        pass
    assert len(replies) == 2  # one for p (three datagrams), one for q


# ---------------------------------------------------------------------- several nodes, one port
def test_three_sharing_a_port_learn_each_other_by_unicast_contact(
        make: Callable[..., Discovery], seen: Seen) -> None:
    a = make("a")
    b = make("b", a.udp_port)
    c = make("c", a.udp_port)
    assert b.udp_port == c.udp_port == a.udp_port
    a.contact("127.0.0.1", a.udp_port)
    for me, others in (("a", {"b", "c"}), ("b", {"a", "c"}), ("c", {"a", "b"})):
        seen.wait_names(me, others)
    assert a.dropped == b.dropped == c.dropped == 0


def test_contact_from_another_port_reaches_all_sharing_nodes(
        make: Callable[..., Discovery], seen: Seen) -> None:
    a = make("a")
    make("b", a.udp_port)
    make("c", a.udp_port)
    x = make("x")
    x.contact("127.0.0.1", a.udp_port)
    seen.wait_names("x", {"a", "b", "c"})
    for me in "abc":
        seen.wait_names(me, {"x"})


def test_contact_by_name(make: Callable[..., Discovery], seen: Seen) -> None:
    a = make("a")
    x = make("x")
    x.contact("localhost", a.udp_port)
    seen.wait_names("a", {"x"})
    seen.wait_names("x", {"a"})


def test_loopback_announce_reaches_all_sharing_nodes(make: Callable[..., Discovery],
                                                     seen: Seen) -> None:
    a = make("a", broadcast=True)
    b = make("b", a.udp_port, broadcast=True)
    c = make("c", a.udp_port, broadcast=True)
    c.announce()
    for me, others in (("a", {"b", "c"}), ("b", {"a", "c"}), ("c", {"a", "b"})):
        seen.wait_names(me, others)
    assert a.dropped == b.dropped == c.dropped == 0


def test_different_secrets_never_meet_even_sharing_a_port(make: Callable[..., Discovery],
                                                          seen: Seen) -> None:
    # b and c contact from the same address and port, so the kernel hands both datagrams to
    # the same socket; whichever node that is, the host fan-out gets c's to a.
    a = make("a")
    b = make("b", a.udp_port, secret="other")
    c = make("c", a.udp_port)
    b.contact("127.0.0.1", a.udp_port)
    c.contact("127.0.0.1", a.udp_port)
    seen.wait_names("a", {"c"})
    seen.wait_names("c", {"a"})
    assert "b" not in seen.names("a") | seen.names("c")
    assert not seen.names("b") - {"b"}


def test_close_stops_receiving(make: Callable[..., Discovery], client: socket.socket) -> None:
    d = make("a")
    tasks = list(d._tasks)
    d.close()
    d.close()
    for t in tasks:
        t.value(timeout=WAIT)
        assert not t.is_alive()
    with pytest.raises(RuntimeError):
        d.announce()
