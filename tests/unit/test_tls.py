"""TLS (SPEC §2): contexts, non-blocking handshakes, mutual authentication and each failure.

Certificates are generated at run time (tests/certs.py); only loopback addresses are used.
"""

from __future__ import annotations

import os
import socket
import ssl
import threading

import certs
import pytest

import pycos
from pycos import AsyncSocket, tls

tls_files = certs.tls_files  # the session fixture with freshly generated certificates


def serve(ctx=None, **kwargs) -> AsyncSocket:
    sock = AsyncSocket(socket.socket(), ssl_context=ctx, **kwargs)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    return sock


def echo_once(srv: AsyncSocket, record: dict, task=None):
    """Accept one connection and echo framed messages until EOF; errors go to ``record``."""
    conn, _ = yield srv.accept()
    try:
        while True:
            msg = yield conn.recv_msg()
            if not msg:
                break
            record.setdefault("peer_cert", conn.getpeercert())
            yield conn.send_msg(msg)
    except (ssl.SSLError, OSError) as exc:
        record["server_error"] = exc
    finally:
        conn.close()


def client_roundtrip(addr, ctx=None, messages=(b"ping",), task=None, **kwargs):
    sock = AsyncSocket(socket.socket(), ssl_context=ctx, **kwargs)
    sock.settimeout(10)
    try:
        yield sock.connect(addr)
        replies = []
        for msg in messages:
            yield sock.send_msg(msg)
            replies.append((yield sock.recv_msg()))
        return replies, sock.version()
    finally:
        sock.close()


# ----------------------------------------------------------------- success paths
def test_pycos_style_certfile_keyfile(sched, run, tls_files):
    srv = serve(certfile=tls_files.self_cert, keyfile=tls_files.self_key)
    record = {}
    pycos.Task(echo_once, srv, record)
    replies, version = run(client_roundtrip, srv.getsockname(), certfile=tls_files.self_cert)
    assert replies == [b"ping"] and version in ("TLSv1.2", "TLSv1.3")
    srv.close()


def test_ca_verified_server_and_large_messages(sched, run, tls_files):
    srv = serve(tls.server_context(tls_files.server_cert, tls_files.server_key))
    record = {}
    pycos.Task(echo_once, srv, record)
    big = os.urandom(1 << 20)
    replies, _ = run(client_roundtrip, srv.getsockname(), tls.client_context(tls_files.ca),
                     (b"small", big, b""))
    assert replies == [b"small", big, b""]
    srv.close()


def test_mutual_tls(sched, run, tls_files):
    srv = serve(tls.server_context(tls_files.server_cert, tls_files.server_key, tls_files.ca))
    record = {}
    server = pycos.Task(echo_once, srv, record)
    ctx = tls.client_context(tls_files.ca, tls_files.client_cert, tls_files.client_key)
    replies, _ = run(client_roundtrip, srv.getsockname(), ctx)
    server.value(timeout=5)
    assert replies == [b"ping"]
    subject = dict(item[0] for item in record["peer_cert"]["subject"])
    assert subject["commonName"] == "pycos test client"
    srv.close()


def test_hostname_checking(sched, run, tls_files):
    for name, ok in (("localhost", True), ("wrong.example", False)):
        srv = serve(tls.server_context(tls_files.server_cert, tls_files.server_key))
        record = {}
        pycos.Task(echo_once, srv, record)
        ctx = tls.client_context(tls_files.ca, check_hostname=True)
        if ok:
            replies, _ = run(client_roundtrip, srv.getsockname(), ctx, server_hostname=name)
            assert replies == [b"ping"]
        else:
            def refused(addr, ctx, name, task=None):
                with pytest.raises(ssl.SSLCertVerificationError, match="mismatch"):
                    yield from client_roundtrip(addr, ctx, server_hostname=name)
                return True

            assert run(refused, srv.getsockname(), ctx, name)
        srv.close()


def test_blocking_tls_client_against_task_server(sched, tls_files):
    srv = serve(tls.server_context(tls_files.server_cert, tls_files.server_key))
    record = {}
    pycos.Task(echo_once, srv, record)
    box = {}

    def thread_client():
        sock = AsyncSocket(socket.socket(), blocking=True,
                           ssl_context=tls.client_context(tls_files.ca))
        sock.settimeout(10)
        sock.connect(srv.getsockname())
        sock.send_msg(b"from a thread")
        box["reply"] = sock.recv_msg()
        sock.close()

    th = threading.Thread(target=thread_client)
    th.start()
    th.join(15)
    assert box == {"reply": b"from a thread"}
    srv.close()


def test_operations_of_several_tasks_wait_for_the_server_handshake(sched, run, tls_files):
    srv = serve(tls.server_context(tls_files.server_cert, tls_files.server_key))

    def server(task=None):
        conn, _ = yield srv.accept()
        # a reader and a writer start at once, before any handshake
        reader = pycos.Task(lambda task=None: (yield conn.recvall(5)))
        writer = pycos.Task(lambda task=None: (yield conn.sendall(b"hello")))
        data = yield reader.finish(timeout=10)
        yield writer.finish(timeout=10)
        conn.close()
        return data

    def client(task=None):
        sock = AsyncSocket(socket.socket(), ssl_context=tls.client_context(tls_files.ca))
        yield sock.connect(srv.getsockname())
        yield sock.sendall(b"world")
        data = yield sock.recvall(5)
        sock.close()
        return data

    server_task = pycos.Task(server)
    assert run(client) == b"hello"
    assert server_task.value(timeout=10) == b"world"
    srv.close()


def test_tls_unwrap_then_plain_text(sched, run, tls_files):
    srv = serve(tls.server_context(tls_files.server_cert, tls_files.server_key))

    def server(task=None):
        conn, _ = yield srv.accept()
        msg = yield conn.recv_msg()
        yield conn.tls_unwrap()
        plain = yield conn.recvall(5)
        yield conn.sendall(b"clear")
        conn.close()
        return msg, plain

    def client(task=None):
        sock = AsyncSocket(socket.socket(), ssl_context=tls.client_context(tls_files.ca))
        yield sock.connect(srv.getsockname())
        yield sock.send_msg(b"secret")
        yield sock.tls_unwrap()
        assert not isinstance(sock._sock, ssl.SSLSocket)
        yield sock.sendall(b"plain")
        reply = yield sock.recvall(5)
        sock.close()
        return reply

    server_task = pycos.Task(server)
    assert run(client) == b"clear"
    assert server_task.value(timeout=10) == (b"secret", b"plain")
    srv.close()


def test_starttls_upgrade(sched, run, tls_files):
    srv = serve()
    server_ctx = tls.server_context(tls_files.server_cert, tls_files.server_key)

    def server(task=None):
        conn, _ = yield srv.accept()
        hello = yield conn.recvall(8)
        yield conn.starttls(server_ctx, server_side=True)
        secret = yield conn.recv_msg()
        conn.close()
        return hello, secret

    def client(task=None):
        sock = AsyncSocket(socket.socket())
        yield sock.connect(srv.getsockname())
        yield sock.sendall(b"STARTTLS")
        yield sock.starttls(tls.client_context(tls_files.ca))
        yield sock.send_msg(b"now encrypted")
        version = sock.version()
        sock.close()
        return version

    server_task = pycos.Task(server)
    assert run(client) in ("TLSv1.2", "TLSv1.3")
    assert server_task.value(timeout=10) == (b"STARTTLS", b"now encrypted")
    srv.close()


# ------------------------------------------------------------------------ failures
def test_unknown_ca_is_refused(sched, run, tls_files):
    srv = serve(tls.server_context(tls_files.other_server_cert, tls_files.other_server_key))
    record = {}
    server = pycos.Task(echo_once, srv, record)

    def client(task=None):
        with pytest.raises(ssl.SSLCertVerificationError, match="certificate verify failed"):
            yield from client_roundtrip(srv.getsockname(), tls.client_context(tls_files.ca))
        return True

    assert run(client)
    server.value(timeout=10)
    assert isinstance(record["server_error"], (ssl.SSLError, ConnectionError))
    srv.close()


def test_missing_client_certificate_is_refused(sched, run, tls_files):
    srv = serve(tls.server_context(tls_files.server_cert, tls_files.server_key, tls_files.ca))
    record = {}
    server = pycos.Task(echo_once, srv, record)

    def client(task=None):
        # With TLS 1.3 the client learns of the refusal at its first read, not in connect.
        with pytest.raises((ssl.SSLError, ConnectionError)):
            yield from client_roundtrip(srv.getsockname(), tls.client_context(tls_files.ca))
        return True

    assert run(client)
    server.value(timeout=10)
    error = record["server_error"]
    assert isinstance(error, ssl.SSLError) and "certificate" in str(error).lower()
    srv.close()


def test_plain_client_to_tls_server(sched, run, tls_files):
    srv = serve(tls.server_context(tls_files.server_cert, tls_files.server_key))
    record = {}
    server = pycos.Task(echo_once, srv, record)

    def client(task=None):
        sock = AsyncSocket(socket.socket())
        sock.settimeout(10)
        yield sock.connect(srv.getsockname())
        yield sock.send_msg(b"GET / HTTP/1.0\r\n\r\n")
        try:
            reply = yield sock.recv(100)
        except ConnectionError:
            reply = b""
        sock.close()
        return reply

    assert not run(client).startswith(b"GET")
    server.value(timeout=10)
    assert isinstance(record["server_error"], ssl.SSLError)
    srv.close()


def test_tls_client_to_plain_server(sched, run, tls_files):
    srv = serve()

    def server(task=None):
        conn, _ = yield srv.accept()
        yield conn.sendall(b"HTTP/1.0 400 plain text here\r\n\r\n")
        conn.close()

    pycos.Task(server)

    def client(task=None):
        with pytest.raises((ssl.SSLError, ConnectionError)):
            yield from client_roundtrip(srv.getsockname(), tls.client_context(tls_files.ca))
        return True

    assert run(client)
    srv.close()


def test_later_operations_after_a_failed_handshake(sched, run, tls_files):
    srv = serve(tls.server_context(tls_files.server_cert, tls_files.server_key))

    def server(task=None):
        conn, _ = yield srv.accept()
        with pytest.raises(ssl.SSLError):
            yield conn.do_handshake()
        with pytest.raises(ConnectionError, match="handshake .* failed"):
            yield conn.recv(10)
        conn.close()
        return True

    def client(task=None):
        sock = AsyncSocket(socket.socket())
        yield sock.connect(srv.getsockname())
        yield sock.sendall(b"this is not TLS at all\r\n" * 4)
        yield task.sleep(0.05)
        sock.close()

    server_task = pycos.Task(server)
    run(client)
    assert server_task.value(timeout=10) is True
    srv.close()


def test_silent_client_handshake_times_out(fake_sched, clock, run, tls_files):
    srv = serve(tls.server_context(tls_files.server_cert, tls_files.server_key))
    raw = socket.create_connection(srv.getsockname())  # connects, never says a word

    def server(task=None):
        conn, _ = yield srv.accept()
        conn.settimeout(20)
        start = clock.time()
        with pytest.raises(socket.timeout, match="handshake"):
            yield conn.do_handshake()
        conn.close()
        return clock.time() - start

    assert run(server) == pytest.approx(20)
    raw.close()
    srv.close()


# ------------------------------------------------------------------------ contexts
def test_context_builders_check_their_arguments(tls_files, tmp_path):
    with pytest.raises(TypeError, match="certfile is required"):
        tls.server_context(None)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        tls.server_context(str(tmp_path / "missing.pem"))
    with pytest.raises(TypeError, match="path"):
        tls.client_context(cafile=42)
    with pytest.raises(ValueError, match="cafile"):
        tls.server_context(tls_files.server_cert, tls_files.server_key,
                           require_client_cert=True)
    with pytest.raises(TypeError, match="keyfile given without certfile"):
        tls.client_context(tls_files.ca, keyfile=tls_files.client_key)
    ctx = tls.server_context(tls_files.server_cert, tls_files.server_key, tls_files.ca,
                             require_client_cert=False)
    assert ctx.verify_mode == ssl.CERT_OPTIONAL
    assert ctx.minimum_version >= ssl.TLSVersion.TLSv1_2
    client = tls.client_context()
    assert client.check_hostname and client.verify_mode == ssl.CERT_REQUIRED
    assert not tls.client_context(tls_files.ca).check_hostname
    first = tls.pycos_server_context(tls_files.self_cert, tls_files.self_key)
    assert tls.pycos_server_context(tls_files.self_cert, tls_files.self_key) is first
    with socket.socket() as raw, pytest.raises(ValueError, match="either ssl_context or"):
        AsyncSocket(raw, certfile=tls_files.self_cert, ssl_context=client)


# ------------------------------------------------------- handshake shared by several tasks
def test_small_reads_drain_the_tls_buffer(sched, run, tls_files):
    srv = serve(tls.server_context(tls_files.server_cert, tls_files.server_key))

    def server(task=None):
        conn, _ = yield srv.accept()
        got = []
        for _ in range(10):  # after the first, the bytes sit in the TLS layer, not the socket
            got.append((yield conn.recv(1)))
        conn.close()
        return b"".join(got)

    def client(task=None):
        sock = AsyncSocket(socket.socket(), ssl_context=tls.client_context(tls_files.ca))
        yield sock.connect(srv.getsockname())
        yield sock.sendall(b"0123456789")
        yield task.sleep(0.05)
        sock.close()

    server_task = pycos.Task(server)
    run(client)
    assert server_task.value(timeout=10) == b"0123456789"
    srv.close()


def test_waiting_for_another_tasks_handshake_times_out(fake_sched, clock, run, tls_files):
    srv = serve(tls.server_context(tls_files.server_cert, tls_files.server_key))
    raw = socket.create_connection(srv.getsockname())  # never starts TLS

    def server(task=None):
        conn, _ = yield srv.accept()
        conn.settimeout(10)
        owner = pycos.Task(lambda task=None: (yield conn.recv(10)))  # runs the handshake
        yield task.sleep(1)
        start = clock.time()
        with pytest.raises(socket.timeout):
            yield conn.sendall(b"x")  # waits for the handshake of the other task
        waited = clock.time() - start
        result = yield owner.finish()
        conn.close()
        return waited, result.type

    waited, owner_outcome = run(server)
    assert waited == pytest.approx(10) and owner_outcome is TimeoutError
    raw.close()
    srv.close()


def test_handshake_taken_over_when_its_task_is_terminated(sched, run, tls_files):
    srv = serve(tls.server_context(tls_files.server_cert, tls_files.server_key))
    start_tls = pycos.Event()

    def server(task=None):
        conn, _ = yield srv.accept()
        owner = pycos.Task(lambda task=None: (yield conn.recv(10)))
        yield task.sleep(0.02)
        sender = pycos.Task(lambda task=None: (yield conn.sendall(b"taken over")))
        yield task.sleep(0.02)
        owner.terminate()  # the sender, queued behind the handshake, must take it over
        yield owner.finish()
        start_tls.set()
        yield sender.finish(timeout=10)
        yield conn.recv(10)  # until the client closes
        conn.close()

    def client(task=None):
        sock = AsyncSocket(socket.socket())
        sock.settimeout(10)
        yield sock.connect(srv.getsockname())
        yield start_tls.wait()
        yield sock.starttls(tls.client_context(tls_files.ca))
        data = yield sock.recvall(10)
        sock.close()
        return data

    server_task = pycos.Task(server)
    assert run(client) == b"taken over"
    server_task.value(timeout=10)
    srv.close()
