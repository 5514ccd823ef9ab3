"""Drawings of a ``NetworkGraph`` as SVG text, with no dependency.

Owns ``graph_svg`` (nodes where ``layout.force_layout`` puts them; links grey with their SRTT,
pairs coloured by topic; roots filled), ``heatmap_svg`` (Chaski's latency heat map: SRTT between
linked nodes, in milliseconds) and ``topics_svg`` (Chaski's subscription graph: nodes on the
left, topics on the right) and ``topic_color``. Every text that came from a node is escaped for
XML; numbers are rounded, so the output is the same bytes for the same graph. Imports only the
standard library and its own package.
"""

from __future__ import annotations

import hashlib
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from .layout import force_layout

__all__ = ["graph_svg", "heatmap_svg", "topics_svg", "topic_color", "PALETTE"]

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b",
           "#e377c2")
_HEAD = ('<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" '
         'viewBox="0 0 {w} {h}" font-family="Helvetica, Arial, sans-serif" font-size="12">')


def topic_color(topic: str) -> str:
    """A colour of ``PALETTE`` for ``topic`` (the same in every picture)."""
    digest = hashlib.sha256(topic.encode("utf-8", "surrogatepass")).digest()
    return PALETTE[digest[0] % len(PALETTE)]


def _t(text: str, limit: int = 40) -> str:
    return escape(text if len(text) <= limit else text[: limit - 1] + "…")


def _ms(seconds: float | None) -> str:
    return "" if seconds is None else f"{seconds * 1000:.2f} ms"


def graph_svg(graph: Any, width: int = 640, height: int = 480) -> str:
    """``graph`` drawn: see the module docstring."""
    pos = force_layout([n.id for n in graph.nodes], [(e.a, e.b) for e in graph.edges],
                       width, height)
    out = [_HEAD.format(w=width, h=height), "<title>pycos topic mesh</title>",
           f'<rect width="{width}" height="{height}" fill="white"/>']
    pairs: dict[tuple[str, str], list[str]] = {}
    for e in graph.edges:
        if e.kind != "link":
            pairs.setdefault((e.a, e.b), []).append(e.kind[5:])
    for e in graph.edges:
        if e.kind != "link":
            continue
        (x1, y1), (x2, y2) = pos[e.a], pos[e.b]
        out.append(f'<line class="link" x1="{x1}" y1="{y1}" x2="{x2}" y2="{y2}" '
                   'stroke="#bbbbbb" stroke-width="1.5" stroke-dasharray="5,4"/>')
        if e.srtt is not None:
            out.append(f'<text class="rtt" x="{round((x1 + x2) / 2, 1)}" '
                       f'y="{round((y1 + y2) / 2 + 14, 1)}" fill="#777777" '
                       f'text-anchor="middle" font-size="10">{_ms(e.srtt)}</text>')
    for (a, b), topics in sorted(pairs.items()):
        (x1, y1), (x2, y2) = pos[a], pos[b]
        for k, topic in enumerate(sorted(topics)):
            off = (k - (len(topics) - 1) / 2) * 4
            xa, ya = round(x1 + off, 1), round(y1 + off, 1)
            xb, yb = round(x2 + off, 1), round(y2 + off, 1)
            out.append(f'<line class="pair" data-topic={quoteattr(topic)} x1="{xa}" '
                       f'y1="{ya}" x2="{xb}" y2="{yb}" '
                       f'stroke="{topic_color(topic)}" stroke-width="3"/>')
        label = ", ".join(_t(t, 20) for t in sorted(topics))
        out.append(f'<text class="pair-label" x="{round((x1 + x2) / 2, 1)}" '
                   f'y="{round((y1 + y2) / 2 - 6, 1)}" text-anchor="middle" '
                   f'font-weight="bold">{label}</text>')
    for n in graph.nodes:
        x, y = pos[n.id]
        fill = "#ffe9a8" if n.root else ("#eef4fb" if n.gathered else "#f2f2f2")
        out.append(f'<g class="node" data-id={quoteattr(n.id)}>')
        out.append(f'<circle cx="{x}" cy="{y}" r="26" fill="{fill}" stroke="#34495e" '
                   'stroke-width="1.5"/>')
        out.append(f'<text x="{x}" y="{y + 4}" text-anchor="middle" font-weight="bold">'
                   f'{_t(n.name, 14)}</text>')
        if n.topics:
            out.append(f'<text x="{x}" y="{y + 42}" text-anchor="middle" fill="#555555">'
                       f'{_t(", ".join(n.topics), 30)}</text>')
        out.append("</g>")
    out.append("</svg>")
    return "\n".join(out) + "\n"


def heatmap_svg(graph: Any) -> str:
    """SRTT between linked nodes as a grid of coloured cells (milliseconds)."""
    nodes = graph.nodes
    srtt = {}
    for e in graph.edges:
        if e.kind == "link" and e.srtt is not None:
            srtt[(e.a, e.b)] = srtt[(e.b, e.a)] = e.srtt
    top = max(srtt.values(), default=0.0) or 1.0
    cell, left, head = 56, 110, 110
    size_w, size_h = left + cell * len(nodes) + 20, head + cell * len(nodes) + 20
    out = [_HEAD.format(w=size_w, h=size_h), "<title>pycos latency heat map (SRTT)</title>",
           f'<rect width="{size_w}" height="{size_h}" fill="white"/>']
    for i, n in enumerate(nodes):
        y = head + i * cell + cell / 2 + 4
        out.append(f'<text x="{left - 8}" y="{y}" text-anchor="end">{_t(n.name, 14)}</text>')
        x = left + i * cell + cell / 2
        out.append(f'<text x="{x}" y="{head - 8}" text-anchor="start" '
                   f'transform="rotate(-45 {x} {head - 8})">{_t(n.name, 14)}</text>')
    for i, a in enumerate(nodes):
        for j, b in enumerate(nodes):
            x, y = left + j * cell, head + i * cell
            value = srtt.get((a.id, b.id))
            if value is None:
                fill, label = ("#f4f4f4" if i != j else "#dddddd"), ""
            else:
                level = min(1.0, value / top)
                fill = f"#ff{int(235 - 180 * level):02x}{int(235 - 200 * level):02x}"
                label = f"{value * 1000:.2f}"
            out.append(f'<rect class="cell" x="{x}" y="{y}" width="{cell - 2}" '
                       f'height="{cell - 2}" fill="{fill}"/>')
            if label:
                out.append(f'<text x="{x + cell / 2 - 1}" y="{y + cell / 2 + 3}" '
                           f'text-anchor="middle" font-size="10">{label}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def topics_svg(graph: Any) -> str:
    """Nodes (left) joined to the topics they subscribe to (right)."""
    nodes = graph.nodes
    topics = sorted({t for n in nodes for t in n.topics})
    rows = max(len(nodes), len(topics), 1)
    width, height = 520, 40 + rows * 44
    out = [_HEAD.format(w=width, h=height), "<title>pycos topic subscriptions</title>",
           f'<rect width="{width}" height="{height}" fill="white"/>']
    ny = {n.id: 40 + i * 44 for i, n in enumerate(nodes)}
    ty = {t: 40 + i * 44 for i, t in enumerate(topics)}
    for n in nodes:
        for t in n.topics:
            out.append(f'<line x1="150" y1="{ny[n.id]}" x2="370" y2="{ty[t]}" '
                       f'stroke="{topic_color(t)}" stroke-width="2"/>')
    for n in nodes:
        out.append(f'<rect x="30" y="{ny[n.id] - 14}" width="120" height="28" rx="6" '
                   'fill="#eef4fb" stroke="#34495e"/>')
        out.append(f'<text x="90" y="{ny[n.id] + 4}" text-anchor="middle">'
                   f'{_t(n.name, 16)}</text>')
    for t in topics:
        out.append(f'<rect x="370" y="{ty[t] - 14}" width="120" height="28" rx="14" '
                   f'fill="{topic_color(t)}"/>')
        out.append(f'<text x="430" y="{ty[t] + 4}" text-anchor="middle" fill="white">'
                   f'{_t(t, 16)}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"
