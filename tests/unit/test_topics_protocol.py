"""The topic dialogue without sockets: message checks, flood state, datagram frames.

Every check a peer's message goes through (``pycos.topics._protocol``), the flood bookkeeping
(TTL clamp, visited bound, seen ids, token bucket on a fake clock, one dial per origin, and
another only after a failed one), a root's rendezvous memory and referrals (what a late
discoverer is told of the nodes that paired and left the root), relay de-duplication and the
datagram MAC and replay window; with Hypothesis, arbitrary payloads never raise anything but
``Malformed``.
"""

from __future__ import annotations

import os
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pycos.topics._protocol import (
    Dedup,
    Flood,
    FloodState,
    Malformed,
    Referral,
    Rendezvous,
    ReplayWindow,
    TokenBucket,
    datagram_key,
    open_,
    parse_flood,
    parse_interest,
    parse_pair,
    parse_referrals,
    referral_answer,
    seal,
    unicast_problem,
)
from pycos.topics.limits import (
    MAX_ORIGIN_DIALS,
    MAX_REFERRALS,
    MAX_TOPICS,
    MAX_TTL,
    MAX_VISITED,
    check_topic,
    topic_problem,
)

INC = bytes(range(16))
OTHER = bytes(range(16, 32))


class Chan:
    def send(self, msg: Any) -> int:
        return 0


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def flood(**over: Any) -> dict[str, Any]:
    msg: dict[str, Any] = {"v": 1, "id": bytes(16), "origin": ["O", "127.0.0.1", 9801, INC],
                           "topics": ["B"], "ttl": 5, "visited": ["O"]}
    msg.update(over)
    return msg


# ---------------------------------------------------------------------- topic names
@pytest.mark.parametrize("name, ok", [("B", True), ("x" * 255, True), ("é" * 127, True),
                                      ("", False), ("x" * 256, False), ("a\nb", False),
                                      ("a\x7f", False), ("a\x9b", False), (b"B", False),
                                      (None, False), ("\ud800", False)])
def test_topic_names(name: Any, ok: bool) -> None:
    assert (topic_problem(name) is None) is ok
    if not ok:
        with pytest.raises((TypeError, ValueError)):
            check_topic(name)


# ---------------------------------------------------------------------- interest and pair
def test_interest_round_trip_and_refusals() -> None:
    good = {"v": 1, "name": "N", "topics": {"B": Chan()}, "root": False, "relay": True,
            "cap": 5, "udp": 4000, "nonce": bytes(16), "seeking": True}
    got = parse_interest(good)
    assert got.name == "N" and set(got.topics) == {"B"} and got.relay and got.udp == 4000
    bad = [
        ({"v": 2}, "version"), ({**good, "name": 5}, "name"), ({**good, "topics": ["B"]}, "dict"),
        ({**good, "topics": {"B": 1}}, "channel"), ({**good, "cap": -1}, "cap"),
        ({**good, "udp": 70000}, "port"), ({**good, "nonce": b"x"}, "nonce"),
        ({**good, "root": "yes"}, "bool"), ({**good, "topics": {"a\x00": Chan()}}, "control"),
    ]
    for msg, word in bad:
        with pytest.raises(Malformed, match=word):
            parse_interest(msg)
    with pytest.raises(Malformed, match="not a dict"):
        parse_interest(["v", 1])


def test_five_thousand_topics_in_one_message_are_refused() -> None:
    many = {f"t{i}": Chan() for i in range(5000)}
    with pytest.raises(Malformed, match=f"at most {MAX_TOPICS}"):
        parse_interest({"v": 1, "name": "N", "topics": many})
    with pytest.raises(Malformed, match=f"at most {MAX_TOPICS}"):
        parse_flood(flood(topics=list(many)))


def test_pair_messages() -> None:
    assert parse_pair({"v": 1, "op": "pair", "topic": "B"}).op == "pair"
    for msg in ({"v": 1, "op": "marry", "topic": "B"}, {"v": 1, "op": "pair", "topic": ""},
                {"v": 1, "op": "pair"}, "pair"):
        with pytest.raises(Malformed):
            parse_pair(msg)


# ---------------------------------------------------------------------- floods
def test_flood_ttl_is_checked_and_clamped() -> None:
    with pytest.raises(Malformed, match="negative"):
        parse_flood(flood(ttl=-1))
    with pytest.raises(Malformed, match="not an int"):
        parse_flood(flood(ttl="5"))
    big = parse_flood(flood(ttl=10**9))
    assert big.ttl == MAX_TTL and big.clamped
    assert not parse_flood(flood(ttl=MAX_TTL)).clamped


@pytest.mark.parametrize("visited, word", [("O", "not a list"), ({"O": 1}, "not a list"),
                                           (["O"] * (MAX_VISITED + 1), "at most"),
                                           ([1], "node name"), ([""], "node name")])
def test_flood_visited_must_be_a_short_list_of_names(visited: Any, word: str) -> None:
    with pytest.raises(Malformed, match=word):
        parse_flood(flood(visited=visited))


@pytest.mark.parametrize("addr, word", [("0.0.0.0", "unspecified"), ("::", "unspecified"),
                                        ("224.0.0.1", "multicast"), ("ff02::1", "multicast"),
                                        ("255.255.255.255", "broadcast"),
                                        ("10.0.0.255", "broadcast"),
                                        ("example.com", "not an IP"), (5, "not a str")])
def test_flood_origin_must_be_unicast(addr: Any, word: str) -> None:
    assert word in unicast_problem(addr)  # type: ignore[operator]
    with pytest.raises(Malformed, match=word):
        parse_flood(flood(origin=["O", addr, 9801, INC]))


def test_flood_other_fields() -> None:
    for over in ({"id": b"short"}, {"origin": ["O", "127.0.0.1", 0, INC]},
                 {"origin": ["O", "127.0.0.1", 9801, b"x"]}, {"origin": "O"},
                 {"topics": []}, {"topics": "B"}):
        with pytest.raises(Malformed):
            parse_flood(flood(**over))


def test_flood_state_drops_own_seen_and_storms() -> None:
    clock = Clock()
    state = FloodState("me", clock, per_minute=8)
    me = (OTHER, ("127.0.0.1", 9999))
    own = parse_flood(flood(origin=["me", "127.0.0.1", 9999, OTHER]))
    assert "this node" in state.admit(own, "peer", *me)  # type: ignore[operator]
    first = parse_flood(flood())
    assert state.admit(first, "peer", *me) is None
    assert state.admit(first, "peer2", *me) == "already seen"
    # a storm from one peer: 8 a minute get through (7 more after the first), then none
    results = [state.admit(parse_flood(flood(id=os.urandom(16))), "peer", *me)
               for _ in range(20)]
    assert results[:7] == [None] * 7 and all("floods a minute" in r for r in results[7:])
    assert state.admit(parse_flood(flood(id=os.urandom(16))), "other", *me) is None
    clock.now += 7.5  # one token back after 60/8 s
    assert state.admit(parse_flood(flood(id=os.urandom(16))), "peer", *me) is None
    assert state.admit(parse_flood(flood(id=os.urandom(16))), "peer", *me) is not None


def test_flood_next_hop_and_dials() -> None:
    state = FloodState("me", Clock())
    f = parse_flood(flood(ttl=2, visited=[f"n{i}" for i in range(MAX_VISITED)]))
    nxt = state.next_hop(f)
    assert nxt is not None and nxt.ttl == 1 and nxt.visited[-1] == "me"
    assert len(nxt.visited) == MAX_VISITED  # bounded: the oldest name goes
    assert state.next_hop(nxt) is None  # ttl spent
    assert parse_flood(nxt.to_wire()) == nxt
    assert state.may_dial(f) and not state.may_dial(f)  # once per origin incarnation
    other = Flood(os.urandom(16), "P", "127.0.0.1", 1, OTHER, ("B",), 3, ())
    assert state.may_dial(other)


def test_a_failed_dial_lets_the_origins_later_floods_dial_again() -> None:
    """The origin's discovery floods again (0.5 s, 1 s, 2 s …): a node whose first dial of
    it was refused dials again on a later flood, at most ``MAX_ORIGIN_DIALS`` times in all;
    a dial in flight or made is never repeated."""
    state = FloodState("me", Clock())
    f = parse_flood(flood())
    assert state.may_dial(f)
    assert not state.may_dial(f)  # in flight
    for _ in range(MAX_ORIGIN_DIALS - 1):
        state.dial_failed(f.inc)
        assert state.may_dial(f)
        assert not state.may_dial(f)
    state.dial_failed(f.inc)
    assert not state.may_dial(f)  # the bound: a flood cannot make this node dial forever
    ok = Flood(os.urandom(16), "P", "127.0.0.1", 1, OTHER, ("B",), 3, ())
    assert state.may_dial(ok)
    assert not state.may_dial(ok.inc)  # made (never failed): once per incarnation
    # a referred node is dialed once, never again after a failure (it may be gone)
    ref = bytes(range(32, 48))
    assert state.may_dial_referral(ref) and not state.may_dial_referral(ref)
    state.dial_failed(ref)
    assert not state.may_dial_referral(ref)
    assert not state.may_dial_referral(OTHER)  # already dialed because of its flood
    state.dial_failed(b"unknown-inc-1234")  # nothing to forget: no error


def test_dial_memory_is_bounded() -> None:
    state = FloodState("me", Clock(), remember=4)
    incs = [bytes([i]) * 16 for i in range(6)]
    assert all(state.may_dial(inc) for inc in incs)
    assert len(state.dials) == 4 and incs[0] not in state.dials


# ---------------------------------------------------------------------- rendezvous
def inc_of(i: int) -> bytes:
    return bytes([i]) * 16


def test_a_root_refers_a_late_discoverer_to_the_nodes_that_left() -> None:
    """The failure this guards against: every member paired and left the root
    (``on_pair="disconnect"``) before the last one arrived, so its floods reached a root with
    nobody to forward them to. The root remembers its former peers and refers the origin to
    them, most recent first, skipping itself, current peers and nodes without a shared
    topic."""
    clock = Clock()
    rv = Rendezvous(clock)
    rv.note("a", "127.0.0.1", 9001, inc_of(1), {"P": object()})
    clock.now += 1
    rv.note("b", "127.0.0.1", 9002, inc_of(2), {"P", "Q"})
    clock.now += 1
    rv.note("c", "127.0.0.1", 9003, inc_of(3), {"Q"})
    refs = rv.referrals(("P",), {inc_of(9)})
    assert [(r.name, r.port, r.topics) for r in refs] == [("b", 9002, ("P",)),
                                                          ("a", 9001, ("P",))]
    assert [r.name for r in rv.referrals(("P", "Q"), {inc_of(2)})] == ["c", "a"]
    assert rv.referrals(("Z",), set()) == []
    assert len(rv.referrals(("P",), set(), limit=1)) == 1
    # a peer leaving refreshes its age; one that drops every topic is forgotten
    rv.seen(inc_of(1))
    assert [r.name for r in rv.referrals(("P",), set())] == ["a", "b"]
    rv.note("b", "127.0.0.1", 9002, inc_of(2), {})
    assert [r.name for r in rv.referrals(("P", "Q"), set())] == ["a", "c"]


def test_rendezvous_forgets_restarted_old_and_surplus_nodes() -> None:
    clock = Clock()
    rv = Rendezvous(clock, remember=3, max_age=100.0)
    rv.note("a", "127.0.0.1", 9001, inc_of(1), {"P"})
    rv.note("a", "127.0.0.1", 9001, inc_of(11), {"P"})  # restarted: a new incarnation
    assert [r.inc for r in rv.referrals(("P",), set())] == [inc_of(11)]
    for i in range(2, 6):
        rv.note(f"n{i}", "127.0.0.1", 9000 + i, inc_of(i), {"P"})
    assert len(rv) == 3 and [r.name for r in rv.referrals(("P",), set())] == ["n5", "n4", "n3"]
    clock.now += 50
    rv.seen(inc_of(5))
    clock.now += 60  # n3 and n4 were last seen 110 s ago, n5 60 s ago
    assert [r.name for r in rv.referrals(("P",), set())] == ["n5"]
    assert len(rv) == 1 and rv.by_loc == {("127.0.0.1", 9005): inc_of(5)}
    rv.forget(inc_of(5))
    rv.forget(inc_of(5))
    assert len(rv) == 0 and rv.by_loc == {}


def test_referral_answers_round_trip_and_refusals() -> None:
    refs = [Referral("a", "127.0.0.1", 9001, INC, ("P",)),
            Referral("b", "::1", 9002, OTHER, ("P", "Q"))]
    wire = referral_answer(refs)
    assert parse_referrals(wire) == refs
    one = ["a", "127.0.0.1", 9001, INC, ["P"]]
    for bad, word in [({"v": 1}, "no list"),
                      ({"v": 2, "referrals": []}, "version"),
                      ({"v": 1, "referrals": [one] * (MAX_REFERRALS + 1)}, "at most"),
                      ({"v": 1, "referrals": [one[:4]]}, "is not \\[name"),
                      ({"v": 1, "referrals": [["a", "0.0.0.0", 9001, INC, ["P"]]]},
                       "unspecified"),
                      ({"v": 1, "referrals": [["a", "224.0.0.1", 9001, INC, ["P"]]]},
                       "multicast"),
                      ({"v": 1, "referrals": [["a", "127.0.0.1", 0, INC, ["P"]]]}, "port"),
                      ({"v": 1, "referrals": [["a", "127.0.0.1", 1, b"x", ["P"]]]},
                       "incarnation"),
                      ({"v": 1, "referrals": [["", "127.0.0.1", 1, INC, ["P"]]]}, "name"),
                      ({"v": 1, "referrals": [["a", "127.0.0.1", 1, INC, []]]}, "no topic"),
                      ({"v": 1, "referrals": [["a", "127.0.0.1", 1, INC, ["\x00"]]]},
                       "control")]:
        with pytest.raises(Malformed, match=word):
            parse_referrals(bad)
    assert len(referral_answer(refs * MAX_REFERRALS)["referrals"]) == MAX_REFERRALS


def test_token_bucket_and_dedup() -> None:
    clock = Clock()
    bucket = TokenBucket(1.0, 2, clock)
    assert [bucket.take() for _ in range(3)] == [True, True, False]
    clock.now += 1.0
    assert bucket.take() and not bucket.take()
    dedup = Dedup(3)
    assert [dedup.seen(k) for k in (1, 2, 1, 3, 4)] == [False, False, True, False, False]
    assert not dedup.seen(2)  # 2 was the least recently seen: forgotten
    assert len(dedup) == 3


# ---------------------------------------------------------------------- datagrams
def test_datagram_seal_open_and_tampering() -> None:
    key = datagram_key("s3cret", bytes(16), INC, OTHER)
    assert key == datagram_key("s3cret", bytes(16), INC, OTHER)
    assert key != datagram_key("s3cret", bytes(16), OTHER, INC)  # one key per direction
    assert key != datagram_key("other", bytes(16), INC, OTHER)
    frame = seal(key, INC, 7, b"payload")
    assert open_(frame, lambda inc: key if inc == INC else None) == (INC, 7, b"payload")
    for i in range(len(frame)):
        bad = bytearray(frame)
        bad[i] ^= 0x40
        with pytest.raises(Malformed):
            open_(bytes(bad), lambda inc: key if inc == INC else None)
    with pytest.raises(Malformed, match="unknown sender"):
        open_(frame, lambda inc: None)
    with pytest.raises(Malformed, match="too short"):
        open_(b"PTD1", lambda inc: key)


def test_replay_window() -> None:
    w = ReplayWindow(64)
    assert w.accept(1) and not w.accept(1)
    assert w.accept(10) and w.accept(5) and not w.accept(5)
    assert w.accept(100) and not w.accept(36) and w.accept(37)
    assert not w.accept(0) and not w.accept(-3)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(1, 300), max_size=200))
def test_replay_window_accepts_each_number_at_most_once(seqs: list[int]) -> None:
    w = ReplayWindow(64)
    accepted = [s for s in seqs if w.accept(s)]
    assert len(accepted) == len(set(accepted))


# ---------------------------------------------------------------------- fuzz
_values = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=20)
                       | st.binary(max_size=20) | st.floats(allow_nan=False),
                       lambda inner: st.lists(inner, max_size=5)
                       | st.dictionaries(st.text(max_size=8), inner, max_size=6),
                       max_leaves=20)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(["v", "id", "origin", "topics", "ttl", "visited",
                                        "name", "op", "topic", "cap", "udp", "nonce", "root",
                                        "referrals"]),
                       _values, max_size=8) | _values)
def test_arbitrary_payloads_only_raise_malformed(value: Any) -> None:
    for parse in (parse_flood, parse_interest, parse_pair, parse_referrals):
        try:
            parse(value)
        except Malformed:
            pass


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=120))
def test_arbitrary_datagrams_only_raise_malformed(data: bytes) -> None:
    key = datagram_key("k", bytes(16), INC, OTHER)
    try:
        open_(data, lambda inc: key)
    except Malformed:
        pass
