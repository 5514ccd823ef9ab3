"""Topic nodes (seed 001): nodes that find each other and pair by shared topics.

A ``TopicNode`` subscribes to topics; nodes that are peers exchange their interest at once and
pair with the nearest interested peers (by measured round trip) up to ``max_connections``; a
flood with a TTL finds interested nodes that are not peers yet (``discovery``), through any
node, a root or not. Publishing sends a message to this node's subscribers and once to each
paired node, over the node's authenticated links (or, best effort, authenticated UDP
datagrams). ``graph()`` and ``display_graph`` show the mesh (SVG, DOT, JSON). Every networked
call is *yield or block*. See ``doc/topics.rst``.

Layout (layer L5: imports pycos L0–L4 only):

* ``node`` (``TopicNode``: the public API), ``mesh`` (the topic requests, the peer hook,
  pairing actions, floods), ``pairing`` (the pairing state machine, sans-IO), ``discovery``
  (discovery, wait_paired, deliver), ``messages`` (``TopicMessage``, channels, publish,
  relay), ``datagram`` (UDP), ``wire`` (payload encoding per node identity), ``_protocol``
  (message shapes and checks, flood state, datagram frames: sans-IO), ``limits``;
* ``graph`` (``NetworkGraph`` and its exports), ``layout`` (force layout), ``svg`` (drawings),
  ``gather`` (walking the mesh, ``display_graph``).

Threads: a topic node's state lives on its node's scheduler thread; plain calls run their part
there; ``publish`` may be called from any thread.
"""

from ..net.latency import Latency
from .gather import display_graph
from .graph import GraphEdge, GraphNode, NetworkGraph
from .messages import TopicMessage
from .node import TopicNode

__all__ = ["TopicNode", "TopicMessage", "NetworkGraph", "GraphNode", "GraphEdge",
           "display_graph", "Latency"]
