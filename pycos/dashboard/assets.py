"""The dashboard's static files, held in memory: the page, its style sheet, its script and icon.

Owns ``STATIC`` (path → (content type, bytes)), the only files the dashboard serves: there is
no file-system lookup, so no path can reach a file. The page has no inline script or style (its
Content-Security-Policy is ``default-src 'self'``), loads nothing from elsewhere (no CDN: it
works offline) and fills itself from the JSON twins (``script.SCRIPT``). Imports the standard
library and its own package.
"""

from __future__ import annotations

import struct

from .script import SCRIPT

__all__ = ["STATIC", "PAGE", "STYLE", "favicon"]

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>pycos dashboard</title>
<link rel="icon" href="/favicon.ico">
<link rel="stylesheet" href="/static/dashboard.css">
<script src="/static/dashboard.js" defer></script>
</head>
<body data-state="loading" data-polls="0">
<header>
  <h1>pycos <span id="node-name">…</span></h1>
  <span id="status" class="status">connecting…</span>
</header>
<div id="busy" class="banner" hidden></div>
<nav>
  <a href="#overview">Overview</a> <a href="#peers">Peers</a> <a href="#mesh">Mesh</a>
  <a href="#tasks">Tasks</a> <a href="#channels">Channels and topics</a>
  <a href="#services">Services</a> <a href="#transfers">Transfers</a>
  <a href="#counters">Counters</a> <a href="/api/v1/">JSON</a>
</nav>
<main>
<section id="overview"><h2>Overview</h2><dl id="overview-list" class="kv"></dl></section>
<section id="peers"><h2>Peers <span class="count" id="peers-count"></span></h2>
<table id="peers-table"><thead><tr><th>State</th><th>Name</th><th>Location</th><th>SRTT</th>
<th>Jitter</th><th>Min</th><th>Max</th><th>Samples</th><th>Last heard</th><th>Online for</th>
<th>Bytes in</th><th>Bytes out</th><th>Frames in</th></tr></thead><tbody></tbody></table>
<p id="peers-none" class="none" hidden>No peers.</p></section>
<section id="mesh"><h2>Mesh <span class="count" id="mesh-count"></span></h2>
<div id="graph-box" class="graph"></div></section>
<section id="tasks"><h2>Tasks</h2><dl id="tasks-list" class="kv"></dl>
<table id="tasks-table"><thead><tr><th>Task name</th><th>Count</th></tr></thead><tbody></tbody>
</table></section>
<section id="channels"><h2>Channels and topics</h2><dl id="channels-list" class="kv"></dl>
<table id="channels-table"><thead><tr><th>Channel</th><th>Subscribers</th></tr></thead>
<tbody></tbody></table>
<h3>Topics</h3><dl id="topics-list" class="kv"></dl>
<table id="topics-table"><thead><tr><th>Topic</th><th>Paired</th><th>Pairs</th>
<th>Subscribers</th></tr></thead><tbody></tbody></table></section>
<section id="services"><h2>Services</h2><dl id="services-list" class="kv"></dl>
<h3>Module services</h3><table id="modules-table"><thead><tr><th>Service</th><th>Modules</th>
<th>Calls</th><th>Errors</th><th>Refused</th><th>Clients</th><th>Handles</th></tr></thead>
<tbody></tbody></table>
<h3>Gateways</h3><table id="gateways-table"><thead><tr><th>Gateway</th><th>Pool in use</th>
<th>Pool size</th><th>Handlers</th></tr></thead><tbody></tbody></table>
<h3>Consoles</h3><table id="consoles-table"><thead><tr><th>Transport</th><th>Sessions</th>
<th>Max</th><th>Refused</th></tr></thead><tbody></tbody></table>
<h3>Shipped modules</h3><dl id="shipped-list" class="kv"></dl></section>
<section id="transfers"><h2>Transfers in progress</h2><dl id="transfers-list" class="kv"></dl>
</section>
<section id="counters"><h2>Counters</h2><table id="counters-table"><thead><tr><th>Counter</th>
<th>Value</th></tr></thead><tbody></tbody></table></section>
</main>
<footer>Read-only. The page asks the node every 2 s.</footer>
</body>
</html>
"""

STYLE = """
body { font: 14px/1.4 system-ui, Helvetica, Arial, sans-serif; margin: 0; color: #1d2733;
       background: #f6f8fa; }
header { display: flex; align-items: baseline; gap: 1em; padding: .6em 1em;
         background: #24313f; color: #fff; }
header h1 { font-size: 1.2em; margin: 0; }
.status { font-size: .9em; color: #cfe3f7; }
body[data-state="error"] .status { color: #ffb4a8; }
.banner { background: #fff3cd; border-bottom: 1px solid #e0c36a; padding: .5em 1em;
          font-weight: bold; }
nav { padding: .4em 1em; background: #e9eef3; }
nav a { margin-right: .8em; color: #1f5f99; text-decoration: none; }
main { padding: 0 1em 2em; }
section { background: #fff; border: 1px solid #d8dee4; border-radius: 6px; margin: 1em 0;
          padding: .2em 1em 1em; overflow-x: auto; }
h2 { font-size: 1.1em; } h3 { font-size: 1em; margin-bottom: .3em; }
.count { color: #66768a; font-weight: normal; }
table { border-collapse: collapse; margin: .3em 0; }
th, td { text-align: left; padding: .2em .7em; border-bottom: 1px solid #eef1f4;
         white-space: nowrap; }
th { color: #51606f; font-weight: 600; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.offline td { color: #8a96a3; }
.state { font-weight: bold; }
.state.Online { color: #17803d; } .state.Offline { color: #b3261e; }
dl.kv { display: grid; grid-template-columns: max-content auto; gap: .15em 1em; }
dl.kv dt { color: #51606f; } dl.kv dd { margin: 0; }
.zero { color: #a6b1bc; }
.none { color: #66768a; }
.graph svg { max-width: 100%; height: auto; border: 1px solid #eef1f4; }
footer { color: #66768a; padding: 0 1em 1em; font-size: .9em; }
"""


def favicon() -> bytes:
    """A 16x16 icon (a blue dot), as a Windows ICO file with a 32-bit bitmap."""
    size = 16
    pixels = bytearray()
    for row in range(size - 1, -1, -1):  # bottom-up
        for col in range(size):
            inside = (row - 7.5) ** 2 + (col - 7.5) ** 2 <= 7.0 ** 2
            pixels += bytes((0xB4, 0x77, 0x1F, 0xFF)) if inside else bytes(4)
    mask = bytes(4 * size)  # AND mask, all opaque (alpha decides)
    header = struct.pack("<IiiHHIIiiII", 40, size, 2 * size, 1, 32, 0,
                         len(pixels) + len(mask), 0, 0, 0, 0)
    image = header + bytes(pixels) + mask
    return (struct.pack("<HHH", 0, 1, 1)
            + struct.pack("<BBBBHHII", size, size, 0, 0, 1, 32, len(image), 22) + image)


STATIC: dict[str, tuple[str, bytes]] = {
    "/": ("text/html; charset=utf-8", PAGE.encode("utf-8")),
    "/index.html": ("text/html; charset=utf-8", PAGE.encode("utf-8")),
    "/static/dashboard.css": ("text/css; charset=utf-8", STYLE.encode("utf-8")),
    "/static/dashboard.js": ("text/javascript; charset=utf-8", SCRIPT.encode("utf-8")),
    "/favicon.ico": ("image/x-icon", favicon()),
}
