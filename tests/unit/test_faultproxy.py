"""The fault-injecting proxy (tests/faultproxy.py): relaying, each fault, counters, clean close.

Plain loopback sockets only: a listening "backend" socket whose accepted side the test drives
directly, or a small threaded echo server. Absence of data is checked with a short receive
timeout; everything else waits on data or on the proxy's counters with a deadline.
"""

from __future__ import annotations

import gc
import hashlib
import os
import socket
import threading
import time
import warnings
from collections.abc import Callable, Iterator

import pytest
from faultproxy import FaultProxy

QUIET = 0.25  # how long "nothing arrives" is watched


# ----------------------------------------------------------------- helpers
def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


def recv_exactly(sock: socket.socket, n: int, timeout: float = 5.0) -> bytes:
    deadline = time.monotonic() + timeout
    buf = bytearray()
    while len(buf) < n:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        chunk = sock.recv(min(n - len(buf), 1 << 20))
        if not chunk:
            raise EOFError(f"EOF after {len(buf)} of {n} bytes")
        buf += chunk
    return bytes(buf)


def sees_end(sock: socket.socket, timeout: float = 5.0) -> str:
    """Read until EOF or reset; 'eof' or 'reset' (fails on timeout)."""
    sock.settimeout(timeout)
    try:
        while sock.recv(65536):
            pass
    except ConnectionResetError:
        return "reset"
    return "eof"


def assert_quiet(sock: socket.socket) -> None:
    sock.settimeout(QUIET)
    with pytest.raises(TimeoutError):
        sock.recv(1)


class EchoServer:
    """Echoes every connection until EOF, one thread per connection."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.05)
        self.address = self.sock.getsockname()
        self.stop = threading.Event()
        self.threads: list[threading.Thread] = []
        self.accepter = threading.Thread(target=self._accept_loop)
        self.accepter.start()

    def _accept_loop(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            thread = threading.Thread(target=self._echo, args=(conn,))
            thread.start()
            self.threads.append(thread)

    @staticmethod
    def _echo(conn: socket.socket) -> None:
        with conn:
            conn.settimeout(10)
            try:
                while data := conn.recv(65536):
                    conn.sendall(data)
            except OSError:
                pass

    def close(self) -> None:
        self.stop.set()
        self.accepter.join(5)
        self.sock.close()
        for thread in self.threads:
            thread.join(5)


@pytest.fixture(autouse=True)
def no_thread_leak() -> Iterator[None]:
    before = set(threading.enumerate())
    yield
    for thread in set(threading.enumerate()) - before:
        thread.join(5)
        assert not thread.is_alive(), f"thread {thread.name} outlived the test"


@pytest.fixture
def sockets() -> Iterator[list[socket.socket]]:
    made: list[socket.socket] = []
    yield made
    for sock in made:
        sock.close()


@pytest.fixture
def backend(sockets: list[socket.socket]) -> socket.socket:
    srv = socket.create_server(("127.0.0.1", 0))
    srv.settimeout(5)
    sockets.append(srv)
    return srv


@pytest.fixture
def proxy(backend: socket.socket) -> Iterator[FaultProxy]:
    with FaultProxy(backend.getsockname()) as p:
        yield p
    assert p.error is None


@pytest.fixture
def pair(proxy: FaultProxy, backend: socket.socket, sockets: list[socket.socket]):
    """connect() -> (client, server side), through the proxy."""

    def connect() -> tuple[socket.socket, socket.socket]:
        client = socket.create_connection(proxy.address, timeout=5)
        sockets.append(client)
        server, _ = backend.accept()
        sockets.append(server)
        return client, server

    return connect


@pytest.fixture
def echo() -> Iterator[EchoServer]:
    server = EchoServer()
    yield server
    server.close()


# ----------------------------------------------------------------- relaying
def test_relays_large_data_both_ways(echo: EchoServer, sockets) -> None:
    data = os.urandom(8 << 20)
    with FaultProxy(echo.address) as proxy:
        client = socket.create_connection(proxy.address, timeout=5)
        sockets.append(client)
        sender = threading.Thread(target=client.sendall, args=(data,))
        t0 = time.monotonic()
        sender.start()
        got = recv_exactly(client, len(data), timeout=20)
        elapsed = time.monotonic() - t0
        sender.join(5)
        assert hashlib.sha256(got).digest() == hashlib.sha256(data).digest()
        stats = proxy.stats()
        assert stats.forwarded == {"up": len(data), "down": len(data)}
        assert stats.accepted == 1 and stats.open == 1 and stats.dropped == {"up": 0, "down": 0}
        assert elapsed < 15, f"8 MiB echo took {elapsed:.2f} s"


def test_many_connections_each_get_their_own_upstream(echo: EchoServer, sockets) -> None:
    with FaultProxy(echo.address) as proxy:
        clients = [socket.create_connection(proxy.address, timeout=5) for _ in range(20)]
        sockets.extend(clients)
        assert proxy.wait_connections(20, timeout=5)
        payloads = [os.urandom(65536) + bytes([i]) for i in range(len(clients))]
        for client, payload in zip(clients, payloads):
            client.sendall(payload)
        for client, payload in zip(clients, payloads):
            assert recv_exactly(client, len(payload)) == payload
        assert [c.id for c in proxy.connections()] == list(range(1, 21))
        for client in clients:
            client.close()
        assert wait_until(lambda: proxy.stats().open == 0)
        assert proxy.stats().accepted == 20
        assert len(proxy.connections(include_closed=True)) == 20


def test_half_close_passes_eof_each_way(proxy: FaultProxy, pair) -> None:
    client, server = pair()
    client.sendall(b"request")
    client.shutdown(socket.SHUT_WR)
    assert recv_exactly(server, 7) == b"request"
    assert sees_end(server) == "eof"  # the FIN went up, the way down still works
    server.sendall(b"reply after EOF")
    server.shutdown(socket.SHUT_WR)
    assert recv_exactly(client, 15) == b"reply after EOF"
    assert sees_end(client) == "eof"
    assert wait_until(lambda: proxy.stats().open == 0)


def test_connect_failure_closes_the_client(sockets) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead = probe.getsockname()  # bound, never listening: connections are refused
        with FaultProxy(dead) as proxy:
            client = socket.create_connection(proxy.address, timeout=5)
            sockets.append(client)
            assert sees_end(client) in ("eof", "reset")
            assert proxy.stats().connect_failures == 1 and proxy.stats().open == 0


def test_ipv6_loopback(sockets) -> None:
    try:
        srv = socket.create_server(("::1", 0), family=socket.AF_INET6)
    except OSError as exc:
        pytest.skip(f"no IPv6 loopback here: {exc}")
    sockets.append(srv)
    srv.settimeout(5)
    with FaultProxy(srv.getsockname()[:2], listen=("::1", 0)) as proxy:
        client = socket.create_connection(proxy.address, timeout=5)
        sockets.append(client)
        server, _ = srv.accept()
        sockets.append(server)
        client.sendall(b"six")
        assert recv_exactly(server, 3) == b"six"
        assert proxy.address[0] == "::1"


# ----------------------------------------------------------------- delay
def test_delay_is_measured_per_direction(proxy: FaultProxy, pair) -> None:
    client, server = pair()
    proxy.delay(0.3, direction="up")
    t0 = time.monotonic()
    client.sendall(b"x")
    assert recv_exactly(server, 1) == b"x"
    up = time.monotonic() - t0
    t0 = time.monotonic()
    server.sendall(b"y")
    assert recv_exactly(client, 1) == b"y"
    down = time.monotonic() - t0
    assert 0.29 <= up < 1.5, up
    assert down < 0.2, down
    proxy.delay(0.1)  # both directions: a round trip pays twice
    t0 = time.monotonic()
    client.sendall(b"ping")
    server.sendall(recv_exactly(server, 4))
    assert recv_exactly(client, 4) == b"ping"
    assert 0.19 <= time.monotonic() - t0 < 1.5


def test_jitter_never_reorders(proxy: FaultProxy, pair) -> None:
    client, server = pair()
    proxy.delay(0.01, jitter=0.01, direction="up")
    sent = b""
    for i in range(150):  # one chunk per message: wait until the proxy has read each one
        msg = i.to_bytes(4, "big")
        client.sendall(msg)
        sent += msg
        n = len(sent)
        assert wait_until(lambda n=n: proxy.connections()[0].received["up"] == n)
    assert recv_exactly(server, len(sent)) == sent


# ----------------------------------------------------------------- stall
def test_stall_holds_one_direction_until_unstalled(proxy: FaultProxy, pair) -> None:
    client, server = pair()
    proxy.stall("up")
    data = os.urandom(100_000)
    client.sendall(data)
    assert wait_until(lambda: proxy.connections()[0].buffered["up"] == len(data))
    assert_quiet(server)
    assert proxy.stats().forwarded["up"] == 0
    server.sendall(b"down still flows")
    assert recv_exactly(client, 16) == b"down still flows"
    client.shutdown(socket.SHUT_WR)  # the FIN waits behind the stalled bytes
    proxy.unstall("up")
    assert recv_exactly(server, len(data)) == data
    assert sees_end(server) == "eof"


def test_stall_buffer_is_bounded(backend: socket.socket, sockets) -> None:
    limit = 256 << 10
    data = os.urandom(32 << 20)
    with FaultProxy(backend.getsockname(), buffer_limit=limit) as proxy:
        client = socket.create_connection(proxy.address, timeout=10)
        sockets.append(client)
        server, _ = backend.accept()
        sockets.append(server)
        proxy.stall("up")
        sender = threading.Thread(target=client.sendall, args=(data,))
        sender.start()
        assert wait_until(lambda: proxy.connections()[0].buffered["up"] >= limit)
        sender.join(QUIET)
        info = proxy.connections()[0]
        assert sender.is_alive(), "the sender was never held back"
        assert info.buffered["up"] < limit + 65536 and info.received["up"] < len(data)
        proxy.unstall("up")
        got = recv_exactly(server, len(data), timeout=20)
        sender.join(5)
        assert hashlib.sha256(got).digest() == hashlib.sha256(data).digest()


# ----------------------------------------------------------------- cut, drop, blackhole
@pytest.mark.parametrize("reset", [False, True])
def test_cut_closes_every_connection(proxy: FaultProxy, pair, reset: bool) -> None:
    pairs = [pair() for _ in range(3)]
    assert proxy.wait_connections(3)
    assert proxy.cut(reset=reset) == 3
    assert proxy.stats().open == 0 and proxy.connections() == []
    for client, server in pairs:
        assert sees_end(client) == ("reset" if reset else "eof")
        assert sees_end(server) == ("reset" if reset else "eof")
    client, server = pair()  # the proxy keeps accepting
    client.sendall(b"again")
    assert recv_exactly(server, 5) == b"again"


def test_drop_loses_one_way_only(proxy: FaultProxy, pair) -> None:
    client, server = pair()
    proxy.drop("up")
    client.sendall(b"lost")
    assert wait_until(lambda: proxy.stats().dropped["up"] == 4)
    server.sendall(b"still here")
    assert recv_exactly(client, 10) == b"still here"
    assert_quiet(server)
    assert proxy.connections()[0].open
    client2, server2 = pair()  # new connections are affected too
    client2.sendall(b"lost too")
    server2.sendall(b"ok")
    assert recv_exactly(client2, 2) == b"ok"
    assert wait_until(lambda: proxy.stats().dropped["up"] == 12)
    proxy.drop("up", False)
    client.sendall(b"back")
    assert recv_exactly(server, 4) == b"back"  # what was dropped never comes


def test_blackhole_silences_open_connections_forever(proxy: FaultProxy, pair) -> None:
    client, server = pair()
    assert proxy.blackhole("down") == 1
    proxy.clear()  # does not revive a blackholed connection
    server.sendall(b"into the void")
    client.sendall(b"up works")
    assert recv_exactly(server, 8) == b"up works"
    assert_quiet(client)
    assert proxy.stats().dropped["down"] == 13
    client2, server2 = pair()  # a new connection is not blackholed
    server2.sendall(b"fine")
    assert recv_exactly(client2, 4) == b"fine"


# ----------------------------------------------------------------- flip
def test_flip_changes_exactly_the_chosen_bytes(proxy: FaultProxy, pair) -> None:
    client, server = pair()
    proxy.flip_at("up", 5)
    client.sendall(b"0123456789")
    got = recv_exactly(server, 10)
    assert got == b"01234" + bytes([ord("5") ^ 0xFF]) + b"6789"
    client.sendall(b"abc")  # the flip hit once
    assert recv_exactly(server, 3) == b"abc"
    proxy.flip("up", count=3, mask=0x01)  # the next bytes to pass
    client.sendall(b"AAAAA")
    assert recv_exactly(server, 5) == b"@@@AA"
    assert proxy.stats().flipped == {"up": 4, "down": 0}

    data = os.urandom(300_000)  # offsets deep in a stream read in many chunks
    proxy.flip_at("down", 200_000, mask=0x80)
    proxy.flip("down", offset=65_534, count=4)  # likely across a chunk boundary
    server.sendall(data)
    got = recv_exactly(client, len(data))
    diffs = {i: got[i] ^ data[i] for i in range(len(data)) if got[i] != data[i]}
    assert diffs == {65_534: 0xFF, 65_535: 0xFF, 65_536: 0xFF, 65_537: 0xFF, 200_000: 0x80}
    assert proxy.stats().flipped == {"up": 4, "down": 5}


def test_flip_can_target_one_connection(proxy: FaultProxy, pair) -> None:
    (c1, s1), (c2, s2) = pair(), pair()
    second = proxy.connections()[1].id
    proxy.flip("down", offset=0, mask=0x20, conn=second)
    s1.sendall(b"a")
    s2.sendall(b"a")
    assert recv_exactly(c1, 1) == b"a" and recv_exactly(c2, 1) == b"A"


# ----------------------------------------------------------------- one-byte writes, record
def test_one_byte_writes_arrive_complete(proxy: FaultProxy, pair) -> None:
    client, server = pair()
    proxy.one_byte_writes(direction="up")
    data = os.urandom(20_000)
    client.sendall(data)
    assert recv_exactly(server, len(data)) == data
    server.sendall(b"down is whole")
    assert recv_exactly(client, 13) == b"down is whole"
    sends = proxy.stats().sends
    assert sends["up"] == len(data) and sends["down"] == 1
    proxy.one_byte_writes(False)
    client.sendall(data)
    assert recv_exactly(server, len(data)) == data
    assert proxy.stats().sends["up"] < 2 * len(data)


def test_record_keeps_a_bounded_prefix_before_faults(backend: socket.socket, sockets) -> None:
    with FaultProxy(backend.getsockname(), record=16) as proxy:
        client = socket.create_connection(proxy.address, timeout=5)
        sockets.append(client)
        server, _ = backend.accept()
        sockets.append(server)
        proxy.flip_at("up", 0)
        client.sendall(b"HEADER:0123456789-and-more")
        assert recv_exactly(server, 26)[:1] == bytes([ord("H") ^ 0xFF])
        server.sendall(b"hi")
        recv_exactly(client, 2)
        client.close()
        server.close()
        assert wait_until(lambda: proxy.stats().open == 0)
        (info,) = proxy.connections(include_closed=True)
        assert info.recorded == {"up": b"HEADER:012345678", "down": b"hi"}
        assert info.received == {"up": 26, "down": 2} and not info.open


# ----------------------------------------------------------------- clear, checks, close
def test_clear_removes_every_fault(proxy: FaultProxy, pair) -> None:
    client, server = pair()
    proxy.delay(5)
    proxy.stall("down")
    proxy.drop("up")
    proxy.flip("both")
    proxy.clear()
    client.sendall(b"up")
    server.sendall(b"down")
    assert recv_exactly(server, 2, timeout=1) == b"up"
    assert recv_exactly(client, 4, timeout=1) == b"down"


def test_bad_arguments_are_refused(proxy: FaultProxy) -> None:
    with pytest.raises(ValueError, match="direction"):
        proxy.stall("sideways")
    with pytest.raises(ValueError):
        proxy.delay(-1)
    with pytest.raises(ValueError):
        proxy.flip("up", offset=-1)
    with pytest.raises(RuntimeError):
        proxy.start()
    t0 = time.monotonic()
    assert not proxy.wait_connections(1, timeout=0.05)
    assert time.monotonic() - t0 < 1


def test_close_mid_fault_is_prompt_and_ends_everything(backend: socket.socket, sockets) -> None:
    proxy = FaultProxy(backend.getsockname()).start()
    pairs = []
    for _ in range(5):
        client = socket.create_connection(proxy.address, timeout=5)
        server, _ = backend.accept()
        sockets.extend((client, server))
        pairs.append((client, server))
    proxy.delay(30, direction="up")
    proxy.stall("down")
    for client, server in pairs:
        client.sendall(b"held" * 1000)
        server.sendall(b"held" * 1000)
    assert wait_until(lambda: sum(c.buffered["down"] for c in proxy.connections()) == 20_000)
    threads = threading.active_count()
    address = proxy.address
    t0 = time.monotonic()
    proxy.close()
    assert time.monotonic() - t0 < 1.0
    assert threading.active_count() == threads - 1
    for client, server in pairs:
        assert sees_end(client, timeout=2) in ("eof", "reset")
        assert sees_end(server, timeout=2) in ("eof", "reset")
    proxy.close()  # idempotent
    with pytest.raises(OSError):
        socket.create_connection(address, timeout=1).close()  # nothing listens any more


def test_no_socket_or_warning_leaks(echo: EchoServer) -> None:
    def fds() -> int:
        return len(os.listdir("/proc/self/fd"))

    gc.collect()
    before = fds()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with FaultProxy(echo.address, record=True) as proxy:
            clients = [socket.create_connection(proxy.address, timeout=5) for _ in range(4)]
            for client in clients:
                client.sendall(b"x")
                assert recv_exactly(client, 1) == b"x"
            proxy.stall("both")
            clients[0].sendall(b"pending")
        for client in clients:
            client.close()
        FaultProxy(echo.address).close()  # never started
        gc.collect()
    assert not [w for w in caught if issubclass(w.category, ResourceWarning)]
    assert wait_until(lambda: fds() <= before, timeout=5), (before, fds())
