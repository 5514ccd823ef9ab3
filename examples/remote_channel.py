"""Remote channels: one node publishes on a registered channel, tasks on other nodes subscribe.

This process is the publisher node. It registers a channel and starts two reader nodes, each a
process of its own (this same file with ``--role reader``), on 127.0.0.1 with discovery off;
each reader connects to the publisher's node explicitly and authenticates with the shared
secret. A reader finds the channel by name (``Channel.locate``) and subscribes its task to it:
from then on the task receives every message of the channel, as a local subscriber would.

``yield chan.deliver(msg, n=3)`` waits until the channel has at least 3 subscribers (here one
local task and one task on each reader node) and answers how many tasks the message reached.

Run: ``python examples/remote_channel.py`` (finishes by itself in about a second).
"""

import argparse
import os
import secrets

from _nodes import location, say, start_role, stop_all, stop_when_parent_closes_stdin

import pycos
import pycos.netpycos as netpycos

# The parent makes a secret; its node processes inherit it. Nodes with another secret are refused.
SECRET = os.environ.setdefault("PYCOS_EXAMPLE_SECRET", secrets.token_hex(16))


# ---------------------------------------------------------------- the reader nodes
def reader(name, publisher_loc, task=None):
    node = pycos.Pycos.instance()
    if (yield node.peer(publisher_loc)) != 0:
        say(f"{name}: cannot reach the publisher's node")
        return
    news = yield pycos.Channel.locate("news", publisher_loc, timeout=5)
    if news is None:
        say(f"{name}: no channel 'news' on the publisher's node")
        return
    yield news.subscribe(task)
    say(f"{name}: subscribed to {news.name!r} on the publisher's node")
    received = []
    while (msg := (yield task.receive(timeout=10))) is not None:
        received.append(msg)
    yield news.unsubscribe(task)
    say(f"{name} received {received}")


def reader_main(name, publisher_loc):
    node = netpycos.Pycos(host="127.0.0.1", name=name, discover_peers=False, secret=SECRET)
    stop_when_parent_closes_stdin(node)
    pycos.Task(reader, name, publisher_loc).value(timeout=30)
    node.finish()


# ---------------------------------------------------------------- the publisher node
def local_reader(news, task=None):
    yield news.subscribe(task)
    received = []
    while (msg := (yield task.receive())) is not None:
        received.append(msg)
    say(f"local reader received {received}")


def publisher(news, task=None):
    local = pycos.Task(local_reader, news)
    reached = yield news.deliver("headline", n=3, timeout=10)
    say(f"publisher: 'headline' reached {reached} subscribers on 3 nodes")
    for i in range(1, 4):
        news.send(f"story {i}")  # asynchronous: no acknowledgement
    news.send(None)  # tells every reader to stop
    yield local.finish()


def publisher_main():
    node = netpycos.Pycos(host="127.0.0.1", name="publisher", discover_peers=False,
                          secret=SECRET)
    news = pycos.Channel("news")
    news.register()  # findable with Channel.locate("news"), also from other nodes
    loc = node.location
    readers = [start_role("reader", f"reader-{i}", f"{loc.addr}:{loc.port}") for i in (1, 2)]
    try:
        pycos.Task(publisher, news).value(timeout=30)
        for proc in readers:
            proc.wait(timeout=10)
    finally:
        stop_all(readers)
    say(f"publisher: reader processes exited with {[proc.returncode for proc in readers]}")
    news.close()
    node.finish()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--role", choices=["publisher", "reader"], default="publisher")
    parser.add_argument("name", nargs="?", help="the reader node's name (reader role)")
    parser.add_argument("peer", nargs="?", help="ADDR:PORT of the publisher's node (reader role)")
    args = parser.parse_args()
    if args.role == "reader":
        reader_main(args.name, location(args.peer))
    else:
        publisher_main()
