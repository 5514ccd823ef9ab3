"""``NetworkGraph``: the mesh of topic nodes as data, with its exports.

Owns the graph model (``GraphNode``: name, location, topics, root, hidden, paired; ``GraphEdge``:
``link`` or ``pair:<topic>`` with SRTT and jitter), how it is built from the descriptions nodes
give of themselves (``from_infos``: every field of a peer's description is checked, bad entries
are left out), and the exports ``to_dict`` / ``to_json``, ``to_dot``, ``to_svg`` (with
``heatmap_svg`` and ``topics_svg``; drawn by ``svg``), ``_repr_svg_`` (Jupyter) and
``to_networkx``. Everything is sorted, so the same mesh always gives the same bytes. Imports the
standard library and its own package.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["NetworkGraph", "GraphNode", "GraphEdge", "info_from_describe", "node_id"]


def node_id(addr: str, port: int) -> str:
    """The id of the node at ``addr``:``port`` in a graph."""
    return f"[{addr}]:{port}" if ":" in addr else f"{addr}:{port}"


@dataclass(frozen=True, slots=True)
class GraphNode:
    """A node of the mesh. ``gathered`` is False for a node only seen as someone's peer."""

    id: str
    name: str
    addr: str
    port: int
    topics: tuple[str, ...] = ()
    root: bool = False
    hidden: bool = False
    relay: bool = False
    paired: tuple[tuple[str, bool], ...] = ()
    gathered: bool = True


@dataclass(frozen=True, slots=True)
class GraphEdge:
    """A link between two nodes (``kind="link"``) or a pair on a topic (``"pair:<topic>"``);
    ``a`` < ``b``; ``srtt`` and ``jitter`` (RTT variation) in seconds when measured."""

    a: str
    b: str
    kind: str
    srtt: float | None = None
    jitter: float | None = None


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value) if value >= 0 else None


def _text(value: Any, limit: int = 255) -> str | None:
    return value[:limit] if isinstance(value, str) and value else None


def _endpoint(item: Any) -> tuple[str, str, int] | None:
    """(name, addr, port) from ``[name, addr, port, …]``, or None."""
    if not isinstance(item, list | tuple) or len(item) < 3:
        return None
    name, addr, port = _text(item[0]), _text(item[1], 64), item[2]
    if name is None or addr is None or isinstance(port, bool) or not isinstance(port, int):
        return None
    if not 0 < port < 65536:
        return None
    return name, addr, port


def info_from_describe(desc: Any) -> dict[str, Any] | None:
    """A graph description from a plain node's ``node_info`` (``Node.describe()``)."""
    if not isinstance(desc, dict):
        return None
    loc = desc.get("location")
    addr, port = getattr(loc, "addr", None), getattr(loc, "port", None)
    links = []
    for item in desc.get("peers") or ():
        if isinstance(item, list | tuple) and len(item) >= 2:
            peer_loc = item[1]
            links.append([item[0], getattr(peer_loc, "addr", None),
                          getattr(peer_loc, "port", None), item[2] if len(item) > 2 else None,
                          None])
    return {"v": 1, "name": desc.get("name"), "location": [addr, port], "topics": [],
            "root": False, "relay": False, "hidden": bool(desc.get("hidden")), "paired": {},
            "pairs": {}, "links": links}


class NetworkGraph:
    """Nodes and edges of a mesh (see the module docstring).

    Args:
        nodes, edges: the graph's parts (sorted on the way in).
    """

    def __init__(self, nodes: list[GraphNode], edges: list[GraphEdge]) -> None:
        self.nodes: list[GraphNode] = sorted(nodes, key=lambda n: n.id)
        self.edges: list[GraphEdge] = sorted(edges, key=lambda e: (e.kind, e.a, e.b))

    def __repr__(self) -> str:
        pairs = sum(1 for e in self.edges if e.kind != "link")
        links = len(self.edges) - pairs
        return f"<NetworkGraph {len(self.nodes)} nodes, {links} links, {pairs} pairs>"

    # ------------------------------------------------------------------ building
    @classmethod
    def from_infos(cls, infos: list[Any]) -> NetworkGraph:
        """The graph of the nodes described by ``infos`` (``TopicNode.info()`` dicts, also
        from peers: anything malformed is left out)."""
        nodes: dict[str, GraphNode] = {}
        samples: dict[tuple[str, str], list[tuple[float | None, float | None, str]]] = {}
        pairs: dict[tuple[str, str, str], set[str]] = {}
        seen: dict[str, str] = {}

        def known(name: str, addr: str, port: int) -> str:
            nid = node_id(addr, port)
            if nid not in nodes and nid not in seen:
                seen[nid] = name
            return nid

        for info in infos:
            me = _endpoint([info.get("name"), *(info.get("location") or [None, None])[:2]]) \
                if isinstance(info, dict) and isinstance(info.get("location"), list | tuple) \
                else None
            if me is None:
                continue
            topics = tuple(sorted(t for t in info.get("topics") or () if _text(t)))
            paired_in = info.get("paired") if isinstance(info.get("paired"), dict) else {}
            paired = tuple(sorted((t, bool(v)) for t, v in paired_in.items() if _text(t)))
            nid = node_id(me[1], me[2])
            nodes[nid] = GraphNode(nid, me[0], me[1], me[2], topics, info.get("root") is True,
                                   info.get("hidden") is True, info.get("relay") is True,
                                   paired)
            for item in info.get("links") or ():
                other = _endpoint(item)
                if other is None:
                    continue
                oid = known(*other)
                if oid == nid:
                    continue
                srtt = _num(item[3]) if len(item) > 3 else None
                jitter = _num(item[4]) if len(item) > 4 else None
                key = (min(nid, oid), max(nid, oid))
                samples.setdefault(key, []).append((srtt, jitter, nid))
            raw_pairs = info.get("pairs") if isinstance(info.get("pairs"), dict) else {}
            for topic, lst in raw_pairs.items():
                if not _text(topic) or not isinstance(lst, list | tuple):
                    continue
                for item in lst:
                    other = _endpoint(item)
                    if other is not None:
                        oid = known(*other)
                        if oid != nid:
                            pairs.setdefault((min(nid, oid), max(nid, oid), topic),
                                             set()).add(nid)
        gathered = set(nodes)
        for nid, name in seen.items():
            if nid not in nodes:
                addr, _, port = nid.rpartition(":")
                nodes[nid] = GraphNode(nid, name, addr.strip("[]"), int(port), gathered=False)

        def agreed(a: str, b: str, reporters: set[str]) -> bool:
            """Both ends must say so when both were asked (one may not have heard yet that
            the other closed the link)."""
            return not (a in gathered and b in gathered) or reporters >= {a, b}

        edges = []
        rtt: dict[tuple[str, str], tuple[float | None, float | None]] = {}
        for key, values in samples.items():
            if not agreed(key[0], key[1], {r for _, _, r in values}):
                continue
            srtts = [s for s, _, _ in values if s is not None]
            jitters = [j for _, j, _ in values if j is not None]
            rtt[key] = (sum(srtts) / len(srtts) if srtts else None,
                        sum(jitters) / len(jitters) if jitters else None)
            edges.append(GraphEdge(key[0], key[1], "link", *rtt[key]))
        for (a, b, topic), reporters in pairs.items():
            if not agreed(a, b, reporters):
                continue
            edges.append(GraphEdge(a, b, f"pair:{topic}", *rtt.get((a, b), (None, None))))
        return cls(list(nodes.values()), edges)

    # ------------------------------------------------------------------ queries
    def node(self, name_or_id: str) -> GraphNode | None:
        """The node with this id (``addr:port``) or name."""
        for node in self.nodes:
            if name_or_id in (node.id, node.name):
                return node
        return None

    def names(self, kind: str | None = None) -> set[tuple[str, ...]]:
        """Edges as sorted (name, name[, topic]) tuples, optionally of one ``kind``
        (``"link"``, ``"pair"`` or ``"pair:<topic>"``): handy to compare with what is
        expected."""
        names = {n.id: n.name for n in self.nodes}
        out: set[tuple[str, ...]] = set()
        for e in self.edges:
            is_pair = e.kind.startswith("pair:")
            if ((kind == "link" and is_pair) or (kind == "pair" and not is_pair)
                    or (kind not in (None, "link", "pair") and e.kind != kind)):
                continue
            pair = tuple(sorted((names[e.a], names[e.b])))
            out.add((*pair, e.kind[5:]) if is_pair else pair)
        return out

    # ------------------------------------------------------------------ exports
    def to_dict(self) -> dict[str, Any]:
        """Nodes and edges as plain data."""
        return {"nodes": [asdict(n) for n in self.nodes],
                "edges": [asdict(e) for e in self.edges]}

    def to_json(self, indent: int | None = 2) -> str:
        """The graph as JSON (sorted keys; times in seconds)."""
        return json.dumps(self.to_dict(), indent=indent, sort_keys=True)

    def to_dot(self) -> str:
        """The graph in Graphviz DOT (``dot -Tsvg`` draws it)."""
        from .svg import topic_color

        def q(text: str) -> str:
            safe = "".join(c if c.isprintable() or c == "\n" else "?" for c in text)
            return '"' + (safe.replace("\\", "\\\\").replace('"', '\\"')
                          .replace("\n", "\\n")) + '"'

        lines = ["graph mesh {", "  node [shape=ellipse, fontname=Helvetica];"]
        for n in self.nodes:
            label = n.name + ("\n" + ", ".join(n.topics) if n.topics else "")
            style = ', style=filled, fillcolor="#ffe9a8"' if n.root else ""
            lines.append(f"  {q(n.id)} [label={q(label)}{style}];")
        for e in self.edges:
            if e.kind == "link":
                label = f", label={q(_ms(e.srtt))}" if e.srtt is not None else ""
                lines.append(f"  {q(e.a)} -- {q(e.b)} [color=gray60{label}];")
            else:
                topic = e.kind[5:]
                lines.append(f"  {q(e.a)} -- {q(e.b)} [color={q(topic_color(topic))}, "
                             f"penwidth=2.5, label={q(topic)}];")
        lines.append("}")
        return "\n".join(lines) + "\n"

    def to_svg(self, width: int = 640, height: int = 480) -> str:
        """The graph drawn as SVG (deterministic force layout, no dependency)."""
        from .svg import graph_svg

        return graph_svg(self, width, height)

    def heatmap_svg(self) -> str:
        """The measured SRTT between linked nodes as a heat map (SVG)."""
        from .svg import heatmap_svg

        return heatmap_svg(self)

    def topics_svg(self) -> str:
        """Which node subscribes to which topic, and the pairs, as SVG."""
        from .svg import topics_svg

        return topics_svg(self)

    def _repr_svg_(self) -> str:
        return self.to_svg()

    def to_networkx(self) -> Any:
        """A ``networkx.MultiGraph`` (nodes and edges with their attributes).

        Raises:
            ImportError: networkx is not installed.
        """
        import networkx  # optional

        g = networkx.MultiGraph()
        for n in self.nodes:
            g.add_node(n.id, **{k: v for k, v in asdict(n).items() if k != "id"})
        for e in self.edges:
            g.add_edge(e.a, e.b, key=e.kind, kind=e.kind, srtt=e.srtt, jitter=e.jitter)
        return g


def _ms(seconds: float | None) -> str:
    return "" if seconds is None else f"{seconds * 1000:.2f} ms"
