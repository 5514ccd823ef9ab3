"""Topic messages on one node: the channel per topic, what arrives on it, publishing, relay.

Owns ``TopicMessage`` (what a subscriber receives), ``Delivery`` (a local ``Channel`` per
subscribed topic — the end point peers send that topic's messages to —, the transform that
checks every arriving message, applies the ``deserializer`` and de-duplicates and forwards in
relay mode, and ``publish``: the local channel plus one channel send per paired peer, riding
the batched CSEND records of the link) and ``RawSubscriber`` (``subscribe(..., raw=True)``).
Imports the standard library, ``pycos.channel``, ``pycos.net.limits`` and its own package.
Runs on the node's scheduler thread (``publish`` also from plain threads: channel sends are
thread-safe).

Wire form of a message (a tuple, data-only): ``(topic, data, origin name, seq, timestamp)``;
in relay mode four more fields: ``(origin incarnation, ttl, origin Location, sender name)``.
"""

from __future__ import annotations

import itertools
import logging
import time
from typing import Any, NamedTuple

from ..channel import Channel
from ..core.lowlevel import Trap
from ..net.limits import RateLog, escape
from ..net.pending import Pending
from ._protocol import Dedup
from .limits import DEDUP_ENTRIES, MAX_TTL

__all__ = ["TopicMessage", "Delivery", "RawSubscriber", "Published"]

logger = logging.getLogger("pycos.topics")


class TopicMessage(NamedTuple):
    """A message on a topic, as a subscriber receives it: ``topic``; ``data``, the published
    value (after the node's ``deserializer``, if any); ``origin``, the name of the node that
    published it; ``location``, that node's ``Location`` (None when it is not known here);
    ``seq``, the publisher's sequence number (increasing per publisher); ``timestamp``, the
    publisher's wall-clock time of publishing (``time.time()``)."""

    topic: str
    data: Any
    origin: str
    location: Any
    seq: int
    timestamp: float


class Published(int, Trap):
    """What ``publish`` returns while a paired node's link is congested: the count, and, when
    a task yields it, a wait until that link has drained (the yield's value is the count)."""

    _what = "tn.publish()"
    _names = ("publish",)
    congested: Any

    def __new__(cls, count: int, congested: Any) -> Published:
        obj = int.__new__(cls, count)
        obj.congested = congested
        return obj

    def _apply(self, sched: Any, task: Any) -> Any:
        link = getattr(self.congested, "link", None)
        if link is None or not link.congested:
            return int(self)
        done = Pending(None, int(self))
        link.wait_drained(None).add_callback(lambda _p: done.resolve(int(self)))
        return done._apply(sched, task)


class RawSubscriber:
    """Subscriber adapter: hands a task only the ``data`` of each message."""

    __slots__ = ("task",)

    def __init__(self, task: Any) -> None:
        self.task = task

    def send(self, msg: Any) -> int:
        return int(self.task.send(msg.data))

    def is_alive(self) -> bool:
        return bool(self.task.is_alive())

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RawSubscriber) and other.task == self.task

    def __hash__(self) -> int:
        return hash(("raw", self.task))


class Delivery:
    """The topic channels of one topic node and the path of its messages.

    Args:
        tn: the ``TopicNode``.
    """

    def __init__(self, tn: Any) -> None:
        self.tn = tn
        self.chans: dict[str, Channel] = {}
        self.next_seq = itertools.count(1).__next__
        self.dedup = Dedup(DEDUP_ENTRIES)
        self.stats = tn.stats_counters
        self.log = RateLog(logger, tn.node.now)

    # ------------------------------------------------------------------ channels
    def channel(self, topic: str) -> Channel:
        """The local channel of ``topic`` (made on first use)."""
        chan = self.chans.get(topic)
        if chan is None:
            chan = self.chans[topic] = Channel(f"topic:{topic}", self._transform)
        return chan

    def close(self, topic: str) -> None:
        """``topic`` was left: its channel closes (its subscribers hear nothing more)."""
        chan = self.chans.pop(topic, None)
        if chan is not None:
            chan.close()

    def close_all(self) -> None:
        for topic in list(self.chans):
            self.close(topic)

    # ------------------------------------------------------------------ arriving
    def _bad(self, kind: str, message: str, *args: Any) -> None:
        self.stats[kind] = self.stats.get(kind, 0) + 1
        self.log.event(kind, "topic node %s dropped a message: " + message,
                       escape(self.tn.name, 60), *args)

    def _transform(self, chan_name: str, wire: Any) -> Any:
        """Every message passing through a topic channel (scheduler thread): checked,
        de-duplicated (relay), forwarded (relay), decoded; None drops it."""
        try:
            return self._arrive(chan_name, wire)
        except Exception as exc:  # noqa: BLE001 - a peer's message must never stop the channel
            self._bad("topic_malformed", "%s", escape(repr(exc), 120))
            return None

    def _arrive(self, chan_name: str, wire: Any) -> Any:
        if type(wire) is not tuple or len(wire) not in (5, 9):
            self._bad("topic_malformed", "not a topic message (%s)", type(wire).__name__)
            return None
        topic, data, origin, seq, stamp = wire[:5]
        if (type(topic) is not str or chan_name[6:] != topic or type(origin) is not str
                or type(seq) is not int or type(stamp) is not float):
            self._bad("topic_malformed", "fields of the wrong type or topic")
            return None
        location = None
        if len(wire) == 9:
            inc, ttl, location, via = wire[5:]
            if type(inc) is not bytes or type(ttl) is not int or type(via) is not str:
                self._bad("topic_malformed", "relay fields of the wrong type")
                return None
            if self.dedup.seen((inc, seq)):
                self.stats["relay_duplicates"] += 1
                return None
            if self.tn.relay and 1 < ttl:
                self._forward(topic, wire, min(ttl, MAX_TTL) - 1, via, inc)
        else:
            location = self.tn.mesh.location_of_name(origin)
        deserializer = self.tn.deserializer
        if deserializer is not None:
            if type(data) is not bytes:
                self._bad("topic_decode_errors", "%r: the deserializer needs bytes, got %s",
                          escape(topic, 60), type(data).__name__)
                return None
            try:
                data = deserializer(data)
            except Exception as exc:  # noqa: BLE001 - the user's function; counted and logged
                self._bad("topic_decode_errors", "%r: the deserializer raised %s",
                          escape(topic, 60), escape(repr(exc), 120))
                return None
        self.stats["received"] += 1
        return TopicMessage(topic, data, origin, location, seq, stamp)

    def _forward(self, topic: str, wire: tuple[Any, ...], ttl: int, via: str,
                 inc: bytes) -> None:
        out = (*wire[:6], ttl, wire[7], self.tn.name)
        for peer_inc, name, chan in self.tn.mesh.targets(topic):
            if name == via or peer_inc == inc:
                continue
            try:
                chan.send(out)
                self.stats["relayed"] += 1
            except Exception as exc:  # noqa: BLE001 - a congested or lost peer: skip it
                self._bad("relay_failures", "relay to %s failed: %s", escape(name, 60),
                          escape(repr(exc), 80))

    # ------------------------------------------------------------------ publishing
    def wire(self, topic: str, data: Any) -> tuple[Any, ...]:
        """The wire tuple of a new message of this node on ``topic``."""
        tn = self.tn
        serializer = tn.serializer
        if serializer is not None:
            data = serializer(data)
        seq = self.next_seq()
        stamp = time.time()
        if tn.relay:
            return (topic, data, tn.name, seq, stamp, tn.node.incarnation, tn.ttl,
                    tn.node.location, tn.name)
        return (topic, data, tn.name, seq, stamp)

    def publish(self, topic: str, data: Any) -> int:
        """Send ``data`` on ``topic`` here and to every paired peer; the number of nodes it
        was queued for (this one counts as 1: it subscribes to ``topic``)."""
        tn = self.tn
        if tn.relay:
            wire = self.wire(topic, data)
            self.dedup.seen((wire[5], wire[3]))
            local = wire[:5]
        else:
            if tn.serializer is not None:
                data = tn.serializer(data)
            wire = local = (topic, data, tn.name, self.next_seq(), time.time())
        count = 1
        chan = self.chans.get(topic)
        if chan is not None and chan._subs:  # nobody here listens: no local broadcast
            chan.send(local)
        congested = None
        for _inc, _name, ref in tn.mesh.targets(topic):
            rc = ref.send(wire)
            if rc == 0:
                count += 1
                if rc.__class__ is not int:
                    congested = rc
        self.stats["published"] += 1
        return count if congested is None else Published(count, congested)
