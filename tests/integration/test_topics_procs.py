"""Topic nodes as separate processes on 127.0.0.1 (and, for datagrams, in network namespaces).

This file is also the node program the tests start: ``python test_topics_procs.py --name N
--topics B ...`` runs one ``TopicNode``, prints ``ready <port>`` and then answers JSON commands
read from stdin (``connect``, ``discovery``, ``wait_paired``, ``publish``, ``received``,
``status``, ``stats``, ``graph``, ``quit``), one ``reply <json>`` line each; every message
received on its topics is kept. The tests: the seed's two scenarios with three processes; a
relay group of 8 with cap 2 (every message exactly once); kill -9 and restart on the same
port (re-paired, new incarnation, within 3 s); datagrams between two namespaces (root only);
the example's three-process form.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from procs import ChildProc, started_by

HERE = Path(__file__).resolve()
ROOT = HERE.parents[2]
SECRET = "topics-it"
TIMEOUT = 15.0


# ---------------------------------------------------------------------- the node program
def serve(argv: list[str]) -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--name", required=True)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--topics", default="")
    p.add_argument("--root", action="store_true")
    p.add_argument("--paired", action="store_true")
    p.add_argument("--relay", action="store_true")
    p.add_argument("--datagram", action="store_true")
    p.add_argument("--cap", type=int, default=5)
    args = p.parse_args(argv)
    import pycos
    from pycos.net.location import Location
    from pycos.topics import TopicNode

    topics = [t for t in args.topics.split(",") if t]
    tn = TopicNode(topics, name=args.name, ip=args.host, port=args.port, secret=SECRET,
                   root=args.root, paired=args.paired, relay=args.relay,
                   datagram=args.datagram, max_connections=args.cap)
    got: list[list[Any]] = []

    def reader(topic: str, task: Any = None) -> Any:
        tn.subscribe(topic, task)
        while True:
            msg = yield task.receive()
            got.append([msg.topic, msg.origin, msg.seq, msg.data])

    for topic in topics:
        pycos.Task(reader, topic)

    def loc(a: Any) -> Location:
        return Location(a[0], int(a[1]))

    def pairs(d: dict[str, Any]) -> dict[str, Any]:
        return {t: [[x.addr, x.port] for x in v] for t, v in d.items()}

    sys.stdout.write(f"ready {tn.location.port} {tn.node.incarnation.hex()}\n")
    sys.stdout.flush()
    for line in sys.stdin:
        cmd, *a = json.loads(line)
        try:
            if cmd == "connect":
                out: Any = tn.connect(loc(a[0]))
            elif cmd == "discovery":
                out = pairs(tn.discovery(loc(a[2]) if len(a) > 2 else None, a[0], a[1]))
            elif cmd == "wait_paired":
                out = tn.wait_paired(a[0], a[1])
            elif cmd == "publish":
                out = [tn.publish(a[0], x, datagram=bool(a[2])) for x in a[1]]
            elif cmd == "received":
                out = list(got)
            elif cmd == "status":
                st = tn.status()
                out = {"paired": st["paired"], "peers": st["peers"], "pairs": pairs(st["pairs"])}
            elif cmd == "stats":
                out = tn.stats()
            elif cmd == "graph":
                g = tn.graph(depth=a[0])
                out = sorted(list(x) for x in g.names())
            elif cmd == "quit":
                tn.close()
                out = "bye"
            else:
                out = f"unknown command {cmd}"
        except Exception as exc:  # noqa: BLE001 - reported to the test
            out = f"error {type(exc).__name__}: {exc}"
        sys.stdout.write(f"reply {json.dumps(out)}\n")
        sys.stdout.flush()
        if cmd == "quit":
            break


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    serve(sys.argv[1:])
    sys.exit(0)


# ---------------------------------------------------------------------- the tests' side
class TopicProc(ChildProc):
    """One node process; ``call`` sends a command and returns its reply."""

    def __init__(self, name: str, *opts: str, prefix: tuple[str, ...] = (),
                 log_dir: Path) -> None:
        self.name = name
        env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1")
        super().__init__([*prefix, sys.executable, str(HERE), "--name", name, *opts],
                         log_dir / f"{name}.log", env=env)
        self.read_lines()
        first = self._next(TIMEOUT)
        if not first.startswith("ready "):
            self.stop()
            raise RuntimeError(f"{name} did not start: {first!r}\n{self.log()}")
        _, port, inc = first.split()
        self.port, self.incarnation = int(port), inc

    def _next(self, timeout: float) -> str:
        return self.line_within(timeout) or ""

    def log(self) -> str:
        return super().log()[-3000:]

    def call(self, *cmd: Any, timeout: float = TIMEOUT) -> Any:
        self.send(*cmd)
        line = self._next(timeout)
        assert line.startswith("reply "), f"{self.name}: no reply to {cmd}: {line!r}\n{self.log()}"
        value = json.loads(line[6:])
        assert not (isinstance(value, str) and value.startswith("error ")), \
            f"{self.name}: {cmd} failed: {value}"
        return value


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[Callable[..., TopicProc]]:
    yield from started_by(lambda _n, name, *opts, prefix=(): TopicProc(
        name, *opts, prefix=prefix, log_dir=tmp_path))


def at(p: TopicProc, host: str = "127.0.0.1") -> list[Any]:
    return [host, p.port]


def eventually(fn: Callable[[], Any], timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.05)


def test_seed_scenarios_with_three_processes(procs: Callable[..., TopicProc]) -> None:
    n1 = procs("Node1", "--topics", "A", "--paired")
    n2 = procs("Node2", "--topics", "B")
    n3 = procs("Node3", "--topics", "B")
    assert n2.call("connect", at(n1)) == 0 and n3.call("connect", at(n1)) == 0
    assert n2.call("discovery", "none", 10) == {"B": [at(n3)]}
    assert n3.call("discovery", "none", 10) == {"B": [at(n2)]}
    full = [["Node1", "Node2"], ["Node1", "Node3"], ["Node2", "Node3"], ["Node2", "Node3", "B"]]
    assert eventually(lambda: n1.call("graph", 2) == full), n1.call("graph", 2)
    assert n2.call("discovery", "disconnect", 10) == {"B": [at(n3)]}
    assert n3.call("discovery", "disconnect", 10) == {"B": [at(n2)]}
    assert eventually(lambda: n2.call("graph", 3) == [["Node2", "Node3"],
                                                      ["Node2", "Node3", "B"]])
    assert eventually(lambda: n1.call("status")["peers"] == 0)
    n2.call("publish", "B", [1, 2, 3], False)
    assert eventually(lambda: [m[3] for m in n3.call("received")] == [1, 2, 3])


def test_relay_group_of_8_with_cap_2_gets_each_message_exactly_once(
        procs: Callable[..., TopicProc]) -> None:
    root = procs("root", "--root")
    group = [procs(f"R{i}", "--topics", "R", "--relay", "--cap", "2") for i in range(8)]
    for p in group:
        assert p.call("connect", at(root)) == 0
    for p in group:
        p.call("discovery", "none", 10)
    for i, p in enumerate(group):  # a full mesh of links: the pairs form a ring on it
        for q in group[:i]:
            p.call("connect", at(q))

    def ring() -> bool:
        sizes = [len(p.call("status")["pairs"]["R"]) for p in group]
        return sizes == [2] * 8

    assert eventually(ring), [p.call("status") for p in group]
    time.sleep(0.3)
    assert ring()
    for i, p in enumerate(group):
        p.call("publish", "R", [f"{i}-{k}" for k in range(10)], False)
    want = sorted(f"{i}-{k}" for i in range(8) for k in range(10))
    for p in group:
        got = eventually(lambda p=p: (lambda r: r if len(r) >= 80 else None)(
            p.call("received")), 10)
        assert got is not None, f"{p.name} got {len(p.call('received'))} of 80"
        time.sleep(0.2)
        data = sorted(m[3] for m in p.call("received"))
        assert data == want, f"{p.name}: duplicates or losses"
    assert sum(p.call("stats")["relay_duplicates"] for p in group) > 0  # de-duplication worked


def test_kill_9_and_restart_repairs_within_3_s(procs: Callable[..., TopicProc]) -> None:
    a = procs("A", "--topics", "K")
    b = procs("B", "--topics", "K")
    assert a.call("connect", at(b)) == 0  # a dialed: a redials b when it drops (reconnect)
    assert a.call("wait_paired", "K", 10) and b.call("wait_paired", "K", 10)
    old = b.incarnation
    killed = time.monotonic()
    b.proc.send_signal(signal.SIGKILL)
    b.stop()
    assert eventually(lambda: a.call("status")["pairs"]["K"] == [], 5)
    b2 = procs("B", "--topics", "K", "--port", str(b.port))
    assert b2.incarnation != old
    assert eventually(lambda: a.call("status")["pairs"]["K"] == [at(b2)], 5)
    took = time.monotonic() - killed
    assert took <= 3.0, f"re-paired {took:.2f} s after kill -9"
    a.call("publish", "K", ["after"], False)
    assert eventually(lambda: [m[3] for m in b2.call("received")] == ["after"])


def test_the_example_in_both_forms(tmp_path: Path) -> None:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    example = ROOT / "examples" / "topics_pairing.py"
    one = subprocess.run([sys.executable, str(example), "--base-port", "0", "--svg",
                          str(tmp_path / "mesh.svg")], capture_output=True, text=True,
                         timeout=60, env=env, cwd=tmp_path)
    assert one.returncode == 0, one.stderr
    assert "on_pair='disconnect' links: [('Node2', 'Node3')]" in one.stdout
    assert "Node3 received from Node2: {'temp': 21.5}" in one.stdout
    assert (tmp_path / "mesh.svg").read_text().startswith("<svg")
    import socket

    with socket.socket() as s:  # three consecutive free ports, most likely
        s.bind(("127.0.0.1", 0))
        base = s.getsockname()[1] % 20000 + 30000
    three = subprocess.run([sys.executable, str(example), "--processes", "--base-port",
                            str(base)], capture_output=True, text=True, timeout=90, env=env,
                           cwd=tmp_path)
    assert three.returncode == 0, three.stderr[-2000:]
    for line in ("Node2: pairs ['B'] paired=True root link=False",
                 "Node3 received from Node2: {'temp': 21.5}",
                 "Node2: graph [('Node2', 'Node3'), ('Node2', 'Node3', 'B')]"):
        assert line in three.stdout, three.stdout


def test_datagrams_between_network_namespaces(procs: Callable[..., TopicProc]) -> None:
    if os.geteuid() != 0:
        pytest.skip("datagram mode runs in network namespaces, which need root")
    sys.path.insert(0, str(HERE.parent))
    from netns import Lan, netns_unavailable

    why = netns_unavailable()
    if why:
        pytest.skip(why)
    with Lan(hosts=2, ipv6=False) as lan:
        a = procs("DA", "--topics", "D", "--datagram", "--host", lan.ipv4(1),
                  prefix=tuple(lan.exec_argv(1, [])))
        b = procs("DB", "--topics", "D", "--datagram", "--host", lan.ipv4(2),
                  prefix=tuple(lan.exec_argv(2, [])))
        assert a.call("connect", [lan.ipv4(2), b.port]) == 0
        assert a.call("wait_paired", "D", 10) and b.call("wait_paired", "D", 10)
        time.sleep(0.2)  # both interest messages (and keys) have crossed
        assert a.call("publish", "D", [{"n": i} for i in range(5)], True) == [1] * 5
        got = eventually(lambda: (lambda r: r if len(r) == 5 else None)(b.call("received")))
        assert got is not None and [m[3]["n"] for m in got] == list(range(5))
        assert b.call("stats")["datagrams_received"] == 5
        try:
            a.stop()
        finally:
            b.stop()


CLI = """
import argparse, sys
from pycos.cli import graph
from pycos.cli.output import Output
from pycos.cli.status import CliError
p = argparse.ArgumentParser()
graph.add_arguments(p)
a = p.parse_args(sys.argv[1:])
out = Output(json_mode=a.json)
try:
    sys.exit(graph.run(a, out))
except CliError as exc:
    out.error(exc.message)
    sys.exit(exc.code)
"""


def test_the_graph_command(procs: Callable[..., TopicProc], tmp_path: Path) -> None:
    n1 = procs("Node1", "--topics", "A", "--paired")
    n2 = procs("Node2", "--topics", "B")
    n3 = procs("Node3", "--topics", "B")
    n2.call("connect", at(n1))
    n3.call("connect", at(n1))
    n2.call("discovery", "none", 10)
    env = dict(os.environ, PYTHONPATH=str(ROOT))

    def cli(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-c", CLI, *argv, "--secret", SECRET,
                               "--timeout", "3"], capture_output=True, text=True, timeout=60,
                              env=env)

    done = cli(f"127.0.0.1:{n1.port}", "--json", "-o", str(tmp_path / "mesh.svg"))
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert doc["ok"] and sorted(n["name"] for n in doc["nodes"]) == ["Node1", "Node2", "Node3"]
    assert [e["kind"] for e in doc["edges"]].count("pair:B") == 1
    assert (tmp_path / "mesh.svg").read_text().startswith("<svg")
    text = cli(f"127.0.0.1:{n2.port}", "--depth", "0")
    assert text.returncode == 0 and "Node2" in text.stdout and "pair" in text.stdout
    assert "Node3" in text.stdout  # one hop away: seen, not described
    wrong = cli(f"127.0.0.1:{n1.port}", "-o", str(tmp_path / "mesh.txt"))
    assert wrong.returncode == 1 and ".svg" in wrong.stderr
    n3.stop()
    with __import__("socket").socket() as s:
        s.bind(("127.0.0.1", 0))
        free = s.getsockname()[1]
    gone = cli(f"127.0.0.1:{free}")
    assert gone.returncode == 3, gone.stderr
