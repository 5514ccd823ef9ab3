"""``deliver`` and liveness through a fault-injecting proxy (issue 9, Deliver item 6).

Two nodes talk only through a :class:`faultproxy.FaultProxy` on 127.0.0.1: the far node, a
process (``node_procs``), binds one port and advertises the proxy's (``ext_port``); the near
node, in this process (``local_node``), dials that advertised location, so every byte of their
one connection passes the proxy. Both use a secret (frames carry a MAC) and a 0.2 s heartbeat,
so a silent peer is Offline within ``peer_timeout`` = 0.45 s (plus one liveness tick).

A ``Sender`` task on the near node delivers numbered messages, one at a time, to the far node's
``tally`` task, which records every number it receives (``r_tally``). Through every fault:

* a deliver that returned 1 was received exactly once, in order; none was received twice; a
  deliver that returned 0 may or may not have been received; nothing else is ever returned;
* faults that keep the link (delay with jitter, a stall shorter than peer_timeout, one-byte
  writes) lose nothing and declare nobody Offline;
* faults that end it (a long stall, a cut, one-way loss, a silent drop of the rest of a stream,
  a corrupted frame) make both nodes declare the other Offline, and every operation pending on
  the link (deliver, a remote task's ``finish``, a monitor, ``locate``) fail, within
  peer_timeout plus ``SLACK`` of the fault; once the fault is cleared the nodes become peers
  again and deliver works (through the same remote task reference).

Every wait has a deadline; sleeps only set how long a fault lasts.
"""

from __future__ import annotations

import struct
import threading
import time
from dataclasses import dataclass
from typing import Any

import pytest
from conftest import next_status, run_in, wait_for
from faultproxy import FaultProxy

import pycos
from pycos.errors import PeerLost
from pycos.net.location import Location, PeerStatus
from pycos.net.remote.rci import RCI
from pycos.proto.frame import FLAG_MAC, HEADER_SIZE, MAC_SIZE, MAGIC
from pycos.proto.messages import MessageType

SECRET = "fault secret"
HB = 0.2  # heartbeat_interval of both nodes
PEER_TIMEOUT = 2.25 * HB  # the default: 2.25 heartbeat intervals
SLACK = 0.6  # one liveness tick (0.045 s) plus scheduling on a loaded 2-core machine
BOUND = PEER_TIMEOUT + SLACK  # a dead link's operations fail, its peer goes Offline, by then
WAIT = 10.0  # timeouts of the pending operations: far beyond BOUND, so a timeout shows
PACE = 0.002  # the sender's pause between delivers
_HEADER = struct.Struct(">4sBBBBIQ")  # doc/protocol.rst: magic version type flags 0 length seq


# ---------------------------------------------------------------------- the two nodes
@dataclass
class Rig:
    node: Any  # the near node (this process)
    proc: Any  # the far node (a process)
    proxy: FaultProxy
    far: Location  # the far node's advertised location: the proxy's port
    target: Any  # the far node's tally task (a remote reference)


def _peer(node: Any, loc: Location) -> Any:
    def go(task: Any = None) -> Any:
        return (yield node.peer(loc))
    return run_in(node, go)


@pytest.fixture
def rig(local_node: Any, node_procs: Any) -> Any:
    proxy = FaultProxy(("127.0.0.1", 9), record=True, seed=9)  # target set below
    try:
        proc = node_procs("--name", "far", "--secret", SECRET, "--heartbeat", HB,
                          "--ext-port", proxy.port)
        assert proc.port == proxy.port  # it advertises the proxy's port ...
        bound = proc.call("bound_port")
        assert isinstance(bound, int) and bound != proxy.port  # ... not the one it binds
        proxy.target = ("127.0.0.1", bound)
        proxy.start()
        assert proc.call("r_serve") == "serving"
        node = local_node(name="near", secret=SECRET, heartbeat_interval=HB)
        far = Location("127.0.0.1", proxy.port)
        assert _peer(node, far) == 0
        next_status(node, PeerStatus.Online, "far")
        assert proc.wait_event("online", "near")["location"] == repr(node.location)
        assert node.peers() == [far]
        target = run_in(node, lambda task=None: (yield pycos.Task.locate("tally", far,
                                                                         timeout=5)))
        assert target is not None and target.location == far
        stats = proxy.stats()
        assert (stats.accepted, stats.open) == (1, 1)  # the one connection, through the proxy
        assert stats.forwarded["up"] > 0 and stats.forwarded["down"] > 0
        yield Rig(node, proc, proxy, far, target)
    finally:
        proxy.close()


# ---------------------------------------------------------------------- the sender
class Sender:
    """A task on the near node delivering ``(key, seq[, padding])`` for seq = first, first+1,
    ... to ``target``, one at a time, until ``count`` are sent, ``stop()``, or the first result
    that is not 1. ``sent`` lists the seqs tried; ``results`` holds (seq, result, start, end)."""

    def __init__(self, target: Any, key: str, first: int = 0, count: int = 100_000,
                 pace: float = PACE, pad: int = 0) -> None:
        self.key, self.first = key, first
        self.sent: list[int] = []
        self.results: list[tuple[int, Any, float, float]] = []
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self.done = threading.Event()
        pycos.Task(self._run, target, count, pace, pad)

    def _run(self, target: Any, count: int, pace: float, pad: int, task: Any = None) -> Any:
        try:
            for seq in range(self.first, self.first + count):
                if self._stop.is_set():
                    break
                msg = (self.key, seq, b"p" * pad) if pad else (self.key, seq)
                self.sent.append(seq)
                start = time.monotonic()
                result = yield target.deliver(msg, timeout=WAIT)
                self.results.append((seq, result, start, time.monotonic()))
                if result != 1:
                    break
                if pace:
                    yield task.sleep(pace)
        except BaseException as exc:  # reported by check_received
            self.error = exc
            raise
        finally:
            self.done.set()

    def wait_results(self, n: int, timeout: float = 5.0) -> None:
        assert wait_for(lambda: len(self.results) >= n, timeout), \
            f"{self.key}: {len(self.results)} delivers done, not {n}, in {timeout} s"

    def stop(self, timeout: float = WAIT + 5) -> None:
        self._stop.set()
        assert self.done.wait(timeout), f"{self.key}: the sender did not end"

    def failed(self, t_fault: float) -> int:
        """The deliver pending when the link died (or the first one after) gave 0 within
        BOUND of the fault and ended the sender: its seq."""
        assert self.done.wait(BOUND + 5), (f"{self.key}: deliver of {self.sent[-1]} still "
                                           f"pending {BOUND + 5:.1f} s after the fault")
        assert self.results and self.results[-1][1] != 1, self.results[-3:]
        seq, result, _, end = self.results[-1]
        assert result == 0, f"{self.key}: deliver of {seq} gave {result!r}"
        took = end - t_fault
        assert took <= BOUND, f"{self.key}: deliver of {seq} gave 0 {took:.3f} s after the fault"
        return seq

    def pending(self) -> int:
        """The seq of the deliver in flight (the sender must be waiting on one)."""
        assert len(self.sent) == len(self.results) + 1, "no deliver in flight"
        return self.sent[-1]


def check_received(rig: Rig, *senders: Sender, exact: bool = False) -> list[int]:
    """Check the tally task's record of one key against the delivers of ``senders`` (the
    sequences of one key, one after another); with ``exact`` nothing at all may be lost."""
    key = senders[0].key
    sent = [seq for s in senders for seq in s.sent]
    results = [r for s in senders for r in s.results]
    for s in senders:
        assert s.done.is_set() and s.error is None, (s.key, s.error)
    bad = [(seq, result) for seq, result, *_ in results if result not in (0, 1)]
    assert not bad, f"deliver gave something other than 0 or 1: {bad[:5]}"
    acked = [seq for seq, result, *_ in results if result == 1]
    deadline = time.monotonic() + 5  # an ack means queued, not yet taken by the task
    while True:
        received = rig.proc.call("r_tally", key)
        if set(acked) <= set(received) or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    twice = sorted({seq for seq in received if received.count(seq) > 1})
    assert not twice, f"{key}: received twice: {twice[:10]}"
    assert received == sorted(received), f"{key}: received out of order: {received}"
    assert set(received) <= set(sent), f"{key}: received what was never sent"
    got = set(received)
    missing = [seq for seq in acked if seq not in got]
    assert not missing, f"{key}: deliver returned 1 but never received: {missing[:10]}"
    if exact:
        assert received == sent, f"{key}: lost {sorted(set(sent) - got)[:10]}"
    return received


# ---------------------------------------------------------------------- peer status
def assert_no_offline(rig: Rig) -> None:
    near = [msg for _, msg in list(rig.node.events.queue) if msg.status == PeerStatus.Offline]
    far = [ev for ev in list(rig.proc.events.queue) if ev["status"] == "offline"]
    assert not near and not far, (near, far)


def assert_offline_both(rig: Rig, t_mono: float, t_wall: float) -> tuple[float, float]:
    """Both nodes declare the other Offline within BOUND of the fault (monotonic, wall)."""
    t_near, _ = next_status(rig.node, PeerStatus.Offline, "far", timeout=BOUND + 5)
    ev = rig.proc.wait_event("offline", "near", timeout=BOUND + 5)
    near, far = t_near - t_mono, ev["t"] - t_wall
    assert near <= BOUND, f"the near node declared the far one Offline after {near:.3f} s"
    assert far <= BOUND, f"the far node declared the near one Offline after {far:.3f} s"
    assert rig.node.peers() == []
    return near, far


def recover(rig: Rig, before: Sender) -> Sender:
    """Clear the faults, make the nodes peers again (a new connection through the proxy) and
    deliver 20 more messages of ``before``'s sequence: all must arrive."""
    accepted = rig.proxy.stats().accepted
    rig.proxy.clear()
    assert _peer(rig.node, rig.far) == 0
    next_status(rig.node, PeerStatus.Online, "far")
    rig.proc.wait_event("online", "near")
    assert rig.proxy.stats().accepted == accepted + 1
    after = Sender(rig.target, before.key, first=before.sent[-1] + 1, count=20)
    assert after.done.wait(WAIT + 5)
    assert [r for _, r, *_ in after.results] == [1] * 20, after.results
    return after


def now() -> tuple[float, float]:
    return time.monotonic(), time.time()


# ---------------------------------------------------------------------- pending operations
class PendingOps:
    """Remote operations waiting on the far node when the link dies: a remote task that naps
    30 s, a monitor of it and its ``finish`` (set up before the fault), and, for faults that
    leave a dead connection open, a ``locate`` started after the fault began."""

    def __init__(self, rig: Rig) -> None:
        self.rig = rig
        self.done: dict[str, tuple[Any, float]] = {}
        self.locating = False

        def start(task: Any = None) -> Any:
            nap = yield RCI.locate("nap", rig.far, timeout=5)
            return (yield nap(30))

        self.rtask = run_in(rig.node, start)
        assert self.rtask is not None
        watching = threading.Event()
        pycos.Task(self._watch, watching)
        assert watching.wait(5) and "monitor set-up" not in self.done, self.done
        pycos.Task(self._finish)

    def _watch(self, watching: threading.Event, task: Any = None) -> Any:
        rc = yield task.monitor(self.rtask)
        if rc != 0:
            self.done["monitor set-up"] = (rc, time.monotonic())
        watching.set()
        status = yield task.receive(timeout=WAIT)
        self.done["monitor"] = (status, time.monotonic())

    def _finish(self, task: Any = None) -> Any:
        result = yield self.rtask.finish(timeout=WAIT)
        self.done["finish"] = (result, time.monotonic())

    def locate_after_fault(self) -> None:
        self.locating = True

        def go(task: Any = None) -> Any:
            found = yield pycos.Task.locate("tally", self.rig.far, timeout=WAIT)
            self.done["locate"] = (found, time.monotonic())

        pycos.Task(go)

    def check(self, t_fault: float) -> None:
        names = {"monitor", "finish"} | ({"locate"} if self.locating else set())
        assert wait_for(lambda: names <= set(self.done), BOUND + 5), self.done
        for name in names:
            took = self.done[name][1] - t_fault
            assert took <= BOUND, f"pending {name} ended {took:.3f} s after the fault"
        status = self.done["monitor"][0]
        assert isinstance(status, pycos.MonitorStatus) and status.type is PeerLost, status
        result = self.done["finish"][0]
        assert isinstance(result, pycos.MonitorStatus) and result.type is PeerLost, result
        if self.locating:
            assert self.done["locate"][0] is None


# ---------------------------------------------------------------------- frames on the wire
def parse_frames(stream: bytes) -> list[tuple[int, int, int, int]]:
    """(offset, type, body offset, body length) of the complete frames of a recorded stream."""
    frames, pos = [], 0
    while pos + HEADER_SIZE <= len(stream):
        magic, _version, ftype, flags, _zero, length, _seq = _HEADER.unpack_from(stream, pos)
        assert magic == MAGIC, f"no frame at offset {pos} of the recorded stream"
        body = pos + HEADER_SIZE + (MAC_SIZE if flags & FLAG_MAC else 0)
        if body + length > len(stream):
            break
        frames.append((pos, ftype, body, length))
        pos = body + length
    return frames


def held_batch(proxy: FaultProxy, direction: str, timeout: float = 2.0) -> tuple[int, int, int]:
    """(offset, body offset, body length) of the first BATCH frame that a stall of
    ``direction`` holds in the proxy (none of it passed on yet)."""
    (conn,) = proxy.connections()
    since = conn.forwarded[direction]  # stalled: nothing from here on has been passed on
    deadline = time.monotonic() + timeout
    while True:
        (conn,) = proxy.connections()
        stream = conn.recorded[direction]
        assert len(stream) == conn.received[direction], "the record is full"
        for off, ftype, body, length in parse_frames(stream):
            if off >= since and ftype == MessageType.BATCH and length > 0:
                return off, body, length
        assert time.monotonic() < deadline, f"no BATCH frame held in {direction}"
        time.sleep(0.002)


#: where a flip lands in a held frame, and its mask
FLIPS = {
    "body": (lambda off, body, length: body + length // 2, 0x20),
    "magic": (lambda off, body, length: off, 0xFF),
    "length over max_frame_size": (lambda off, body, length: off + 8, 0x01),  # +16 MiB
    "length under max_frame_size": (lambda off, body, length: off + 9, 0x80),  # +8 MiB
    "sequence": (lambda off, body, length: off + HEADER_SIZE - 1, 0x01),
}


def corrupt(rig: Rig, sender: Sender, direction: str, where: str) -> tuple[int, float, float]:
    """Stall ``direction``, flip one byte of the next BATCH frame held there (the pending
    deliver going up, or its acknowledgement coming down), pass it on. Returns the seq of that
    deliver and the (monotonic, wall) time the corrupted frame was let go."""
    rig.proxy.stall(direction)
    off, body, length = held_batch(rig.proxy, direction)
    seq = sender.pending()  # it waits for the frame (or the answer) the stall holds
    place, mask = FLIPS[where]
    rig.proxy.flip_at(direction, place(off, body, length), mask)
    t = now()
    rig.proxy.unstall(direction)
    assert wait_for(lambda: rig.proxy.stats().flipped[direction] == 1, 2)
    return seq, *t


ERROR_COUNTERS = ("protocol_errors", "oversized_frames", "stalled_frames", "connection_errors")


def reader_stats(rig: Rig, direction: str) -> dict[str, int]:
    """The counters of the node that reads ``direction``."""
    return rig.proc.call("stats") if direction == "up" else rig.node.stats()


def bad_frames(rig: Rig, direction: str) -> int:
    """How many bad frames (or broken connections) the node reading ``direction`` counted."""
    stats = reader_stats(rig, direction)
    return sum(stats.get(key, 0) for key in ERROR_COUNTERS)


# ====================================================================== faults the link survives
# When a delay D begins, a frame sent just before it and the next one (sent up to HB later,
# then held D + jitter) arrive up to HB + D + jitter apart: a silence that must stay under
# peer_timeout (0.45 s), with room for scheduling; later frames are at most HB + 2 * jitter
# apart.
@pytest.mark.parametrize(("delay", "jitter", "count"), [
    (0.02, 0.015, 25),  # 5..35 ms each way, chunk by chunk
    (0.08, 0.04, 5),  # an RTT near the heartbeat interval
], ids=["small", "large"])
def test_delay_with_jitter_keeps_every_message_in_order(rig: Rig, delay: float, jitter: float,
                                                        count: int) -> None:
    rig.proxy.delay(delay, jitter=jitter)  # byte order is kept
    senders = [Sender(rig.target, f"jitter{i}", count=count, pace=0) for i in range(3)]
    for s in senders:
        assert s.done.wait(20)
    for s in senders:
        assert [r for _, r, *_ in s.results] == [1] * count, s.results
        check_received(rig, s, exact=True)
        rtts = [end - start for _, _, start, end in s.results]
        assert min(rtts) >= 2 * (delay - jitter) - 0.001  # the delay was in force
    assert_no_offline(rig)
    assert rig.proxy.stats().accepted == 1


def test_stall_shorter_than_peer_timeout_loses_nothing(rig: Rig) -> None:
    sender = Sender(rig.target, "short")
    sender.wait_results(20)
    rig.proxy.stall()
    time.sleep(PEER_TIMEOUT / 3)  # the stall's length, with traffic until it began
    rig.proxy.unstall()
    n = len(sender.results)
    sender.wait_results(n + 20)
    sender.stop()
    assert all(r == 1 for _, r, *_ in sender.results), sender.results[-5:]
    assert max(end - start for _, _, start, end in sender.results) >= PEER_TIMEOUT / 4
    check_received(rig, sender, exact=True)
    assert_no_offline(rig)
    assert rig.proxy.stats().accepted == 1


def test_one_byte_writes_keep_every_message_in_order(rig: Rig) -> None:
    before = rig.proxy.stats()
    rig.proxy.one_byte_writes(True)
    small = Sender(rig.target, "bytes", count=30, pace=0)
    big = Sender(rig.target, "bytes-big", count=4, pace=0, pad=20_000)
    for s in (small, big):
        assert s.done.wait(20)
        assert [r for _, r, *_ in s.results] == [1] * len(s.sent), s.results
        check_received(rig, s, exact=True)
    after = rig.proxy.stats()
    for d in ("up", "down"):  # one send() per byte passed on
        assert after.sends[d] - before.sends[d] == after.forwarded[d] - before.forwarded[d]
    assert after.forwarded["up"] - before.forwarded["up"] > 80_000
    assert_no_offline(rig)
    assert after.accepted == 1


# ====================================================================== faults that end the link
def test_stall_longer_than_peer_timeout(rig: Rig) -> None:
    pending = PendingOps(rig)
    sender = Sender(rig.target, "long")
    sender.wait_results(20)
    t_mono, t_wall = now()
    rig.proxy.stall()
    pending.locate_after_fault()
    sender.failed(t_mono)
    pending.check(t_mono)
    assert_offline_both(rig, t_mono, t_wall)
    assert rig.proc.call("stats")["peer_timeouts"] >= 1
    assert rig.node.stats()["peer_timeouts"] >= 1
    check_received(rig, sender, recover(rig, sender))


@pytest.mark.parametrize("reset", [False, True], ids=["fin", "reset"])
def test_cut(rig: Rig, reset: bool) -> None:
    pending = PendingOps(rig)
    sender = Sender(rig.target, "cut", pace=0)
    sender.wait_results(20)
    t_mono, t_wall = now()
    assert rig.proxy.cut(reset=reset) == 1
    sender.failed(t_mono)
    pending.check(t_mono)
    assert_offline_both(rig, t_mono, t_wall)
    check_received(rig, sender, recover(rig, sender))


@pytest.mark.parametrize("fault", ["drop up", "drop down", "blackhole down", "blackhole both"])
def test_loss(rig: Rig, fault: str) -> None:
    """One-way loss (every byte one way discarded, the connection open) and a silent drop of
    the rest of both streams: each side learns of it only by silence."""
    kind, direction = fault.split()
    pending = PendingOps(rig)
    sender = Sender(rig.target, kind + direction)
    sender.wait_results(20)
    t_mono, t_wall = now()
    if kind == "drop":
        rig.proxy.drop(direction)
    else:
        assert rig.proxy.blackhole(direction) == 1
    pending.locate_after_fault()
    sender.failed(t_mono)
    pending.check(t_mono)
    assert_offline_both(rig, t_mono, t_wall)
    assert rig.proxy.stats().dropped[direction if direction != "both" else "up"] > 0
    check_received(rig, sender, recover(rig, sender))


@pytest.mark.parametrize("direction", ["up", "down"])
def test_flip_in_frame_body(rig: Rig, direction: str) -> None:
    """The MAC catches it: the link is dropped, nothing corrupt is delivered; the deliver whose
    frame was hit (up) was not received, the one whose acknowledgement was hit (down) was,
    once; both give 0 at once."""
    sender = Sender(rig.target, "body" + direction)
    sender.wait_results(20)
    errors = bad_frames(rig, direction)
    seq, t_mono, t_wall = corrupt(rig, sender, direction, "body")
    assert sender.failed(t_mono) == seq
    near, far = assert_offline_both(rig, t_mono, t_wall)
    assert bad_frames(rig, direction) > errors  # the reader refused the frame ...
    assert max(near, far) < PEER_TIMEOUT  # ... at once: it did not wait for a timeout
    received = check_received(rig, sender, recover(rig, sender))
    assert (seq in received) == (direction == "down")


@pytest.mark.parametrize(("direction", "where"), [
    ("up", "magic"),
    ("up", "length over max_frame_size"),
    ("up", "length under max_frame_size"),
    ("down", "length under max_frame_size"),
    ("down", "sequence"),
])
def test_flip_in_frame_header(rig: Rig, direction: str, where: str) -> None:
    """A corrupted header ends the link: at once when the header is refused, after
    peer_timeout when a length under ``max_frame_size`` makes the reader wait for a body
    that never completes (the peer's heartbeats arriving as bytes of that body must not keep
    the link alive)."""
    sender = Sender(rig.target, f"{where}{direction}".replace(" ", ""))
    sender.wait_results(20)
    errors = bad_frames(rig, direction)
    seq, t_mono, t_wall = corrupt(rig, sender, direction, where)
    assert sender.failed(t_mono) == seq
    near, far = assert_offline_both(rig, t_mono, t_wall)
    assert bad_frames(rig, direction) > errors
    if where == "length under max_frame_size":
        assert reader_stats(rig, direction)["stalled_frames"] >= 1
        assert max(near, far) >= PEER_TIMEOUT - 0.05  # it waited for the body, then gave up
    else:
        assert max(near, far) < PEER_TIMEOUT  # the header was refused at once
    received = check_received(rig, sender, recover(rig, sender))
    assert (seq in received) == (direction == "down")
