"""Attacks on a topic node (EXTRAS §3.5), from a peer in this process and from raw UDP.

The attacker is a plain node of the same scheduler, authenticated as a peer (topic messages
travel only on authenticated links), sending what a topic node never sends: malformed floods
and interest (ttl -1 or 10**9, a ``visited`` that is not a list, origins 0.0.0.0, multicast or
the victim itself), 5,000 topics in one message, a flood storm; then a raising deserializer,
datagrams with bad MACs, replayed, or from unknown addresses; and bad arguments. Each gets a
clear error or a counted, rate-limited drop, and the victim keeps serving: afterwards it still
pairs and delivers.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import pycos
from pycos.net.node import Node
from pycos.net.requests import RemoteRequestFailed
from pycos.topics import TopicNode
from pycos.topics._protocol import HEADER, seal
from pycos.topics.wire import pack


@pytest.fixture
def victim() -> Iterator[tuple[TopicNode, Any, Callable[..., Any]]]:
    tn = TopicNode(["B"], name="victim", secret="s", datagram=True)
    attacker = Node(name="attacker", host="127.0.0.1", discover_peers=False, secret="s",
                    scheduler=tn.sched)

    def ask(kind: str, value: Any, raw: bool = False) -> Any:
        payload = value if raw else pack(attacker, value)
        return attacker.request(tn.location, kind, payload, 5)

    assert pycos.run(attacker.peer(tn.location)) == 0
    yield tn, attacker, ask
    attacker.close()
    tn.close()


def flood(tn: TopicNode, **over: Any) -> dict[str, Any]:
    msg: dict[str, Any] = {"v": 1, "id": os.urandom(16),
                           "origin": ["attacker", "127.0.0.1", 9, os.urandom(16)],
                           "topics": ["Q"], "ttl": 3, "visited": ["attacker"]}
    msg.update(over)
    return msg


def still_serves(tn: TopicNode) -> None:
    """The victim still pairs with a newcomer and delivers to it."""
    friend = TopicNode(["B"], name=f"friend{os.getpid()}{time.monotonic_ns()}", secret="s")
    try:
        got: list[Any] = []

        def reader(task: Any = None) -> Any:
            friend.subscribe("B", task)
            got.append((yield task.receive(timeout=5)))

        task = pycos.Task(reader)
        assert friend.connect(tn) == 0
        assert friend.wait_paired("B", 5) and tn.wait_paired("B", 5)
        tn.publish("B", "still here")
        task.value(timeout=5)
        assert got[0].data == "still here"
    finally:
        friend.close()


@pytest.mark.parametrize("over, word", [
    ({"ttl": -1}, "negative"), ({"visited": "attacker"}, "not a list"),
    ({"visited": ["x"] * 65}, "at most 64"), ({"origin": ["a", "0.0.0.0", 9, bytes(16)]},
                                                "unspecified"),
    ({"origin": ["a", "224.0.0.1", 9, bytes(16)]}, "multicast"),
    ({"topics": [f"t{i}" for i in range(5000)]}, "at most 1024"),
])
def test_malformed_floods_are_refused_and_counted(victim: Any, over: dict[str, Any],
                                                  word: str) -> None:
    tn, _attacker, ask = victim
    with pytest.raises(RemoteRequestFailed, match=word):
        ask("topics.discover", flood(tn, **over))
    assert tn.stats()["flood_malformed"] == 1
    still_serves(tn)


def test_huge_ttl_is_clamped_and_own_origin_dropped(victim: Any) -> None:
    tn, _attacker, ask = victim
    assert ask("topics.discover", flood(tn, ttl=10**9)) is True
    assert tn.stats()["flood_ttl_clamped"] == 1
    me = ["victim", tn.location.addr, tn.location.port, tn.node.incarnation]
    assert ask("topics.discover", flood(tn, origin=me)) is False
    assert tn.stats()["flood_dropped"] == 1


def test_a_flood_storm_is_rate_limited_and_logged_once(victim: Any,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    tn, _attacker, ask = victim
    with caplog.at_level(logging.WARNING, logger="pycos.topics"):
        answers = [ask("topics.discover", flood(tn)) for _ in range(40)]
    assert answers[:8] == [True] * 8 and not any(answers[8:])
    stats = tn.stats()
    assert stats["floods"] == 8 and stats["flood_dropped"] == 32 and stats["flood_dials"] == 0
    lines = [r for r in caplog.records if "floods a minute" in r.getMessage()]
    assert len(lines) == 1  # one line, the rest counted
    still_serves(tn)


def test_a_flood_for_a_shared_topic_dials_its_origin_once(victim: Any) -> None:
    tn, _attacker, ask = victim
    lure = TopicNode(["B"], name="lure", secret="s", run=False)
    try:
        origin = ["lure", lure.location.addr, lure.location.port, lure.node.incarnation]
        fid = os.urandom(16)
        assert ask("topics.discover", flood(tn, origin=origin, topics=["B"], id=fid))
        assert ask("topics.discover", flood(tn, origin=origin, topics=["B"]))
        deadline = time.monotonic() + 5
        while not tn.is_connected_to(lure) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert tn.is_connected_to(lure) and tn.stats()["flood_dials"] == 1
    finally:
        lure.close()


def test_malformed_interest_and_pair_messages(victim: Any) -> None:
    tn, _attacker, ask = victim
    many = {f"t{i}": pycos.Channel("x") for i in range(5000)}
    for value, word in (({"v": 1, "name": "a", "topics": many}, "at most 1024"),
                        ({"v": 1, "name": "a", "topics": {"B": 5}}, "without a channel"),
                        ({"v": 9}, "version"), ([1, 2], "not a dict")):
        with pytest.raises(RemoteRequestFailed, match=word):
            ask("topics.interest", value)
    with pytest.raises(RemoteRequestFailed, match="payload is bytes"):
        ask("topics.interest", {"not": "packed"}, raw=True)
    with pytest.raises(RemoteRequestFailed, match="undecodable"):
        ask("topics.pair", b"\x80\x05garbage", raw=True)
    with pytest.raises(RemoteRequestFailed, match="unknown pair operation"):
        ask("topics.pair", {"v": 1, "op": "steal", "topic": "B"})
    assert ask("topics.pair", {"v": 1, "op": "pair", "topic": "B"}) is False  # no interest
    stats = tn.stats()
    assert stats["interest_malformed"] == 5 and stats["pair_malformed"] == 2
    with pytest.raises(RemoteRequestFailed, match="path"):
        ask("topics.info", {"v": 1, "path": [["127.0.0.1", 1]] * 20})
    still_serves(tn)


def test_messages_of_the_wrong_shape_and_a_raising_deserializer(victim: Any) -> None:
    tn, attacker, _ask = victim

    def boom(data: bytes) -> Any:
        raise RuntimeError("cannot decode")

    picky = TopicNode(["B"], name="picky", secret="s", deserializer=boom)
    try:
        chan = picky.delivery.channel("B")
        got: list[Any] = []
        subscribed = threading.Event()

        def reader(task: Any = None) -> Any:
            picky.subscribe("B", task)
            subscribed.set()
            got.append((yield task.receive(timeout=0.5)))

        task = pycos.Task(reader)
        assert subscribed.wait(5)  # the bad messages below find a subscriber
        for bad in ("junk", ("B", 1), ("B", b"x", "o", "seq", 1.0), ("C", b"x", "o", 1, 1.0),
                    ("B", "not bytes", "o", 1, 1.0), ("B", b"raises", "o", 1, 1.0)):
            chan.send(bad)
        task.value(timeout=5)
        assert got == [None]  # nothing reached the subscriber
        stats = picky.stats()
        assert stats["topic_malformed"] == 4 and stats["topic_decode_errors"] == 2
        assert picky.publish("B", b"fine") == 1  # and it goes on
    finally:
        picky.close()


def test_bad_datagrams_are_dropped_and_counted(victim: Any) -> None:
    tn, _attacker, _ask = victim
    peer = TopicNode(["B"], name="dgpeer", secret="s", datagram=True)
    try:
        peer.connect(tn)
        assert peer.wait_paired("B", 5) and tn.wait_paired("B", 5)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not all(
                e.key_out for e in peer.mesh.entries.values()):
            time.sleep(0.01)
        entry = peer.mesh.entries[tn.node.incarnation]
        from pycos.proto.codec import encode

        body = bytes(encode(("B", "hi", 1, 1.0)))
        good = seal(entry.key_out, peer.node.incarnation, 1, body)
        dest = (tn.location.addr, tn.datagram_port)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as stranger:
            stranger.sendto(good, dest)  # right MAC, unknown address
        tampered = bytearray(seal(entry.key_out, peer.node.incarnation, 2, body))
        tampered[HEADER.size] ^= 1
        peer.datagrams.sock.sendto(bytes(tampered), dest)  # type: ignore[union-attr]
        peer.datagrams.sock.sendto(good, dest)  # type: ignore[union-attr]
        peer.datagrams.sock.sendto(good, dest)  # type: ignore[union-attr]  (replayed)
        peer.datagrams.sock.sendto(b"x" * 3000, dest)  # type: ignore[union-attr]
        peer.datagrams.sock.sendto(b"short", dest)  # type: ignore[union-attr]
        def counts() -> tuple[int, ...]:
            s = tn.stats()
            return (s["datagram_unknown"], s["datagram_bad_mac"], s["datagram_replayed"],
                    s["datagrams_received"], s["datagram_malformed"] + s["datagram_oversize"])

        deadline = time.monotonic() + 5  # every datagram counted, the last two included
        while time.monotonic() < deadline and counts() != (1, 1, 1, 1, 2):
            time.sleep(0.01)
        assert counts() == (1, 1, 1, 1, 2), tn.stats()
    finally:
        peer.close()
    still_serves(tn)


def test_bad_arguments_are_clear_errors(victim: Any) -> None:
    tn, _attacker, _ask = victim
    with pytest.raises(ValueError, match="on_pair must be one of"):
        tn.discovery(on_pair="maybe")
    with pytest.raises(ValueError, match=">= 0"):
        tn.discovery(timeout=-1)
    with pytest.raises(ValueError, match=">= 0"):
        tn.wait_paired("B", timeout=-0.5)
    with pytest.raises(TypeError):
        tn.discovery(timeout="soon")
    with pytest.raises(ValueError, match="ttl"):
        TopicNode(["B"], name="x", ttl=0)
    with pytest.raises(ValueError, match="at most 1024"):
        TopicNode([f"t{i}" for i in range(1025)], name="x")
    with pytest.raises(ValueError, match="control"):
        tn.join("a\x1b[2J")
    with pytest.raises(TypeError, match="unexpected"):
        TopicNode(["B"], name="x", colour="red")
