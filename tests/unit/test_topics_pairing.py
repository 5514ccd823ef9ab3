"""The pairing state machine (``pycos.topics.pairing``), alone and in a simulated mesh.

Unit: preference by SRTT and the cap, the relay ring, accepting, confirming, unpairing, a peer
going. Hypothesis: random join, leave, Online and Offline sequences across 2-6 simulated
nodes, with messages delivered in random interleavings (in order per link, as TCP does): at
every step no node pairs with itself or holds more than its cap; once the messages have all
been delivered, every pair is held by both sides, confirmed, between linked peers that share
the topic, and every node with room and an unpaired interested peer is paired.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from pycos.topics.pairing import Pairing


def fresh(me: Any, cap: int = 2, **kw: Any) -> Pairing:
    p = Pairing(me=me, cap=cap, **kw)
    p.set_topics({"T"})
    return p


def test_preference_is_by_srtt_then_key_and_capped() -> None:
    p = fresh(0, cap=2)
    for peer, rtt in ((1, 0.003), (2, None), (3, 0.001), (4, 0.002)):
        p.peer_interest(peer, {"T"})
        p.set_rtt(peer, rtt)
    assert p.preference("T") == [3, 4, 1, 2]
    p.pending.clear()
    p.pairs.clear()
    actions = p.evaluate()
    assert actions == [("pair", 3, "T"), ("pair", 4, "T")]  # the two nearest, no more
    assert p.truncated("T") == 2


def test_never_pairs_with_itself_or_without_a_shared_topic() -> None:
    p = fresh(0)
    assert p.peer_interest(0, {"T"}) == []
    assert p.on_request(0, "T") == (False, [])
    p.peer_interest(1, {"U"})
    assert p.on_request(1, "T") == (False, [])
    assert p.on_request(7, "T") == (False, [])  # unknown peer


def test_request_reply_confirm() -> None:
    a, b = fresh("a", cap=1), fresh("b", cap=1, seeking=False)
    assert b.peer_interest("a", {"T"}) == []  # b only accepts
    assert a.peer_interest("b", {"T"}) == [("pair", "b", "T")]
    ok, acts = b.on_request("a", "T")
    assert ok and acts == [] and b.pairs["T"] == {"a": False} and not b.is_paired("T")
    assert a.on_reply("b", "T", True) == [("confirm", "b", "T")]
    assert a.is_paired("T")
    assert b.on_confirm("a", "T") == [] and b.is_paired("T")
    # b is full: a third node is refused, and remembered as refused by it
    b.peer_interest("c", {"T"})
    assert b.on_request("c", "T") == (False, [])


def test_both_asking_at_once_ends_confirmed_on_both_sides() -> None:
    a, b = fresh("a"), fresh("b")
    a.peer_interest("b", {"T"})
    b.peer_interest("a", {"T"})
    assert a.on_request("b", "T")[0] and b.on_request("a", "T")[0]
    assert a.on_reply("b", "T", True) == [("confirm", "b", "T")]
    assert b.on_reply("a", "T", True) == [("confirm", "a", "T")]
    assert a.is_paired("T") and b.is_paired("T")


def test_peer_down_and_leave_unpair_and_seek_again() -> None:
    a = fresh("a", cap=1)
    a.peer_interest("b", {"T"})
    a.peer_interest("c", {"T"})
    a.on_reply("b", "T", True)
    actions = a.peer_down("b")
    assert ("announce",) in actions and ("pair", "c", "T") in actions
    a.on_reply("c", "T", True)
    assert a.set_topics(set())[0] == ("unpair", "c", "T")
    assert not a.pairs


def test_free_slots_and_the_cap_for_dialing_flood_origins() -> None:
    """``free`` counts requests in flight against the cap (what referrals may still fill);
    ``below_cap`` does not: requests in flight may yet be refused, so a node whose every slot
    is a pending request still dials a flood's origin (it was dropping that flood, and a
    node arriving meanwhile then waited for its next flood)."""
    a = fresh("a", cap=2)
    assert a.free("T") == 2 and a.below_cap("T") and a.free("U") == 0
    a.peer_interest("b", {"T"})
    a.peer_interest("c", {"T"})
    assert a.pending["T"] == {"b", "c"}
    assert a.free("T") == 0 and not a.room("T") and a.below_cap("T")
    a.on_reply("b", "T", True)
    assert a.free("T") == 0 and a.below_cap("T")
    a.on_reply("c", "T", True)
    assert a.free("T") == 0 and not a.below_cap("T")
    root = fresh("r", cap=1, root=True)
    assert root.below_cap("T") and root.free("T") > 1000


def test_root_accepts_beyond_the_cap_and_never_asks() -> None:
    root = fresh("r", cap=1, root=True)
    for peer in "abc":
        assert root.peer_interest(peer, {"T"}) == []
        assert root.on_request(peer, "T")[0]
    assert len(root.pairs["T"]) == 3


def test_relay_ring_order_and_eviction() -> None:
    p = fresh(3, cap=2, relay=True)
    for peer in (0, 1, 2, 4, 5):
        p.peer_interest(peer, {"T"})
    assert p.preference("T") == [4, 2, 5, 1, 0]
    p.pending["T"].clear()
    p.pairs["T"] = {0: True, 1: True}
    ok, actions = p.on_request(4, "T")  # a ring neighbour displaces the worst pair
    assert ok and actions == [("unpair", 0, "T")] and set(p.pairs["T"]) == {1, 4}
    assert p.on_request(0, "T") == (False, [])  # 0 ranks below both pairs


# ---------------------------------------------------------------------- simulated mesh
class Mesh:
    """Nodes exchanging the pairing's messages over links delivered in order per link."""

    def __init__(self, caps: list[int], relay: bool) -> None:
        self.nodes = [Pairing(me=i, cap=c, relay=relay) for i, c in enumerate(caps)]
        self.topics: list[set[str]] = [set() for _ in caps]
        self.links: set[frozenset[int]] = set()
        self.queues: dict[tuple[int, int], deque[tuple[Any, ...]]] = {}

    def check(self) -> None:
        for p in self.nodes:
            for topic, pairs in p.pairs.items():
                assert p.me not in pairs, f"{p.me} paired with itself"
                assert len(pairs) <= p.cap, f"{p.me} holds {len(pairs)} > cap {p.cap}"
                assert len(pairs) + len(p.pending.get(topic, ())) <= p.cap

    def send(self, a: int, b: int, msg: tuple[Any, ...]) -> None:
        if frozenset((a, b)) in self.links:
            self.queues.setdefault((a, b), deque()).append(msg)

    def act(self, a: int, actions: list[tuple[Any, ...]]) -> None:
        for action in actions:
            if action[0] == "announce":
                for link in self.links:
                    if a in link:
                        (b,) = link - {a}
                        self.send(a, b, ("interest", frozenset(self.topics[a])))
            else:
                self.send(a, action[1], (action[0], action[2]))
        self.check()

    def online(self, a: int, b: int) -> None:
        if a == b or frozenset((a, b)) in self.links:
            return
        self.links.add(frozenset((a, b)))
        self.send(a, b, ("interest", frozenset(self.topics[a])))
        self.send(b, a, ("interest", frozenset(self.topics[b])))

    def offline(self, a: int, b: int) -> None:
        link = frozenset((a, b))
        if link not in self.links:
            return
        self.links.discard(link)
        self.queues.pop((a, b), None)
        self.queues.pop((b, a), None)
        self.act(a, self.nodes[a].peer_down(b))
        self.act(b, self.nodes[b].peer_down(a))

    def set_topics(self, a: int, topics: set[str]) -> None:
        self.topics[a] = set(topics)
        self.act(a, [*self.nodes[a].set_topics(topics), ("announce",)])

    def deliver(self, key: tuple[int, int]) -> None:
        a, b = key
        msg = self.queues[key].popleft()
        if not self.queues[key]:
            del self.queues[key]
        node = self.nodes[b]
        kind = msg[0]
        if kind == "interest":
            self.act(b, node.peer_interest(a, msg[1]))
        elif kind == "pair":
            ok, actions = node.on_request(a, msg[1])
            self.act(b, actions)
            self.send(b, a, ("reply", msg[1], ok))
        elif kind == "reply":
            self.act(b, node.on_reply(a, msg[1], msg[2]))
        elif kind == "confirm":
            self.act(b, node.on_confirm(a, msg[1]))
        elif kind == "unpair":
            self.act(b, node.on_unpair(a, msg[1]))

    def drain(self, pick: Any, limit: int = 20000) -> None:
        steps = 0
        while self.queues:
            steps += 1
            assert steps < limit, "the pairing never settles"
            keys = sorted(self.queues)
            self.deliver(keys[pick(len(keys))])


TOPICS = ["A", "B", "C"]
_ops = st.lists(st.one_of(
    st.tuples(st.just("online"), st.integers(0, 5), st.integers(0, 5)),
    st.tuples(st.just("offline"), st.integers(0, 5), st.integers(0, 5)),
    st.tuples(st.just("topics"), st.integers(0, 5), st.sets(st.sampled_from(TOPICS))),
    st.tuples(st.just("deliver"), st.integers(0, 50), st.integers(0, 10**6)),
), max_size=40)


@settings(max_examples=150, deadline=None)
@given(caps=st.lists(st.integers(1, 3), min_size=2, max_size=6), relay=st.booleans(),
       ops=_ops, seed=st.randoms(use_true_random=False))
def test_random_meshes_settle_into_symmetric_capped_pairs(caps: list[int], relay: bool,
                                                          ops: list[Any], seed: Any) -> None:
    mesh = Mesh(caps, relay)
    n = len(caps)
    for op in ops:
        if op[0] == "online":
            mesh.online(op[1] % n, op[2] % n)
        elif op[0] == "offline":
            mesh.offline(op[1] % n, op[2] % n)
        elif op[0] == "topics":
            mesh.set_topics(op[1] % n, op[2])
        else:
            for _ in range(op[1]):
                if not mesh.queues:
                    break
                keys = sorted(mesh.queues)
                mesh.deliver(keys[(op[2] + _) % len(keys)])
    mesh.drain(seed.randrange)
    for p in mesh.nodes:
        for topic, pairs in p.pairs.items():
            for other, confirmed in pairs.items():
                q = mesh.nodes[other]
                assert confirmed, f"{p.me}-{other} on {topic} never confirmed"
                assert p.me in q.pairs.get(topic, {}), f"{p.me}-{other} on {topic} one-sided"
                assert frozenset((p.me, other)) in mesh.links
                assert topic in mesh.topics[p.me] and topic in mesh.topics[other]
        assert not any(p.pending.values()), "a request is still in flight"
    # nobody is left unpaired while an interested linked peer also has room for it
    for p in mesh.nodes:
        for topic in mesh.topics[p.me]:
            if p.pairs.get(topic):
                continue
            for link in mesh.links:
                if p.me in link:
                    (other,) = link - {p.me}
                    q = mesh.nodes[other]
                    assert not (topic in mesh.topics[other] and q.room(topic)), \
                        f"{p.me} and {other} share {topic}, both have room, and are not paired"
