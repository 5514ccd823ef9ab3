"""Gathering the mesh into a ``NetworkGraph``, and ``display_graph``.

Owns ``collect`` (a breadth-first walk of the mesh from a topic node — or, for the command
line, from any node a plain node is connected to — that asks each node for its description
with a ``topics.info`` request forwarded hop by hop along the links, so no new connection is
made; a node that is not a topic node is described by its ``node_info``), ``local_graph`` (the
graph of topic nodes of this process, read directly, as the seed's ``display_graph([node1,
node2, node3])`` does) and ``display_graph``. Imports the standard library, ``pycos.net``
and its own package.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Generator
from typing import Any

from ..net.location import Location, location_from_address
from ..net.requests import RemoteRequestFailed
from .graph import NetworkGraph, info_from_describe, node_id
from .wire import pack, unpack

__all__ = ["collect", "local_graph", "display_graph", "MAX_NODES"]

#: Most nodes one walk describes.
MAX_NODES = 256


def _ask(node: Any, route: list[Location], timeout: float) -> Generator[Any, Any, Any]:
    """The description of the last node of ``route`` (asked of its first, a peer)."""
    path = [[hop.addr, hop.port] for hop in route[1:]]
    try:
        reply = yield node.request(route[0], "topics.info", pack(node, {"v": 1, "path": path}),
                                   timeout)
        info = unpack(node, reply)
    except RemoteRequestFailed as exc:
        if len(route) == 1 and "no handler" in str(exc):
            try:
                return info_from_describe((yield node.request(route[0], "node_info", None,
                                                              timeout)))
            except Exception:  # noqa: BLE001 - not described: left out
                return None
        return None
    except Exception:  # noqa: BLE001 - lost, slow or malformed: left out of the graph
        return None
    return info if isinstance(info, dict) else None


def _links(info: dict[str, Any]) -> list[Location]:
    out = []
    for item in info.get("links") or ():
        try:
            out.append(location_from_address(str(item[1]), int(item[2])))
        except (ValueError, TypeError, IndexError):
            continue
    return out


def collect(node: Any, first: Location | None, depth: int, timeout: float,
            tn: Any = None) -> Generator[Any, Any, NetworkGraph]:
    """Use with yield: the graph of the nodes within ``depth`` hops of ``tn`` (a topic node,
    described first), or of ``first`` (a peer of ``node``; its own peers are one hop away)."""
    infos: dict[str, dict[str, Any]] = {}
    frontier: list[list[Location]] = []
    if tn is not None:
        mine = tn.info()
        infos[node_id(*mine["location"])] = mine
        frontier = [[loc] for loc in _links(mine)]
    elif first is not None:
        frontier = [[first]]
        depth += 1
    me = node_id(node.location.addr, node.location.port)
    level = 1
    while frontier and level <= depth and len(infos) < MAX_NODES:
        nxt: list[list[Location]] = []
        for route in frontier:
            target = node_id(route[-1].addr, route[-1].port)
            if target in infos or target == me or len(infos) >= MAX_NODES:
                continue
            info = yield from _ask(node, route, timeout)
            if info is None:
                continue
            infos[target] = info
            for loc in _links(info):
                nid = node_id(loc.addr, loc.port)
                if nid not in infos and nid != me:
                    nxt.append([*route, loc])
        frontier = nxt
        level += 1
    return NetworkGraph.from_infos([infos[k] for k in sorted(infos)])


def local_graph(topic_nodes: list[Any]) -> NetworkGraph:
    """The graph of these topic nodes of this process (read directly, no request)."""
    infos = []
    for tn in topic_nodes:
        if not getattr(tn, "closed", False):
            infos.append(tn._on_sched(tn.info))
    return NetworkGraph.from_infos(infos)


def display_graph(graph: Any, path: str | os.PathLike[str] | None = None) -> NetworkGraph:
    """Plain call: the graph of ``graph`` — a ``NetworkGraph``, a ``TopicNode`` (its mesh,
    gathered with ``graph()``) or a list of topic nodes of this process (the seed's
    ``display_graph([node1, node2, node3])``) — written to ``path`` when given (``.svg``,
    ``.json``, ``.dot``/``.gv``; ``.png``/``.pdf`` with Graphviz's ``dot`` installed) and
    returned (it shows itself inline in Jupyter).

    Raises:
        TypeError: ``graph`` is none of those.
        ValueError: ``path`` has an extension that cannot be written here.
    """
    if isinstance(graph, NetworkGraph):
        g = graph
    elif isinstance(graph, list | tuple):
        g = local_graph(list(graph))
    elif callable(getattr(graph, "graph", None)) and hasattr(graph, "mesh"):
        g = graph.graph()
    else:
        raise TypeError(f"display_graph() needs a NetworkGraph, a TopicNode or a list of "
                        f"them, got {graph!r}")
    if path is not None:
        _write(g, os.fspath(path))
    return g


def _write(g: NetworkGraph, path: str) -> None:
    ext = os.path.splitext(path)[1].lower()
    if ext == ".svg":
        text = g.to_svg()
    elif ext == ".json":
        text = g.to_json()
    elif ext in (".dot", ".gv"):
        text = g.to_dot()
    elif ext in (".png", ".pdf"):
        dot = shutil.which("dot")
        if dot is None:
            raise ValueError(f"writing {ext} needs Graphviz's 'dot' program; write .svg "
                             "instead (no dependency)")
        subprocess.run([dot, f"-T{ext[1:]}", "-o", path], input=g.to_dot().encode(),
                       check=True, timeout=60)
        return
    else:
        raise ValueError(f"display_graph() writes .svg, .json, .dot, .gv, .png or .pdf, not "
                         f"{ext or 'a file without extension'!r}")
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)

