"""The dashboard's parts without a browser: settings, the request rules, paging, the page's
files, and what a picture of a node holds (two nodes of this process, real clock)."""

from __future__ import annotations

import json
import re
import struct
import sys
from types import SimpleNamespace
from typing import Any

import pytest

from pycos.dashboard import routes, settings, state
from pycos.dashboard.assets import PAGE, STATIC, STYLE
from pycos.dashboard.script import SCRIPT
from pycos.dashboard.settings import DashboardRefused, derive_token, make_settings, parse_bind

h11 = pytest.importorskip("h11", reason="the dashboard needs h11: pip install 'pycos[dashboard]'")

SECRET = "unit-secret-8GhT2q"


def stub_node(certfile: Any = None, secret: str = "", keyfile: Any = None) -> Any:
    config = SimpleNamespace(certfile=certfile, keyfile=keyfile, secret=secret)
    return SimpleNamespace(config=config, addresses=["192.0.2.7"], name="stub")


# ---------------------------------------------------------------------- settings
def test_bind_addresses() -> None:
    assert parse_bind("127.0.0.1:8765") == ("127.0.0.1", 8765)
    assert parse_bind("localhost:0") == ("127.0.0.1", 0)
    assert parse_bind("[::1]:9") == ("::1", 9)
    assert parse_bind(("127.0.0.1", 1)) == ("127.0.0.1", 1)
    for bad in ("127.0.0.1", "host.example:80", "127.0.0.1:99999", ":80", "[::1]", 8765,
                "127.0.0.1:x", ("127.0.0.1", True)):
        with pytest.raises(DashboardRefused):
            parse_bind(bad)


def test_a_non_loopback_bind_needs_tls_and_gets_a_token() -> None:
    with pytest.raises(DashboardRefused, match="TLS"):
        make_settings(stub_node(secret=SECRET), "0.0.0.0:8765")
    with pytest.raises(DashboardRefused, match="TLS"):
        make_settings(stub_node(), "192.0.2.7:8765", token="t" * 20)
    loop = make_settings(stub_node(), "127.0.0.1:0")
    assert loop.token is None and loop.loopback and loop.ssl_context is None
    assert make_settings(stub_node(), "127.0.0.1:0", token=True).token
    for bad in ("short", "has space" * 3, 'quote"' * 4, 123):
        with pytest.raises(DashboardRefused):
            make_settings(stub_node(), "127.0.0.1:0", token=bad)
    with pytest.raises(TypeError, match="unknown dashboard settings"):
        make_settings(stub_node(), "127.0.0.1:0", max_conns=3)
    with pytest.raises(ValueError):
        make_settings(stub_node(), "127.0.0.1:0", max_connections=0)
    assert derive_token(SECRET, "a") == derive_token(SECRET, "a") != derive_token(SECRET + "x",
                                                                                  "a")
    assert derive_token(SECRET, "a") != derive_token(SECRET, "b")  # one per node of a mesh
    assert SECRET not in derive_token(SECRET, "a")


def test_non_loopback_with_tls(tmp_path: Any) -> None:
    sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[1]))
    from certs import make_tls_files

    files = make_tls_files(tmp_path)
    node = SimpleNamespace(config=SimpleNamespace(certfile=files.self_cert,
                                                  keyfile=files.self_key, secret=SECRET),
                           addresses=["192.0.2.7"], name="edge")
    s = make_settings(node, "0.0.0.0:8443", hosts=["dash.example.org"]).with_port(8443)
    assert s.token == derive_token(SECRET, "edge") and s.scheme == "https" and not s.loopback
    assert s.host_allowed("dash.example.org:8443") and s.host_allowed("192.0.2.7:8443")
    assert not s.host_allowed("127.0.0.1:8443") and not s.host_allowed("evil.example:8443")
    random = make_settings(stub_node(certfile=files.self_cert, keyfile=files.self_key),
                           "0.0.0.0:1")
    assert random.token and len(random.token) >= 16  # no secret: a random token


def test_the_host_header_must_name_the_dashboard() -> None:
    s = make_settings(stub_node(), "127.0.0.1:0").with_port(8765)
    good = ["127.0.0.1:8765", "localhost:8765", "LocalHost:8765", "[::1]:8765"]
    bad = ["127.0.0.1", "127.0.0.1:8766", "evil.example:8765", "evil.example", "",
           "127.0.0.1:8765:1", "127.0.0.1:", "[::1", "[::1]x", "127.0.0.2:8765",
           "a" * 300, "127.0.0.1:87 65", "127.0.0.1:\xb2", "127.0.0.1:8765\u0663",
           "127.0.0.1:" + "9" * 40]  # non-ASCII digits that int() refuses, a huge port
    assert all(s.host_allowed(h) for h in good)
    assert not any(s.host_allowed(h) for h in bad)
    on80 = s.with_port(80)
    assert on80.host_allowed("localhost") and on80.host_allowed("localhost:80")


# ---------------------------------------------------------------------- request rules
def request(method: bytes = b"GET", target: bytes = b"/", host: bytes | None = b"h:1",
            **headers: bytes) -> Any:
    items = [(b"host", host)] if host is not None else []
    items += [(k.replace("_", "-").encode(), v) for k, v in headers.items()]
    return h11.Request(method=method, target=target, headers=items)


@pytest.fixture
def rules() -> Any:
    s = make_settings(stub_node(), "127.0.0.1:0").with_port(1)
    return s.__class__(**{**{f: getattr(s, f) for f in s.__dataclass_fields__},
                          "hosts": frozenset({"h"})})


def test_rules_for_every_request(rules: Any) -> None:
    from pycos.dashboard.conn import check

    assert check(request(), rules) is None
    assert check(request(b"HEAD"), rules) is None
    refused = check(request(b"POST"), rules)
    assert refused is not None and refused.status == 405
    assert ("Allow", "GET, HEAD") in refused.headers
    assert check(request(host=b"evil:1"), rules).status == 421  # type: ignore[union-attr]
    assert check(request(content_length=b"3"), rules).status == 413  # type: ignore[union-attr]
    assert check(request(content_length=b"0"), rules) is None
    assert check(request(target=b"*"), rules).status == 400  # type: ignore[union-attr]
    big = request(x_pad=b"a" * (rules.max_head + 1))
    assert check(big, rules).status == 431  # type: ignore[union-attr]


def test_the_token_as_bearer_cookie_or_once_in_the_query(rules: Any) -> None:
    from dataclasses import replace

    from pycos.dashboard.conn import COOKIE, check

    token = "T" * 24
    s = replace(rules, token=token)
    assert check(request(), s).status == 401  # type: ignore[union-attr]
    assert check(request(authorization=b"Bearer " + b"x" * 24), s).status == 401  # type: ignore
    assert check(request(authorization=f"Bearer {token}".encode()), s) is None
    mine = f"{COOKIE}_{s.port}"
    assert check(request(cookie=f"a=b; {mine}={token}".encode()), s) is None
    other = f"{COOKIE}_{s.port + 1}={token}"  # another dashboard's cookie on this host
    assert check(request(cookie=other.encode()), s).status == 401  # type: ignore[union-attr]
    moved = check(request(target=f"/api/v1/peers?limit=5&token={token}".encode()), s)
    assert moved is not None and moved.status == 303
    headers = dict(moved.headers)
    assert headers["Location"] == "/api/v1/peers?limit=5"
    assert "HttpOnly" in headers["Set-Cookie"] and "SameSite=Strict" in headers["Set-Cookie"]
    assert headers["Set-Cookie"].startswith(f"{mine}={token};")
    assert check(request(target=b"/?token=wrong"), s).status == 401  # type: ignore[union-attr]


# ---------------------------------------------------------------------- paging and routes
def test_json_never_holds_nan() -> None:
    assert json.loads(routes.to_json({"a": [float("nan"), 1.5, float("inf")], "b": object}))[
        "a"] == [None, 1.5, None]


def test_paging() -> None:
    rows = [{"n": i} for i in range(2500)]
    page = routes.paginate("peers", rows, 1000, 1000, 1000)
    assert page["total"] == 2500 and page["items"][0] == {"n": 1000} and len(page["items"]) == 1000
    tasks = {"by_name": [[str(i), 1] for i in range(1500)], "registered": list(range(1500))}
    out = routes.paginate("tasks", tasks, 10, 5, 1000)
    assert out["by_name"] == [[str(i), 1] for i in range(10, 15)] and out["by_name_total"] == 1500
    assert len(out["registered"]) == 1000  # every other list is cut to one page


class FakeSnapshots:
    def picture(self) -> Any:
        return {"overview": {"name": "n"}, "peers": [{"name": "p"}], "stale": False,
                "age": 0.0, "busy_for": 0.0, "taken_at": 1.0}
        yield

    graph: Any = None
    version = 0
    svg = None
    mesh_svg = state.Snapshots.mesh_svg  # the real one, on this fake's graph

    def mesh_graph(self) -> Any:
        return self.graph, self.version
        yield


def run_answer(path: str, query: str = "") -> Any:
    gen = routes.answer(path, query, FakeSnapshots(), 1000)
    try:
        next(gen)
    except StopIteration as stop:
        return stop.value
    raise AssertionError("the fake never waits")


def test_the_mesh_picture_is_drawn_once_per_version_of_the_graph(monkeypatch: Any) -> None:
    from pycos.topics.graph import NetworkGraph

    drawn: list[int] = []
    real = NetworkGraph.to_svg
    monkeypatch.setattr(NetworkGraph, "to_svg", lambda g: drawn.append(1) or real(g))
    snaps = FakeSnapshots()
    snaps.graph = NetworkGraph([], [])

    def svg() -> bytes:
        gen = snaps.mesh_svg()
        try:
            next(gen)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]
        raise AssertionError("the fake never waits")

    first = svg()
    assert svg() is first and len(drawn) == 1  # the same bytes, not drawn again
    snaps.version += 1
    assert svg() == first and len(drawn) == 2  # a new version of the graph: drawn again


def test_routes() -> None:
    assert run_answer("/").status == 200
    assert run_answer("/favicon.ico").content_type == "image/x-icon"
    peers = json.loads(run_answer("/api/v1/peers").body)
    assert peers["peers"]["items"] == [{"name": "p"}] and peers["busy_for"] == 0.0
    snap = json.loads(run_answer("/api/v1/snapshot").body)
    assert snap["overview"]["name"] == "n" and snap["peers"]["total"] == 1
    svg = run_answer("/api/v1/graph.svg")
    assert svg.content_type.startswith("image/svg+xml") and svg.body.startswith(b"<svg")
    for path in ("/etc/passwd", "/static/../x", "/api/v1/nothing", "/api/v1/../../x",
                 "/static/dashboard.js/x"):
        assert run_answer(path).status == 404, path
    assert run_answer("/api/v1/peers", "limit=0").status == 400
    assert run_answer("/api/v1/peers", "limit=1001").status == 400
    assert run_answer("/api/v1/peers", "offset=x").status == 400
    assert run_answer("/api/v1/peers", "evil=1").status == 400
    assert run_answer("/api/v1/peers", "&".join(["t=1"] * 20)).status == 400


# ---------------------------------------------------------------------- the page's files
def test_the_page_works_offline_under_its_policy() -> None:
    assert routes.CSP.startswith("default-src 'self'")
    for text in (PAGE, STYLE, SCRIPT):
        assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}", text), "no CDN, no remote"
    assert all('src="/' in tag for tag in re.findall(r"<script[^>]*>", PAGE)), "no inline JS"
    assert "<style" not in PAGE and " style=" not in PAGE and not re.search(r" on\w+=", PAGE)
    assert "innerHTML" not in SCRIPT and "eval(" not in SCRIPT and "document.write" not in SCRIPT
    assert SCRIPT.count("{") == SCRIPT.count("}") and SCRIPT.count("(") == SCRIPT.count(")")
    ico = STATIC["/favicon.ico"][1]
    reserved, kind, count = struct.unpack("<HHH", ico[:6])
    assert (reserved, kind, count) == (0, 1, 1)
    width, height, _c, _r, _planes, bpp, size, offset = struct.unpack("<BBBBHHII", ico[6:22])
    assert (width, height, bpp, offset, offset + size) == (16, 16, 32, 22, len(ico))


# ---------------------------------------------------------------------- pictures of a node
def test_a_picture_of_a_node_never_holds_the_secret(node_pair: Any) -> None:
    import pycos
    from pycos.core import lowlevel
    from pycos.dashboard import collect

    sched, a, b, _clock = node_pair(virtual=False, secret=SECRET)
    chan = pycos.Channel("updates")
    assert chan.register() == 0
    memory = collect.PeerMemory(a)
    lowlevel.run_and_wait(sched, lambda: a.peers.hooks.append(memory.hook))
    out: list[Any] = []
    lowlevel.run_and_wait(sched, lambda: out.append(collect.build(a, memory)))
    picture = out[0]
    text = json.dumps(picture, default=repr)
    assert SECRET not in text
    assert picture["overview"]["secret_set"] is True and picture["overview"]["name"] == "A"
    assert [p["name"] for p in picture["peers"]] == ["B"]
    assert picture["peers"][0]["state"] == "Online"
    assert picture["channels"]["registered"] == [{"name": "updates", "subscribers": 0}]
    # the scheduler's census: two more tasks waiting for a message, by the name of their function
    def listener(task: Any = None) -> Any:
        yield task.receive()

    before = picture["tasks"]
    assert before["census"] and before["total"] >= 1 and "waiting" in before["by_state"]
    listeners: list[Any] = []  # made on the node's scheduler
    lowlevel.run_and_wait(sched, lambda: listeners.extend(pycos.Task(listener) for _ in "ab"))
    census: list[Any] = []
    deadline = __import__("time").monotonic() + 5
    while not census or census[-1]["by_state"]["waiting"] < before["by_state"]["waiting"] + 2:
        assert __import__("time").monotonic() < deadline, census[-1]  # both wait once started
        lowlevel.run_and_wait(sched, lambda: census.append(collect.tasks(a)))
    assert census[-1]["total"] == before["total"] + 2
    assert ["listener", 2] in census[-1]["by_name"]
    lowlevel.run_and_wait(sched, lambda: listeners[0].register("ears"))  # its name, not its fn
    assert "ears" in collect.tasks(a)["registered"] and census[-1]["remote_monitors"] == 0
    for task in listeners:
        task.send("stop")
    b.close()
    wait = __import__("time").monotonic() + 5
    while not memory.offline():
        assert __import__("time").monotonic() < wait, "B never went Offline"
        __import__("time").sleep(0.01)
    rows: list[Any] = []
    lowlevel.run_and_wait(sched, lambda: rows.extend(collect.peers(a, memory)))
    assert [(r["name"], r["state"]) for r in rows] == [("B", "Offline")]
    lowlevel.run_and_wait(sched, lambda: a.peers.hooks.remove(memory.hook))


def test_topic_nodes_and_module_services_are_shown(node_pair: Any) -> None:
    from pycos.core import lowlevel
    from pycos.dashboard import probes
    from pycos.proxy import ModuleService
    from pycos.topics import TopicNode

    sched, a, _b, _clock = node_pair(virtual=False, secret=SECRET)
    tn = TopicNode(["weather"], node=a)
    service = ModuleService(["math"], name="calc", node=a)
    assert service.register() == 0
    try:
        out: dict[str, Any] = {}

        def look() -> None:
            out["topics"] = probes.topics(a)
            out["modules"] = probes.module_services(a)
            out["gateways"] = probes.gateways(a)
            out["shipped"] = probes.code_host(a)
            out["consoles"] = probes.consoles(a)

        lowlevel.run_and_wait(sched, look)
        assert [t["topic"] for t in out["topics"]["topics"]] == ["weather"]
        assert out["modules"][0]["service"] == "calc" and out["modules"][0]["calls"] == 0
        assert out["gateways"] == [] and out["shipped"] is None and out["consoles"] == []
    finally:
        service.close()
        tn.close()


def test_gateways_and_shipped_code_are_shown_by_hash(node_pair: Any) -> None:
    from pycos.core import lowlevel
    from pycos.dashboard import probes
    from pycos.ship import accept_code, stop_accepting
    from pycos.swarm import Gateway

    sched, a, _b, _clock = node_pair(virtual=False, secret=SECRET)
    host = accept_code(node=a)
    gateway = Gateway("files", pool_size=3, node=a)
    gateway.start()
    try:
        host.modules.load("def f():\n    return 1\n", "mod", _sha("def f():\n    return 1\n"))
        out: dict[str, Any] = {}

        def look() -> None:
            out["gateways"] = probes.gateways(a)
            out["shipped"] = probes.code_host(a)

        lowlevel.run_and_wait(sched, look)
        assert out["gateways"][0]["name"] == "files" and out["gateways"][0]["pool_size"] == 3
        assert out["shipped"]["modules"] == [_sha("def f():\n    return 1\n")]
        assert "return 1" not in json.dumps(out)
    finally:
        gateway.close()
        stop_accepting(a)


def _sha(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def test_without_h11_start_says_how_to_install(monkeypatch: Any) -> None:
    import pycos.dashboard as dashboard

    monkeypatch.setitem(sys.modules, "h11", None)
    with pytest.raises(dashboard.DashboardUnavailable, match=r"pycos\[dashboard\]"):
        dashboard.start(stub_node(), "127.0.0.1:0")


def test_settings_module_keeps_the_limits_of_the_design() -> None:
    assert (settings.MAX_CONNECTIONS, settings.MAX_HEAD, settings.HEAD_TIMEOUT,
            settings.PAGE_SIZE) == (64, 8192, 10.0, 1000)


def test_the_busy_answer_is_whole_http() -> None:
    """The 503 written to a connection beyond the limit: its length is its body's, and it has
    the headers of every other answer."""
    from pycos.dashboard.server import BUSY

    head, body = BUSY.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 503 ") and b"Content-Security-Policy: default-src" in head
    assert f"Content-Length: {len(body)}\r\n".encode() in head + b"\r\n"
