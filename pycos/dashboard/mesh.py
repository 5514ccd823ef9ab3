"""The mesh around a node, as the dashboard draws it.

Owns ``walk`` (use with yield, in a task on the node's scheduler): the node describes itself
(its topic node's description when it has one, else ``node.describe()``), then asks each peer
for its ``node_info`` — and for its ``topics.info`` only when that peer says it serves it, so a
plain node is never sent a request it does not know — and builds a
``pycos.topics.NetworkGraph`` of the node, its peers and the peers' own peers (seen as their
links' ends). Each peer has ``timeout`` seconds to answer; one that does not is drawn from what
the others say of it. No new connection is made. Imports the standard library, ``pycos.net``
(L4) and ``pycos.topics`` (L5).
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

from ..topics.graph import NetworkGraph, info_from_describe
from ..topics.wire import pack, unpack

__all__ = ["walk", "describe_peer", "MAX_PEERS"]

#: Most peers asked in one walk.
MAX_PEERS = 256


def describe_peer(node: Any, loc: Any, timeout: float) -> Generator[Any, Any, Any]:
    """Use with yield: the graph description of the peer at ``loc``, or None."""
    try:
        desc = yield node.request(loc, "node_info", None, timeout)
    except Exception:  # noqa: BLE001 - gone, slow or refusing: described by the others
        return None
    if isinstance(desc, dict) and "topics.info" in (desc.get("features") or ()):
        try:
            reply = yield node.request(loc, "topics.info", pack(node, {"v": 1, "path": []}),
                                       timeout)
            info = unpack(node, reply)
        except Exception:  # noqa: BLE001 - fall back on its node_info
            info = None
        if isinstance(info, dict):
            return info
    return info_from_describe(desc)


def walk(node: Any, topic_node: Any, timeout: float) -> Generator[Any, Any, NetworkGraph]:
    """Use with yield (a task on the node's scheduler): the ``NetworkGraph`` around ``node``
    (``topic_node``: its ``TopicNode``, or None)."""
    mine = topic_node.info() if topic_node is not None else info_from_describe(node.describe())
    infos = [mine]
    peers = [p for p in list(node.peers.by_inc.values()) if not p.hidden][:MAX_PEERS]
    for peer in peers:
        info = yield from describe_peer(node, peer.location, timeout)
        if info is not None:
            infos.append(info)
    return NetworkGraph.from_infos(infos)
