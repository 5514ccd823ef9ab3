"""AsyncSocket (SPEC §2): TCP, UDP and Unix sockets, framing, timeouts, errors, scale.

Only loopback addresses are used. Timeouts run on the fake clock wherever the only thing being
waited for is the timeout itself.
"""

from __future__ import annotations

import errno
import hashlib
import os
import socket
import struct
import threading
import time
import tracemalloc
import warnings

import pytest

import pycos
from pycos import AsyncSocket, ConcurrentWaitError
from pycos.asyncsocket import MessageError, MessageTooLarge, create_connection
from pycos.core.traps import WaitIO


def _has_ipv6() -> bool:
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
    except OSError:
        return False
    return True


FAMILIES = [pytest.param((socket.AF_INET, "127.0.0.1"), id="ipv4"),
            pytest.param((socket.AF_INET6, "::1"), id="ipv6",
                         marks=pytest.mark.skipif(not _has_ipv6(), reason="no IPv6 loopback"))]


def listener(family: int = socket.AF_INET, host: str = "127.0.0.1", **kwargs) -> AsyncSocket:
    sock = AsyncSocket(socket.socket(family, socket.SOCK_STREAM), **kwargs)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    sock.listen(2048)
    return sock


def pair(family: int = socket.AF_INET) -> tuple[AsyncSocket, AsyncSocket]:
    a, b = socket.socketpair(socket.AF_UNIX if family == socket.AF_UNIX else family)
    return AsyncSocket(a), AsyncSocket(b)


# ------------------------------------------------------------------------ basics
@pytest.mark.parametrize("family_host", FAMILIES)
def test_tcp_echo(sched, run, family_host):
    family, host = family_host
    srv = listener(family, host)
    addr = srv.getsockname()[:2]

    def server(task=None):
        conn, peer = yield srv.accept()
        assert isinstance(conn, AsyncSocket) and peer[0] == host
        while True:
            data = yield conn.recv(1024)
            if not data:
                break
            yield conn.sendall(data)
        conn.close()

    def client(task=None):
        sock = AsyncSocket(socket.socket(family, socket.SOCK_STREAM))
        assert (yield sock.connect(addr)) == 0
        replies = []
        for word in (b"alpha", b"beta", b"gamma"):
            yield sock.send(word)
            replies.append((yield sock.recvall(len(word))))
        sock.close()
        return replies

    pycos.Task(server)
    assert run(client) == [b"alpha", b"beta", b"gamma"]
    srv.close()


def test_attributes_delegate_and_repr(sched):
    sock = AsyncSocket(socket.socket())
    sock.bind(("127.0.0.1", 0))
    assert sock.getsockname()[0] == "127.0.0.1"
    assert sock.family == socket.AF_INET and sock.type == socket.SOCK_STREAM
    assert sock.gettimeout() is None and not sock.blocking
    assert "AsyncSocket" in repr(sock)
    sock.close()
    sock.close()  # idempotent
    with pytest.raises(OSError):
        sock.getsockname()


def test_constructor_checks_arguments():
    with pytest.raises(TypeError, match="socket.socket"):
        AsyncSocket("not a socket")
    raw = socket.socket()
    try:
        with pytest.raises(ValueError, match="keyfile given without certfile"):
            AsyncSocket(raw, keyfile="k.pem")
        with pytest.raises(TypeError, match="ssl_context"):
            AsyncSocket(raw, ssl_context="ctx")
        with pytest.raises(TypeError, match="number of seconds"):
            AsyncSocket(raw).settimeout("1")
        with pytest.raises(ValueError, match=">= 0"):
            AsyncSocket(raw).settimeout(-1)
    finally:
        raw.close()


def test_rewrapping_takes_over_the_socket(sched, run):
    a, b = pair(socket.AF_UNIX)

    def main(task=None):
        yield a.send(b"1")
        yield b.recv(1)  # b has been read: it holds a read registration
        second = AsyncSocket(b)
        yield a.send(b"2")
        data = yield second.recv(1)
        second.close()
        return data

    assert run(main) == b"2"
    assert b.fileno() == -1
    with pytest.raises(OSError, match="closed"):
        b.getsockname()
    a.close()


def test_ops_created_before_yield_are_independent(sched, run):
    a, b = pair(socket.AF_UNIX)

    def main(task=None):
        yield a.sendall(b"0123456789")
        first, second = b.recv(3), b.recv(4)  # two pending operations of the same kind
        return (yield first), (yield second)

    assert run(main) == (b"012", b"3456")
    a.close()
    b.close()


# ------------------------------------------------------------------ bulk transfer
def test_64mib_transfer_with_checksum(sched, run):
    srv = listener()
    payload = os.urandom(1 << 20) * 64
    digest = hashlib.sha256(payload).hexdigest()

    def server(task=None):
        conn, _ = yield srv.accept()
        h = hashlib.sha256()
        total = 0
        while True:
            chunk = yield conn.recv(1 << 18)
            if not chunk:
                break
            h.update(chunk)
            total += len(chunk)
        yield conn.send_msg(h.hexdigest().encode())
        conn.close()
        return total

    def client(task=None):
        sock = AsyncSocket(socket.socket())
        yield sock.connect(srv.getsockname())
        assert (yield sock.sendall(payload)) is None
        sock.shutdown(socket.SHUT_WR)
        answer = yield sock.recv_msg()
        sock.close()
        return answer.decode()

    start = time.perf_counter()
    server_task = pycos.Task(server)
    assert run(client, timeout=60) == digest
    assert server_task.value(timeout=10) == len(payload)
    elapsed = time.perf_counter() - start
    print(f"64 MiB in {elapsed:.3f} s: {len(payload) / elapsed / 1e6:.0f} MB/s")
    srv.close()


def test_recvall_of_a_large_block(sched, run):
    a, b = pair(socket.AF_UNIX)
    payload = os.urandom(3 << 20)

    def sender(task=None):
        yield a.sendall(payload)

    def receiver(task=None):
        data = yield b.recvall(len(payload))
        return data

    pycos.Task(sender)
    assert run(receiver) == payload
    a.close()
    b.close()


# --------------------------------------------------------------- partial reads, EOF
def test_partial_reads_and_recvall_across_sends(sched, run):
    a, b = pair(socket.AF_UNIX)
    got = []

    def writer(task=None):
        for piece in (b"abc", b"defg", b"hij"):
            yield a.send(piece)
            yield task.sleep(0.01)

    def reader(task=None):
        got.append((yield b.recv(2)))  # at most what was asked
        got.append((yield b.recvall(8)))  # waits for the later sends
        return got

    pycos.Task(writer)
    assert run(reader) == [b"ab", b"cdefghij"]
    a.close()
    b.close()


def test_eof(sched, run):
    a, b = pair(socket.AF_UNIX)

    def main(task=None):
        yield a.sendall(b"xyz")
        a.close()
        partial = yield b.recvall(10)  # fewer bytes: the peer closed
        after = yield b.recv(10)
        again = yield b.recvall(5)
        return partial, after, again

    assert run(main) == (b"xyz", b"", b"")
    b.close()


def test_recv_msg_roundtrip_and_clean_eof(sched, run):
    a, b = pair(socket.AF_UNIX)
    big = os.urandom(300_000)

    def main(task=None):
        yield a.send_msg(b"hello")
        yield a.send_msg(b"")
        sender = pycos.Task(lambda task=None: (yield a.send_msg(big)))
        msgs = [(yield b.recv_msg()), (yield b.recv_msg()), (yield b.recv_msg())]
        yield sender.finish()
        a.close()
        msgs.append((yield b.recv_msg()))
        return msgs

    assert run(main) == [b"hello", b"", big, b""]
    b.close()


def test_recv_msg_eof_inside_a_message_is_an_error(sched, run):
    def main(cut, task=None):
        a, b = pair(socket.AF_UNIX)
        yield a.sendall(struct.pack(">L", 10) + b"12345"[:cut])
        a.close()
        try:
            yield b.recv_msg()
        except MessageError as exc:
            return str(exc)
        finally:
            b.close()

    assert "5 of 10 bytes" in run(main, 5)
    assert "0 of 10 bytes" in run(main, 0)

    def header_cut(task=None):
        a, b = pair(socket.AF_UNIX)
        yield a.sendall(b"\x00\x00")
        a.close()
        with pytest.raises(MessageError, match="header"):
            yield b.recv_msg()
        b.close()
        return True

    assert run(header_cut)


def test_recv_msg_refuses_a_huge_length_without_allocating(sched, run):
    a, b = pair(socket.AF_UNIX)

    def main(task=None):
        yield a.sendall(struct.pack(">L", 0xFFFFFFF0) + b"x" * 100)
        tracing = tracemalloc.is_tracing()
        tracemalloc.start()
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        try:
            with pytest.raises(MessageTooLarge) as info:
                yield b.recv_msg(max_size=1 << 20)
            peak = tracemalloc.get_traced_memory()[1] - base
        finally:
            if not tracing:
                tracemalloc.stop()
        with pytest.raises(MessageTooLarge):
            yield b.recv_msg()  # out of step now: b"xxxx" reads as a huge length too
        return info.value, peak

    exc, peak = run(main)
    assert exc.size == 0xFFFFFFF0 and exc.max_size == 1 << 20
    assert "max_size" in str(exc) and "out of step" in str(exc)
    assert peak < 1 << 20
    with pytest.raises(ValueError, match="max_size"):
        b.recv_msg(max_size=-1)
    a.close()
    b.close()


def test_send_msg_large_payload_uses_one_frame(sched, run):
    a, b = pair(socket.AF_UNIX)
    payload = bytearray(os.urandom(2 << 20))

    def main(task=None):
        sender = pycos.Task(lambda task=None: (yield a.send_msg(payload)))
        head = yield b.recvall(4)
        body = yield b.recvall(len(payload))
        yield sender.finish()
        return struct.unpack(">L", head)[0], body

    assert run(main) == (len(payload), bytes(payload))
    a.close()
    b.close()


# ----------------------------------------------------------------------- timeouts
def test_recv_timeout_on_fake_clock(fake_sched, clock, run):
    a, b = pair(socket.AF_UNIX)
    b.settimeout(7.5)

    def main(task=None):
        start = clock.time()
        with pytest.raises(socket.timeout, match="timed out"):
            yield b.recv(10)
        return clock.time() - start

    assert run(main) == pytest.approx(7.5)
    assert b.gettimeout() == 7.5
    a.close()
    b.close()


def test_timed_out_recv_leaves_the_socket_usable(fake_sched, clock, run):
    a, b = pair(socket.AF_UNIX)
    b.settimeout(1)

    def main(task=None):
        with pytest.raises(socket.timeout):
            yield b.recv(10)
        yield a.send(b"late")
        return (yield b.recv(10))

    assert run(main) == b"late"
    a.close()
    b.close()


def test_recvall_and_sendall_report_partial_progress_on_timeout(fake_sched, clock, run):
    a, b = pair(socket.AF_UNIX)
    a.settimeout(5)
    b.settimeout(5)

    def main(task=None):
        yield a.sendall(b"abc")
        start = clock.time()
        partial = yield b.recvall(10)
        waited = clock.time() - start
        with pytest.raises(socket.timeout):
            yield b.recvall(10)  # nothing at all arrived: an exception
        sent = yield a.sendall(b"x" * (16 << 20))  # nobody reads: the buffer fills up
        return partial, waited, sent

    partial, waited, sent = run(main)
    assert partial == b"abc" and waited == pytest.approx(5)
    assert isinstance(sent, int) and 0 < sent < 16 << 20
    a.close()
    b.close()


def test_recvall_timeout_is_an_inactivity_limit(fake_sched, clock, run):
    a, b = pair(socket.AF_UNIX)
    b.settimeout(5)

    def trickle(task=None):
        for byte in b"wxyz":
            yield task.sleep(3)
            yield a.send(bytes([byte]))

    def main(task=None):
        pycos.Task(trickle)
        start = clock.time()
        data = yield b.recvall(4)
        return data, clock.time() - start

    data, elapsed = run(main)
    assert data == b"wxyz" and elapsed == pytest.approx(12)
    a.close()
    b.close()


def test_half_a_frame_then_silence_is_a_bounded_wait(fake_sched, clock, run):
    a, b = pair(socket.AF_UNIX)
    b.settimeout(30)

    def main(task=None):
        yield a.sendall(struct.pack(">L", 1000) + b"only part")
        start = clock.time()
        with pytest.raises(socket.timeout) as info:
            yield b.recv_msg()
        return str(info.value), clock.time() - start

    message, waited = run(main)
    assert "inside a message" in message and "out of step" in message
    assert waited == pytest.approx(30)
    a.close()
    b.close()


def test_accept_timeout(fake_sched, clock, run):
    srv = listener()
    srv.settimeout(2)

    def main(task=None):
        with pytest.raises(socket.timeout):
            yield srv.accept()
        return clock.time()

    assert run(main) == pytest.approx(2)
    srv.close()


# ------------------------------------------------------------------------ errors
def test_connection_refused(sched, run, free_port):
    def main(task=None):
        sock = AsyncSocket(socket.socket())
        try:
            yield sock.connect(("127.0.0.1", free_port))
        except ConnectionRefusedError as exc:
            return exc.errno
        finally:
            sock.close()

    assert run(main) == errno.ECONNREFUSED


def test_failures_to_start_are_raised_in_the_task(sched, run):
    def main(task=None):
        a, b = pair(socket.AF_UNIX)
        errors = []
        for op in (lambda: b.recv(-1), lambda: b.recvall(-5), lambda: a.sendall(12345),
                   lambda: a.sendto(b"x", ("127.0.0.1", 1))):
            try:
                yield op()
            except (ValueError, TypeError, OSError) as exc:
                errors.append(type(exc).__name__)
        b.close()
        try:
            yield b.recv(1)
        except OSError as exc:
            errors.append(exc.errno)
        a.close()
        return errors

    errors = run(main)
    assert errors[:3] == ["ValueError", "ValueError", "TypeError"]
    assert len(errors) == 5 and errors[-1] == errno.EBADF


def test_second_waiter_in_the_same_direction_is_an_error(sched, run):
    a, b = pair(socket.AF_UNIX)

    def first(task=None):
        return (yield b.recv(100))

    def second(task=None):
        yield task.sleep(0.01)
        with pytest.raises(ConcurrentWaitError):
            yield b.recv(10)
        with pytest.raises(ConcurrentWaitError):
            yield WaitIO(b, pycos.READ, None)
        yield a.send(b"for the first")
        return True

    waiting = pycos.Task(first)
    assert run(second)
    assert waiting.value(timeout=5) == b"for the first"
    a.close()
    b.close()


def test_close_wakes_every_waiter_with_an_error(sched, run):
    a, b = pair(socket.AF_UNIX)
    outcome = {}

    def reader(task=None):
        try:
            yield b.recv(10)
        except OSError as exc:
            outcome["reader"] = exc.errno

    def writer(task=None):
        try:
            yield b.sendall(b"x" * (32 << 20))
        except OSError as exc:
            outcome["writer"] = exc.errno

    def closer(task=None):
        tasks = [pycos.Task(reader), pycos.Task(writer)]
        yield task.sleep(0.05)
        b.close()
        for t in tasks:
            yield t.finish(timeout=5)
        return outcome

    assert run(closer) == {"reader": errno.EBADF, "writer": errno.EBADF}
    a.close()


def test_descriptor_closed_behind_the_schedulers_back_fails_its_waiter_only(sched, run):
    """``os.close`` on a socket's descriptor while a duplicate keeps the file open: the kernel
    goes on reporting the old registration. The waiter gets EBADF, the scheduler goes on, and
    it does not spin on the stale registration."""
    a, b = pair(socket.AF_UNIX)
    spare = os.dup(b.fileno())  # keeps the file (and the kernel's registration) alive
    fd = b.fileno()

    def reader(task=None):
        try:
            yield b.recv(10)
        except OSError as exc:
            return exc.errno
        return "no error"

    def attack(task=None):
        waiting = pycos.Task(reader)
        yield task.sleep(0.05)  # the reader is registered with the poller now
        os.close(fd)  # behind the scheduler's back
        yield a.sendall(b"ready")  # readable through the duplicate: the stale event fires
        return (yield waiting.finish(timeout=5))

    try:
        assert run(attack) == errno.EBADF
        cpu = time.process_time()

        def idle(task=None):
            yield task.sleep(0.3)
            return "alive"

        assert run(idle) == "alive"  # the scheduler runs on ...
        assert time.process_time() - cpu < 0.15  # ... and does not spin meanwhile
    finally:
        b.detach()  # its number is closed already
        os.close(spare)
        a.close()


def test_close_from_another_thread(sched, run):
    a, b = pair(socket.AF_UNIX)

    def reader(task=None):
        try:
            yield b.recv(10)
        except OSError as exc:
            return exc.errno

    task = pycos.Task(reader)
    time.sleep(0.05)
    threading.Thread(target=b.close).start()
    assert task.value(timeout=5) == errno.EBADF
    a.close()


def test_terminated_waiter_releases_the_socket(sched, run):
    a, b = pair(socket.AF_UNIX)

    def stuck(task=None):
        yield b.recv(10)

    def main(task=None):
        victim = pycos.Task(stuck)
        yield task.sleep(0.02)
        victim.terminate()
        yield victim.finish(timeout=5)
        yield a.send(b"next")
        return (yield b.recv(10))  # would be ConcurrentWaitError if still registered

    assert run(main) == b"next"
    a.close()
    b.close()


# --------------------------------------------------------------------------- UDP
@pytest.mark.parametrize("family_host", FAMILIES)
def test_udp_echo(sched, run, family_host):
    family, host = family_host
    srv = AsyncSocket(socket.socket(family, socket.SOCK_DGRAM))
    srv.bind((host, 0))
    addr = srv.getsockname()[:2]

    def server(task=None):
        for _ in range(3):
            data, peer = yield srv.recvfrom(1024)
            yield srv.sendto(data.upper(), peer)

    def client(task=None):
        sock = AsyncSocket(socket.socket(family, socket.SOCK_DGRAM))
        sock.settimeout(5)
        replies = []
        for word in (b"one", b"two", b"three"):
            assert (yield sock.sendto(word, addr)) == len(word)
            data, peer = yield sock.recvfrom(1024)
            assert peer[:2] == addr
            replies.append(data)
        yield sock.sendto(b"flags", 0, addr)  # the (data, flags, address) form
        sock.close()
        return replies

    pycos.Task(server)
    assert run(client) == [b"ONE", b"TWO", b"THREE"]
    srv.close()


def test_udp_recvfrom_into(sched, run):
    a = AsyncSocket(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
    a.bind(("127.0.0.1", 0))
    b = AsyncSocket(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))

    def main(task=None):
        buf = bytearray(8)
        yield b.sendto(b"datagram", a.getsockname())
        n, peer = yield a.recvfrom_into(buf)
        return bytes(buf[:n]), peer[0]

    assert run(main) == (b"datagram", "127.0.0.1")
    a.close()
    b.close()


# -------------------------------------------------------------------- Unix sockets
def test_unix_stream_and_datagram(sched, run, tmp_path):
    path = str(tmp_path / "stream.sock")
    srv = AsyncSocket(socket.socket(socket.AF_UNIX, socket.SOCK_STREAM))
    srv.bind(path)
    srv.listen(8)
    dpath = str(tmp_path / "dgram.sock")
    dsrv = AsyncSocket(socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM))
    dsrv.bind(dpath)

    def server(task=None):
        conn, _ = yield srv.accept()
        msg = yield conn.recv_msg()
        yield conn.send_msg(msg[::-1])
        conn.close()

    def main(task=None):
        pycos.Task(server)
        sock = AsyncSocket(socket.socket(socket.AF_UNIX, socket.SOCK_STREAM))
        yield sock.connect(path)
        yield sock.send_msg(b"stressed")
        reply = yield sock.recv_msg()
        sock.close()
        d = AsyncSocket(socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM))
        yield d.sendto(b"dgram", dpath)
        data, _ = yield dsrv.recvfrom(100)
        d.close()
        return reply, data

    assert run(main) == (b"desserts", b"dgram")
    srv.close()
    dsrv.close()


# --------------------------------------------------------------------------- scale
def _descriptors_open() -> int:
    for fd_dir in ("/proc/self/fd", "/dev/fd"):
        try:
            return len(os.listdir(fd_dir))
        except OSError:
            continue
    return 64  # no way to count them here: a generous guess


def _descriptor_limits() -> str:
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return f"soft {soft}, hard {hard}"


@pytest.fixture
def descriptors():
    """``room = descriptors(k)``: make room for ``k`` more open descriptors in this process by
    raising the soft ``RLIMIT_NOFILE`` (never above the hard limit, which only root may raise);
    returns the room there is now, which may be less than ``k``. The limit is restored after
    the test."""
    resource = pytest.importorskip("resource")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)

    def make_room(k: int) -> int:
        wanted = _descriptors_open() + k
        if wanted > soft:
            target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        return resource.getrlimit(resource.RLIMIT_NOFILE)[0] - _descriptors_open()

    yield make_room
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_1000_concurrent_connections(sched, run, descriptors):
    """1,000 clients connected at once, each served by a task of its own.

    Both ends of every connection are in this process: about 2,000 descriptors, more than the
    common soft limit of 1,024. The test raises the soft limit up to the hard one; where even
    that is too low it runs as many connections as fit, and says so in a warning. Every socket
    is closed however the test ends; running out of descriptors fails it at once, with EMFILE
    in the message."""
    n = 1000
    spare = 64  # the listener, the scheduler's own descriptors, stray ones
    room = descriptors(2 * n + spare)
    if room < 2 * n + spare:
        fit = max(1, (room - spare) // 2)
        warnings.warn(f"only {room} more open descriptors allowed (RLIMIT_NOFILE hard limit): "
                      f"running {fit} concurrent connections instead of {n}", stacklevel=1)
        n = fit
    srv = listener()
    addr = srv.getsockname()
    errors: list[OSError] = []
    clients: list[pycos.Task] = []

    def handle(conn, task=None):
        try:
            msg = yield conn.recv_msg()
            yield conn.send_msg(msg + b"!")
        except OSError as exc:
            errors.append(exc)
        finally:
            conn.close()

    def server(task=None):
        try:
            for _ in range(n):
                conn, _ = yield srv.accept()
                pycos.Task(handle, conn)
        except OSError as exc:  # EMFILE: nobody will answer the clients still waiting
            errors.append(exc)
            for c in clients:
                c.terminate()
        finally:
            srv.close()

    def client(i, task=None):
        try:
            sock = AsyncSocket(socket.socket())
        except OSError as exc:
            errors.append(exc)
            return False
        try:
            sock.settimeout(30)
            yield sock.connect(addr)
            yield sock.send_msg(b"%d" % i)
            reply = yield sock.recv_msg()
            return reply == b"%d!" % i
        except OSError as exc:
            errors.append(exc)
            return False
        finally:
            sock.close()

    def main(task=None):
        accepter = pycos.Task(server)
        clients.extend(pycos.Task(client, i) for i in range(n))
        results = []
        for c in clients:
            results.append((yield c.finish(timeout=60)))
        if accepter.is_alive():  # some clients never connected
            accepter.terminate()
        return results

    start = time.perf_counter()
    try:
        results = run(main, timeout=90)
    finally:
        srv.close()
    elapsed = time.perf_counter() - start
    print(f"{n:,} concurrent connections in {elapsed:.3f} s")
    emfile = sum(1 for e in errors if e.errno == errno.EMFILE)
    assert not errors, (
        f"{len(errors)} errors in {n} connections, {emfile} of them EMFILE (too many open "
        f"files: limits {_descriptor_limits()}, {_descriptors_open()} open now); "
        f"first: {errors[0]!r}")
    assert results == [True] * n


# ------------------------------------------------------------------ blocking mode
def test_blocking_mode_for_plain_code(sched, run):
    srv = listener()

    def server(task=None):
        conn, _ = yield srv.accept()
        data = yield conn.recvall(5)
        yield conn.sendall(data[::-1])
        msg = yield conn.recv_msg()
        yield conn.send_msg(msg.upper())
        conn.close()

    pycos.Task(server)
    box = {}

    def thread_client():
        sock = AsyncSocket(socket.socket(), blocking=True)
        sock.settimeout(5)
        sock.connect(srv.getsockname())
        assert sock.sendall(b"hello") is None
        box["reverse"] = sock.recvall(5)
        sock.send_msg(b"framed")
        box["msg"] = sock.recv_msg()
        box["eof"] = sock.recv_msg()
        sock.close()

    th = threading.Thread(target=thread_client)
    th.start()
    th.join(10)
    assert box == {"reverse": b"olleh", "msg": b"FRAMED", "eof": b""}
    srv.close()


def test_blocking_recvall_partial_on_timeout():
    a, b = socket.socketpair()
    sa, sb = AsyncSocket(a, blocking=True), AsyncSocket(b, blocking=True)
    sb.settimeout(0.05)
    sa.sendall(b"ab")
    assert sb.recvall(5) == b"ab"
    with pytest.raises(socket.timeout):
        sb.recvall(5)
    sa.close()
    sb.close()


def test_switching_modes(sched, run):
    a, b = pair(socket.AF_UNIX)
    b.setblocking(True)
    assert b.blocking
    a_raw = a.unwrap()
    a_raw.setblocking(True)
    a_raw.sendall(b"plain")
    assert b.recv(5) == b"plain"
    b.setblocking(False)

    def main(task=None):
        a_raw.sendall(b"again")
        return (yield b.recv(5))

    assert run(main) == b"again"
    a_raw.close()
    b.close()


# -------------------------------------------------------------- create_connection
def test_create_connection_resolves_names(sched, run):
    srv = listener()
    port = srv.getsockname()[1]

    def server(task=None):
        conn, _ = yield srv.accept()
        yield conn.send(b"hi")
        conn.close()

    def main(task=None):
        pycos.Task(server)
        sock = yield create_connection(("localhost", port), timeout=5)
        data = yield sock.recv(2)
        sock.close()
        return data, sock.gettimeout()

    assert run(main) == (b"hi", 5)
    srv.close()


def test_create_connection_method_and_name_lookup_in_connect(sched, run):
    srv = listener()
    port = srv.getsockname()[1]

    def server(task=None):
        for _ in range(2):
            conn, _ = yield srv.accept()
            yield conn.send(b"ok")
            conn.close()

    def main(task=None):
        pycos.Task(server)
        sock = AsyncSocket(socket.socket())
        yield sock.create_connection(("127.0.0.1", port), timeout=5,
                                     source_address=("127.0.0.1", 0))
        first = yield sock.recv(2)
        sock.close()
        sock = AsyncSocket(socket.socket())
        yield sock.connect(("localhost", port))  # resolved on a worker thread
        second = yield sock.recv(2)
        sock.close()
        return first, second

    assert run(main) == (b"ok", b"ok")
    srv.close()


def test_create_connection_refused_raises(sched, run, free_port):
    def main(task=None):
        with pytest.raises(ConnectionRefusedError):
            yield create_connection(("127.0.0.1", free_port))
        with pytest.raises(TypeError):
            yield create_connection("127.0.0.1")
        return True

    assert run(main)


# ------------------------------------------------------ poller registration hygiene
def test_idle_socket_gives_back_its_read_registration(sched, run):
    a, b = pair(socket.AF_UNIX)

    def main(task=None):
        yield a.send(b"1")
        assert (yield b.recv(1)) == b"1"  # b stays registered for reading, for speed
        yield a.send(b"unread")  # nobody reads: the first readiness event unregisters b
        yield task.sleep(0.05)
        start = time.process_time()
        yield task.sleep(0.2)
        busy = time.process_time() - start  # a level-triggered spin would burn the CPU
        ready = yield WaitIO(b, pycos.READ, 1)  # the descriptor is free for others now
        return busy, ready, (yield b.recv(10))

    busy, ready, data = run(main)
    assert busy < 0.1 and ready is True and data == b"unread"
    a.close()
    b.close()


def test_unwrapped_descriptor_number_can_be_reused(sched, run):
    a, b = pair(socket.AF_UNIX)

    def main(task=None):
        yield a.send(b"x")
        yield b.recv(1)
        raw = b.unwrap()
        fd = raw.fileno()
        raw.close()
        c, d = pair(socket.AF_UNIX)  # likely gets the same descriptor number
        yield d.send(b"fresh")
        data = yield c.recv(10)
        c.close()
        d.close()
        return data, fd

    data, _fd = run(main)
    assert data == b"fresh"
    a.close()


def test_reply_already_there_after_a_send(sched, run):
    a, b = pair(socket.AF_UNIX)

    def main(task=None):
        yield a.sendall(b"12")  # two requests at once
        first = yield b.recv(1)
        yield b.send(b"r")  # after a send, the next recv waits for readiness first ...
        second = yield b.recv(1)  # ... and still gets the byte that was already there
        return first, second

    assert run(main) == (b"1", b"2")
    a.close()
    b.close()


def test_asyncfile_over_a_used_asyncsocket(sched, run):
    from pycos.asyncfile import AsyncFile

    a, b = pair(socket.AF_UNIX)

    def main(task=None):
        yield a.send(b"x")
        yield b.recv(1)
        f = AsyncFile(b)
        yield a.send(b"line\n")
        line = yield f.readline()
        f.close()
        return line

    assert run(main) == b"line\n"
    a.close()


def test_a_socket_closed_by_another_thread_before_the_wait_raises_ebadf(sched, run):
    """The race of a node's accept loop at shutdown: the accept is tried (nothing yet), another
    thread closes the socket, then the task would wait on it: it gets ClosedWhileWaiting
    (EBADF), never a ValueError from the poller."""
    class Racing(socket.socket):
        owner: AsyncSocket

        def accept(self):  # type: ignore[no-untyped-def]
            self.owner.close()  # as node.close() does from the program's thread
            raise BlockingIOError(errno.EAGAIN, "no connection yet")

    raw = Racing(socket.AF_INET, socket.SOCK_STREAM)
    raw.bind(("127.0.0.1", 0))
    raw.listen(1)
    listener = AsyncSocket(raw)
    raw.owner = listener

    def main(task=None):
        try:
            yield listener.accept()
        except OSError as exc:
            return type(exc), exc.errno
        return None

    assert run(main) == (pycos.ClosedWhileWaiting, errno.EBADF)
