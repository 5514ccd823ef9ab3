"""Nodes in real processes on 127.0.0.1: peering, liveness, refusals and TLS.

The node under test runs either in this process (``local_node``) or in a child process
(``node_procs``); hostile input comes from raw sockets opened by the test. Every wait has a
timeout.
"""

from __future__ import annotations

import signal
import socket
import time

import pytest
from conftest import RawClient, next_status, run_in, socket_closed_by_peer, wait_for

from pycos.net.location import Location, PeerStatus
from pycos.net.requests import RemoteRequestFailed

SECRET = "integration secret"


def _peer(node, loc):
    def go(task=None):
        return (yield node.peer(loc))
    return run_in(node, go)


def _ping(node, loc, payload="ping", timeout=5.0):
    def go(task=None):
        return (yield node.request(loc, "ping", payload, timeout))
    return run_in(node, go)


# ------------------------------------------------------------------ peering
def test_explicit_peering_both_directions(local_node, node_procs):
    node = local_node(name="local", secret=SECRET)
    dialed = node_procs("--name", "dialed", "--secret", SECRET)
    dialer = node_procs("--name", "dialer", "--secret", SECRET,
                        "--peer", f"127.0.0.1:{node.location.port}")
    assert _peer(node, dialed.location) == 0  # this node dials
    names = {next_status(node, PeerStatus.Online)[1].name for _ in range(2)}
    assert names == {"dialed", "dialer"}  # ... and the other one dialed this node
    assert sorted(node.peers()) == sorted([dialed.location, dialer.location])
    assert dialed.wait_event("online", "local")["location"] == repr(node.location)
    dialer.wait_event("online", "local")
    assert dialer.call("peers") == [repr(node.location)]
    assert _ping(node, dialed.location, [1, "two"]) == [1, "two"]
    assert _ping(node, dialer.location) == "ping"
    assert dialer.call("ping", node.location.addr, node.location.port, "back") == "back"
    assert dialed.call("ping", node.location.addr, node.location.port, "back") == "back"
    assert _peer(node, dialed.location) == 0  # already a peer: no new connection
    assert node.stats()["connections_dialed"] == 1

    def ask(kind, payload, task=None):
        try:
            return (yield node.request(dialer.location, kind, payload, 5))
        except RemoteRequestFailed as exc:
            return str(exc)

    info = run_in(node, ask, "node_info", None)
    assert (info["name"], info["location"]) == ("dialer", dialer.location)
    [(name, loc, srtt)] = info["peers"]
    assert (name, loc) == ("local", node.location) and (srtt is None or srtt >= 0)
    assert "no handler for requests of kind 'nope'" in run_in(node, ask, "nope", 1)
    assert "takes no payload" in run_in(node, ask, "node_info", 1)


def test_simultaneous_dials_leave_one_connection(local_node, node_procs):
    node = local_node(name="local", secret=SECRET)
    for i in range(3):
        proc = node_procs("--name", f"p{i}", "--secret", SECRET)
        proc.proc.stdin.write(f'["peer", "127.0.0.1", {node.location.port}]\n')
        proc.proc.stdin.flush()
        assert _peer(node, proc.location) == 0
        assert proc.replies.get(timeout=10) == 0
        assert wait_for(lambda p=proc: p.call("peers") == [repr(node.location)])
        assert _ping(node, proc.location, i) == i
        assert proc.call("ping", node.location.addr, node.location.port, i) == i
    stats = node.stats()
    assert stats["peers"] == 3
    events = []
    while not node.events.empty():
        events.append(node.events.get()[1])
    assert all(ev.status == PeerStatus.Online for ev in events), events


def test_peer_status_reports_current_peers_first(local_node, node_procs):
    node = local_node(name="local", secret=SECRET)
    proc = node_procs("--name", "p", "--secret", SECRET)
    assert _peer(node, proc.location) == 0
    import queue

    import pycos

    seen: queue.Queue = queue.Queue()

    def watcher(task=None):
        task.set_daemon()
        while True:
            seen.put((yield task.receive()))

    watch = pycos.Task(watcher)
    node.peer_status(watch)
    first = seen.get(timeout=5)
    assert (first.name, first.status, first.location) == ("p", PeerStatus.Online,
                                                          proc.location)
    proc.call("finish")
    assert seen.get(timeout=5).status == PeerStatus.Offline
    node.peer_status(None)  # stops every registration
    other = node_procs("--name", "q", "--secret", SECRET)
    assert _peer(node, other.location) == 0
    time.sleep(0.2)
    assert seen.empty()


def test_locate_node_by_name(local_node, node_procs):
    import pycos

    node = local_node(name="finder", secret=SECRET)

    def find(name, timeout, task=None):
        return (yield node.locate(name, timeout))

    waiting = pycos.Task(find, "late-node", 15)
    late = node_procs("--name", "late-node", "--secret", SECRET,
                      "--peer", f"127.0.0.1:{node.location.port}")
    assert waiting.value(timeout=15) == late.location
    assert run_in(node, find, "finder", 0) == node.location
    started = time.monotonic()
    assert run_in(node, find, "nobody", 0.3) is None
    assert 0.25 <= time.monotonic() - started < 3
    assert late.call("locate", "finder", 5) == repr(node.location)


def test_close_peer(local_node, node_procs):
    node = local_node(name="local", secret=SECRET)
    proc = node_procs("--name", "p", "--secret", SECRET)
    assert _peer(node, proc.location) == 0

    def close(loc, task=None):
        return (yield node.close_peer(loc))

    assert run_in(node, close, proc.location) == 0
    assert next_status(node, PeerStatus.Offline, "p")[1].location == proc.location
    proc.wait_event("offline", "local")
    assert run_in(node, close, proc.location) == -1
    assert node.peers() == []
    for _ in range(5):  # peer again at once, before the other side has read the goodbye
        assert _peer(node, proc.location) == 0
        assert _ping(node, proc.location) == "ping"
        assert run_in(node, close, proc.location) == 0
    assert _peer(node, proc.location) == 0
    assert wait_for(lambda: proc.call("peers") == [repr(node.location)])


# ------------------------------------------------------------------ liveness
def test_kill9_peer_is_offline_within_bound(local_node, node_procs):
    node = local_node(name="local", secret=SECRET)  # default heartbeat settings
    proc = node_procs("--name", "victim", "--secret", SECRET)
    assert _peer(node, proc.location) == 0
    next_status(node, PeerStatus.Online, "victim")
    time.sleep(0.3)  # idle connection
    killed = time.monotonic()
    proc.kill(signal.SIGKILL)
    t, msg = next_status(node, PeerStatus.Offline, "victim", timeout=10)
    assert t - killed <= 3.0
    assert msg.location == proc.location
    assert node.peers() == []


def test_frozen_peer_is_offline_within_default_bound(local_node, node_procs):
    """A peer that stops answering without closing its socket (a crashed host, a cable
    pulled): only heartbeats can tell. Defaults must declare it Offline within 3 s."""
    node = local_node(name="local", secret=SECRET)
    proc = node_procs("--name", "frozen", "--secret", SECRET)
    assert _peer(node, proc.location) == 0
    next_status(node, PeerStatus.Online, "frozen")
    frozen = time.monotonic()
    proc.kill(signal.SIGSTOP)
    try:
        t, _msg = next_status(node, PeerStatus.Offline, "frozen", timeout=10)
    finally:
        proc.kill(signal.SIGCONT)
    assert 1.0 <= t - frozen <= 3.0, t - frozen
    assert node.stats()["peer_timeouts"] == 1
    proc.wait_event("offline", "local")  # after thawing it learns the connection is gone


def test_busy_user_task_does_not_make_node_offline(local_node, node_procs):
    node = local_node(name="local", secret=SECRET, heartbeat_interval=0.1, peer_timeout=0.4)
    proc = node_procs("--name", "busy", "--secret", SECRET, "--heartbeat", "0.1",
                      "--peer-timeout", "0.4")
    assert _peer(node, proc.location) == 0
    next_status(node, PeerStatus.Online, "busy")
    assert proc.call("burn", 10.0, timeout=30) > 0  # a task computing 10 s without yielding
    assert node.peers() == [proc.location]
    assert node.stats()["peer_timeouts"] == 0
    assert node.events.empty()


def test_graceful_finish_tells_peers_at_once(local_node, node_procs):
    node = local_node(name="local", secret=SECRET, heartbeat_interval=5, peer_timeout=30)
    proc = node_procs("--name", "leaving", "--secret", SECRET)
    assert _peer(node, proc.location) == 0
    next_status(node, PeerStatus.Online, "leaving")
    asked = time.monotonic()
    assert proc.call("finish") == "bye"
    t, _msg = next_status(node, PeerStatus.Offline, "leaving", timeout=5)
    assert t - asked < 1.0
    assert node.stats()["byes_received"] == 1


# ------------------------------------------------------------------ refusals
def test_wrong_secret_never_peers(local_node, node_procs):
    node = local_node(name="local", secret="one secret")
    proc = node_procs("--name", "other", "--secret", "another secret")
    assert _peer(node, proc.location) == -1
    assert proc.call("peer", node.location.addr, node.location.port) == -1
    assert node.peers() == [] and proc.call("peers") == []
    ours, theirs = node.stats(), proc.call("stats")
    assert ours["refused_auth"] + theirs["refused_auth"] >= 2
    assert ours["handshakes"] == theirs["handshakes"] == 0
    assert node.events.empty()
    assert "authentication failed" in proc.log()


def test_version_mismatch_refused_at_both_ends(node_procs):
    old = node_procs("--name", "v1", "--secret", SECRET)
    new = node_procs("--name", "v2", "--secret", SECRET, "--proto-version", "3")
    assert new.call("peer", old.addr, old.port) == -1
    assert old.call("peers") == [] and new.call("peers") == []
    for proc in (old, new):
        assert wait_for(lambda p=proc: p.call("stats")["refused_version"] == 1)
        log = proc.log()
        assert "protocol version mismatch" in log, log
    assert "this node speaks version 2, the peer version 3" in old.log()
    assert "this node speaks version 3, the peer version 2" in new.log()


def test_recorded_handshake_replayed_is_refused(node_procs):
    proc = node_procs("--name", "target", "--secret", SECRET)
    good = RawClient(proc.port, SECRET)
    good.join("recorder")
    recorded = bytes(good.sent)
    good.close()
    replay = RawClient(proc.port, "")
    replay.write(recorded)
    events = replay.read_until_closed()
    refusals = [ev for ev in events if type(ev).__name__ == "Refused"]
    assert refusals and "authentication failed" in refusals[0].reason, events
    replay.close()
    assert wait_for(lambda: proc.call("stats")["refused_auth"] == 1)
    fresh = RawClient(proc.port, SECRET)
    # The node still accepts a well-behaved peer: one at another location, since the node may
    # not have seen the recorder leave yet, and a newcomer claiming a connected peer's
    # location is refused as an impostor.
    fresh.join("fresh", port=2)
    fresh.close()


def test_tls_peering_and_wrong_ca_refused(local_node, node_procs, node_certs):
    c = node_certs
    node = local_node(name="local", secret=SECRET, certfile=c.node1_cert, keyfile=c.node1_key,
                      cafile=c.ca)
    good = node_procs("--name", "good", "--secret", SECRET, "--certfile", c.node2_cert,
                      "--keyfile", c.node2_key, "--cafile", c.ca)
    assert _peer(node, good.location) == 0
    assert _ping(node, good.location, b"\x00secret") == b"\x00secret"
    assert good.call("ping", node.location.addr, node.location.port, "x") == "x"
    stranger = node_procs("--name", "stranger", "--secret", SECRET, "--certfile",
                          c.other_cert, "--keyfile", c.other_key, "--cafile", c.other_ca)
    assert _peer(node, stranger.location) == -1
    assert stranger.call("peer", node.location.addr, node.location.port) == -1
    plain = node_procs("--name", "plain", "--secret", SECRET)
    assert _peer(node, plain.location) == -1
    assert sorted(node.peers()) == [good.location]
    assert node.stats()["tls_errors"] >= 3
    assert wait_for(lambda: stranger.call("stats")["tls_errors"] >= 2)
    assert plain.call("stats")["protocol_errors"] >= 1  # a TLS hello is not a pycos frame
    assert _ping(node, good.location) == "ping"


def test_a_connection_that_never_starts_tls_is_closed_at_the_handshake_deadline(node_procs,
                                                                               node_certs):
    """The TLS handshake runs inside the first write of the node's handshake: it too must end
    by ``handshake_timeout``, or idle TCP connections would hold every handshake slot."""
    c = node_certs
    proc = node_procs("--name", "tls", "--secret", SECRET, "--certfile", c.self_cert,
                      "--keyfile", c.self_key, "--handshake-timeout", 1)
    idle = socket.create_connection(("127.0.0.1", proc.port), timeout=5)
    try:
        start = time.monotonic()
        assert socket_closed_by_peer(idle, timeout=5)  # no TLS hello is ever sent
        assert time.monotonic() - start < 3
    finally:
        idle.close()
    assert wait_for(lambda: proc.call("stats")["handshake_timeouts"] == 1)


def test_tls_with_one_shared_self_signed_certificate(local_node, node_procs, node_certs):
    c = node_certs
    node = local_node(name="local", secret=SECRET, certfile=c.self_cert, keyfile=c.self_key)
    same = node_procs("--name", "same", "--secret", SECRET, "--certfile", c.self_cert,
                      "--keyfile", c.self_key)
    assert _peer(node, same.location) == 0
    assert same.call("ping", node.location.addr, node.location.port, "tls") == "tls"
    other = node_procs("--name", "other", "--secret", SECRET, "--certfile", c.node2_cert,
                       "--keyfile", c.node2_key)
    assert _peer(node, other.location) == -1  # not the shared certificate: not trusted
    assert node.peers() == [same.location]


def test_location_of_peer_is_hashable_value(local_node, node_procs):
    node = local_node(name="local", secret=SECRET)
    proc = node_procs("--name", "p", "--secret", SECRET)
    assert _peer(node, Location("localhost", proc.port)) == 0
    assert {proc.location: 1}[node.peers()[0]] == 1


def test_ipv6_loopback_peering(node_procs):
    import socket

    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        import pytest

        pytest.skip("no IPv6 loopback on this machine")
    one = node_procs("--name", "six-a", "--host", "::1", "--secret", SECRET)
    two = node_procs("--name", "six-b", "--host", "::1", "--secret", SECRET)
    assert two.call("peer", "::1", one.port) == 0
    assert two.call("ping", "::1", one.port, "v6") == "v6"
    assert one.wait_event("online", "six-b")["location"] == f"[::1]:{two.port}"


def test_peer_by_host_over_udp(node_procs, free_port):
    """``peer(host)`` asks the node(s) on that host, by a unicast UDP datagram, to connect."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        other_udp = probe.getsockname()[1]
    listening = node_procs("--name", "listening", "--secret", SECRET, "--discover",
                           "--udp-port", free_port)
    asking = node_procs("--name", "asking", "--secret", SECRET, "--udp-port", other_udp)
    assert asking.call("peer_host", "127.0.0.1", free_port) == 0
    asking.wait_event("online", "listening")
    listening.wait_event("online", "asking")
    assert asking.call("peers") == [f"127.0.0.1:{listening.port}"]


def test_ping_latency_and_a_dedicated_stream_between_processes(local_node, node_procs):
    """EXTRAS §1.3-1.4 across processes: ``ping`` (plain code blocks, a task yields),
    ``latency``, and a stream carrying values then raw bytes to a handler on a thread."""
    import os

    from pycos.net import StreamError

    node = local_node(name="local", secret=SECRET, latency_interval=0)
    proc = node_procs("--name", "p", "--secret", SECRET)
    assert proc.call("r_serve") == "serving"
    assert _peer(node, proc.location) == 0
    rtt = node.ping(proc.location, 100, 5)  # plain code: the call blocks for the value
    assert 0 < rtt < 1
    figures = node.latency(proc.location)
    assert figures.samples == 5 and figures.min <= rtt <= figures.max
    assert node.latency() == {proc.location: figures}

    size = 3 << 20
    stream = node.open_stream(proc.location, "echo", size)
    with stream:
        stream.settimeout(10)
        stream.send({"n": 1, "b": b"\x00" * 10})
        assert stream.recv() == ("echo", {"n": 1, "b": b"\x00" * 10})
        data = os.urandom(size)
        stream.send_raw(data)
        back = bytearray(size)
        assert stream.recv_into(back) == size and back == data
    with pytest.raises(StreamError, match="refused"):
        node.open_stream(proc.location, "nosuch", None)
    assert node.peers() == [proc.location]  # the link carried none of it

    def in_task(task=None):
        return (yield node.ping(proc.location))

    assert run_in(node, in_task) > 0
