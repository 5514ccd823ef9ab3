"""The sans-IO dialogue of a swarm connection (``pycos.swarm._protocol``), without sockets:
both ends' rules, records out of place, and Hypothesis interleavings of ITEM, CREDIT, CANCEL,
EOS, ERR and disconnects."""

from __future__ import annotations

import struct
from collections import deque
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pycos.errors import LocalProtocolError, RemoteError, RemoteProtocolError
from pycos.swarm import _protocol as P
from pycos.swarm.errors import GatewayClosed, PoolFull

WINDOW = P.Window(4, 1 << 20)


def pair(window: P.Window = WINDOW, op: str = "stream") -> tuple[Any, ...]:
    client, handler = P.ClientSide(), P.HandlerSide()
    rid, record = client.request(op, "gen", (1, "a"), {"k": b"v"}, window)
    [req] = handler.receive(record)
    return client, handler, rid, req


def item_chunk(handler: P.HandlerSide, stream: P.OutStream, ident: int, value: Any) -> bytes:
    return b"".join(handler.item(stream, ident, value))


def test_a_request_arrives_as_sent_and_its_window_is_clamped() -> None:
    client, handler = P.ClientSide(), P.HandlerSide(max_window=(100, 1 << 20))
    rid, record = client.request("stream", "readings", (3, None), {"x": [1, 2]},
                                 P.Window(10**6, 10**12))
    [req] = handler.receive(record)
    assert (req.id, req.op, req.name, req.args, req.kwargs) == (rid, "stream", "readings",
                                                                (3, None), {"x": [1, 2]})
    assert req.window == P.Window(100, 1 << 20)


def test_items_values_and_the_natural_end() -> None:
    client, handler, rid, req = pair()
    stream = handler.start_stream(rid, req.window)
    chunk = item_chunk(handler, stream, 0, b"raw") + item_chunk(handler, stream, 1, {"a": 1})
    chunk += item_chunk(handler, stream, -5, None) + handler.end(rid)
    events = client.receive(chunk)
    assert [(e.ident, e.value) for e in events[:3]] == [(0, b"raw"), (1, {"a": 1}), (-5, None)]
    assert events[3] == P.End(rid, P.END)
    assert rid not in client.open and rid not in handler.open


def test_the_producer_cannot_overrun_the_window_and_credit_reopens_it() -> None:
    client, handler, rid, req = pair(P.Window(2, 1 << 20))
    stream = handler.start_stream(rid, req.window)
    chunk = item_chunk(handler, stream, 0, b"a") + item_chunk(handler, stream, 1, b"b")
    assert not stream.room(1)
    with pytest.raises(LocalProtocolError, match="no room"):
        handler.item(stream, 2, b"c")
    assert len(client.receive(chunk)) == 2
    credit = client.consumed(rid, 1, 1)
    assert credit is not None  # half of a two-item window was taken
    assert handler.receive(credit) == [P.Credit(rid, 1, 1)]
    assert stream.room(1) and stream.outstanding == (1, 1)


def test_a_byte_window_always_lets_one_item_through() -> None:
    _client, handler, rid, req = pair(P.Window(64, 4))
    stream = handler.start_stream(rid, req.window)
    assert stream.room(1000)  # nothing outstanding: one item of any size
    handler.item(stream, 0, b"x" * 1000)
    assert not stream.room(1)


@pytest.mark.parametrize("fast", [False, True])
def test_a_client_refuses_items_beyond_the_window_it_granted(fast: bool) -> None:
    client, handler, rid, req = pair(P.Window(1, 1 << 20))
    stream = handler.start_stream(rid, P.Window(5, 1 << 20))  # a producer that lies
    chunk = item_chunk(handler, stream, 0, b"a") + item_chunk(handler, stream, 1, b"b")
    with pytest.raises(RemoteProtocolError, match="exceeded its window"):
        client.receive(chunk, rid if fast else 0, [])


def test_an_absurd_credit_is_clamped_and_counted() -> None:
    _client, handler, rid, req = pair(P.Window(4, 1 << 20))
    stream = handler.start_stream(rid, req.window)
    handler.item(stream, 0, b"a")
    forged = struct.pack(">BIIQ", P.CREDIT, rid, 2**32 - 1, 2**63)
    handler.receive(forged)
    assert handler.stats["clamped_credit"] == 1
    assert stream.outstanding == (0, 0) and stream.room(1)
    handler.item(stream, 1, b"b")
    assert stream.outstanding == (1, 1)  # the credit did not bank future items


def test_cancel_drops_items_in_flight_and_the_end_is_an_abort() -> None:
    client, handler, rid, req = pair()
    stream = handler.start_stream(rid, req.window)
    in_flight = item_chunk(handler, stream, 0, b"a")
    cancel = client.cancel(rid)
    assert cancel is not None and client.cancel(rid) is None  # once
    assert handler.receive(cancel) == [P.Cancel(rid)]
    assert client.receive(in_flight) == []
    assert client.stats["late"] == 1
    assert client.receive(handler.end(rid, P.END)) == [P.End(rid, P.ABORT)]


def test_records_that_can_race_are_counted_and_dropped() -> None:
    client, handler, rid, req = pair()
    stream = handler.start_stream(rid, req.window)
    late_item = item_chunk(handler, stream, 0, b"a")
    end = handler.end(rid)
    assert client.receive(end) == [P.End(rid, P.END)]
    assert client.receive(late_item) == []  # ITEM after EOS
    assert client.receive(struct.pack(">BIB", P.EOS, rid, 0)) == []  # a second EOS
    assert client.stats["out_of_place"] == 2
    assert handler.receive(struct.pack(">BI", P.CANCEL, 999)) == []  # CANCEL, unknown id
    assert handler.receive(struct.pack(">BIIQ", P.CREDIT, rid, 1, 1)) == []  # stream ended
    assert handler.stats == {"stale_credit": 1, "clamped_credit": 0, "stale_cancel": 1}


@pytest.mark.parametrize("record", [
    struct.pack(">BIqBI", P.ITEM, 1, 0, 0, 1) + b"x",  # clients send no items
    struct.pack(">BIB", P.EOS, 1, 0),
    struct.pack(">BIBI", P.RESULT, 1, 0, 0),
    struct.pack(">BI", 77, 1),  # unknown record type
    struct.pack(">BI", P.CANCEL, 0),  # request id 0
    struct.pack(">BII", P.REQ, 1, 50) + b"short",  # truncated
    struct.pack(">BII", P.REQ, 1, 3) + b"abc",  # not a payload
])
def test_records_out_of_place_from_a_client_are_protocol_errors(record: bytes) -> None:
    with pytest.raises(RemoteProtocolError):
        P.HandlerSide().receive(record)


def test_a_second_request_with_a_live_id_is_a_protocol_error() -> None:
    client, handler, rid, _req = pair()
    _rid2, record = P.ClientSide().request("batch", "f")  # id 1 again
    with pytest.raises(RemoteProtocolError, match="is open"):
        handler.receive(record)


def test_too_many_open_requests_are_refused_at_both_ends() -> None:
    client, handler = P.ClientSide(), P.HandlerSide()
    for _ in range(P.MAX_OPEN):
        handler.receive(client.request("batch", "f")[1])
    with pytest.raises(LocalProtocolError):
        client.request("batch", "f")
    forged = P.ClientSide()
    forged.next_id = 1000
    with pytest.raises(RemoteProtocolError, match="open"):
        handler.receive(forged.request("batch", "f")[1])


def test_failures_travel_typed_or_as_remote_error() -> None:
    client, handler = P.ClientSide(), P.HandlerSide()
    r1, rec1 = client.request("batch", "f")
    r2, rec2 = client.request("batch", "g")
    handler.receive(rec1 + rec2)

    class Local(Exception):
        pass

    events = client.receive(handler.fail(r1, PoolFull("full")) + handler.fail(r2, Local("x")))
    assert isinstance(events[0].exc, PoolFull)
    assert isinstance(events[1].exc, RemoteError) and "Local" in str(events[1].exc)


def test_results_and_an_error_after_cancel() -> None:
    client, handler = P.ClientSide(), P.HandlerSide()
    r1, rec1 = client.request("batch", "f")
    r2, rec2 = client.request("stream", "g")
    handler.receive(rec1 + rec2)
    cancel = client.cancel(r2)
    assert cancel is not None
    events = client.receive(handler.result(r1, [1, 2]) + handler.fail(r2, ValueError("x")))
    assert events == [P.Result(r1, [1, 2]), P.End(r2, P.ABORT)]


def test_a_lost_connection_fails_open_requests_and_ends_cancelled_ones() -> None:
    client = P.ClientSide()
    r1, _ = client.request("stream", "a")
    r2, _ = client.request("stream", "b")
    client.cancel(r2)
    why = GatewayClosed("gone")
    assert client.lost(why) == [P.Failure(r1, why), P.End(r2, P.ABORT)]
    assert client.lost(why) == []


def test_files_inline_raw_and_trailers() -> None:
    client, handler = P.ClientSide(), P.HandlerSide()
    rid, record = client.request("get", "logs", (["a", "b"],))
    handler.receive(record)
    inline = P.file_record(rid, P.FileMeta("a", 3, 10, 0o644), b"abc")
    raw = P.file_record(rid, P.FileMeta("b", 5, 10, 0o600), None)
    events = client.receive(inline + raw)
    assert events[0].content == b"abc" and events[1].content is None
    with pytest.raises(LocalProtocolError):
        client.receive(b"")  # the raw section must be read first
    client.raw_done()
    with pytest.raises(RemoteProtocolError, match="TRAILER"):
        P.ClientSide.receive(client, handler.end(rid))  # the trailer is due first
    client2, handler2 = P.ClientSide(), P.HandlerSide()
    rid2, record2 = client2.request("get", "logs", (["b"],))
    handler2.receive(record2)
    client2.receive(P.file_record(rid2, P.FileMeta("b", 5, 10, 0o600), None))
    client2.raw_done()
    events = client2.receive(P.trailer_record(rid2, True, b"d" * 32) + handler2.end(rid2))
    assert events == [P.Trailer(rid2, True, b"d" * 32), P.End(rid2, P.END)]


def test_a_raw_file_must_end_its_chunk_and_files_need_their_request() -> None:
    client, handler = P.ClientSide(), P.HandlerSide()
    rid, record = client.request("get", "logs", (["b"],))
    handler.receive(record)
    raw = P.file_record(rid, P.FileMeta("b", 5, 10, 0o600), None)
    with pytest.raises(RemoteProtocolError, match="end its chunk"):
        client.receive(raw + handler.end(rid))
    with pytest.raises(RemoteProtocolError, match="expects none"):
        P.HandlerSide().receive(P.file_record(7, P.FileMeta("x", 1, 0, 0), b"x"))
    bad_meta = P.file_record(rid, P.FileMeta("b", 5, 10, 0o600), b"abc")  # 3 bytes, says 5
    with pytest.raises(RemoteProtocolError, match="announced"):
        P.ClientSide.receive(client, bad_meta)


def test_a_put_announces_its_files() -> None:
    client, handler = P.ClientSide(), P.HandlerSide()
    rid, record = client.request("put", None, (1, False))
    f = P.file_record(rid, P.FileMeta("x", 1, 0, 0o644), b"x")
    events = handler.receive(record + f)
    assert type(events[1]) is P.FileStart
    with pytest.raises(RemoteProtocolError, match="expects none"):
        handler.receive(f)  # one more than announced
    _rid, bad = P.ClientSide().request("put", None, (10**6, False))
    with pytest.raises(RemoteProtocolError, match="a put carries"):
        P.HandlerSide().receive(bad)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_end_in_a_protocol_error_never_a_crash(data: bytes) -> None:
    for side in (P.HandlerSide(), P.ClientSide()):
        try:
            side.receive(data)
        except RemoteProtocolError:
            pass


# ---------------------------------------------------------------------- interleavings
ACTIONS = ["produce", "produce", "produce", "to_client", "to_client", "to_handler", "take",
           "cancel", "end", "fail", "disconnect"]


class Sim:
    """A handler and a client with chunks in flight both ways; the user takes items one at a
    time (granting credit), may cancel, and the handler ends, fails or the line drops."""

    def __init__(self, items: int, nbytes: int, fast: bool = False) -> None:
        self.fast = fast  # the consumer's hot path: items straight into a list
        self.client, self.handler = P.ClientSide(), P.HandlerSide()
        self.window = P.Window(items, nbytes)
        self.rid, record = self.client.request("stream", "g", window=self.window)
        [req] = self.handler.receive(record)
        self.stream = self.handler.start_stream(self.rid, req.window)
        self.h2c: deque[bytes] = deque()
        self.c2h: deque[bytes] = deque()
        self.waiting: deque[P.Item] = deque()
        self.taken = 0
        self.after_cancel = 0
        self.ends: list[Any] = []
        self.producing = True
        self.failed = False
        self.cancelled = False
        self.handler_saw_cancel = False
        self.next_ident = 0
        self.lost = self.lost_open = False

    def step(self, action: str, size: int) -> None:
        if self.lost:
            return
        getattr(self, "do_" + action)(size)
        out_items, out_bytes = self.stream.outstanding
        assert out_items <= self.window.items  # outstanding items never exceed the window
        assert out_bytes <= self.window.nbytes or out_items <= 1

    def do_produce(self, size: int) -> None:
        if self.producing and not self.handler_saw_cancel and self.stream.room(size):
            self.h2c.append(b"".join(self.handler.item(self.stream, self.next_ident,
                                                       b"x" * size)))
            self.next_ident += 1

    def do_end(self, size: int) -> None:
        if self.producing:
            self.producing = False
            self.h2c.append(self.handler.end(self.rid, P.ABORT if self.handler_saw_cancel
                                             else P.END))

    def do_fail(self, size: int) -> None:
        if self.producing and not self.handler_saw_cancel:
            self.producing, self.failed = False, True
            self.h2c.append(self.handler.fail(self.rid, ValueError("boom")))

    def do_to_client(self, size: int) -> None:
        if self.h2c:
            out: list[tuple[int, bytes]] = []
            events = self.client.receive(self.h2c.popleft(), self.rid if self.fast else 0, out)
            events = [P.Item(self.rid, i, v, len(v)) for i, v in out] + events
            for event in events:
                if type(event) is P.Item:
                    assert not self.cancelled, "an item reached the user after the cancel"
                    self.waiting.append(event)
                else:
                    self.ends.append(event)

    def do_to_handler(self, size: int) -> None:
        if self.c2h:
            for event in self.handler.receive(self.c2h.popleft()):
                if type(event) is P.Cancel:
                    self.handler_saw_cancel = True

    def do_take(self, size: int) -> None:
        if self.waiting and not self.cancelled:
            event = self.waiting.popleft()
            self.taken += 1
            credit = self.client.consumed(self.rid, 1, event.size)
            if credit is not None:
                self.c2h.append(credit)

    def do_cancel(self, size: int) -> None:
        if not self.ends:
            record = self.client.cancel(self.rid)
            if record is not None:
                self.cancelled = True
                self.waiting.clear()
                self.c2h.append(record)

    def do_disconnect(self, size: int) -> None:
        self.lost = True
        ends = self.client.lost(GatewayClosed("gone"))
        self.lost_open = bool(ends)
        self.ends.extend(ends)

    def finish(self) -> None:
        if self.lost:
            return
        if self.producing:
            self.do_end(1)
        while self.h2c or self.c2h:
            self.do_take(1)
            self.do_to_handler(1)
            self.do_to_client(1)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(ACTIONS), st.integers(1, 300)), max_size=120),
       st.integers(1, 8), st.integers(1, 2000), st.booleans())
def test_random_interleavings_keep_the_window_and_end_once(
        steps: list[tuple[str, int]], items: int, nbytes: int, fast: bool) -> None:
    sim = Sim(items, nbytes, fast)
    for action, size in steps:
        sim.step(action, size)
    sim.finish()
    assert len(sim.ends) == 1, sim.ends  # the end is reported exactly once
    [end] = sim.ends
    if sim.cancelled:
        assert end == P.End(sim.rid, P.ABORT)  # an abort: never an eos_callback
    elif sim.lost and sim.lost_open:
        assert type(end) is P.Failure and isinstance(end.exc, GatewayClosed)
    elif sim.failed:
        assert type(end) is P.Failure and str(end.exc) == "boom"  # never reported as an end
    else:
        assert end == P.End(sim.rid, P.END)
