"""The ``graph`` command: ``python -m pycos graph NODE``, the topic mesh around a node.

Owns ``add_arguments`` (``NODE``, ``--depth``, ``-o FILE`` and the options every networked
command has) and ``run``: through the command's hidden node (``session``), connect to NODE and
walk the mesh from it (``pycos.topics.gather.collect``: each node is described by its own
``topics.info`` answer, forwarded hop by hop, or by ``node_info`` for a node that is not a
topic node), then print the nodes, links and pairs (one JSON document with ``--json``) and
write the picture to FILE (``.svg``, ``.dot``, ``.json``). Imports the standard library,
``pycos.core``, ``pycos.topics`` and its own package.
"""

from __future__ import annotations

import argparse
from typing import Any

from ..core.blocking import run as run_op
from .output import Output, clean, format_seconds
from .parser import _common, parse_node
from .session import Session
from .status import FAILURE, OK, UNREACHABLE, CliError

__all__ = ["add_arguments", "run", "HELP"]

HELP = "the topic mesh around a node: nodes, links with round trips, pairs"


def _depth(text: str) -> int:
    if not text.isdigit() or not 0 <= int(text) <= 8:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a depth in 0..8")
    return int(text)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments of ``graph`` (for ``parser.py``'s subparser)."""
    parser.add_argument("node", type=parse_node, metavar="NODE", help="HOST:PORT of the node")
    parser.add_argument("--depth", type=_depth, default=3,
                        help="how many hops away from NODE to describe (default 3)")
    parser.add_argument("-o", "--output", metavar="FILE",
                        help="also draw the mesh into FILE (.svg, .dot or .json)")
    _common(parser)
    parser.add_argument("--json", action="store_true",
                        help="write one JSON document on stdout instead of text")


def run(args: argparse.Namespace, out: Output) -> int:
    """``graph NODE [--depth N] [-o FILE]``: status 0 when NODE described itself, 3 when it
    cannot be reached, 1 when it answered nothing usable or FILE cannot be written."""
    from ..topics.gather import collect, display_graph

    loc = args.node
    if args.output is not None and not str(args.output).lower().endswith(
            (".svg", ".dot", ".gv", ".json")):
        raise CliError(f"-o {args.output}: the picture is written as .svg, .dot or .json",
                       FAILURE)
    with Session(args, out) as session:
        session.connect(loc)
        try:
            graph = run_op(collect(session.node.node, loc, args.depth, session.timeout),
                           timeout=session.timeout * (args.depth + 2) * 4)
        except TimeoutError:
            raise CliError(f"the mesh around {loc!r} was not described within the time "
                           "allowed", UNREACHABLE) from None
    start = next((n for n in graph.nodes if n.addr == loc.addr and n.port == loc.port
                  and n.gathered), None)
    if start is None:
        raise CliError(f"{loc!r} did not describe itself (not a pycos node?)", FAILURE)
    if args.output is not None:
        try:
            display_graph(graph, args.output)
        except (OSError, ValueError) as exc:
            raise CliError(f"cannot write {args.output}: {exc}", FAILURE) from None
    _show(out, graph)
    out.result({"ok": True, "start": start.id, **graph.to_dict()})
    return OK


def _show(out: Output, graph: Any) -> None:
    names = {n.id: n.name for n in graph.nodes}
    out.line(f"{len(graph.nodes)} node{'' if len(graph.nodes) == 1 else 's'}")
    out.table(("NAME", "LOCATION", "TOPICS", "ROLE"),
              [(n.name, n.id, ", ".join(n.topics) or "-",
                "root" if n.root else ("" if n.gathered else "not described"))
               for n in graph.nodes], indent="  ")
    links = [e for e in graph.edges if e.kind == "link"]
    pairs = [e for e in graph.edges if e.kind != "link"]
    out.line(f"{len(links)} link{'' if len(links) == 1 else 's'}")
    out.table(("A", "B", "SRTT", "JITTER"),
              [(names[e.a], names[e.b], format_seconds(e.srtt), format_seconds(e.jitter))
               for e in links], indent="  ")
    out.line(f"{len(pairs)} pair{'' if len(pairs) == 1 else 's'}")
    out.table(("A", "B", "TOPIC"), [(names[e.a], names[e.b], clean(e.kind[5:]))
                                    for e in pairs], indent="  ")
