"""Topic nodes measured (``bench_topics.py`` runs this; everything on 127.0.0.1).

``python topics_bench.py SCENARIO [--n N]`` prints one JSON line. Scenarios:

* ``fanout --subs K``: one publisher process and K subscriber processes (this file with
  ``--role``), paired on topic ``T``; the publisher publishes N messages of 100 bytes from a
  task (yielding ``publish`` when a link is congested); each subscriber times from its first to
  its last message. ``msgs_per_s`` is total deliveries over the longest subscriber span.
* ``late --n N``: N late joiners: a new subscriber node (in the subscriber process) joins,
  ``wait_paired()``, then the publisher publishes one message; ``losses`` counts messages that
  did not arrive within 2 s; ``join_to_delivery_p50_us``; ``ping_p50_us`` (``tn.ping``).
* ``pairing --nodes 8``: a root and 8 processes that ``connect`` to it and
  ``discovery(on_pair="disconnect")``; ``paired_after_last_start_s``: the last node's paired
  time minus the last node's start (wall clock), and whether the root links were dropped.
* ``repair``: two nodes paired; one is killed with SIGKILL and restarted on its port;
  ``repaired_s``: from the kill to the survivor's pair with the new incarnation.

Every wait is bounded; child processes are always killed. Imports the standard library,
``_benchlib`` and pycos (from ``PYTHONPATH``).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from typing import Any

from _benchlib import fanout_record, kill_all, readline

SECRET = "bench"
PAYLOAD = bytes(range(100))


def child(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, os.path.abspath(__file__), *args],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)


def say(proc: subprocess.Popen[str], line: str) -> None:
    assert proc.stdin is not None
    proc.stdin.write(line + "\n")
    proc.stdin.flush()


# ---------------------------------------------------------------------- roles
def role_sub(port: int, n: int) -> None:
    import pycos
    from pycos.topics import TopicNode

    tn = TopicNode(["T"], name=f"sub{os.getpid()}", secret=SECRET, port=port)
    span: list[float] = []

    def reader(task: Any = None) -> Any:
        tn.subscribe("T", task, raw=True)
        count = 0
        while count < n:
            msg = yield task.receive(timeout=60)
            if msg is None:
                break
            if count == 0:
                span.append(time.perf_counter())
            count += 1
        span.append(time.perf_counter())
        return count

    task = pycos.Task(reader)
    print(f"ready {tn.location.port}", flush=True)
    got = task.value(timeout=120)
    print(json.dumps({"count": got, "seconds": span[-1] - span[0]}), flush=True)
    sys.stdin.readline()
    tn.close()


def role_pub(subs: list[int], n: int) -> None:
    import pycos
    from pycos.net.location import Location
    from pycos.topics import TopicNode

    tn = TopicNode(["T"], name="pub", secret=SECRET, max_connections=max(5, len(subs)))
    for port in subs:
        tn.connect(Location("127.0.0.1", port))
    tn.wait_paired("T", 10)
    deadline = time.monotonic() + 10
    while len(tn.status()["pairs"]["T"]) < len(subs) and time.monotonic() < deadline:
        time.sleep(0.01)

    def blast(task: Any = None) -> Any:
        for i in range(n):
            rc = tn.publish("T", PAYLOAD)
            if type(rc) is not int:
                yield rc  # congested: wait for the link to drain
            elif i % 1000 == 999:
                yield task.sleep(0)

    start = time.perf_counter()
    pycos.Task(blast).value(timeout=300)
    print(json.dumps({"publish_s": time.perf_counter() - start}), flush=True)
    sys.stdin.readline()
    tn.close()


# ---------------------------------------------------------------------- scenarios
def fanout(k: int, n: int) -> dict[str, Any]:
    procs: list[subprocess.Popen[str]] = []
    try:
        ports = []
        for _ in range(k):
            p = child("--role", "sub", "--n", str(n))
            procs.append(p)
            ports.append(int(readline(p).split()[1]))
        pub = child("--role", "pub", "--n", str(n), "--subs", ",".join(map(str, ports)))
        procs.append(pub)
        results = [json.loads(readline(p, 300)) for p in procs[:k]]
        pub_s = json.loads(readline(pub, 60))["publish_s"]
        for p in procs:
            say(p, "quit")
        return fanout_record(k, n, results, pub_s)
    finally:
        kill_all(procs)


def late(n: int) -> dict[str, Any]:
    import pycos
    from pycos.topics import TopicNode

    pub = TopicNode(["L"], name="latepub", secret=SECRET, max_connections=8)
    losses = 0
    delays = []
    pings = []
    try:
        for trial in range(n):
            sub = TopicNode(["L"], name=f"late{trial}", secret=SECRET)
            try:
                got: list[float] = []
                ready: list[int] = []

                def reader(task: Any = None, sub: Any = sub, got: Any = got,
                           ready: Any = ready) -> Any:
                    sub.subscribe("L", task, raw=True)
                    ready.append(1)
                    if (yield task.receive(timeout=2)) is not None:
                        got.append(time.perf_counter())

                task = pycos.Task(reader)
                while not ready:
                    time.sleep(0.0005)
                start = time.perf_counter()
                sub.connect(pub)
                if not sub.wait_paired("L", timeout=5):
                    losses += 1
                    continue
                pub.publish("L", trial)
                task.value(timeout=5)
                if got:
                    delays.append(got[0] - start)
                else:
                    losses += 1
                if trial % 50 == 0:
                    pings.append(sub.ping(pub))
            finally:
                sub.close()
    finally:
        pub.close()
    delays.sort()
    pings.sort()
    return {"trials": n, "losses": losses,
            "join_to_delivery_p50_us": delays[len(delays) // 2] * 1e6 if delays else None,
            "ping_p50_us": pings[len(pings) // 2] * 1e6 if pings else None}


def role_member(root: int) -> None:
    from pycos.net.location import Location
    from pycos.topics import TopicNode

    started = time.time()
    tn = TopicNode(["P"], name=f"m{os.getpid()}", secret=SECRET)
    root_loc = Location("127.0.0.1", root)
    tn.connect(root_loc)
    pairs = tn.discovery(on_pair="disconnect", timeout=10)
    paired = time.time()
    print(json.dumps({"started": started, "paired": paired, "pairs": len(pairs["P"]),
                      "root_link": tn.is_connected_to(root_loc)}), flush=True)
    sys.stdin.readline()
    tn.close()


def role_root() -> None:
    from pycos.topics import TopicNode

    tn = TopicNode([], name="root", secret=SECRET, root=True)
    print(f"ready {tn.location.port}", flush=True)
    sys.stdin.readline()
    tn.close()


def pairing(nodes: int) -> dict[str, Any]:
    procs: list[subprocess.Popen[str]] = []
    try:
        root = child("--role", "root")
        procs.append(root)
        port = int(readline(root).split()[1])
        members = [child("--role", "member", "--root", str(port)) for _ in range(nodes)]
        procs.extend(members)
        results = [json.loads(readline(p, 60)) for p in members]
        last_start = max(r["started"] for r in results)
        for p in procs:
            say(p, "quit")
        return {"nodes": nodes,
                "paired_after_last_start_s": max(r["paired"] for r in results) - last_start,
                "all_paired": all(r["pairs"] >= 1 for r in results),
                "root_links_left": sum(r["root_link"] for r in results)}
    finally:
        kill_all(procs)


def role_pair(port: int, dial: int) -> None:
    from pycos.net.location import Location
    from pycos.topics import TopicNode

    tn = TopicNode(["K"], name=f"K{port or 'a'}", secret=SECRET, port=port)
    print(f"ready {tn.location.port}", flush=True)
    if dial:
        tn.connect(Location("127.0.0.1", dial))
    for line in sys.stdin:
        if line.startswith("pairs"):
            print(json.dumps([p.port for p in tn.status()["pairs"]["K"]]), flush=True)
        else:
            break
    tn.close()


def repair() -> dict[str, Any]:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        bport = s.getsockname()[1]
    procs: list[subprocess.Popen[str]] = []
    try:
        b = child("--role", "pair", "--port", str(bport))
        procs.append(b)
        readline(b)
        a = child("--role", "pair", "--dial", str(bport))
        procs.append(a)
        readline(a)

        def pairs() -> list[int]:
            say(a, "pairs")
            return json.loads(readline(a))  # type: ignore[no-any-return]

        deadline = time.monotonic() + 10
        while pairs() != [bport] and time.monotonic() < deadline:
            time.sleep(0.01)
        killed = time.monotonic()
        b.send_signal(signal.SIGKILL)
        b.wait(10)
        b2 = child("--role", "pair", "--port", str(bport))
        procs.append(b2)
        readline(b2)
        seen_empty = False
        while time.monotonic() < killed + 15:
            now = pairs()
            seen_empty = seen_empty or now == []
            if seen_empty and now == [bport]:
                return {"repaired_s": time.monotonic() - killed}
            time.sleep(0.01)
        return {"repaired_s": None}
    finally:
        for p in procs:
            if p.poll() is None:
                try:
                    say(p, "quit")
                except OSError:
                    pass
        kill_all(procs)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("scenario", nargs="?")
    p.add_argument("--role")
    p.add_argument("--n", type=int, default=100_000)
    p.add_argument("--subs", default="1")
    p.add_argument("--nodes", type=int, default=8)
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--root", type=int, default=0)
    p.add_argument("--dial", type=int, default=0)
    a = p.parse_args()
    if a.role == "sub":
        role_sub(a.port, a.n)
    elif a.role == "pub":
        role_pub([int(x) for x in a.subs.split(",")], a.n)
    elif a.role == "member":
        role_member(a.root)
    elif a.role == "root":
        role_root()
    elif a.role == "pair":
        role_pair(a.port, a.dial)
    elif a.scenario == "fanout":
        print(json.dumps(fanout(int(a.subs), a.n)))
    elif a.scenario == "late":
        print(json.dumps(late(a.n)))
    elif a.scenario == "pairing":
        print(json.dumps(pairing(a.nodes)))
    elif a.scenario == "repair":
        print(json.dumps(repair()))
    else:
        p.error("give a scenario: fanout, late, pairing or repair")


if __name__ == "__main__":
    main()
