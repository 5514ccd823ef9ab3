"""Remote task invocation (RCI): run a registered function as a task on another node.

This process is the client node. It starts a server node as a process of its own (this same
file with ``--role server``); both listen on 127.0.0.1 only, discovery off, and the server
connects to the client's node explicitly with the shared secret. The server registers the
generator function ``compute`` as an RCI; only registered functions can be run this way.

The client finds it with ``RCI.locate`` (without a location every peer is asked; the first one
that has it answers), installs a monitor for the tasks it creates, and calls it four times:
``rtask = yield compute(n)`` starts a task on the server and gives a reference to it.
``compute`` fails for odd numbers, so the monitor sees two normal ends and two failures, and
``yield rtask.finish()`` gives each result (a ``MonitorStatus`` for the failed ones).

Run: ``python examples/rci_monitor.py`` (finishes by itself in about a second).
"""

import argparse
import os
import secrets
import sys

from _nodes import location, say, start_role, stop_all

import pycos
import pycos.netpycos as netpycos

# The parent makes a secret; its node processes inherit it. Nodes with another secret are refused.
SECRET = os.environ.setdefault("PYCOS_EXAMPLE_SECRET", secrets.token_hex(16))


# ---------------------------------------------------------------- the server node
def compute(n, task=None):
    yield task.sleep(0.05 * n)
    if n % 2:
        raise ValueError(f"{n} is odd")
    return n * n


def join(node, client_loc, task=None):
    status = yield node.peer(client_loc)
    say(f"server: connected to the client node: {status == 0}")


def server_main(client_loc):
    node = netpycos.Pycos(host="127.0.0.1", name="rci-server", discover_peers=False,
                          secret=SECRET)
    netpycos.RCI(compute).register()  # clients may now run 'compute' here
    pycos.Task(join, node, client_loc)
    sys.stdin.read()  # serve until the client closes our stdin (or goes away)
    node.finish()


# ---------------------------------------------------------------- the client node
def watcher(count, task=None):
    for _ in range(count):
        status = yield task.receive(timeout=10)
        if status is None:
            say("watcher: no more reports within 10 s")
            return
        if status.type is StopIteration:
            say(f"watcher: {status.info.name} returned {status.value}")
        else:
            last_line = status.value.strip().splitlines()[-1]  # value is the traceback text
            say(f"watcher: {status.info.name} failed: {last_line}")


def client(task=None):
    node = pycos.Pycos.instance()
    server_loc = yield node.locate("rci-server", timeout=10)
    compute_rci = yield netpycos.RCI.locate("compute", timeout=5)
    if server_loc is None or compute_rci is None:
        say("client: the server or its RCI did not come up")
        return
    say(f"client: located RCI {compute_rci.name!r} (on rci-server: "
        f"{compute_rci.location == server_loc})")
    missing = yield netpycos.RCI.locate("format_disk", timeout=5)
    say(f"client: RCI 'format_disk' -> {missing}")
    watch = pycos.Task(watcher, 4)
    compute_rci.monitor(watch)  # watch gets a MonitorStatus for every task created below
    rtasks = []
    for n in (1, 2, 3, 4):
        rtasks.append((yield compute_rci(n)))
    say(f"client: started {len(rtasks)} remote tasks")
    results = []
    for rtask in rtasks:
        result = yield rtask.finish(timeout=10)
        results.append(result.type.__name__ if isinstance(result, pycos.MonitorStatus)
                       else result)
    say(f"client: results {results}")
    yield watch.finish(timeout=10)
    compute_rci.close()


def client_main():
    node = netpycos.Pycos(host="127.0.0.1", name="rci-client", discover_peers=False,
                          secret=SECRET)
    loc = node.location
    server_proc = start_role("server", f"{loc.addr}:{loc.port}")
    try:
        pycos.Task(client).value(timeout=30)
    finally:
        stop_all([server_proc])
    say(f"client: the server process exited with status {server_proc.returncode}")
    node.finish()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--role", choices=["client", "server"], default="client")
    parser.add_argument("peer", nargs="?", help="ADDR:PORT of the client node (server role)")
    args = parser.parse_args()
    if args.role == "server":
        server_main(location(args.peer))
    else:
        client_main()
