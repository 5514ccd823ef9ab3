"""The dashboard page's script (plain JavaScript, no library), as a string served as a file.

Owns ``SCRIPT``: every 2 s it fetches ``/api/v1/snapshot`` and fills the page's tables, and
fetches ``/api/v1/graph.svg`` when ``/api/v1/graph`` says the mesh changed. Everything a node
or a peer named is put in the page as text (``textContent``), never as markup; the SVG picture
is parsed as XML and only drawing elements and attributes are kept before it is shown. The page
says when the node's scheduler is busy and when the dashboard cannot be reached. For tests and
measurements it sets ``data-state`` (``loading``, ``live``, ``error``), ``data-polls`` and
``data-first-paint`` (milliseconds from navigation to the first data shown) on ``<body>``.
Imports nothing.
"""

from __future__ import annotations

__all__ = ["SCRIPT", "POLL_MS"]

#: Milliseconds between two polls.
POLL_MS = 2000

SCRIPT = """\
"use strict";
(function () {
  const POLL_MS = @POLL@;
  const SVG_TAGS = new Set(["svg", "g", "line", "circle", "ellipse", "rect", "text", "tspan",
                            "title", "path", "polyline", "polygon", "desc"]);
  let graphVersion = null;
  let painted = false;

  function $(id) { return document.getElementById(id); }

  function cell(text, cls) {
    const td = document.createElement("td");
    td.textContent = text === null || text === undefined ? "\\u2013" : String(text);
    if (cls) { td.className = cls; }
    return td;
  }

  function fill(tableId, rows, build) {
    const body = $(tableId).tBodies[0];
    const out = [];
    for (const row of rows) { out.push(build(row)); }
    body.replaceChildren(...out);
  }

  function kv(listId, pairs) {
    const list = $(listId);
    const out = [];
    for (const [key, value] of pairs) {
      const dt = document.createElement("dt");
      dt.textContent = key;
      const dd = document.createElement("dd");
      dd.textContent = value === null || value === undefined ? "\\u2013" : String(value);
      out.push(dt, dd);
    }
    list.replaceChildren(...out);
  }

  function ms(seconds) {
    return typeof seconds === "number" ? (seconds * 1000).toFixed(2) + " ms" : null;
  }

  function duration(seconds) {
    if (typeof seconds !== "number") { return null; }
    if (seconds < 120) { return seconds.toFixed(1) + " s"; }
    if (seconds < 7200) { return (seconds / 60).toFixed(1) + " min"; }
    return (seconds / 3600).toFixed(1) + " h";
  }

  function bytes(n) {
    if (typeof n !== "number") { return null; }
    const units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i += 1; }
    return (i ? n.toFixed(1) : String(n)) + " " + units[i];
  }

  function items(section) {
    if (Array.isArray(section)) { return section; }
    return section && Array.isArray(section.items) ? section.items : [];
  }

  function row(cells, cls) {
    const tr = document.createElement("tr");
    if (cls) { tr.className = cls; }
    tr.append(...cells);
    return tr;
  }

  function renderOverview(o) {
    $("node-name").textContent = o.name || "";
    document.title = "pycos " + (o.name || "dashboard");
    kv("overview-list", [
      ["Name", o.name], ["Location", o.location], ["Incarnation", o.incarnation],
      ["pycos", o.version], ["Protocol", o.protocol], ["Python", o.python],
      ["Process", o.pid], ["Up for", duration(o.uptime)],
      ["Started", o.started ? new Date(o.started * 1000).toLocaleString() : null],
      ["TLS", o.tls === undefined ? null : (o.tls ? "on" : "off")],
      ["Secret", o.secret_set === undefined ? null : (o.secret_set ? "set" : "none")],
      ["Hidden", o.hidden === undefined ? null : (o.hidden ? "yes" : "no")],
      ["Serves", (o.features || []).join(", ")]]);
  }

  function renderPeers(section) {
    const list = items(section);
    const online = list.filter((p) => p.state === "Online").length;
    $("peers-count").textContent = "(" + online + " online, " + (list.length - online) +
      " offline)";
    $("peers-none").hidden = list.length > 0;
    fill("peers-table", list, (p) => {
      const state = cell(p.state, "state " + p.state);
      const tr = row([state, cell(p.name + (p.hidden ? " (hidden)" : "")), cell(p.location),
        cell(ms(p.srtt), "num"), cell(ms(p.rttvar), "num"), cell(ms(p.min), "num"),
        cell(ms(p.max), "num"), cell(p.samples, "num"),
        cell(p.state === "Online" ? duration(p.last_heard) + " ago" : null, "num"),
        cell(duration(p.online_for), "num"), cell(bytes(p.bytes_in), "num"),
        cell(bytes(p.bytes_out), "num"), cell(p.frames_in, "num")],
        p.state === "Online" ? "online" : "offline");
      tr.dataset.name = p.name;
      tr.dataset.state = p.state;
      return tr;
    });
  }

  function renderTasks(t) {
    const pairs = [];
    if (t.census) {
      pairs.push(["Tasks", t.total]);
      for (const [state, n] of Object.entries(t.by_state || {})) { pairs.push([state, n]); }
    } else {
      pairs.push(["Tasks", "not counted by this scheduler"]);
    }
    pairs.push(["Registered", (t.registered || []).join(", ") || "none"]);
    pairs.push(["Known to peers", t.exported]);
    kv("tasks-list", pairs);
    fill("tasks-table", t.by_name || [], (r) => row([cell(r[0]), cell(r[1], "num")]));
  }

  function renderChannels(c, topics) {
    kv("channels-list", [["Registered channels", (c.registered || []).length],
                         ["Known to peers", c.exported]]);
    fill("channels-table", c.registered || [],
         (r) => row([cell(r.name), cell(r.subscribers, "num")]));
    if (!topics) {
      kv("topics-list", [["Topic node", "none on this node"]]);
      fill("topics-table", [], () => null);
      return;
    }
    kv("topics-list", [["Topic node", topics.name], ["Serving", topics.serving ? "yes" : "no"],
      ["Root", topics.root ? "yes" : "no"], ["Relay", topics.relay ? "yes" : "no"],
      ["Reconnecting", (topics.reconnecting || []).join(", ") || "none"]]);
    fill("topics-table", topics.topics || [], (r) => row([cell(r.topic),
      cell(r.paired ? "yes" : "no"), cell((r.pairs || []).join(", ") || "none"),
      cell(r.subscribers, "num")]));
  }

  function renderServices(s) {
    kv("services-list", [["RCIs", (s.rcis || []).join(", ") || "none"],
                         ["Request kinds", s.request_kinds]]);
    fill("modules-table", s.module_services || [], (m) => row([cell(m.service),
      cell(m.available), cell(m.calls, "num"), cell(m.errors, "num"), cell(m.refused, "num"),
      cell(m.clients, "num"), cell(m.handles, "num")]));
    fill("gateways-table", s.gateways || [], (g) => row([cell(g.name),
      cell(g.pool_in_use, "num"), cell(g.pool_size, "num"), cell(g.handlers, "num")]));
    fill("consoles-table", s.consoles || [], (c) => row([cell(c.transport),
      cell(c.sessions, "num"), cell(c.max_sessions, "num"), cell(c.refused, "num")]));
    const shipped = s.shipped;
    kv("shipped-list", shipped ? [
      ["Modules kept", (shipped.modules || []).length],
      ["Hashes", (shipped.modules || []).map((h) => h.slice(0, 16)).join(", ") || "none"],
      ["Namespaces", shipped.namespaces], ["Refused", shipped.refused]]
      : [["Code shipping", "not accepted on this node"]]);
  }

  function renderTransfers(t) {
    const by = Object.entries(t.files_by_source || {}).map(([k, v]) => k + ": " + v);
    kv("transfers-list", [["Files being received", t.files_incoming],
      ["By source", by.join(", ") || "none"], ["Streams being served", t.streams],
      ["Largest file accepted", t.max_file_size ? bytes(t.max_file_size) : "no limit"]]);
  }

  function renderCounters(c) {
    fill("counters-table", Object.entries(c || {}), ([key, value]) =>
      row([cell(key), cell(value, value ? "num" : "num zero")]));
  }

  function renderBusy(snap) {
    const banner = $("busy");
    if (snap.busy_for > 0) {
      banner.textContent = "main scheduler busy for " + snap.busy_for.toFixed(1) +
        " s" + (snap.age !== null ? " (figures from " + snap.age.toFixed(1) + " s ago)" : "");
      banner.hidden = false;
    } else {
      banner.hidden = true;
    }
    document.body.dataset.busy = String(snap.busy_for || 0);
  }

  function scrub(node) {
    for (const child of Array.from(node.children)) {
      if (!SVG_TAGS.has(child.localName)) { child.remove(); continue; }
      scrub(child);
    }
    for (const attr of Array.from(node.attributes)) {
      const name = attr.name.toLowerCase();
      if (name.startsWith("on") || name.includes("href") || name === "style") {
        node.removeAttribute(attr.name);
      }
    }
  }

  async function getJSON(path) {
    const reply = await fetch(path, {credentials: "same-origin", cache: "no-store"});
    if (!reply.ok) { throw new Error(path + " answered " + reply.status); }
    return reply.json();
  }

  async function refreshGraph() {
    const graph = await getJSON("/api/v1/graph");
    const nodes = graph.nodes || [];
    $("mesh-count").textContent = "(" + nodes.length + " nodes, " +
      (graph.edges || []).length + " edges)";
    if (graph.version === graphVersion) { return; }
    const reply = await fetch("/api/v1/graph.svg", {credentials: "same-origin",
                                                    cache: "no-store"});
    if (!reply.ok) { throw new Error("/api/v1/graph.svg answered " + reply.status); }
    const doc = new DOMParser().parseFromString(await reply.text(), "image/svg+xml");
    const svg = doc.documentElement;
    if (svg.localName !== "svg" || doc.getElementsByTagName("parsererror").length) {
      throw new Error("the mesh picture is not SVG");
    }
    scrub(svg);
    $("graph-box").replaceChildren(document.importNode(svg, true));
    $("graph-box").dataset.nodes = String(nodes.length);
    graphVersion = graph.version;
  }

  async function poll() {
    try {
      const snap = await getJSON("/api/v1/snapshot");
      renderOverview(snap.overview || {});
      renderPeers(snap.peers);
      renderTasks(snap.tasks || {});
      renderChannels(snap.channels || {}, snap.topics);
      renderServices(snap.services || {});
      renderTransfers(snap.transfers || {});
      renderCounters(snap.counters);
      renderBusy(snap);
      if (!painted) {
        painted = true;
        document.body.dataset.firstPaint = String(Math.round(performance.now()));
      }
      await refreshGraph();
      $("status").textContent = "updated " + new Date().toLocaleTimeString() +
        (snap.stale ? " (stale)" : "");
      document.body.dataset.state = "live";
    } catch (err) {
      $("status").textContent = "cannot reach the dashboard: " + err.message;
      document.body.dataset.state = "error";
    } finally {
      document.body.dataset.polls = String(Number(document.body.dataset.polls || 0) + 1);
      setTimeout(poll, POLL_MS);
    }
  }

  poll();
})();
""".replace("@POLL@", str(POLL_MS))
