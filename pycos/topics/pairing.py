"""Who pairs with whom, per topic: the pairing state machine of one node, sans-IO.

Owns ``Pairing``: this node's topics, what it knows of its peers (their topics, root, measured
SRTT), its pairs per topic (confirmed or not), the pair requests it has in flight and the
peers that refused it. Inputs are events (``set_topics``, ``peer_interest``, ``peer_down``,
``on_request`` …); outputs are actions for the caller to carry out on the network:
``("pair", peer, topic)``, ``("confirm", peer, topic)``, ``("unpair", peer, topic)`` and
``("announce",)`` (send this node's interest to every peer again). Imports only the standard
library.

Rules (EXTRAS §3.1):

* preference: without relay, the interested peers by ascending SRTT (unmeasured last, ties by
  key); with relay, a ring of the interested nodes ordered by key (successor, predecessor,
  second successor …), so that the pairs of a group larger than the cap stay connected and
  gossip reaches everyone;
* a node asks its preferred peers in order while its pairs plus requests in flight are under
  ``cap``; a root or ``paired=True`` node (``seeking=False``) only accepts;
* a request is accepted when the topic is shared and the node has room (a root always has);
  with relay, a peer ranked above the worst current pair is accepted by dropping that one;
* a node never pairs with itself and never holds more than ``cap`` pairs (root excepted);
* the asker records the pair when the answer comes and confirms it; the accepting side counts
  the pair as made once confirmed (``paired``), so that when either side says "paired" the other
  already sends to it.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Pairing", "PeerView", "Action"]

Action = tuple[Any, ...]
Key = Hashable


@dataclass
class PeerView:
    """What this node knows of one peer."""

    topics: frozenset[str] = frozenset()
    root: bool = False
    srtt: float | None = None


@dataclass
class Pairing:
    """The pairing state of one node.

    Args:
        me: this node's key (its incarnation), comparable with the peers' keys.
        cap: most pairs per topic (``max_connections``).
        root: a rendezvous node: accepts beyond ``cap``, never asks.
        seeking: False for ``paired=True`` nodes: they accept but never ask.
        relay: order preferences as a ring (see the module docstring).
    """

    me: Key
    cap: int
    root: bool = False
    seeking: bool = True
    relay: bool = False
    topics: frozenset[str] = frozenset()
    peers: dict[Key, PeerView] = field(default_factory=dict)
    #: topic -> {peer: confirmed}
    pairs: dict[str, dict[Key, bool]] = field(default_factory=dict)
    pending: dict[str, set[Key]] = field(default_factory=dict)
    refused: dict[str, set[Key]] = field(default_factory=dict)

    # ------------------------------------------------------------------ queries
    def interested(self, topic: str) -> list[Key]:
        """Peers that subscribe to ``topic``."""
        return [k for k, v in self.peers.items() if topic in v.topics and k != self.me]

    def preference(self, topic: str) -> list[Key]:
        """Interested peers, best first."""
        keys = self.interested(topic)
        if not self.relay:
            inf = float("inf")
            return sorted(keys, key=lambda k: (inf if self.peers[k].srtt is None
                                               else self.peers[k].srtt, _order(k)))
        ring = sorted([*keys, self.me], key=_order)
        i = ring.index(self.me)
        n = len(ring)
        out: list[Key] = []
        for step in range(1, n):
            for j in ((i + step) % n, (i - step) % n):
                k = ring[j]
                if k != self.me and k not in out:
                    out.append(k)
        return out

    def partners(self, topic: str) -> list[Key]:
        """Peers paired on ``topic`` (confirmed or not): where its messages go."""
        return list(self.pairs.get(topic, ()))

    def confirmed(self, topic: str) -> list[Key]:
        """Peers whose pair on ``topic`` is confirmed."""
        return [k for k, ok in self.pairs.get(topic, {}).items() if ok]

    def is_paired(self, topic: str) -> bool:
        """True when ``topic`` has a confirmed pair."""
        return any(self.pairs.get(topic, {}).values())

    def room(self, topic: str) -> bool:
        """True when one more pair (or request) fits under the cap."""
        if self.root:
            return True
        used = len(self.pairs.get(topic, ())) + len(self.pending.get(topic, ()))
        return used < self.cap

    def below_cap(self, topic: str) -> bool:
        """True when ``topic``'s pairs (confirmed or not) are under the cap, requests in
        flight aside: they may yet be refused, so a newly found interested node is worth
        meeting (a flood's origin is dialed; pairing then decides)."""
        return self.root or len(self.pairs.get(topic, ())) < self.cap

    def free(self, topic: str) -> int:
        """How many more pairs (or requests) fit under the cap on ``topic`` (0 for a topic
        this node does not subscribe to; a root has no cap)."""
        if topic not in self.topics:
            return 0
        if self.root:
            return 1 << 16
        used = len(self.pairs.get(topic, ())) + len(self.pending.get(topic, ()))
        return max(0, self.cap - used)

    def truncated(self, topic: str) -> int:
        """How many interested peers the cap leaves out (0 when all fit)."""
        return max(0, len(self.interested(topic)) - self.cap) if not self.root else 0

    # ------------------------------------------------------------------ events
    def set_topics(self, topics: Iterable[str]) -> list[Action]:
        """This node's subscriptions changed: unpair left topics, seek new ones."""
        self.topics = frozenset(topics)
        actions: list[Action] = []
        for topic in list(self.pairs):
            if topic not in self.topics:
                for peer in self.pairs.pop(topic):
                    actions.append(("unpair", peer, topic))
        for topic in list(self.pending):
            if topic not in self.topics:
                del self.pending[topic]
        self.refused = {t: s for t, s in self.refused.items() if t in self.topics}
        return actions + self.evaluate()

    def peer_interest(self, peer: Key, topics: Iterable[str], root: bool = False
                      ) -> list[Action]:
        """A peer told its topics (on Online, and whenever they change)."""
        if peer == self.me:
            return []
        view = self.peers.setdefault(peer, PeerView())
        view.topics = frozenset(topics)
        view.root = root
        actions: list[Action] = []
        for topic, pairs in self.pairs.items():
            if peer in pairs and topic not in view.topics:
                del pairs[peer]
                actions += self._lost(topic)
        for refused in self.refused.values():
            refused.discard(peer)
        return actions + self.evaluate()

    def set_rtt(self, peer: Key, srtt: float | None) -> None:
        """A measured SRTT of ``peer`` (orders later choices)."""
        view = self.peers.get(peer)
        if view is not None:
            view.srtt = srtt

    def peer_down(self, peer: Key) -> list[Action]:
        """``peer`` went Offline: its pairs and requests are gone."""
        self.peers.pop(peer, None)
        actions: list[Action] = []
        for topic, pairs in self.pairs.items():
            if pairs.pop(peer, None) is not None:
                actions += self._lost(topic)
        for pending in self.pending.values():
            pending.discard(peer)
        for refused in self.refused.values():
            refused.discard(peer)
        return actions + self.evaluate()

    def on_request(self, peer: Key, topic: str) -> tuple[bool, list[Action]]:
        """``peer`` asks to pair on ``topic``: (accepted, actions)."""
        if peer == self.me or topic not in self.topics:
            return False, []
        view = self.peers.get(peer)
        if view is None or topic not in view.topics:
            return False, []
        pairs = self.pairs.setdefault(topic, {})
        if peer in pairs:
            return True, []
        actions: list[Action] = []
        pending = self.pending.get(topic, set())
        if peer in pending:  # both asked at once: this answer settles it
            pending.discard(peer)
        elif not self.room(topic):
            victim = self._worse_than(topic, peer)
            if victim is None:
                return False, []
            del pairs[victim]
            actions.append(("unpair", victim, topic))
        pairs[peer] = False
        return True, actions

    def on_reply(self, peer: Key, topic: str, accepted: bool) -> list[Action]:
        """The answer of ``peer`` to this node's request (also when both asked at once and
        this node already accepted the peer's request: the pair is then confirmed here)."""
        pending = self.pending.get(topic, set())
        asked = peer in pending
        pending.discard(peer)
        pairs = self.pairs.get(topic, {})
        if not accepted:
            if asked:
                self.refused.setdefault(topic, set()).add(peer)
                return self.evaluate()
            return []
        if topic not in self.topics or peer not in self.peers or not (asked or peer in pairs):
            pairs.pop(peer, None)
            return [("unpair", peer, topic)]
        self.pairs.setdefault(topic, {})[peer] = True
        return [("confirm", peer, topic)]

    def on_confirm(self, peer: Key, topic: str) -> list[Action]:
        """``peer`` recorded the pair this node accepted."""
        pairs = self.pairs.get(topic, {})
        if peer not in pairs:
            return [("unpair", peer, topic)]
        pairs[peer] = True
        return []

    def on_unpair(self, peer: Key, topic: str) -> list[Action]:
        """``peer`` dropped its pair on ``topic``."""
        pairs = self.pairs.get(topic, {})
        self.pending.get(topic, set()).discard(peer)
        if pairs.pop(peer, None) is None:
            return self.evaluate()
        self.refused.setdefault(topic, set()).add(peer)
        return self._lost(topic)

    def request_failed(self, peer: Key, topic: str) -> list[Action]:
        """A request could not be sent or answered (the peer is going)."""
        self.pending.get(topic, set()).discard(peer)
        self.refused.setdefault(topic, set()).add(peer)
        return self.evaluate()

    # ------------------------------------------------------------------ choices
    def evaluate(self) -> list[Action]:
        """Requests for every topic with room, in preference order."""
        if not self.seeking or self.root:
            return []
        actions: list[Action] = []
        for topic in sorted(self.topics):
            pairs = self.pairs.setdefault(topic, {})
            pending = self.pending.setdefault(topic, set())
            refused = self.refused.get(topic, set())
            for peer in self.preference(topic):
                if not self.room(topic):
                    break
                if peer in pairs or peer in pending or peer in refused:
                    continue
                pending.add(peer)
                actions.append(("pair", peer, topic))
        return actions

    def _lost(self, topic: str) -> list[Action]:
        """A pair on ``topic`` went: tell the peers this node has room, seek again."""
        return [("announce",), *self.evaluate()]

    def _worse_than(self, topic: str, peer: Key) -> Key | None:
        """With relay: the current pair ranked below ``peer`` to make room for it."""
        if not self.relay:
            return None
        order = self.preference(topic)
        if peer not in order:
            return None
        rank = order.index(peer)
        worst = max(self.pairs.get(topic, {}), key=lambda k: order.index(k) if k in order
                    else len(order), default=None)
        if worst is None:
            return None
        worst_rank = order.index(worst) if worst in order else len(order)
        return worst if worst_rank > rank else None


def _order(key: Key) -> Any:
    """Keys sort by their bytes or text (incarnations are bytes)."""
    return key if isinstance(key, bytes | str | int) else repr(key)
