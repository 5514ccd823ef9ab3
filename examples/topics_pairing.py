"""Topic nodes find each other and pair by shared topics (seed 001, ChaskiNode's notebook).

Node1 subscribes to topic A and counts as paired from the start (``paired=True``); Node2 and
Node3 subscribe to B. Both connect to Node1 only; ``discovery()`` floods through Node1 and
pairs Node2 with Node3. With ``on_pair="disconnect"`` they then drop their links to Node1,
which they no longer need. Node2 publishes on B, Node3 receives it; the mesh is drawn as SVG.

Two forms, both on 127.0.0.1 only, with explicit peers (nothing is broadcast):

* ``python examples/topics_pairing.py``: the three nodes in this one process, as the seed's
  notebook has them (``--svg FILE``: where to draw the mesh, default ``topics_pairing.svg``);
* ``python examples/topics_pairing.py --processes``: the same three nodes as three processes
  (this file run with ``--node Node1`` … ``--node Node3``), started, waited for and ended here.

``--base-port P`` puts the nodes on ports P, P+1, P+2 (default 9801; 0: any free ports, in the
one-process form only).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

import pycos
from pycos.netpycos import Location
from pycos.topics import TopicNode, display_graph

SECRET = "topics-example"


def one_process(base: int, svg: str) -> None:
    port = (lambda i: base + i) if base else (lambda i: 0)
    node1 = TopicNode(["A"], name="Node1", ip="127.0.0.1", port=port(0), secret=SECRET,
                      paired=True)
    node2 = TopicNode(["B"], name="Node2", ip="127.0.0.1", port=port(1), secret=SECRET)
    node3 = TopicNode(["B"], name="Node3", ip="127.0.0.1", port=port(2), secret=SECRET)
    try:
        node2.connect(node1)
        node3.connect(node1)
        print("connected:", sorted(display_graph([node1, node2, node3]).names("link")))

        node2.discovery(on_pair="none", timeout=10)
        node3.discovery(on_pair="none", timeout=10)
        graph = display_graph([node1, node2, node3])
        print("on_pair='none' links:", sorted(graph.names("link")))
        print("on_pair='none' pairs:", sorted(graph.names("pair")))

        node2.connect(node1)
        node3.connect(node1)
        node2.discovery(on_pair="disconnect")
        node3.discovery(on_pair="disconnect")
        graph = display_graph([node1, node2, node3], svg)
        print("on_pair='disconnect' links:", sorted(graph.names("link")))
        print("status of Node2:", node2.status()["paired"])

        received: list[object] = []

        def reader(task: pycos.Task = None) -> object:
            node3.subscribe("B", task)
            task.send("subscribed")
            while (msg := (yield task.receive(timeout=5))) is not None:
                if msg == "subscribed":
                    continue
                received.append(msg)
                return msg

        task = pycos.Task(reader)
        time.sleep(0.05)
        node2.publish("B", {"temp": 21.5})
        msg = task.value(timeout=10)
        print(f"Node3 received from {msg.origin}: {msg.data}")
        rtt = node2.ping(node3, size=64, count=3)
        print(f"ping Node2 -> Node3: {'ok' if 0 < rtt < 1 else rtt}")
        print(f"graph drawn in {svg}")
    finally:
        for node in (node3, node2, node1):
            node.close()


def one_node(name: str, base: int) -> None:
    """One node of the three-process form."""
    root = Location("127.0.0.1", base)
    if name == "Node1":
        tn = TopicNode(["A"], name="Node1", ip="127.0.0.1", port=base, secret=SECRET,
                       paired=True)
        print("ready", flush=True)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:  # serve until both others came and went
            # handshakes counts every node that connected, even one that paired and left
            # between two looks
            if tn.node.stats_snapshot()["handshakes"] >= 2 and tn.status()["peers"] == 0:
                break
            time.sleep(0.1)
        tn.close()
        print("Node1: done", flush=True)
        return
    index = int(name[-1]) - 1
    tn = TopicNode(["B"], name=name, ip="127.0.0.1", port=base + index, secret=SECRET,
                   max_connections=5, reconnections=32)
    got: list[object] = []

    def reader(task: pycos.Task = None) -> object:
        tn.subscribe("B", task)
        msg = yield task.receive(timeout=15)
        got.append(msg)
        return msg

    listener = pycos.Task(reader) if name == "Node3" else None
    tn.connect(root)
    pairs = tn.discovery(on_pair="disconnect", timeout=10)
    print(f"{name}: pairs {sorted(pairs)} paired={tn.paired('B')} "
          f"root link={tn.is_connected_to(root)}", flush=True)
    if listener is not None:
        msg = listener.value(timeout=20)
        print(f"Node3 received from {msg.origin}: {msg.data}", flush=True)
        deadline = time.monotonic() + 15
        while tn.is_connected_to(msg.location) and time.monotonic() < deadline:
            time.sleep(0.05)  # until Node2 has drawn the mesh and leaves
    else:
        tn.wait_paired("B", timeout=10)
        tn.publish("B", {"temp": 21.5})
        partner = pairs["B"][0]
        print(f"Node2: ping Node3 {'ok' if tn.ping(partner) > 0 else 'failed'}", flush=True)
        graph = tn.graph()
        print(f"Node2: graph {sorted(graph.names())}", flush=True)
    tn.close()


def processes(base: int) -> int:
    """Run the three nodes as three processes; their output, in order of arrival."""
    me = os.path.abspath(__file__)
    procs: list[subprocess.Popen[str]] = []
    try:
        first = subprocess.Popen([sys.executable, me, "--node", "Node1", "--base-port",
                                  str(base)], stdout=subprocess.PIPE, text=True)
        procs.append(first)
        assert first.stdout is not None
        if first.stdout.readline().strip() != "ready":
            raise RuntimeError("Node1 did not start")
        for name in ("Node3", "Node2"):
            procs.append(subprocess.Popen([sys.executable, me, "--node", name, "--base-port",
                                           str(base)]))
        codes = [p.wait(timeout=40) for p in reversed(procs)]
        rest = first.stdout.read()
        sys.stdout.write(rest)
        return max(codes)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait(5)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", action="store_true",
                        help="run the three nodes as three processes")
    parser.add_argument("--node", choices=("Node1", "Node2", "Node3"),
                        help="run only this node (used by --processes)")
    parser.add_argument("--base-port", type=int, default=9801)
    parser.add_argument("--svg", default="topics_pairing.svg")
    args = parser.parse_args()
    if args.node:
        one_node(args.node, args.base_port)
        return 0
    if args.processes:
        if not args.base_port:
            parser.error("--processes needs fixed ports (--base-port P, P > 0)")
        return processes(args.base_port)
    one_process(args.base_port, args.svg)
    return 0


if __name__ == "__main__":
    sys.exit(main())
