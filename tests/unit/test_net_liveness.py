"""Liveness, limits and the arbiter, in-process: pure rules, then nodes on a virtual clock.

Two nodes share one scheduler (a process may host several node identities) whose clock is a
``FakeClock``, so heartbeats, silences and timeouts take virtual seconds and no real ones.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

import pytest

import pycos
from pycos.core import Pycos as LocalPycos
from pycos.core.clock import FakeClock
from pycos.net.limits import RateLog, SourceGate, escape
from pycos.net.link.liveness import MIN_PROGRESS, Liveness
from pycos.net.location import PeerStatus
from pycos.net.node import Node


# ---------------------------------------------------------------------- pure rules
def test_heartbeat_due_and_silence() -> None:
    live = Liveness(0.0, heartbeat_interval=1.0, peer_timeout=2.25)
    assert not live.heartbeat_due(0.5) and live.heartbeat_due(1.0)
    live.sent(1.0)
    assert not live.heartbeat_due(1.9)
    assert not live.gone(2.25) and live.gone(2.26)
    live.frame_received(2.0)
    assert not live.gone(4.2) and live.gone(4.3)


def test_a_partial_frame_counts_only_while_it_moves() -> None:
    live = Liveness(0.0, 1.0, 2.0)
    live.partial(0.5, (16 << 20, 100))  # a corrupted length: a "frame" of 16 MiB starts
    for t in range(1, 30):  # heartbeats arrive as bytes of that body: 52 bytes a second
        live.partial(t, (16 << 20, 100 + 52 * t))
    assert live.gone(29.0) and live.stalled_frame()
    big = Liveness(0.0, 1.0, 2.0)
    have = 0
    for t in range(1, 30):  # a real large frame, arriving at 64 KiB/s
        have += MIN_PROGRESS
        big.partial(float(t), (64 << 20, have))
        assert not big.gone(t + 0.5)
    big.partial(40.0, None)
    assert big.gone(40.0) and not big.stalled_frame()


def test_escape_makes_peer_text_one_safe_line() -> None:
    assert escape("plain") == "plain"
    assert escape("a\nb\x1b[31mc") == "a\\x0ab\\x1b[31mc"
    assert escape("é") == "\\xe9"
    long = escape("x" * 500, 20)
    assert long.startswith("x" * 20) and "500 chars" in long and "\n" not in long


def test_rate_log_summarises(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    log = RateLog(logging.getLogger("pycos.test.ratelog"), lambda: now[0], interval=10)
    with caplog.at_level(logging.WARNING, "pycos.test.ratelog"):
        for i in range(1000):
            now[0] = i / 100  # 1,000 events in 10 s
            log.event("bad", "bad thing %d", i)
        now[0] = 10.5
        log.event("bad", "bad thing %d", 1000)
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2 and lines[0] == "bad thing 0"
    assert "999 more like it" in lines[1] and log.counts["bad"] == 1001


def test_source_gate_slots_and_throttling() -> None:
    now = [0.0]
    gate = SourceGate(lambda: now[0], total=4, per_source=2, max_failures=3, penalty=5)
    assert gate.admit("a") is None and gate.admit("a") is None
    assert "from this address" in gate.admit("a")  # type: ignore[operator]
    assert gate.admit("b") is None and gate.admit("c") is None
    assert "already in their handshake" in gate.admit("d")  # type: ignore[operator]
    gate.release("a")
    assert gate.admit("d") is None
    for _ in range(2):
        assert not gate.auth_failed("x")
    assert gate.auth_failed("x")  # the third failure blocks the address
    for name in ("a", "b", "c", "d"):
        gate.release(name)
    assert "failed authentications" in gate.admit("x")  # type: ignore[operator]
    now[0] = 5.1
    assert gate.admit("x") is None
    gate.release("x")
    for _ in range(3):
        gate.auth_failed("x")
    now[0] = 10.0
    assert gate.admit("x") is not None  # the penalty doubled (10 s)
    now[0] = 15.2
    assert gate.admit("x") is None


# ---------------------------------------------------------------------- nodes, virtual time
@pytest.fixture
def pair() -> Iterator[tuple[Any, Node, Node, FakeClock]]:
    """Two nodes (A, B) on one scheduler running on a FakeClock, peers of each other."""
    clock = FakeClock()
    old = pycos.Pycos.scheduler()
    if old is not None:
        old.terminate()
    sched = LocalPycos(clock=clock)
    common = dict(host="127.0.0.1", discover_peers=False, udp_port=None, secret="s",
                  heartbeat_interval=1.0, scheduler=sched)
    a = Node(name="A", **common)
    b = Node(name="B", **common)
    events: list[tuple[float, str, int]] = []

    def watch(task: Any = None) -> Any:
        task.set_daemon()
        while True:
            msg = yield task.receive()
            events.append((clock.time(), msg.name, msg.status))

    a.peer_status(pycos.Task(watch))

    def connect(task: Any = None) -> Any:
        return (yield b.peer(a.location))

    assert pycos.Task(connect).value(timeout=10) == 0
    deadline = time.monotonic() + 10
    while not any(name == "B" and status == PeerStatus.Online for _, name, status in events):
        assert time.monotonic() < deadline, "A never saw B online"
        time.sleep(0.005)
    a.events = events  # type: ignore[attr-defined]
    try:
        yield sched, a, b, clock
    finally:
        a.close()
        b.close()
        sched.terminate()


def _sleep(seconds: float) -> Any:
    def nap(task: Any = None) -> Any:
        yield task.sleep(seconds)

    return pycos.Task(nap)


def test_heartbeats_keep_a_quiet_pair_online_for_a_virtual_minute(pair: Any) -> None:
    sched, a, b, clock = pair
    start = clock.time()
    _sleep(60).value(timeout=20)
    assert clock.time() - start >= 60
    assert [loc for loc in a.peers_list()] == [b.location]
    assert a.stats["heartbeats_received"] >= 40 and a.stats["peer_timeouts"] == 0


def test_a_silent_peer_goes_offline_after_peer_timeout(pair: Any) -> None:
    sched, a, b, clock = pair
    link = b.peers.by_inc[a.incarnation].link
    link.send_heartbeat = lambda: None  # B falls silent (its socket stays open)
    watched = a.peers.by_inc[b.incarnation].link.live  # A's view of B
    _sleep(10).value(timeout=20)
    offline = [t for t, name, status in a.events if name == "B" and status == 0]
    assert offline, a.events
    took = offline[0] - watched.last_frame  # from the last frame A heard from B
    cfg = a.config
    assert cfg.peer_timeout < took <= cfg.peer_timeout + 2 * a.tick
    assert a.stats["peer_timeouts"] == 1


def test_simultaneous_dials_collapse_into_one_link(pair: Any) -> None:
    sched, a, b, clock = pair
    c = Node(name="C", host="127.0.0.1", discover_peers=False, udp_port=None, secret="s",
             scheduler=sched)
    try:
        def both(task: Any = None) -> Any:
            pa = a.peer(c.location)
            pc = c.peer(a.location)
            first = yield pa
            second = yield pc
            return first, second

        assert pycos.Task(both).value(timeout=10) == (0, 0)
        _sleep(3).value(timeout=10)
        assert len([lk for lk in a.peers.links if lk.peer is not None and not lk.closed
                    and lk.peer.name == "C"]) == 1
        assert c.location in a.peers_list() and a.location in c.peers_list()
        assert sum(1 for _t, name, status in a.events if name == "C" and status == 1) == 1
    finally:
        c.close()


def test_a_newcomer_claiming_a_live_peers_name_is_refused(pair: Any) -> None:
    sched, a, b, clock = pair
    impostor = Node(name="B", host="127.0.0.1", discover_peers=False, udp_port=None,
                    secret="s", scheduler=sched)
    try:
        def try_it(task: Any = None) -> Any:
            return (yield impostor.peer(a.location))

        assert pycos.Task(try_it).value(timeout=10) == -1
        assert a.peers_list() == [b.location]
        assert a.stats["identity_conflicts"] >= 1
        assert not [1 for _t, name, status in a.events if name == "B" and status == 0]
    finally:
        impostor.close()


def test_peer_status_messages_are_values(pair: Any) -> None:
    sched, a, b, clock = pair
    _sleep(0.5).value(timeout=10)  # the status task has run
    online = [(name, status) for _t, name, status in a.events]
    assert online == [("B", PeerStatus.Online)]


def test_memory_is_trimmed_at_most_once_a_second(monkeypatch: Any) -> None:
    """A peer that fills a link's buffers and drops, again and again, costs one heap trim a
    second at most, on a thread of its own (never on the node's scheduler)."""
    import threading

    from pycos.net.link import link as link_mod

    ran: list[str] = []
    monkeypatch.setattr(link_mod, "_TRIM", lambda pad: ran.append(threading.current_thread().name))
    monkeypatch.setattr(link_mod, "_trimmed", [-link_mod.TRIM_EVERY])
    assert link_mod.release_memory() is True
    assert link_mod.release_memory() is False  # within the second: skipped
    for thread in threading.enumerate():
        if thread.name == "pycos-trim":
            thread.join(5)
    assert ran == ["pycos-trim"]
