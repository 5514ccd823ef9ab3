"""A dashboard running in this process, on a node of this process (real clock, 127.0.0.1):
keep-alive, HEAD, answers while the node's scheduler is hogged, and its end with the node."""

from __future__ import annotations

import http.client
import json
import time
from typing import Any

import pytest

pytest.importorskip("h11", reason="the dashboard needs h11: pip install 'pycos[dashboard]'")

import pycos  # noqa: E402
import pycos.dashboard as dashboard  # noqa: E402


def wait_for(fn: Any, timeout: float = 5.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := fn()):
        assert time.monotonic() < deadline, f"not true within {timeout} s"
        time.sleep(0.02)
    return value


def port_of(dash: Any) -> int:
    return int(dash.url.rsplit(":", 1)[1].strip("/"))


def test_keep_alive_head_and_the_node_found_by_default(node_pair: Any) -> None:
    _sched, a, _b, _clock = node_pair(virtual=False)
    dash = dashboard.start(None, "127.0.0.1:0")  # the running scheduler's default node: A
    try:
        assert dash.node is a and dash.token is None and dash.login_url == dash.url
        conn = http.client.HTTPConnection("127.0.0.1", port_of(dash), timeout=5)
        for path in ("/", "/api/v1/overview", "/api/v1/peers", "/static/dashboard.css"):
            conn.request("GET", path)
            reply = conn.getresponse()
            assert reply.read() and reply.status == 200, path
        conn.request("HEAD", "/api/v1/peers")
        reply = conn.getresponse()
        assert reply.status == 200 and reply.read() == b""
        conn.request("GET", "/api/v1/peers")
        peers = json.loads(conn.getresponse().read())["peers"]
        assert [p["name"] for p in peers["items"]] == ["B"]
        conn.close()
        stats = dash.stats()
        assert stats["connections"] == 1 and stats["requests"] == 6
    finally:
        dash.close()
        dash.close()  # twice is fine


def test_answers_while_the_nodes_scheduler_is_hogged(node_pair: Any) -> None:
    sched, a, _b, _clock = node_pair(virtual=False)
    dash = dashboard.start(a, "127.0.0.1:0")
    try:
        def get() -> Any:
            conn = http.client.HTTPConnection("127.0.0.1", port_of(dash), timeout=5)
            try:
                conn.request("GET", "/api/v1/overview")
                return json.loads(conn.getresponse().read())
            finally:
                conn.close()

        assert get()["busy_for"] == 0

        def hog(task: Any = None) -> Any:
            time.sleep(3.0)  # never yields: the node's scheduler is stuck
            yield task.sleep(0)

        pycos.Task(hog)
        time.sleep(1.2)
        start = time.monotonic()
        reply = get()
        assert time.monotonic() - start < 1.5
        assert reply["busy_for"] >= 0.8 and reply["stale"] and reply["overview"]["name"] == "A"
        wait_for(lambda: get()["busy_for"] == 0, timeout=10)
    finally:
        dash.close()


def test_the_dashboard_ends_with_its_node(node_pair: Any) -> None:
    _sched, a, _b, _clock = node_pair(virtual=False)
    dash = dashboard.start(a, "127.0.0.1:0")
    port = port_of(dash)
    a.close()
    wait_for(lambda: dash.closed, timeout=5)

    def refused() -> bool:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
        try:
            conn.connect()
        except OSError:
            return True
        finally:
            conn.close()
        return False

    wait_for(refused, timeout=5)
