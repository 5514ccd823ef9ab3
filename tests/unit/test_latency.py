"""Round-trip times (EXTRAS §1.4): the RFC 6298 estimator, the sampler on a virtual clock,
``ping`` and ``latency`` between two nodes of one process."""

from __future__ import annotations

import time
from typing import Any

import pytest

import pycos
import pycos.netpycos
from pycos.net.latency import ALPHA, BETA, Latency, RttEstimator


def test_first_sample_then_rfc6298_updates() -> None:
    est = RttEstimator()
    assert est.snapshot() is None
    est.add(0.100)
    assert est.snapshot() == Latency(0.100, 0.050, 0.100, 0.100, 0.100, 1)
    est.add(0.200)
    rttvar = (1 - BETA) * 0.050 + BETA * abs(0.100 - 0.200)
    srtt = (1 - ALPHA) * 0.100 + ALPHA * 0.200
    figures = est.snapshot()
    assert figures is not None
    assert figures.srtt == pytest.approx(srtt) and figures.rttvar == pytest.approx(rttvar)
    assert (figures.min, figures.max, figures.last, figures.samples) == (0.1, 0.2, 0.2, 2)
    with pytest.raises(ValueError):
        est.add(-1.0)


def test_a_steady_rtt_converges_and_its_variation_decays() -> None:
    est = RttEstimator()
    est.add(1.0)
    for _ in range(100):
        est.add(0.010)
    figures = est.snapshot()
    assert figures is not None
    assert figures.srtt == pytest.approx(0.010, rel=1e-3) and figures.rttvar < 1e-4


@pytest.fixture
def pair(node_pair: Any) -> Any:
    return node_pair(heartbeat_interval=1.0, latency_interval=2.0)


def test_the_sampler_measures_every_peer_on_its_own(pair: Any) -> None:
    sched, a, b, clock = pair
    assert a.latency(pycos.netpycos.Location("127.0.0.1", 1)) is None  # not a peer
    t0 = clock.time()
    before = a.latency(b.location)
    start = before.samples if before is not None else 0

    def nap(task: Any = None) -> Any:
        yield task.sleep(20)  # virtual seconds: several sampling rounds (2 to 3 s apart)

    pycos.Task(nap).value(timeout=20)
    figures = a.latency(b.location)
    elapsed = clock.time() - t0  # >= 20 (virtual time also moves while this thread runs)
    assert isinstance(figures, Latency)
    assert elapsed / 3 - 1 <= figures.samples - start <= elapsed / 2 + 1  # one each 2-3 s
    assert set(a.latency()) == {b.location} and b.latency(a.location) is not None
    info = a.describe()
    assert [(name, loc) for name, loc, _srtt in info["peers"]] == [("B", b.location)]
    assert info["peers"][0][2] == figures.srtt and info["started"] <= time.time()


def test_ping_yield_or_block(pair: Any) -> None:
    sched, a, b, clock = pair

    def in_task(task: Any = None) -> Any:
        return (yield a.ping(b.location, size=1000, count=3))

    assert pycos.Task(in_task).value(timeout=10) >= 0
    assert a.ping(b.location, 10) >= 0  # plain code blocks for it
    assert a.latency(b.location).samples >= 4
    with pytest.raises(ValueError, match="ping count"):
        a.ping(b.location, count=0)


def test_the_sampler_keeps_one_ping_in_flight_per_peer() -> None:
    """A peer that keeps its heartbeat but never answers pings gets one ping, not one per
    round (they would fill its link's table of pending requests); a new one once it answers;
    nothing kept for a peer that left."""
    from types import SimpleNamespace

    from pycos.net.latency import Sampler

    sent: list[Any] = []
    link = SimpleNamespace(request=lambda kind, payload, pending: sent.append(pending))
    peer = SimpleNamespace(link=link, rtt=None)
    node = SimpleNamespace(peers=SimpleNamespace(by_inc={b"p": peer}), now=lambda: 0.0,
                           config=SimpleNamespace(peer_timeout=1.0))
    sampler = Sampler(node)
    for _ in range(3):
        sampler.round()
    assert len(sent) == 1
    sent[0].resolve(b"")  # answered
    assert peer.rtt is not None and peer.rtt.samples == 1
    sampler.round()
    assert len(sent) == 2
    node.peers.by_inc = {}
    sampler.round()
    assert sampler.in_flight == {} and len(sent) == 2
