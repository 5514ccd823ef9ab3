"""``TopicNode`` in one process (several node identities on one scheduler, as the seed's
notebook has them): the seed's scenario as written, messages, pairing rules, options.
"""

from __future__ import annotations

import dataclasses
import logging
import pickle
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import pycos
from pycos.net.latency import RttEstimator
from pycos.topics import TopicMessage, TopicNode, display_graph


@pytest.fixture
def make() -> Iterator[Callable[..., TopicNode]]:
    made: list[TopicNode] = []

    def factory(*args: Any, **kw: Any) -> TopicNode:
        kw.setdefault("name", f"T{len(made) + 1}")
        tn = TopicNode(*args, **kw)
        made.append(tn)
        return tn

    yield factory
    for tn in reversed(made):
        tn.close()


def wait(pred: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


def collector(tn: TopicNode, topic: str, raw: bool = False, n: int = 1 << 30,
              timeout: float = 2.0) -> tuple[pycos.Task, list[Any]]:
    got: list[Any] = []
    ready = []

    def reader(task: Any = None) -> Any:
        tn.subscribe(topic, task, raw=raw)
        ready.append(1)
        while len(got) < n and (msg := (yield task.receive(timeout=timeout))) is not None:
            got.append(msg)
        return got

    task = pycos.Task(reader)
    assert wait(lambda: bool(ready))
    return task, got


def test_the_seed_notebook_as_written(make: Callable[..., TopicNode]) -> None:
    node1 = make(name="Node1", subscriptions=["A"], paired=True)
    node2 = make(name="Node2", subscriptions=["B"])
    node3 = make(name="Node3", subscriptions=["B"])
    assert node2.connect(node1) == 0 and node3.connect(node1) == 0
    assert display_graph([node1, node2, node3]).names() == {("Node1", "Node2"),
                                                              ("Node1", "Node3")}
    assert node2.discovery(on_pair="none", timeout=10) == {"B": [node3.location]}
    assert node3.discovery(on_pair="none", timeout=10) == {"B": [node2.location]}
    assert display_graph([node1, node2, node3]).names() == {
        ("Node1", "Node2"), ("Node1", "Node3"), ("Node2", "Node3"), ("Node2", "Node3", "B")}
    assert node2.connect(node1) == 0 and node3.connect(node1) == 0
    node2.discovery(on_pair="disconnect")
    node3.discovery(on_pair="disconnect")
    assert wait(lambda: display_graph([node1, node2, node3]).names() == {
        ("Node2", "Node3"), ("Node2", "Node3", "B")})
    assert node2.status()["paired"] == {"B": True} and node1.paired("A")
    assert not node2.is_connected_to(node1) and node2.is_connected_to(node3)


def test_first_topic_node_makes_the_scheduler_on_loopback(make: Callable[..., TopicNode]
                                                          ) -> None:
    tn = make(["A"], name="Solo", port=0, serializer=pickle.dumps, deserializer=pickle.loads)
    assert tn.location.addr == "127.0.0.1" and tn.location.port > 0
    assert repr(tn) == f"TopicNode@127.0.0.1:{tn.location.port}"
    assert tn.subscriptions == frozenset({"A"}) and tn.node.config.reconnect == 32
    assert not tn.node.config.discover_peers
    assert pycos.Pycos.instance().node is tn.node  # the process's default node is its own
    with pytest.raises(ValueError, match="one TopicNode per node"):
        TopicNode(["A"], node=pycos.Pycos.instance())


def test_attach_refuses_a_second_topic_node(make: Callable[..., TopicNode]) -> None:
    tn = make(["A"], name="Solo")
    with pytest.raises(ValueError, match="one TopicNode per node"):
        TopicNode(["A"], node=tn.node)
    with pytest.raises(ValueError, match="existing node"):
        TopicNode(["A"], node=tn.node, name="x")


def test_publish_subscribe_raw_and_counts(make: Callable[..., TopicNode]) -> None:
    a, b, c = make(["B"]), make(["B"]), make(["B"], max_connections=1)
    a.connect(b)
    assert a.wait_paired("B", timeout=5) and b.wait_paired("B", timeout=5)
    task, full = collector(b, "B", n=2)
    _, raw = collector(a, "B", raw=True, n=2)
    assert a.publish("B", {"x": 1}) == 2  # here and at b
    assert a.publish("B", 0) == 2
    task.value(timeout=5)
    assert [m.data for m in full] == [{"x": 1}, 0]
    msg = full[0]
    assert isinstance(msg, TopicMessage) and msg.origin == a.name
    assert msg.location == a.location and msg.seq == 1 and msg.timestamp > 0
    assert wait(lambda: raw == [{"x": 1}, 0])
    with pytest.raises(ValueError, match="join it first"):
        a.publish("Z", 1)
    assert c.publish("B", 1) == 1  # no pair yet: only itself
    assert a.stats()["published"] == 2


def test_deliver_counts_end_points_and_waits_for_n(make: Callable[..., TopicNode]) -> None:
    a, b = make(["B"]), make(["B"])
    collector(a, "B")
    collector(b, "B")
    collector(b, "B")
    assert a.deliver("B", "x", timeout=1, n=3) == 0  # only a itself so far
    a.connect(b)
    assert a.wait_paired("B", 5)
    assert a.deliver("B", "y", timeout=5, n=2) == 3
    with pytest.raises(ValueError):
        a.deliver("B", "y", timeout=-1)


def test_join_and_leave_follow_at_once(make: Callable[..., TopicNode]) -> None:
    a, b = make(["A"]), make(["C"])
    a.connect(b)
    assert wait(lambda: a.is_connected_to(b))  # linked, yet no shared topic: not paired
    assert not a.paired("A")
    b.join("A")
    assert a.wait_paired("A", 5) and a.status()["pairs"]["A"] == [b.location]
    b.leave("A")
    assert wait(lambda: a.status()["pairs"]["A"] == [])
    assert "A" not in b.subscriptions


def test_run_false_defers_pairing_until_start(make: Callable[..., TopicNode]) -> None:
    a, b = make(["B"]), make(["B"], run=False)
    a.connect(b)
    assert not a.wait_paired("B", timeout=0.3)
    assert not b.status()["serving"]
    b.start()
    assert a.wait_paired("B", 5) and b.wait_paired("B", 5)


def test_cap_rtt_order_and_the_truncation_warning(make: Callable[..., TopicNode],
                                                  caplog: pytest.LogCaptureFixture) -> None:
    hub = make(["T"], max_connections=2)
    others = [make(["T"]) for _ in range(4)]
    with caplog.at_level(logging.WARNING, logger="pycos.topics"):
        for o in others:
            o.connect(hub)
        assert hub.wait_paired("T", 5)
        time.sleep(0.2)
    assert len(hub.status()["pairs"]["T"]) == 2  # never over the cap
    assert "set relay=True to reach all" in caplog.text
    root = make(["T"], root=True, max_connections=1)
    for o in others:
        o.connect(root)
    assert wait(lambda: len(root.status()["pairs"]["T"]) == 4)  # a root pairs beyond it


def test_relay_reaches_a_group_larger_than_the_cap_exactly_once(
        make: Callable[..., TopicNode]) -> None:
    group = [make(["R"], relay=True, max_connections=2) for _ in range(5)]
    for i, tn in enumerate(group):
        for other in group[:i]:
            tn.connect(other)

    def ring() -> bool:
        pairs = display_graph(group).names("pair")
        return len(pairs) == 5 and all(sum(n.name in p for p in pairs) == 2 for n in group)

    assert wait(ring)
    readers = [collector(tn, "R", n=15, timeout=1) for tn in group]
    for tn in group:
        for k in range(3):
            tn.publish("R", k)
    for task, got in readers:
        task.value(timeout=10)
        assert sorted((m.origin, m.seq) for m in got) == sorted(
            {(m.origin, m.seq) for m in got}) and len(got) == 15


def test_datagrams_on_loopback(make: Callable[..., TopicNode]) -> None:
    a, b = make(["D"], datagram=True, secret="s"), make(["D"], datagram=True, secret="s")
    a.connect(b)
    assert a.wait_paired("D", 5) and b.wait_paired("D", 5)
    task, got = collector(b, "D", n=1)
    assert wait(lambda: b.mesh.entries and all(e.key_in for e in b.mesh.entries.values()))
    assert a.publish("D", {"t": 1.5}, datagram=True) == 1
    task.value(timeout=5)
    assert got[0].data == {"t": 1.5} and got[0].origin == a.name
    with pytest.raises(ValueError, match="at most 1200"):
        a.publish("D", b"x" * 2000, datagram=True)
    plain = make(["D"])
    with pytest.raises(ValueError, match="datagram=True"):
        plain.publish("D", 1, datagram=True)


def test_ping_latency_status(make: Callable[..., TopicNode]) -> None:
    a, b = make(["B"]), make(["B"])
    a.connect(b)
    rtt = a.ping(b, size=100, count=3)
    assert 0 < rtt < 1
    assert set(a.ping()) == {b.location}
    lat = a.latency(b)
    assert lat.samples >= 3 and lat.min <= lat.srtt <= lat.max and lat.rttvar >= 0
    assert set(a.latency()) == {b.location}
    st = a.status()
    assert st["peers"] == 1 and st["serving"] and st["reconnecting"] == []
    with pytest.raises(ValueError):
        a.ping(b, size=-1)


def test_graph_is_gathered_through_the_mesh(make: Callable[..., TopicNode]) -> None:
    a, b, c = make(["B"]), make(["B"]), make(["C"])
    a.connect(b)
    b.connect(c)
    assert a.wait_paired("B", 5)
    g = a.graph(depth=2)
    assert g.names() == {(a.name, b.name), (b.name, c.name), (a.name, b.name, "B")}
    assert {n.name for n in a.graph(depth=1).nodes} == {a.name, b.name, c.name}
    assert not next(n for n in a.graph(depth=1).nodes if n.name == c.name).gathered


def test_srtt_settles_within_20_percent_of_the_median_after_5_samples() -> None:
    clock = pycos.FakeClock()
    est = RttEstimator()
    samples = [0.0011, 0.0009, 0.0010, 0.0012, 0.0010]
    for rtt in samples:
        start = clock.time()
        clock.advance(rtt)
        est.add(clock.time() - start)
    median = sorted(samples)[2]
    assert abs(est.srtt - median) <= 0.2 * median


def test_late_joiner_loses_nothing_after_wait_paired(make: Callable[..., TopicNode]) -> None:
    pub = make(["L"])
    for trial in range(20):
        sub = TopicNode(["L"], name=f"late{trial}")
        try:
            task, got = collector(sub, "L", n=1, timeout=2)
            sub.connect(pub)
            assert sub.wait_paired("L", timeout=5)
            pub.publish("L", trial)
            task.value(timeout=5)
            assert [m.data for m in got] == [trial], f"trial {trial} lost its message"
        finally:
            sub.close()


def test_a_late_discoverer_finds_the_members_that_paired_and_left_the_root(
        make: Callable[..., TopicNode]) -> None:
    """The 8-around-a-root failure, made deterministic: the members that came first paired
    and dropped their root links (``on_pair="disconnect"``) before the last one arrived, so
    its floods reached a root with nobody left to forward them to, and it waited the whole
    timeout, "paired alone", keeping its root link. The root now answers with referrals to the
    nodes that met there and left."""
    root = make([], name="root", root=True)
    a, b, late = make(["P"], name="a"), make(["P"], name="b"), make(["P"], name="late")
    results: dict[str, Any] = {}

    def member(tn: TopicNode) -> None:
        assert tn.connect(root) == 0
        results[tn.name] = tn.discovery(on_pair="disconnect", timeout=5)

    threads = [threading.Thread(target=member, args=(tn,)) for tn in (a, b)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(10)
    assert results == {"a": {"P": [b.location]}, "b": {"P": [a.location]}}
    assert wait(lambda: root.status()["peers"] == 0)  # both left the root
    start = time.monotonic()
    assert late.connect(root) == 0
    pairs = late.discovery(on_pair="disconnect", timeout=5)
    took = time.monotonic() - start
    assert pairs["P"] and set(pairs["P"]) <= {a.location, b.location}
    assert took < 1.0, f"the late node waited {took:.2f} s (a discovery retry or worse)"
    assert not late.is_connected_to(root) and late.status()["paired"] == {"P": True}
    assert root.stats()["referrals_sent"] >= 1 and late.stats()["referral_dials"] >= 1


def test_discovery_retries_reach_a_member_whose_first_dial_was_refused(
        make: Callable[..., TopicNode]) -> None:
    """A member dials a flood's origin once per origin incarnation; when that dial fails (here
    the origin is at its peer cap and refuses the connection), the origin's next flood (its
    discovery floods again after 0.5 s, 1 s, 2 s …) makes the member dial again."""
    root = make([], name="root", root=True)
    member = make(["P"], name="member")
    origin = make(["P"], name="origin", max_peers=1)  # room for the root link only
    assert member.connect(root) == 0 and origin.connect(root) == 0
    lifted = threading.Event()

    def lift_the_cap_after_the_first_refusal() -> None:
        if wait(lambda: member.stats()["flood_dial_failures"] >= 1, 5):
            origin.node.config = dataclasses.replace(origin.node.config, max_peers=None)
            lifted.set()

    th = threading.Thread(target=lift_the_cap_after_the_first_refusal)
    th.start()
    start = time.monotonic()
    pairs = origin.discovery(on_pair="disconnect", timeout=5)
    took = time.monotonic() - start
    th.join(10)
    assert lifted.is_set() and origin.node.stats["rejected_busy"] >= 1
    assert pairs == {"P": [member.location]}
    assert took < 2.0, f"paired after {took:.2f} s"
    stats = member.stats()
    assert stats["flood_dials"] == 2 and stats["flood_dial_failures"] == 1


def test_a_member_leaving_the_root_under_a_flood_is_referred_at_once(
        make: Callable[..., TopicNode]) -> None:
    """The root forwards a newcomer's flood to a member that is closing its root link (it
    has just paired): the flood is lost with the link, and the newcomer's answer named no
    one (that member was still the root's peer). The root then refers the newcomer to the
    member that left (``topics.refer``) instead of leaving it to the next flood, 0.5 s on."""
    from pycos.core import lowlevel
    from pycos.net.requests import DEFER

    root = make([], name="root", root=True)
    member = make(["P"], name="member")
    newcomer = make(["P"], name="newcomer")
    assert member.connect(root) == 0
    assert wait(lambda: len(root.mesh.rendezvous) == 1)

    def leave_on_the_flood(ctx: Any, payload: Any) -> Any:
        def close(task: Any = None) -> Any:
            yield member.node.close_peer(root.location)
        lowlevel.spawn_daemon(close)
        return DEFER  # never answered: the root's forward fails when the link goes

    def swap() -> None:
        member.node.handlers.unserve("topics.discover")
        member.node.serve("topics.discover", leave_on_the_flood, "main")

    member._on_sched(swap)
    assert newcomer.connect(root) == 0
    start = time.monotonic()
    pairs = newcomer.discovery(on_pair="disconnect", timeout=5)
    took = time.monotonic() - start
    assert pairs == {"P": [member.location]}
    assert took < 0.4, f"paired after {took:.2f} s (the next flood's answer, not a referral)"
    assert newcomer.stats()["floods_sent"] == 1 and newcomer.stats()["referral_dials"] == 1
    assert root.stats()["referrals_sent"] == 1
