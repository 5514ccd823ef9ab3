"""The dashboard of a real node process, over plain HTTP: its JSON twins, and attacks first.

A node with a dashboard runs in a process of its own (``DashNode``: the script ``DASH_NODE``,
driven by JSON commands on stdin); its peers are ``node_procs`` processes. Everything stays on
127.0.0.1, every wait is bounded, every process is killed at the end. Attacks: methods other
than GET/HEAD, wrong or missing ``Host``, oversized and slow request heads, 1,000 connections
at once, paths that try to leave the table of pages, a token that is missing or wrong (with
TLS) — each refused with its status, and the node keeps serving its peers. No response ever
carries the node's secret. The class ``DashNode`` is also used by ``test_dashboard_browser.py``.
"""

from __future__ import annotations

import http.client
import json
import os
import queue
import resource
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

if os.environ.get("PYCOS_REQUIRE_BROWSER") != "1":  # CI: a missing h11 fails, never skips
    pytest.importorskip("h11", reason="the dashboard needs h11: pip install 'pycos[dashboard]'")

ROOT = Path(__file__).resolve().parents[2]
SECRET = "dashboard-secret-Zq81xK"

DASH_NODE = r"""
import json, sys, threading, time
sys.path.insert(0, sys.argv[1])
opts = json.loads(sys.argv[2])
import pycos
import pycos.netpycos as netpycos
import pycos.dashboard as dashboard
from pycos.net.location import Location

plain = "token" not in opts and "limits" not in opts  # then Pycos(dashboard=...) starts it
node = netpycos.Pycos(host="127.0.0.1", name=opts.get("name", "dash"), discover_peers=False,
                      secret=opts.get("secret", ""), certfile=opts.get("certfile"),
                      keyfile=opts.get("keyfile"), heartbeat_interval=0.5,
                      latency_interval=0.3,
                      peers=[Location("127.0.0.1", p) for p in opts.get("peers", [])],
                      dashboard=opts.get("bind", "127.0.0.1:0") if plain else None)
chan = pycos.Channel("news")
chan.register()

def waiter(task=None):
    yield task.receive()

worker = pycos.Task(waiter)
worker.register("worker")
dash = node.dashboard if plain else dashboard.start(
    node, opts.get("bind", "127.0.0.1:0"), token=opts.get("token"), **opts.get("limits", {}))
lock = threading.Lock()

def emit(kind, value):
    with lock:
        sys.stdout.write(kind + " " + json.dumps(value) + "\n")
        sys.stdout.flush()

def burn(seconds, task=None):
    end = time.monotonic() + seconds
    while time.monotonic() < end:  # never yields: the main scheduler is busy
        pass
    return 0
    yield

emit("ready", {"port": node.location.port, "url": dash.url, "token": dash.token,
               "name": node.name})
for line in sys.stdin:
    cmd = json.loads(line)
    if cmd[0] == "burn":
        pycos.Task(burn, float(cmd[1]))
        emit("reply", "burning")
    elif cmd[0] == "stats":
        emit("reply", dash.stats())
    elif cmd[0] == "peers":
        emit("reply", sorted(repr(loc) for loc in node.peers()))
    elif cmd[0] == "fds":
        import os
        emit("reply", len(os.listdir("/proc/self/fd")))
    elif cmd[0] == "quit":
        break
dash.close()
node.terminate()
"""


class DashNode:
    """A node process with a dashboard; ``call`` sends one command and returns its reply."""

    def __init__(self, log_path: Path, **opts: Any) -> None:
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.log_path = log_path
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen(
            [sys.executable, "-c", DASH_NODE, str(ROOT), json.dumps(opts)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log, env=env,
            text=True, bufsize=1)
        self.lines: queue.Queue[tuple[str, Any]] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        try:
            kind, ready = self.lines.get(timeout=20)
        except queue.Empty:
            self.stop()
            raise RuntimeError(f"the dashboard node did not start:\n{self.log()}") from None
        assert kind == "ready", (kind, ready, self.log())
        self.port: int = ready["port"]
        self.url: str = ready["url"]
        self.token: str | None = ready["token"]
        self.name: str = ready["name"]
        self.dash_port = int(self.url.rsplit(":", 1)[1].strip("/"))

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            kind, _, rest = line.partition(" ")
            try:
                self.lines.put((kind, json.loads(rest)))
            except ValueError:
                continue

    def call(self, *cmd: Any, timeout: float = 10.0) -> Any:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(list(cmd)) + "\n")
        self.proc.stdin.flush()
        kind, value = self.lines.get(timeout=timeout)
        assert kind == "reply", (kind, value)
        return value

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                try:
                    stream.close()
                except OSError:
                    pass
        self._log.close()


@pytest.fixture
def dash_node(tmp_path: Path) -> Iterator[Callable[..., DashNode]]:
    made: list[DashNode] = []

    def start(**opts: Any) -> DashNode:
        node = DashNode(tmp_path / f"dash{len(made)}.log", **opts)
        made.append(node)
        return node

    try:
        yield start
    finally:
        for node in made:
            node.stop()


def get(port: int, path: str, method: str = "GET", headers: dict[str, str] | None = None,
        timeout: float = 5.0, context: ssl.SSLContext | None = None
        ) -> tuple[int, dict[str, str], bytes]:
    """(status, headers, body) of one request to the dashboard at 127.0.0.1:``port``."""
    if context is not None:
        conn: http.client.HTTPConnection = http.client.HTTPSConnection(
            "127.0.0.1", port, timeout=timeout, context=context)
    else:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, headers=headers or {})
        reply = conn.getresponse()
        return reply.status, {k.lower(): v for k, v in reply.getheaders()}, reply.read()
    finally:
        conn.close()


def get_json(port: int, path: str, **kwargs: Any) -> Any:
    status, _headers, body = get(port, path, **kwargs)
    assert status == 200, (status, body[:300])
    return json.loads(body)


def wait_until(fn: Callable[[], Any], timeout: float = 10.0, step: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout} s: {fn}")
        time.sleep(step)


def raw_exchange(port: int, data: bytes, timeout: float = 5.0) -> tuple[bytes, float]:
    """Send ``data`` on a new connection; (everything read until the dashboard closes it,
    seconds it took)."""
    start = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        out = b""
        try:
            while chunk := sock.recv(65536):
                out += chunk
        except (ConnectionResetError, TimeoutError):
            pass
    return out, time.monotonic() - start


def trickle(port: int, first: bytes, interval: float, limit: float) -> tuple[bytes, float]:
    """Send ``first``, then one more header line every ``interval`` s until the dashboard
    answers or closes (or ``limit`` s pass); (what it sent, seconds it took)."""
    start = time.monotonic()
    got = b""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(first)
        sock.settimeout(interval)
        while time.monotonic() - start < limit:
            try:
                data = sock.recv(65536)
            except TimeoutError:
                try:
                    sock.sendall(b"X-Slow: 1\r\n")
                except OSError:
                    break
                continue
            except ConnectionResetError:
                break
            got += data
            if not data:
                break
    return got, time.monotonic() - start


# ---------------------------------------------------------------------- attacks
def test_methods_other_than_get_and_head_get_405(dash_node: Any) -> None:
    dash = dash_node()
    for method in ("POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "CONNECT", "BREW"):
        status, headers, _body = get(dash.dash_port, "/api/v1/overview", method=method)
        assert status == 405, method
        assert headers["allow"] == "GET, HEAD"
    # a POST with a body it never reads: answered, and the connection closed
    out, _ = raw_exchange(dash.dash_port, b"POST / HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
                          b"Content-Length: 5\r\n\r\nhello" % dash.dash_port)
    assert out.startswith(b"HTTP/1.1 405 ")
    status, headers, body = get(dash.dash_port, "/api/v1/overview", method="HEAD")
    assert status == 200 and body == b"" and int(headers["content-length"]) > 0


def test_a_wrong_or_missing_host_is_refused(dash_node: Any) -> None:
    dash = dash_node()
    port = dash.dash_port
    for host in ("evil.example", f"evil.example:{port}", f"127.0.0.1:{port + 1}",
                 "127.0.0.1", f"10.0.0.1:{port}", "", f"127.0.0.1:{port}:1"):
        status, _h, body = get(port, "/api/v1/overview", headers={"Host": host})
        assert status in (400, 421), (host, status, body)
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"LOCALHOST:{port}"):
        assert get(port, "/api/v1/overview", headers={"Host": host})[0] == 200, host
    weird = b"GET / HTTP/1.1\r\nHost: 127.0.0.1:\xb2\r\n\r\n"  # '\xb2'.isdigit() is True
    assert raw_exchange(port, weird)[0][:13] in (b"HTTP/1.1 400 ", b"HTTP/1.1 421 ")
    assert "Traceback" not in dash.log()
    out, _ = raw_exchange(port, b"GET / HTTP/1.1\r\n\r\n")  # HTTP/1.1 needs a Host
    assert out.startswith(b"HTTP/1.1 400 ")
    two = b"GET / HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nHost: evil\r\n\r\n" % port
    assert raw_exchange(port, two)[0][:13] in (b"HTTP/1.1 400 ", b"HTTP/1.1 421 ")


def test_oversized_and_slow_request_heads_are_cut_off(dash_node: Any) -> None:
    dash = dash_node(limits={"head_timeout": 1.5})
    port = dash.dash_port
    big = b"GET / HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nX-Pad: %s\r\n\r\n" % (port, b"a" * 9000)
    out, took = raw_exchange(port, big)
    assert out.startswith(b"HTTP/1.1 431 ") and took < 3
    # headers trickling in: the whole head must arrive within head_timeout
    got, took = trickle(port, b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n", 0.25, 8.0)
    assert got.startswith(b"HTTP/1.1 408 ") and 1.2 < took < 4, (got[:40], took)
    # an idle connection is closed quietly after the same time
    out, took = raw_exchange(port, b"")
    assert out == b"" and 1.2 < took < 4
    stats = dash.call("stats")
    assert stats["refused_431"] == 1 and stats["head_timeouts"] >= 2


def test_a_thousand_connections_are_bounded_and_the_node_keeps_serving(
        dash_node: Any, node_procs: Any) -> None:
    dash = dash_node(limits={"max_connections": 16})
    peer = node_procs("--name", "peer1", "--peer", f"127.0.0.1:{dash.port}")
    wait_until(lambda: len(dash.call("peers")) == 1)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 1000
    if soft < want + 200:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, want + 400), hard))
    count = min(want, resource.getrlimit(resource.RLIMIT_NOFILE)[0] - 200)
    fds_before = dash.call("fds")
    socks: list[socket.socket] = []
    try:
        for _ in range(count):
            try:
                socks.append(socket.create_connection(("127.0.0.1", dash.dash_port),
                                                      timeout=5))
            except OSError:
                break  # the listen queue is full: that is bounded too
        assert len(socks) >= 200
        time.sleep(0.5)
        # the dashboard holds at most max_connections of them; the rest were told 503
        assert dash.call("fds") <= fds_before + 16 + 8
        busy = 0
        for sock in socks[-50:]:
            sock.settimeout(2)
            try:
                if sock.recv(200).startswith(b"HTTP/1.1 503 "):
                    busy += 1
            except (TimeoutError, ConnectionResetError):
                pass
        assert busy >= 40
        # the node still serves its peer
        reply = peer.call("ping", "127.0.0.1", dash.port, "x")
        assert reply == "x"
    finally:
        for sock in socks:
            sock.close()
    # once they are gone, the page answers again
    wait_until(lambda: get(dash.dash_port, "/api/v1/overview")[0] == 200, timeout=15)
    stats = dash.call("stats")
    assert stats["refused_busy"] >= len(socks) - 16 - 5


def test_paths_never_reach_a_file(dash_node: Any) -> None:
    dash = dash_node()
    for path in ("/../../etc/passwd", "/static/../../../etc/passwd", "/%2e%2e/%2e%2e/etc/passwd",
                 "//etc/passwd", "/static/dashboard.js/../../etc/passwd", "/etc/passwd",
                 "/api/v1/../../etc/passwd", "/static/", "/static/../pycos/__init__.py",
                 "/api/v1/peers/../../../proc/self/environ", "/\x00", "/api/v1/overview%00"):
        status, _h, body = get(dash.dash_port, path.replace("\x00", "%00"))
        assert status in (400, 404), (path, status)
        assert b"root:" not in body and b"PATH=" not in body and b"import" not in body
    out, _ = raw_exchange(dash.dash_port, b"GET http://evil/etc/passwd HTTP/1.1\r\n"
                          b"Host: 127.0.0.1:%d\r\n\r\n" % dash.dash_port)
    assert out.startswith(b"HTTP/1.1 400 ")
    status, _h, _b = get(dash.dash_port, "/api/v1/peers?limit=5000")
    assert status == 400
    status, _h, _b = get(dash.dash_port, "/api/v1/peers?offset=-1")
    assert status == 400


def test_headers_of_every_answer(dash_node: Any) -> None:
    dash = dash_node()
    for path in ("/", "/api/v1/snapshot", "/static/dashboard.js", "/nothing"):
        _status, headers, _body = get(dash.dash_port, path,
                                      headers={"Origin": "http://evil.example"})
        assert headers["content-security-policy"].startswith("default-src 'self'")
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["cache-control"] == "no-store"
        assert not [k for k in headers if k.startswith("access-control-")]


def test_the_secret_is_in_no_answer(dash_node: Any, node_procs: Any) -> None:
    dash = dash_node(secret=SECRET)
    node_procs("--name", "peer1", "--secret", SECRET, "--peer", f"127.0.0.1:{dash.port}")
    wait_until(lambda: get_json(dash.dash_port, "/api/v1/peers")["peers"]["total"] == 1)
    secret = SECRET.encode()
    paths = ["/", "/index.html", "/static/dashboard.js", "/static/dashboard.css",
             "/favicon.ico", "/api/v1/", "/api/v1/snapshot", "/api/v1/graph",
             "/api/v1/graph.svg", *[f"/api/v1/{s}" for s in (
                 "overview", "peers", "tasks", "channels", "topics", "services", "transfers",
                 "counters")]]
    for path in paths:
        status, headers, body = get(dash.dash_port, path)
        assert status == 200, path
        assert secret not in body and SECRET not in json.dumps(headers), path
    overview = get_json(dash.dash_port, "/api/v1/overview")["overview"]
    assert overview["secret_set"] is True


# ---------------------------------------------------------------------- the JSON twins
def test_the_json_twins_show_peers_tasks_channels_and_the_mesh(dash_node: Any,
                                                              node_procs: Any) -> None:
    dash = dash_node()
    b = node_procs("--name", "peerB", "--peer", f"127.0.0.1:{dash.port}")
    node_procs("--name", "peerC", "--peer", f"127.0.0.1:{dash.port}")
    wait_until(lambda: get_json(dash.dash_port, "/api/v1/peers")["peers"]["total"] == 2)
    peers = wait_until(lambda: [p for p in get_json(dash.dash_port, "/api/v1/peers")
                                ["peers"]["items"] if p["samples"] > 0] or None)
    row = peers[0]
    assert row["state"] == "Online" and row["srtt"] > 0 and row["bytes_in"] > 0
    page = get_json(dash.dash_port, "/api/v1/peers?offset=1&limit=1")["peers"]
    assert page["total"] == 2 and len(page["items"]) == 1
    tasks = get_json(dash.dash_port, "/api/v1/tasks")["tasks"]
    assert "worker" in tasks["registered"]  # the name it is registered under
    channels = get_json(dash.dash_port, "/api/v1/channels")["channels"]
    assert [c["name"] for c in channels["registered"]] == ["news"]
    graph = wait_until(lambda: (g := get_json(dash.dash_port, "/api/v1/graph"))["nodes"]
                       and len(g["nodes"]) == 3 and g)
    assert {n["name"] for n in graph["nodes"]} == {"dash", "peerB", "peerC"}
    status, headers, svg = get(dash.dash_port, "/api/v1/graph.svg")
    assert headers["content-type"].startswith("image/svg+xml")
    assert svg.count(b'<g class="node"') == 3
    # a killed peer turns Offline
    b.kill()
    wait_until(lambda: any(p["name"] == "peerB" and p["state"] == "Offline"
                           for p in get_json(dash.dash_port, "/api/v1/peers")["peers"]["items"]),
               timeout=5)


def test_it_answers_while_the_main_scheduler_is_busy(dash_node: Any) -> None:
    dash = dash_node()
    assert get_json(dash.dash_port, "/api/v1/overview")["busy_for"] == 0
    dash.call("burn", 4)
    time.sleep(1.5)
    start = time.monotonic()
    reply = get_json(dash.dash_port, "/api/v1/overview")
    took = time.monotonic() - start
    assert reply["busy_for"] >= 1.0 and reply["stale"] is True and took < 1.5
    assert reply["overview"]["name"] == "dash"  # the last picture, still shown
    wait_until(lambda: get_json(dash.dash_port, "/api/v1/overview")["busy_for"] == 0,
               timeout=10)


# ---------------------------------------------------------------------- TLS and the token
def test_tls_and_the_token(dash_node: Any, tmp_path: Path) -> None:
    sys.path.insert(0, str(ROOT / "tests"))
    from certs import make_tls_files  # tests/certs.py

    files = make_tls_files(tmp_path)
    dash = dash_node(certfile=files.self_cert, keyfile=files.self_key, secret=SECRET,
                     token=True)
    assert dash.url.startswith("https://") and dash.token
    ctx = ssl.create_default_context(cafile=files.self_cert)
    ctx.check_hostname = False
    status, headers, _b = get(dash.dash_port, "/api/v1/overview", context=ctx)
    assert status == 401 and headers["www-authenticate"] == "Bearer"
    status, _h, _b = get(dash.dash_port, "/api/v1/overview", context=ctx,
                         headers={"Authorization": "Bearer " + "x" * 32})
    assert status == 401
    status, _h, _b = get(dash.dash_port, "/api/v1/overview", context=ctx,
                         headers={"Authorization": f"Bearer {dash.token}"})
    assert status == 200
    status, headers, _b = get(dash.dash_port, f"/?token={dash.token}", context=ctx)
    assert status == 303 and headers["location"] == "/"
    cookie = headers["set-cookie"]
    assert "HttpOnly" in cookie and "Secure" in cookie and "SameSite=Strict" in cookie
    status, _h, body = get(dash.dash_port, "/api/v1/snapshot", context=ctx,
                           headers={"Cookie": cookie.split(";")[0]})
    assert status == 200 and SECRET.encode() not in body
    # plain HTTP to a TLS dashboard gets nowhere
    out, _ = raw_exchange(dash.dash_port, b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    assert b"200 OK" not in out
