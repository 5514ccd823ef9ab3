"""``NetworkGraph`` (``pycos.topics.graph``): built from node descriptions, exported as JSON,
DOT and SVG (graph, heat map, topics) byte for byte as the golden files in ``golden/``.

``PYCOS_UPDATE_GOLDEN=1 pytest tests/unit/test_topics_graph.py`` rewrites the golden files
(review the diff before committing).
"""

from __future__ import annotations

import json
import os
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from pycos.topics import NetworkGraph, display_graph
from pycos.topics.graph import info_from_describe
from pycos.topics.layout import force_layout

GOLDEN = Path(__file__).resolve().parent / "golden"


def info(name: str, port: int, topics: list[str], links: list[Any],
         pairs: dict[str, list[Any]] | None = None, **kw: Any) -> dict[str, Any]:
    return {"v": 1, "name": name, "location": ["127.0.0.1", port], "topics": topics,
            "root": kw.get("root", False), "relay": False, "hidden": False,
            "paired": {t: bool((pairs or {}).get(t)) or kw.get("root", False) for t in topics},
            "pairs": pairs or {}, "links": links}


def seed_mesh() -> NetworkGraph:
    """The seed's mesh after on_pair='none': Node1 the root on A, Node2 and Node3 paired on
    B, every pair of nodes linked; plus Node4 on B and C, seen only as Node3's peer."""
    n1 = ["Node1", "127.0.0.1", 9801]
    n2 = ["Node2", "127.0.0.1", 9802]
    n3 = ["Node3", "127.0.0.1", 9803]
    n4 = ["Node4", "127.0.0.1", 9804]
    return NetworkGraph.from_infos([
        info("Node1", 9801, ["A"], [[*n2, 0.00041, 0.0001], [*n3, 0.00052, 0.0002]], root=True),
        info("Node2", 9802, ["B"], [[*n1, 0.00045, 0.0001], [*n3, 0.00031, 0.00005]],
             {"B": [n3]}),
        info("Node3", 9803, ["B", "C"], [[*n1, 0.0005, None], [*n2, 0.00033, 0.00006],
                                         [*n4, None, None]], {"B": [n2], "C": [n4]}),
    ])


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("PYCOS_UPDATE_GOLDEN"):
        path.write_text(text, encoding="utf-8")
    assert path.read_text(encoding="utf-8") == text, f"{name} differs from the golden file"


def test_model() -> None:
    g = seed_mesh()
    assert [n.name for n in g.nodes] == ["Node1", "Node2", "Node3", "Node4"]
    assert g.names("link") == {("Node1", "Node2"), ("Node1", "Node3"), ("Node2", "Node3"),
                               ("Node3", "Node4")}
    assert g.names("pair") == {("Node2", "Node3", "B"), ("Node3", "Node4", "C")}
    assert g.names("pair:C") == {("Node3", "Node4", "C")}
    link = next(e for e in g.edges if e.kind == "link" and {e.a, e.b} == {"127.0.0.1:9802",
                                                                          "127.0.0.1:9803"})
    assert link.srtt == pytest.approx(0.00032) and link.jitter == pytest.approx(0.000055)
    assert g.node("Node1").root and not g.node("Node4").gathered  # type: ignore[union-attr]
    assert "4 nodes, 4 links, 2 pairs" in repr(g)


@pytest.mark.parametrize("name, export", [
    ("topics_mesh.json", lambda g: g.to_json()),
    ("topics_mesh.dot", lambda g: g.to_dot()),
    ("topics_mesh.svg", lambda g: g.to_svg()),
    ("topics_heatmap.svg", lambda g: g.heatmap_svg()),
    ("topics_topics.svg", lambda g: g.topics_svg()),
])
def test_exports_match_the_golden_files(name: str, export: Any) -> None:
    text = export(seed_mesh())
    check_golden(name, text)
    assert export(seed_mesh()) == text  # deterministic
    if name.endswith(".svg"):
        root = ET.fromstring(text)
        assert root.tag == "{http://www.w3.org/2000/svg}svg"
    if name.endswith(".json"):
        doc = json.loads(text)
        assert {"nodes", "edges"} <= set(doc)


def test_a_link_both_ends_were_asked_about_needs_both_to_report_it() -> None:
    a, b = ["A", "127.0.0.1", 1], ["B", "127.0.0.1", 2]
    one_sided = NetworkGraph.from_infos([info("A", 1, ["T"], [b], {"T": [b]}),
                                         info("B", 2, ["T"], [], {})])
    assert one_sided.names() == set()  # B already closed it; A has not heard yet
    both = NetworkGraph.from_infos([info("A", 1, ["T"], [b], {"T": [b]}),
                                    info("B", 2, ["T"], [a], {"T": [a]})])
    assert both.names() == {("A", "B"), ("A", "B", "T")}


def test_malformed_descriptions_are_left_out_and_text_is_escaped() -> None:
    evil = info("<script>alert(1)</script>", 7, ["<b>&"], [["x", "127.0.0.1", "port"],
                                                          "junk", ["y", 5, 9]],
                {"T": "junk", 5: [["z", "127.0.0.1", 8]]})
    g = NetworkGraph.from_infos([evil, "junk", {"location": 5}, {"name": "n"},
                                 info("", 9, [], [])])
    assert [n.name for n in g.nodes] == ["<script>alert(1)</script>"]
    svg = g.to_svg()
    assert "<script>" not in svg and "&lt;script&gt;" in svg
    ET.fromstring(svg)
    ET.fromstring(g.topics_svg())
    quoted = NetworkGraph.from_infos([info('a"b\\c', 7, ["T"], [])]).to_dot()
    assert 'label="a\\"b\\\\c\\nT"' in quoted  # a quote or backslash cannot end the label


def test_describe_of_a_plain_node() -> None:
    from pycos.net.location import Location

    d = {"name": "plain", "location": Location("127.0.0.1", 5),
         "peers": [("p", Location("127.0.0.1", 6), 0.001)]}
    g = NetworkGraph.from_infos([info_from_describe(d)])
    assert g.names() == {("p", "plain")}
    assert info_from_describe("x") is None


def test_layout_is_deterministic_and_inside_the_box() -> None:
    ids = [f"n{i}" for i in range(7)]
    edges = [(ids[i], ids[(i + 1) % 7]) for i in range(7)]
    pos = force_layout(ids, edges, 400, 300)
    assert pos == force_layout(list(reversed(ids)), edges, 400, 300)
    assert all(60 <= x <= 340 and 60 <= y <= 240 for x, y in pos.values())
    assert len(set(pos.values())) == 7
    assert force_layout([], [], 10, 10) == {}
    assert force_layout(["a"], [], 100, 100) == {"a": (50.0, 50.0)}


def test_display_graph_writes_by_extension(tmp_path: Path) -> None:
    g = seed_mesh()
    for ext in ("svg", "json", "dot", "gv"):
        out = display_graph(g, tmp_path / f"mesh.{ext}")
        assert out is g and (tmp_path / f"mesh.{ext}").stat().st_size > 100
    with pytest.raises(ValueError, match="writes .svg"):
        display_graph(g, tmp_path / "mesh.txt")
    with pytest.raises(TypeError, match="NetworkGraph"):
        display_graph(42)
    assert g._repr_svg_().startswith("<svg")


def test_to_networkx() -> None:
    nx = pytest.importorskip("networkx", reason="networkx is optional and not installed")
    g = seed_mesh().to_networkx()
    assert isinstance(g, nx.MultiGraph) and g.number_of_nodes() == 4
    assert g.number_of_edges() == 6
