"""Hostile bytes from raw sockets against a node in its own process.

After every attack the node must still serve: its existing peer (this process's node) gets
answers, and a new well-behaved connection is accepted. A pickle that would create a marker
directory if it were ever unpickled is sent before, without, and (to a node without a secret)
after authentication; the marker must never appear.
"""

from __future__ import annotations

import os
import pickle
import socket
import struct
import time

import pytest
from conftest import RawClient, run_in, socket_closed_by_peer, wait_for

from pycos.proto import Request
from pycos.proto.frame import FLAG_MAC, pack_header
from pycos.proto.messages import MessageType

SECRET = "bad input secret"
HANDSHAKE_TIMEOUT = 1.0
MAX_FRAME = 4096


class _Evil:
    """Unpickling this runs ``os.mkdir(path)``."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (os.mkdir, (self.path,))


def _evil_request_body(marker: str, kind: str = "ping", request_id: int = 1) -> bytes:
    payload = pickle.dumps(_Evil(marker), protocol=5)
    raw_kind = kind.encode()
    return struct.pack(">Q", request_id) + bytes([len(raw_kind)]) + raw_kind + payload


@pytest.fixture
def target(local_node, node_procs):
    """(node process under attack, this process's node peered with it)."""
    proc = node_procs("--name", "target", "--secret", SECRET, "--handshake-timeout",
                      HANDSHAKE_TIMEOUT, "--max-frame-size", MAX_FRAME)
    node = local_node(name="good", secret=SECRET)

    def peer(task=None):
        return (yield node.peer(proc.location))

    assert run_in(node, peer) == 0
    return proc, node


def _still_serves(proc, node) -> None:
    def ping(task=None):
        return (yield node.request(proc.location, "ping", "still there?", 5.0))

    assert run_in(node, ping) == "still there?"
    fresh = RawClient(proc.port, SECRET)
    fresh.join("fresh")
    fresh.write(fresh.conn.send(Request(7, "ping", [1, 2])))
    reply = fresh.next_event()
    assert (reply.request_id, reply.payload) == (7, (True, [1, 2]))
    fresh.close()
    assert node.peers() == [proc.location]


def _raw(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=5)


def test_garbage_is_refused(target):
    proc, node = target
    with _raw(proc.port) as sock:
        sock.sendall(os.urandom(1000))
        assert socket_closed_by_peer(sock, 5)
    with _raw(proc.port) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert socket_closed_by_peer(sock, 5)
    assert proc.call("stats")["protocol_errors"] == 2
    assert proc.log().count("bad input from") == 2  # one line per offence
    _still_serves(proc, node)


def test_truncated_frames_are_refused(target):
    proc, node = target
    client = RawClient(proc.port, SECRET)
    hello = client.conn.initiate()
    with _raw(proc.port) as sock:  # half a HELLO, then end of stream
        sock.sendall(hello[: len(hello) // 2])
        sock.shutdown(socket.SHUT_WR)
        assert socket_closed_by_peer(sock, 5)
    client.close()
    with _raw(proc.port) as sock:  # a header announcing more body than ever comes, then EOF
        sock.sendall(pack_header(1, MessageType.HELLO, 0, 58, 0) + b"\x00" * 10)
        sock.shutdown(socket.SHUT_WR)
        assert socket_closed_by_peer(sock, 5)
    stats = proc.call("stats")
    assert stats["protocol_errors"] == 2
    _still_serves(proc, node)


def test_oversized_frames_are_refused(target):
    proc, node = target
    with _raw(proc.port) as sock:  # during the handshake the limit is tiny
        sock.sendall(pack_header(1, MessageType.HELLO, 0, 100_000, 0))
        assert socket_closed_by_peer(sock, 5)
    client = RawClient(proc.port, SECRET)  # after authentication: max_frame_size
    client.join("big")
    client.write(client.conn.send(Request(1, "ping", b"x" * 100)))
    assert client.next_event().payload == (True, b"x" * 100)
    seq = client.conn._send_seq  # a correct header and MAC flag, but a huge length
    client.sock.sendall(pack_header(1, MessageType.REQUEST, FLAG_MAC, 10 * MAX_FRAME, seq))
    assert socket_closed_by_peer(client.sock, 5)
    client.close()
    stats = proc.call("stats")
    assert stats["oversized_frames"] == 2 and stats["protocol_errors"] == 2
    _still_serves(proc, node)


def test_half_open_connections_are_closed_after_handshake_timeout(target):
    proc, node = target
    socks = [_raw(proc.port) for _ in range(20)]  # connect, then say nothing
    try:
        _still_serves(proc, node)  # served while they hang around
        started = time.monotonic()
        for sock in socks:
            assert socket_closed_by_peer(sock, HANDSHAKE_TIMEOUT + 4)
        assert time.monotonic() - started < HANDSHAKE_TIMEOUT + 4
    finally:
        for sock in socks:
            sock.close()
    assert proc.call("stats")["handshake_timeouts"] >= 20
    _still_serves(proc, node)


def test_wrong_secret_frames_are_refused(target):
    proc, node = target
    client = RawClient(proc.port, "not the secret")
    refused = client.handshake()
    assert type(refused).__name__ == "Refused" and "authentication failed" in refused.reason
    client.close()
    assert wait_for(lambda: proc.call("stats")["refused_auth"] == 1)
    _still_serves(proc, node)


def test_pickle_never_runs_before_or_without_authentication(target, tmp_path, node_procs):
    proc, node = target
    marker = str(tmp_path / "marker")
    body = _evil_request_body(marker)
    with _raw(proc.port) as sock:  # as the very first frame
        sock.sendall(pack_header(1, MessageType.REQUEST, 0, len(body), 0) + body)
        assert socket_closed_by_peer(sock, 5)
    client = RawClient(proc.port, SECRET)  # after HELLO, before proving the secret
    client.write(client.conn.initiate())
    client.sock.sendall(pack_header(1, MessageType.REQUEST, 0, len(body), 1) + body)
    assert socket_closed_by_peer(client.sock, 5)
    client.close()
    liar = RawClient(proc.port, "wrong secret")  # failed authentication, then the pickle
    liar.handshake()
    liar.sock.sendall(pack_header(1, MessageType.REQUEST, FLAG_MAC, len(body), 2)
                      + b"\x00" * 32 + body)
    assert socket_closed_by_peer(liar.sock, 5)
    liar.close()
    forger = RawClient(proc.port, SECRET)  # authenticated, but a frame with a forged MAC
    forger.join("forger")
    seq = forger.conn._send_seq
    forger.sock.sendall(pack_header(1, MessageType.REQUEST, FLAG_MAC, len(body), seq)
                        + b"\x11" * 32 + body)
    assert socket_closed_by_peer(forger.sock, 5)
    forger.close()
    time.sleep(0.2)
    assert not os.path.exists(marker)
    assert proc.call("stats")["protocol_errors"] >= 3
    _still_serves(proc, node)


def test_pickle_refused_by_restricted_unpickler(node_procs, tmp_path):
    """A node without a secret authenticates nobody, so the payload is unpickled, by the
    restricted unpickler, which refuses the call; the connection stays usable."""
    proc = node_procs("--name", "open")
    marker = str(tmp_path / "marker")
    client = RawClient(proc.port, "")
    client.join("raw")
    body = _evil_request_body(marker, request_id=5)
    seq = client.conn._send_seq
    client.sock.sendall(pack_header(1, MessageType.REQUEST, 0, len(body), seq) + body)
    client.conn._send_seq += 1  # the frame went out behind the Connection's back
    reply = client.next_event()
    assert reply.request_id == 5 and reply.payload[0] is False
    assert "refusing to unpickle" in reply.payload[1] and "mkdir" in reply.payload[1]
    client.write(client.conn.send(Request(6, "ping", "ok")))
    assert client.next_event().payload == (True, "ok")
    client.close()
    assert not os.path.exists(marker)
    assert proc.call("stats")["undecodable_payloads"] == 1


def test_pickle_datagram_never_runs(node_procs, tmp_path, free_port):
    proc = node_procs("--name", "udp", "--secret", SECRET, "--discover", "--udp-port",
                      free_port)
    marker = str(tmp_path / "marker")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.sendto(pickle.dumps(_Evil(marker), protocol=2), ("127.0.0.1", free_port))
        sock.sendto(b"\xa7pca" + os.urandom(60), ("127.0.0.1", free_port))
    deadline = time.monotonic() + 5
    while proc.call("stats")["datagrams_dropped"] < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proc.call("stats")["datagrams_dropped"] >= 2
    assert not os.path.exists(marker)
