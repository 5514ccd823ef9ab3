"""The operations of a topic node that wait for the network: discovery, deliver, waiting.

Owns the generators behind ``TopicNode.discovery`` (flood for the topics not yet paired, wait
until each is paired or the timeout passes — then it counts as *paired alone* —, and with
``on_pair="disconnect"`` close the links to the starting nodes that are not pairs),
``TopicNode.wait_paired`` and ``TopicNode.deliver``. They run as tasks on the node's scheduler
(``yield`` in a task, a blocking call elsewhere: ``TopicNode`` wraps them with
``yield_or_block``). Imports the standard library, ``pycos.core``, ``pycos.errors``,
``pycos.net`` and its own package.
"""

from __future__ import annotations

import os
from collections.abc import Generator
from typing import Any

from ..core import lowlevel
from ..errors import PeerLost
from ._protocol import Flood
from .wire import pack

__all__ = ["discovery", "wait_paired", "deliver", "send_flood", "FIRST_RETRY"]

#: Seconds before a discovery floods again for topics still unpaired (doubling each time).
FIRST_RETRY = 0.5


def send_flood(tn: Any, topics: list[str]) -> int:
    """Flood a discovery for ``topics`` to every peer that may be a topic node; how many. A
    root answers with referrals to the nodes that met there and left (``Mesh.send_flood``)."""
    mesh = tn.mesh
    loc = tn.node.location
    flood = Flood(os.urandom(16), tn.name, loc.addr, loc.port, tn.node.incarnation,
                  tuple(topics), tn.ttl, (tn.name,))
    wire = pack(tn.node, flood.to_wire())
    sent = 0
    for inc, entry in list(mesh.entries.items()):
        if entry.topic_node is False:
            continue
        lowlevel.spawn_daemon(mesh.send_flood, inc, wire)
        sent += 1
    tn.stats_counters["floods_sent"] += sent
    return sent


def discovery(tn: Any, start: Any, on_pair: str, timeout: float) -> Generator[Any, Any, Any]:
    """See ``TopicNode.discovery``."""
    node = tn.node
    mesh = tn.mesh
    if start is not None:
        loc = tn.location_of(start)
        if (yield node.peer(loc)) != 0:
            raise PeerLost(f"discovery cannot start from {loc!r}: it cannot be reached")
        starting = {loc}
    else:
        starting = set(node.peers_list())
    if tn.root or not tn.started:
        return tn.pairs_dict()
    deadline = node.now() + timeout
    retry_at = node.now()
    interval = FIRST_RETRY
    while True:
        unpaired = [t for t in sorted(mesh.pairing.topics) if not mesh.is_paired(t)]
        if not unpaired:
            break
        now = node.now()
        if now >= deadline:
            mesh.alone.update(unpaired)
            mesh.changed()
            break
        if now >= retry_at:
            send_flood(tn, unpaired)
            retry_at = now + interval
            interval *= 2
        yield mesh.wait_change(max(0.0, min(deadline, retry_at) - now))
    if on_pair == "disconnect":
        topics = mesh.pairing.topics
        if topics and all(mesh.pairing.is_paired(t) for t in topics):
            partners = {loc for t in topics for loc in mesh.pairs(t, confirmed=False)}
            for loc in sorted(starting - partners):
                if loc in node.peers_list():
                    yield node.close_peer(loc)
    return tn.pairs_dict()


def wait_paired(tn: Any, topics: list[str], timeout: float | None
                ) -> Generator[Any, Any, bool]:
    """See ``TopicNode.wait_paired``."""
    mesh = tn.mesh
    node = tn.node
    deadline = None if timeout is None else node.now() + timeout
    while True:
        if all(mesh.is_paired(t) for t in topics):
            return True
        left = None if deadline is None else deadline - node.now()
        if left is not None and left <= 0:
            return False
        yield mesh.wait_change(left)


def deliver(tn: Any, topic: str, data: Any, timeout: float | None,
            n: int) -> Generator[Any, Any, int]:
    """See ``TopicNode.deliver``."""
    mesh = tn.mesh
    node = tn.node
    deadline = None if timeout is None else node.now() + timeout
    while 1 + len(mesh.targets(topic)) < n:
        left = None if deadline is None else deadline - node.now()
        if left is not None and left <= 0:
            return 0
        yield mesh.wait_change(left)
    wire = tn.delivery.wire(topic, data)
    local = wire
    if len(wire) == 9:
        tn.delivery.dedup.seen((wire[5], wire[3]))
        local = wire[:5]
    count = 0
    chan = tn.delivery.chans.get(topic)
    if chan is not None:
        count += (yield chan.deliver(local, timeout)) or 0
    for _inc, _name, ref in list(mesh.targets(topic)):
        left = None if deadline is None else max(0.0, deadline - node.now())
        reached = yield ref.deliver(wire, left)
        if isinstance(reached, int) and reached > 0:
            count += reached
    return count
