"""The mesh picture in a real browser: headless Chromium loads the SVG ``display_graph`` writes
(of a live three-node mesh in this process), takes a screenshot, and reports through the page's
own script what it rendered.

Uses Debian's ``chromium`` (``apt-get install -y chromium chromium-driver``); skipped, saying
so, when it is not installed. Selenium is not needed: ``--dump-dom`` returns the page after its
script ran, and ``--screenshot`` writes a PNG, whose pixels are checked here.
"""

from __future__ import annotations

import re
import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import pytest

from pycos.topics import TopicNode, display_graph

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
         "--no-first-run", "--window-size=640,480"]

PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>mesh</title></head>
<body style="margin:0">{svg}
<pre id="result">pending</pre>
<script>
const svg = document.querySelector("svg");
const nodes = svg.querySelectorAll("g.node circle");
const pairs = svg.querySelectorAll("line.pair");
const box = svg.getBBox();
const errors = document.querySelectorAll("parsererror").length;
document.getElementById("result").textContent =
  "nodes=" + nodes.length + " pairs=" + pairs.length + " width=" + Math.round(box.width) +
  " errors=" + errors;
</script></body></html>
"""


def png_pixels(data: bytes) -> tuple[int, int, set[bytes]]:
    """(width, height, the set of distinct RGB(A) pixels) of a PNG, with the standard library."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, width, height, kind = 8, b"", 0, 0, 0
    while pos < len(data):
        (length,), tag = struct.unpack(">I", data[pos:pos + 4]), data[pos + 4:pos + 8]
        body = data[pos + 8:pos + 8 + length]
        if tag == b"IHDR":
            width, height, _depth, kind = struct.unpack(">IIBB", body[:10])
        elif tag == b"IDAT":
            idat += body
        pos += 12 + length
    raw = zlib.decompress(idat)
    step = 4 if kind == 6 else 3
    stride = width * step + 1
    seen = {raw[r * stride + 1 + c:r * stride + 1 + c + step]
            for r in range(0, height, 7) for c in range(0, width * step, step * 7)}
    return width, height, seen


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed "
                    "(apt-get install -y chromium chromium-driver)")
def test_the_mesh_svg_renders_in_headless_chromium(tmp_path: Path) -> None:
    nodes = [TopicNode(["A"], name="Node1", paired=True), TopicNode(["B"], name="Node2"),
             TopicNode(["B"], name="Node3")]
    try:
        nodes[1].connect(nodes[0])
        nodes[2].connect(nodes[0])
        nodes[1].discovery(on_pair="none", timeout=10)
        graph = display_graph(nodes, tmp_path / "mesh.svg")
    finally:
        for tn in nodes:
            tn.close()
    svg = (tmp_path / "mesh.svg").read_text()
    page = tmp_path / "mesh.html"
    page.write_text(PAGE.format(svg=svg), encoding="utf-8")
    assert CHROMIUM is not None
    dom = subprocess.run([CHROMIUM, *FLAGS, "--dump-dom", page.as_uri()], capture_output=True,
                         text=True, timeout=60)
    assert dom.returncode == 0, dom.stderr[-2000:]
    found = re.search(r'id="result">([^<]*)<', dom.stdout)
    assert found is not None, dom.stdout[-500:]
    result = dict(item.split("=") for item in found.group(1).split())
    assert result == {"nodes": "3", "pairs": "1", "width": result["width"], "errors": "0"}
    width = int(result["width"])
    assert width > 200  # laid out across the picture, not piled up
    shot = tmp_path / "mesh.png"
    run = subprocess.run([CHROMIUM, *FLAGS, f"--screenshot={shot}",
                          (tmp_path / "mesh.svg").as_uri()], capture_output=True, text=True,
                         timeout=60)
    assert run.returncode == 0 and shot.exists(), run.stderr[-2000:]
    w, h, colours = png_pixels(shot.read_bytes())
    assert (w, h) == (640, 480)
    assert len(colours) > 5, "the screenshot is blank"
    assert graph.names("pair") == {("Node2", "Node3", "B")}
