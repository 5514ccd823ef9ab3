"""Discovery between processes on a private LAN of network namespaces.

Every broadcast and multicast here is sent inside namespaces this module creates (see
``netns.Lan``: a bridge namespace and host namespaces ``10.200.1.<i>`` / ``fd00:200:1::<i>``);
nothing is sent on the machine's own interfaces. Each host runs several discovery processes
(``discovery_proc.py``) sharing one UDP port. Skipped, with the reason, when namespaces cannot be
created (not root, no ``ip``).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from netns import Lan, Proc, netns_unavailable  # noqa: E402

if not sys.platform.startswith("linux"):
    pytest.skip("network namespaces are a Linux feature", allow_module_level=True)
_WHY = netns_unavailable()
if _WHY:
    pytest.skip(_WHY, allow_module_level=True)

SCRIPT = str(HERE / "discovery_proc.py")
WAIT = 10.0
PORT = 9705  # inside the namespaces, so the real default port can be used


@pytest.fixture(scope="module")
def lan() -> Iterator[Lan]:
    with Lan(hosts=3) as net:
        yield net


@pytest.fixture
def spawn(lan: Lan) -> Iterator[Callable[..., Proc]]:
    procs: list[Proc] = []

    def _spawn(host: int, name: str, *args: str, udp_port: int = PORT) -> Proc:
        argv = lan.exec_argv(host, [sys.executable, SCRIPT, "--name", name,
                                    "--udp-port", str(udp_port), *args])
        proc = Proc(argv, name)
        procs.append(proc)
        proc.wait_line("ready", WAIT)
        return proc

    yield _spawn
    for proc in procs:
        proc.stop()


def peers(proc: Proc) -> dict[str, str]:
    """name -> host of the peers a process reported."""
    out = {}
    for line in list(proc.lines):
        words = line.split()
        if words[0] == "peer":
            out[words[1]] = words[2]
    return out


def wait_peers(proc: Proc, expected: dict[str, str]) -> None:
    def ok(_lines: list[str]) -> bool:
        got = peers(proc)
        return all(got.get(n) == h for n, h in expected.items())

    proc.wait_for(ok, WAIT, f"peers {expected}")


def check_no_drops(procs: list[Proc]) -> None:
    for proc in procs:
        proc.send("stats")
        line = proc.wait_line("stats", WAIT)
        assert "dropped=0" in line, f"{proc.name}: {line}"


def test_addresses_chosen_inside_a_namespace(spawn: Callable[..., Proc], lan: Lan) -> None:
    proc = spawn(2, "solo", "--no-announce")
    assert proc.wait_line("ready", WAIT).split()[-1] == lan.ipv4(2)


def test_broadcast_discovery_several_nodes_per_host(spawn: Callable[..., Proc],
                                                    lan: Lan) -> None:
    where = {"a1": 1, "a2": 1, "a3": 1, "b1": 2, "b2": 2, "c1": 3}
    procs = {name: spawn(host, name) for name, host in where.items()}
    for name, proc in procs.items():
        wait_peers(proc, {n: lan.ipv4(h) for n, h in where.items() if n != name})
    for name, proc in procs.items():
        assert name not in peers(proc)
    check_no_drops(list(procs.values()))


def test_ipv6_multicast_discovery(spawn: Callable[..., Proc], lan: Lan) -> None:
    where = {"a1": 1, "a2": 1, "b1": 2, "c1": 3}
    procs = {name: spawn(host, name, "--host", lan.ipv6_addr(host))
             for name, host in where.items()}
    for name, proc in procs.items():
        wait_peers(proc, {n: lan.ipv6_addr(h) for n, h in where.items() if n != name})
    check_no_drops(list(procs.values()))


def test_ipv4_multicast_discovery(spawn: Callable[..., Proc], lan: Lan) -> None:
    where = {"a1": 1, "a2": 1, "a3": 1, "b1": 2}
    procs = {name: spawn(host, name, "--no-broadcast", "--multicast")
             for name, host in where.items()}
    for name, proc in procs.items():
        wait_peers(proc, {n: lan.ipv4(h) for n, h in where.items() if n != name})


def test_unicast_contact_reaches_every_node_sharing_the_port(spawn: Callable[..., Proc],
                                                             lan: Lan) -> None:
    # Only the contacter and the contacted host are involved: the a-nodes do not announce, so
    # they need not learn of each other; b2 (sharing b1's port) hears the answers too.
    quiet = ("--no-broadcast", "--no-announce")
    targets = {name: spawn(1, name, *quiet) for name in ("a1", "a2", "a3")}
    b1, b2 = spawn(2, "b1", *quiet), spawn(2, "b2", *quiet)
    b1.send(f"contact {lan.ipv4(1)} {PORT}")
    for proc in targets.values():
        wait_peers(proc, {"b1": lan.ipv4(2)})
    for proc in (b1, b2):
        wait_peers(proc, {n: lan.ipv4(1) for n in targets})
    check_no_drops([*targets.values(), b1, b2])


def test_relay_announces_the_contacter_on_the_far_network(spawn: Callable[..., Proc],
                                                          lan: Lan) -> None:
    # Host 3 nodes never announce and nobody contacts them: only b1's relay can tell them of c.
    far = {name: spawn(3, name, "--no-announce") for name in ("e1", "e2")}
    b1 = spawn(2, "b1", "--no-announce")
    c = spawn(1, "c", "--no-broadcast", "--no-announce")
    c.send(f"contact {lan.ipv4(2)} {PORT}")
    wait_peers(c, {"b1": lan.ipv4(2)})
    wait_peers(b1, {"c": lan.ipv4(1)})
    c.send(f"contact {lan.ipv4(2)} {PORT} relay")
    for proc in far.values():
        wait_peers(proc, {"c": lan.ipv4(1)})
    wait_peers(c, {"b1": lan.ipv4(2), "e1": lan.ipv4(3), "e2": lan.ipv4(3)})
    check_no_drops([c, b1, *far.values()])


def test_different_secrets_on_one_lan_never_meet(spawn: Callable[..., Proc], lan: Lan) -> None:
    a = spawn(1, "a", "--secret", "one")
    b = spawn(2, "b", "--secret", "two")
    c = spawn(2, "c", "--secret", "one")
    wait_peers(a, {"c": lan.ipv4(2)})
    wait_peers(c, {"a": lan.ipv4(1)})
    stats = ""
    for _ in range(50):  # b drops c's announcement; wait for it to be counted
        before = len(b.lines)
        b.send("stats")
        b.wait_for(lambda ls, n=before: len(ls) > n and ls[-1].startswith("stats"), WAIT)
        stats = b.lines[-1]
        if "dropped=0" not in stats:
            break
        time.sleep(0.05)
    assert "peers=0" in stats and "dropped=0" not in stats, stats
    assert "b" not in peers(a) and "b" not in peers(c)


def test_real_nodes_discover_each_other(node_procs: Callable[..., Any], lan: Lan) -> None:
    pytest.importorskip("pycos.netpycos")
    where = {"n1": 1, "n2": 1, "n3": 1, "m1": 2}
    nodes = {}
    for name, host in where.items():
        # m1 is given no host: it must choose its namespace's eth0 address, not loopback.
        addr = lan.ipv4(host) if name != "m1" else ""
        nodes[name] = node_procs("--name", name, "--host", addr, "--udp-port", PORT,
                                 "--discover", "--secret", "netns-nodes",
                                 prefix=tuple(lan.exec_argv(host, [])))
    assert nodes["m1"].addr == lan.ipv4(2)
    for name, node in nodes.items():
        online = {node.wait_event("online")["name"] for _ in range(len(where) - 1)}
        assert online == set(where) - {name}
        expected = sorted(f"{lan.ipv4(where[n])}:{nodes[n].port}" for n in where if n != name)
        assert node.call("peers") == expected
