"""Chat over a registered channel: a server node and two scripted clients on other nodes.

This process is the chat server node: it registers the channel ``chat`` and keeps a log of it.
It starts two client nodes, alice and bob, each a process of its own (this same file with
``--role client``), on 127.0.0.1 only, discovery off; each client connects to the server's
node explicitly with the shared secret, finds the channel with ``Channel.locate`` and
subscribes to it. Every message sent to the channel, from any node, reaches every subscriber,
in the same order for all.

The clients follow a script instead of reading a keyboard: each says its next line once it has
seen the line before it, so the conversation is the same on every run.

Run: ``python examples/chat_channel.py`` (finishes by itself in about a second).
"""

import argparse
import os
import secrets

from _nodes import location, say, start_role, stop_all, stop_when_parent_closes_stdin

import pycos
import pycos.netpycos as netpycos

# The parent makes a secret; its node processes inherit it. Nodes with another secret are refused.
SECRET = os.environ.setdefault("PYCOS_EXAMPLE_SECRET", secrets.token_hex(16))

CLIENTS = ("alice", "bob")
SCRIPT = [
    ("alice", "hi bob"),
    ("bob", "hello alice"),
    ("alice", "this chat runs over a pycos channel"),
    ("bob", "on three nodes; see you"),
]


# ---------------------------------------------------------------- the client nodes
def chat_client(me, server_loc, task=None):
    node = pycos.Pycos.instance()
    if (yield node.peer(server_loc)) != 0:
        say(f"{me}: cannot reach the chat server")
        return
    chat = yield pycos.Channel.locate("chat", server_loc, timeout=5)
    if chat is None:
        say(f"{me}: the chat server has no channel 'chat'")
        return
    yield chat.subscribe(task)
    # Announce ourselves once everybody (the server's log and both clients) is listening.
    yield chat.deliver((me, "joined"), n=1 + len(CLIENTS), timeout=10)
    seen = []

    def wait_for(line):
        while line not in seen:
            msg = yield task.receive(timeout=10)
            if msg is None:
                raise TimeoutError(f"{me} did not see {line} in time")
            seen.append(msg)
            if msg[0] != me:  # our own lines come back too: every subscriber gets every line
                say(f"{me} sees  {msg[0]}: {msg[1]}")

    for who in CLIENTS:
        yield from wait_for((who, "joined"))
    for line in SCRIPT:
        if line[0] == me:
            chat.send(line)
        yield from wait_for(line)
    chat.send((me, "left"))
    yield chat.unsubscribe(task)


def client_main(me, server_loc):
    node = netpycos.Pycos(host="127.0.0.1", name=me, discover_peers=False, secret=SECRET)
    stop_when_parent_closes_stdin(node)
    pycos.Task(chat_client, me, server_loc).value(timeout=30)
    node.finish()


# ---------------------------------------------------------------- the server node
def chat_log(chat, task=None):
    yield chat.subscribe(task)
    online = set()
    while True:
        msg = yield task.receive(timeout=20)
        if msg is None:
            say("server: nobody said anything for 20 s, closing")
            break
        who, text = msg
        say(f"server log  {who}: {text}")
        if text == "joined":
            online.add(who)
        elif text == "left":
            online.discard(who)
            if not online:
                say("server: everybody left, closing")
                break
    yield chat.unsubscribe(task)


def server_main():
    node = netpycos.Pycos(host="127.0.0.1", name="chat-server", discover_peers=False,
                          secret=SECRET)
    chat = pycos.Channel("chat")
    chat.register()
    log = pycos.Task(chat_log, chat)
    loc = node.location
    clients = [start_role("client", me, f"{loc.addr}:{loc.port}") for me in CLIENTS]
    try:
        log.value(timeout=30)
        for proc in clients:
            proc.wait(timeout=10)
    finally:
        stop_all(clients)
    say(f"server: client processes exited with {[proc.returncode for proc in clients]}")
    chat.close()
    node.finish()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--role", choices=["server", "client"], default="server")
    parser.add_argument("name", nargs="?", help="the client's name (client role)")
    parser.add_argument("peer", nargs="?", help="ADDR:PORT of the server's node (client role)")
    args = parser.parse_args()
    if args.role == "client":
        client_main(args.name, location(args.peer))
    else:
        server_main()
