"""Code shipping against real node processes on 127.0.0.1: the attacks first, then the work.

Hosts run ``test_ship_host.py`` (beside this file). Every refusal is a typed error here and a
counted refusal there, and the host keeps serving; a 4-worker map survives a worker killed
mid-run with every result exactly once.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from procs import ChildProc, started_by

from pycos.errors import SerializationError
from pycos.net.location import Location

HOST = Path(__file__).resolve().parent / "test_ship_host.py"
SECRET = "ship-test-secret"


class HostProc(ChildProc):
    def __init__(self, args: list[str], log: Path) -> None:
        super().__init__([sys.executable, str(HOST), *args], log,
                         env=dict(os.environ, PYTHONUNBUFFERED="1"))
        self.read_lines()
        self.refused = None
        while True:
            line = self.next_line(15)
            if line.startswith("refused "):
                self.refused = json.loads(line[8:])
            elif line.startswith("ready "):
                self.port = int(line.split()[1])
                break

    def next_line(self, timeout: float) -> str:
        line = self.line_within(timeout)
        if line is None:
            raise AssertionError(f"no line from the host; its log:\n{self.log()}")
        return line

    @property
    def location(self) -> Location:
        return Location("127.0.0.1", self.port)

    def stats(self) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write("stats\n")
        self.proc.stdin.flush()
        return json.loads(self.next_line(10))  # type: ignore[no-any-return]


def host_procs(tmp_path: Path, secret: str) -> Iterator[Callable[..., HostProc]]:
    """A fixture's body: ``start(*args, secret=secret)`` starts a host."""
    def make(n: int, *args: str, secret: str = secret) -> HostProc:
        return HostProc(["--secret", secret, *args], tmp_path / f"host{n}.log")

    return started_by(make)


@pytest.fixture
def hosts(tmp_path: Path) -> Iterator[Callable[..., HostProc]]:
    yield from host_procs(tmp_path, SECRET)


@pytest.fixture
def client(local_node):  # type: ignore[no-untyped-def]
    return local_node(secret=SECRET, name="ship-client")


# ------------------------------------------------------------------ shipped functions
SCALE = 3


def triple(x):  # type: ignore[no-untyped-def]
    return x * SCALE


def fails(x):  # type: ignore[no-untyped-def]
    raise ValueError(f"bad value {x}")


def slow_square(x):  # type: ignore[no-untyped-def]
    import time as t

    t.sleep(0.004)
    return x * x


def writes_marker(path):  # type: ignore[no-untyped-def]
    with open(path, "w") as f:
        f.write("ran")
    return True


def test_code_is_refused_by_a_node_that_did_not_opt_in(hosts, client, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from pycos import ship

    host = hosts()
    marker = tmp_path / "marker"
    with pytest.raises(ship.CodeRefused, match="accept_code"):
        ship.run(host.location, writes_marker, str(marker))
    with pytest.raises(ship.CodeRefused):
        ship.execute(host.location, f"open({str(marker)!r}, 'w')", node=client)
    with pytest.raises(ship.CodeRefused):
        ship.send_module(host.location, "X = 1\n", node=client)
    assert not marker.exists()
    assert client.node.ping(host.location, timeout=5) > 0  # still serving
    with pytest.raises(ValueError, match="no secret"):
        from pycos.net import Node

        bare = Node(host="127.0.0.1", udp_port=None, discover_peers=False, scheduler=client)
        try:
            ship.accept_code(node=bare)
        finally:
            bare.close()


def test_attacks_on_an_accepting_host_are_refused_and_counted(hosts, client, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from pycos import ship

    host = hosts("--accept", "--max-source", "3000")
    loc, node = host.location, client.node
    marker = tmp_path / "marker"
    with pytest.raises(ship.CodeRefused, match="larger than the 3000"):
        ship.send_module(loc, "X = 1\n" * 1000, node=client)
    with pytest.raises(ship.CodeRefused, match="larger"):
        ship.execute(loc, "1" + "+1" * 2000, node=client)
    with pytest.raises(SyntaxError):
        ship.send_module(loc, "def broken(:\n", node=client)
    with pytest.raises(ship.ModuleLoadError) as info:
        ship.send_module(loc, "import no_such_module_here\n", node=client)
    assert info.value.type_name == "ModuleNotFoundError"
    source = f"open({str(marker)!r}, 'w').write('x')\n"
    for payload in ["garbage", ("0" * 64, "m", source), (None, "m", None), ("a" * 64, 5, None)]:
        with pytest.raises(ship.CodeRefused):  # malformed, or the hash does not match
            node.request(loc, "ship.load", payload, 5.0)
    with pytest.raises(ship.CodeRefused, match="malformed"):
        node.request(loc, "ship.call", ("a" * 64, "f", [1], {}, None, "m", False), 5.0)
    with pytest.raises(ship.CodeRefused, match="no function"):
        ship.send_module(loc, "X = 1\n", node=client).function("nothing").run()
    assert not marker.exists()  # nothing of a refused payload ran
    with pytest.raises(ValueError, match="bad value 7") as failed:
        ship.run(loc, fails, 7)
    assert "raised by fails" in failed.value.remote_traceback  # type: ignore[attr-defined]
    assert ship.run(loc, triple, 14) == 42  # and it keeps serving
    refusals = host.stats()["ship"]["refusals"]
    assert refusals["too_large"] == 2 and refusals["syntax_error"] == 1
    assert refusals["import_error"] == 1 and refusals["malformed"] >= 4
    assert refusals["bad_hash"] == 1 and refusals["no_function"] == 1


def test_allow_from_and_namespaces_off(hosts, client) -> None:  # type: ignore[no-untyped-def]
    from pycos import ship

    only_other = hosts("--accept", "--allow-from", "someone-else")
    with pytest.raises(ship.CodeRefused, match="does not accept code from ship-client"):
        ship.run(only_other.location, triple, 1)
    assert only_other.stats()["ship"]["refusals"]["not_allowed"] == 1
    no_ns = hosts("--accept", "--allow-from", "ship-client", "--no-namespaces")
    assert ship.run(no_ns.location, triple, 2) == 6
    with pytest.raises(ship.CodeRefused, match="namespaces"):
        ship.execute(no_ns.location, "1 + 1", node=client)


def test_functions_modules_and_namespaces_on_a_host(hosts, client) -> None:  # type: ignore[no-untyped-def]
    from pycos import ship

    loc = hosts("--accept").location
    f = ship.function(loc, triple, node=client)
    task = f(5)
    assert task.location == loc and task.value(10) == 15
    assert f.run(6) == 18
    mod = ship.send_module(loc, "def hello(n):\n    return 'hi ' * n\n", name="jobs",
                           node=client)
    assert mod.functions == ["hello"] and mod.hello.run(2) == "hi hi "
    assert ship.execute(loc, "x = 41\ndef f(y): return y + x", node=client) is None
    assert ship.execute(loc, "f(1)", node=client) == 42
    with pytest.raises(NameError):
        ship.execute(loc, "f(1)", namespace="other", node=client)


def test_a_four_worker_map_survives_a_worker_killed_mid_run(hosts, client) -> None:  # type: ignore[no-untyped-def]
    from pycos import ship

    procs = [hosts("--accept") for _ in range(4)]
    cluster = ship.Cluster([p.location for p in procs], code=[slow_square], node=client)
    assert cluster.start(timeout=10) == 4
    victim = procs[2]
    killer = threading.Timer(0.25, lambda: os.kill(victim.proc.pid, signal.SIGKILL))
    killer.start()
    began = time.monotonic()
    items = list(range(600))
    results = cluster.map(slow_square, items, timeout=60)
    killer.join()
    assert results == [x * x for x in items]  # every item, once, in order
    report = cluster.last_map
    assert report.lost == [victim.location] and report.reassigned >= 1
    assert victim.location not in cluster.nodes and len(cluster.nodes) == 3
    assert victim.location in set(report.ran_on) or report.reassigned
    assert time.monotonic() - began < 30
    with pytest.raises(SerializationError):
        cluster.map(slow_square, [1, threading.Lock()])
    assert cluster.map(triple, [1, 2, 3]) == [3, 6, 9]  # the cluster goes on
    jobs = [cluster.submit(triple, i) for i in range(6)]
    done = cluster.as_completed(jobs, timeout=10)
    assert sorted(j.result() for j in done) == [0, 3, 6, 9, 12, 15]
    pids = cluster.execute("import os; os.getpid()")
    assert len(pids) == 3 and victim.proc.pid not in pids.values()
    assert cluster.scatter("part", list(range(9))) == 3
    assert cluster.gather("part") == list(range(9))
    cluster.close()
