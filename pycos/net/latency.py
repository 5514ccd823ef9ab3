"""Round-trip times to peers: ``Latency`` and the RFC 6298 estimator behind it.

Owns ``RttEstimator`` (smoothed RTT and its variation, alpha 1/8 and beta 1/4 as RFC 6298
section 2 gives them, plus minimum, maximum, last sample and count) and ``Latency``, the
snapshot ``node.latency()`` returns. The node feeds it from ``ping`` requests: the ones a program
makes with ``node.ping`` and the ones its sampler sends every ``latency_interval`` seconds
(jittered by a factor of 1 to 1.5, so peers do not ping in step; ``Sampler``). The estimator is
pure arithmetic; the sampler imports ``pycos.core.lowlevel`` and its own package.
"""

from __future__ import annotations

import random
from typing import Any, NamedTuple

from ..core import lowlevel
from .pending import Pending

__all__ = ["Latency", "RttEstimator", "Sampler", "record", "ALPHA", "BETA"]

#: RFC 6298's gains for the smoothed RTT and its variation.
ALPHA = 1 / 8
BETA = 1 / 4


class Latency(NamedTuple):
    """Round-trip times to one peer, in seconds: ``srtt`` (smoothed), ``rttvar`` (its
    variation), ``min``, ``max``, ``last`` and the number of ``samples``."""

    srtt: float
    rttvar: float
    min: float
    max: float
    last: float
    samples: int


class RttEstimator:
    """RFC 6298's estimator of one peer's round-trip time."""

    __slots__ = ("srtt", "rttvar", "low", "high", "last", "samples")

    def __init__(self) -> None:
        self.srtt = self.rttvar = self.low = self.high = self.last = 0.0
        self.samples = 0

    def add(self, rtt: float) -> None:
        """Take one measured round trip (seconds, >= 0)."""
        if rtt < 0:
            raise ValueError(f"a round-trip time cannot be negative, got {rtt}")
        if self.samples == 0:
            self.srtt, self.rttvar = rtt, rtt / 2
            self.low = self.high = rtt
        else:
            self.rttvar = (1 - BETA) * self.rttvar + BETA * abs(self.srtt - rtt)
            self.srtt = (1 - ALPHA) * self.srtt + ALPHA * rtt
            self.low = min(self.low, rtt)
            self.high = max(self.high, rtt)
        self.last = rtt
        self.samples += 1

    def snapshot(self) -> Latency | None:
        """The current figures, or None before the first sample."""
        if not self.samples:
            return None
        return Latency(self.srtt, self.rttvar, self.low, self.high, self.last, self.samples)


class Sampler:
    """Measures every peer's round trip every ``latency_interval`` seconds (times a random
    factor of 1 to 1.5) with a ``ping`` request; a daemon task on the node's scheduler."""

    def __init__(self, node: Any) -> None:
        self.node = node
        #: the ping in flight to each peer incarnation: at most one, so a peer that keeps its
        #: heartbeat but never answers cannot fill the link's table of pending requests
        self.in_flight: dict[bytes, Pending] = {}

    def start(self) -> None:
        """Start sampling (node's scheduler thread); nothing when the interval is 0."""
        if self.node.config.latency_interval > 0:
            lowlevel.spawn_daemon(self._loop)

    def _loop(self, task: Any = None) -> Any:
        node = self.node
        interval = node.config.latency_interval
        while not node.stopping:
            yield task.sleep(interval * random.uniform(1.0, 1.5))
            self.round()

    def round(self) -> None:
        """Ping every peer that has no ping of this sampler still in flight."""
        peers = dict(self.node.peers.by_inc)
        for inc in [inc for inc in self.in_flight if inc not in peers]:
            del self.in_flight[inc]  # gone: its link failed what it had pending
        for inc, peer in peers.items():
            waiting = self.in_flight.get(inc)
            if waiting is None or waiting.done:
                self.in_flight[inc] = self.sample(peer)

    def sample(self, peer: Any) -> Pending:
        """Send one ping to ``peer`` and record its round trip when the answer comes; the
        request's ``Pending``."""
        node = self.node
        start = node.now()
        pending = Pending(node.config.peer_timeout * 4, None)

        def answered(done: Pending) -> None:
            try:
                if done.result() == b"":
                    record(peer, node.now() - start)
            except Exception:  # noqa: BLE001 - a lost or slow peer: no sample
                pass

        pending.add_callback(answered)
        try:
            peer.link.request("ping", b"", pending)
        except Exception as exc:  # noqa: BLE001 - the link is going away
            pending.fail(exc)
        return pending


def record(peer: Any, rtt: float) -> None:
    """Add one round trip to ``peer``'s estimator (made on its first sample)."""
    estimator = peer.rtt
    if estimator is None:
        estimator = peer.rtt = RttEstimator()
    estimator.add(rtt)
