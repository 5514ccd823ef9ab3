"""Remote tasks: a client task on one node talks to a server task on another node.

This process is the client node. It starts the server node as a process of its own (this same
file with ``--role server``). Both nodes listen on 127.0.0.1 only, with discovery off; the
server connects to the client's node explicitly (``node.peer(location)``), authenticated by a
shared secret. The client then

* finds the server's node by name (``node.locate``) and its registered task by name
  (``Task.locate``): the reference it gets is used exactly like a local task;
* sends requests that carry its own task, so the server can reply with ``client.send``;
* uses ``deliver``, the acknowledged send: 1 when the message is in the server's queue;
* monitors the server task and learns how it ended, after asking it to stop;
* sees ``deliver`` to the ended task give 0.

Run: ``python examples/remote_task_client_server.py`` (finishes by itself in about a second).
"""

import argparse
import os
import secrets

from _nodes import location, say, start_role, stop_all, stop_when_parent_closes_stdin

import pycos
import pycos.netpycos as netpycos

# The parent makes a secret; its node processes inherit it. Nodes with another secret are refused.
SECRET = os.environ.setdefault("PYCOS_EXAMPLE_SECRET", secrets.token_hex(16))


# ---------------------------------------------------------------- the server node
def square_server(task=None):
    served = 0
    while True:
        msg = yield task.receive()
        if msg == "quit":
            break
        client, n = msg
        client.send((n, n * n))  # 'client' is a reference to a task on the other node
        served += 1
    print(f"server: served {served} requests, stopping", flush=True)
    return served


def join(node, client_loc, task=None):
    status = yield node.peer(client_loc)  # connect and authenticate; 0 on success
    print(f"server: connected to the client node: {status == 0}", flush=True)


def server_main(client_loc):
    node = netpycos.Pycos(host="127.0.0.1", name="server", discover_peers=False, secret=SECRET)
    srv = pycos.Task(square_server)
    srv.register("square_server")  # findable by name, also from other nodes
    stop_when_parent_closes_stdin(node)
    pycos.Task(join, node, client_loc)  # peer only once the task is registered
    srv.value(timeout=30)
    node.finish()


# ---------------------------------------------------------------- the client node
def client(task=None):
    node = pycos.Pycos.instance()
    loc = yield node.locate("server", timeout=10)  # waits for a node called "server"
    if loc is None:
        say("client: no node called 'server' came up")
        return
    srv = yield pycos.Task.locate("square_server", loc, timeout=5)
    if srv is None:
        say("client: no task 'square_server' on node 'server'")
        return
    say(f"client: located {srv.name!r} on node 'server' (remote: {srv.location != node.location})")
    yield task.monitor(srv)  # a MonitorStatus message will say how it ended
    for n in (3, 4, 5):
        srv.send((task, n))
        reply = yield task.receive(timeout=5)
        say(f"client: {reply[0]} squared is {reply[1]}")
    acked = yield srv.deliver((task, 12), timeout=5)
    reply = yield task.receive(timeout=5)
    say(f"client: deliver -> {acked}; 12 squared is {reply[1]}")
    srv.send("quit")
    status = yield task.receive(timeout=5)
    say(f"client: the server task ended with {status.type.__name__}, result {status.value}")
    acked = yield srv.deliver((task, 1), timeout=5)
    say(f"client: deliver to the ended task -> {acked}")


def client_main():
    node = netpycos.Pycos(host="127.0.0.1", name="client", discover_peers=False, secret=SECRET)
    loc = node.location
    server_proc = start_role("server", f"{loc.addr}:{loc.port}")
    try:
        pycos.Task(client).value(timeout=30)
        server_proc.wait(timeout=10)
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
