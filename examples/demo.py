"""pycos across three nodes on this machine.

This process is node-a. It starts node-b and node-c, each a process of its own (this same file
with ``--role node``). Every node listens on 127.0.0.1 only, with discovery off: the nodes find
each other through explicit peers (node-b connects to node-a; node-c to node-a and node-b),
authenticated by a shared secret. Each of node-b and node-c registers a task, ``greeter``, and
a function that peers may run there, ``work`` (an RCI). Then node-a

1. hears that its peers are online (``peer_status``);
2. finds each greeter by name and exchanges messages with it (``deliver`` gives 1 when the
   message is in the other task's queue);
3. asks node-b to pass a message on to node-c, so node-b and node-c talk to each other;
4. runs ``work`` on both nodes at once (``yield rci(n)`` starts a remote task, ``yield
   rtask.finish()`` gives its result), and once with an argument that makes it fail;
5. publishes news on a channel to which a task on each of the other nodes subscribed;
6. tells the greeters to stop, and hears the other nodes go offline.

Every node prints what it does; node-b's and node-c's lines are printed by node-a.

Run: ``python examples/demo.py`` (finishes by itself in a few seconds). The tour of pycos on
one machine is ``examples/local_tour.py``.
"""

import argparse
import os
import queue
import secrets

from _nodes import location, say, start_role, stop_all, stop_when_parent_closes_stdin

import pycos
import pycos.netpycos as netpycos

# The parent makes a secret; its node processes inherit it. Nodes with another secret are refused.
SECRET = os.environ.setdefault("PYCOS_EXAMPLE_SECRET", secrets.token_hex(16))


# ---------------------------------------------------------------- node-b and node-c
def work(n, task=None):
    """Registered as an RCI: peers may run it here as a task."""
    yield task.sleep(0.05)  # a task may wait for anything here; other tasks keep running
    if n < 0:
        raise ValueError(f"work({n}): n must be >= 0")
    return sum(i * i for i in range(n + 1))


def listen(me, chan, task=None):
    yield chan.subscribe(task)
    while (msg := (yield task.receive(timeout=10))) is not None:
        say(f"{me}: heard on {chan.name!r}: {msg!r}")
    yield chan.unsubscribe(task)


def greeter(me, task=None):
    node = pycos.Pycos.instance()
    greeted = 0
    while True:
        msg = yield task.receive()
        kind = msg[0]
        if kind == "quit":
            say(f"{me}: stopping (greetings answered: {greeted})")
            return greeted
        if kind == "hello":  # ("hello", reply-to task, sender's name)
            msg[1].send(f"hello {msg[2]}, this is {me} (process {os.getpid()})")
            greeted += 1
        elif kind == "pass":  # ("pass", reply-to task, other node's name, text)
            other_loc = yield node.locate(msg[2], timeout=5)
            other = yield pycos.Task.locate("greeter", other_loc, timeout=5)
            delivered = yield other.deliver(("from", me, msg[3]), timeout=5)
            say(f"{me}: passed {msg[3]!r} on to {msg[2]}: deliver -> {delivered}")
            msg[1].send(delivered)
        elif kind == "from":  # ("from", sender's name, text)
            say(f"{me}: {msg[1]} says {msg[2]!r}")
        elif kind == "subscribe":  # ("subscribe", reply-to task, channel name, its Location)
            chan = yield pycos.Channel.locate(msg[2], msg[3], timeout=5)
            if chan is not None:
                pycos.Task(listen, me, chan)
            msg[1].send(chan is not None)


def join_peers(peers, task=None):
    node = pycos.Pycos.instance()
    for loc in peers:
        if (yield node.peer(loc)) != 0:
            say(f"{node.name}: cannot connect to {loc}")


def node_main(me, peers):
    node = netpycos.Pycos(host="127.0.0.1", name=me, discover_peers=False, secret=SECRET)
    greeter_task = pycos.Task(greeter, me)
    greeter_task.register("greeter")
    netpycos.RCI(work).register()
    stop_when_parent_closes_stdin(node)
    pycos.Task(join_peers, peers).value(timeout=15)
    say(f"@ready {node.location.port}")  # tells node-a where this node listens
    greeter_task.value(timeout=60)
    node.finish()


# ---------------------------------------------------------------- node-a
def watch_peers(task=None):
    """Receives a PeerStatus message whenever a peer comes online or goes offline; ends
    when both other nodes went offline."""
    offline = 0
    while offline < 2:
        status = yield task.receive(timeout=30)
        if status is None:
            return
        if status.status == netpycos.PeerStatus.Online:
            say(f"node-a: {status.name} is online")
        else:
            say(f"node-a: {status.name} went offline")
            offline += 1


def tour(watcher, task=None):
    node = pycos.Pycos.instance()
    greeters = {}
    for name in ("node-b", "node-c"):
        loc = yield node.locate(name, timeout=10)
        greeters[name] = yield pycos.Task.locate("greeter", loc, timeout=5)
        yield task.monitor(greeters[name])
        delivered = yield greeters[name].deliver(("hello", task, "node-a"), timeout=5)
        reply = yield task.receive(timeout=5)
        say(f"node-a: deliver to {name}'s greeter -> {delivered}; it replied {reply!r}")

    greeters["node-b"].send(("pass", task, "node-c", "hello from node-b"))
    yield task.receive(timeout=10)

    names = {ref.location: name for name, ref in greeters.items()}
    any_work = yield netpycos.RCI.locate("work", timeout=5)  # asks every peer
    say(f"node-a: located RCI 'work' on {names.get(any_work.location)} (the first peer that "
        "has it answers)")
    rtasks = {}
    for name, n in (("node-b", 10), ("node-c", 20)):
        work_there = yield netpycos.RCI.locate("work", greeters[name].location, timeout=5)
        rtasks[name, n] = yield work_there(n)
    rtasks["node-c", -1] = yield work_there(-1)
    for (name, n), rtask in rtasks.items():
        result = yield rtask.finish(timeout=10)
        if isinstance(result, pycos.MonitorStatus):
            say(f"node-a: work({n}) on {name} failed with {result.type.__name__}")
        else:
            say(f"node-a: work({n}) on {name} -> {result}")

    news = pycos.Channel("news")
    news.register()
    for name, greeter_ref in greeters.items():
        greeter_ref.send(("subscribe", task, "news", node.location))
        yield task.receive(timeout=10)
    reached = yield news.deliver("pycos runs on 3 nodes", n=2, timeout=10)
    say(f"node-a: the news reached {reached} subscribers on other nodes")
    news.send(None)  # ends the listeners

    for greeter_ref in greeters.values():
        greeter_ref.send(("quit",))
    for _ in greeters:
        status = yield task.receive(timeout=10)
        say(f"node-a: a greeter ended: {status.type.__name__} {status.value!r}")
    yield watcher.finish(timeout=10)
    news.close()


def main():
    node = netpycos.Pycos(host="127.0.0.1", name="node-a", discover_peers=False,
                          secret=SECRET)
    say(f"pycos {pycos.__version__} demo: node-a on {node.location}")
    watcher = pycos.Task(watch_peers)
    node.peer_status(watcher)
    procs = []
    try:
        peers = [f"{node.location.addr}:{node.location.port}"]
        for name in ("node-b", "node-c"):
            proc = start_role("node", name, *peers)
            procs.append(proc)
            port = proc.control.get(timeout=15).split()[1]
            peers.append(f"127.0.0.1:{port}")
        result = pycos.Task(tour, watcher).value(timeout=30)
        if isinstance(result, pycos.MonitorStatus):  # the tour raised: show why
            say(f"node-a: the tour failed:\n{result.value}")
        else:
            for proc in procs:
                proc.wait(timeout=10)
    except queue.Empty:
        say("node-a: a node did not start")
    finally:
        stop_all(procs)
    node.finish()
    say("demo finished")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--role", choices=["main", "node"], default="main")
    parser.add_argument("name", nargs="?", help="this node's name (node role)")
    parser.add_argument("peers", nargs="*", help="ADDR:PORT of the nodes to connect to")
    args = parser.parse_args()
    if args.role == "node":
        node_main(args.name, [location(peer) for peer in args.peers])
    else:
        main()
