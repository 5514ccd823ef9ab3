"""A request/reply service protected by a secret.

This process is the service node: its task ``upper`` answers requests ``(client, text)`` with
the text in capitals. Nodes become peers only if they prove they know the same secret (a
challenge-response over fresh nonces on both sides; the secret itself never crosses the
network), so only clients that know it can reach the service.

The service starts two client nodes, each a process of its own (this same file with
``--role client``), on 127.0.0.1 only, discovery off: ``client`` knows the secret and gets its
answers; ``intruder`` uses a wrong secret, so its node is refused (``peer`` gives -1) and it
cannot even find the service (``Task.locate`` gives None).

Run: ``python examples/secret_service.py`` (finishes by itself in about a second).
"""

import argparse
import os
import secrets

from _nodes import location, say, start_role, stop_all, stop_when_parent_closes_stdin

import pycos
import pycos.netpycos as netpycos

# The parent makes a secret; its node processes inherit it. Nodes with another secret are refused.
SECRET = os.environ.setdefault("PYCOS_EXAMPLE_SECRET", secrets.token_hex(16))


# ---------------------------------------------------------------- the client nodes
def client(me, service_loc, task=None):
    node = pycos.Pycos.instance()
    status = yield node.peer(service_loc)
    say(f"{me}: peer() -> {status}" + (" (refused)" if status != 0 else ""))
    service = yield pycos.Task.locate("upper", service_loc, timeout=5)
    if service is None:
        say(f"{me}: Task.locate('upper') -> None: no service for me")
        return
    for text in ("hello", "secret service"):
        service.send((task, text))
        answer = yield task.receive(timeout=5)
        say(f"{me}: {text!r} -> {answer!r}")


def client_main(me, service_loc):
    secret = SECRET if me == "client" else "not-" + SECRET
    node = netpycos.Pycos(host="127.0.0.1", name=me, discover_peers=False, secret=secret)
    stop_when_parent_closes_stdin(node)
    pycos.Task(client, me, service_loc).value(timeout=30)
    node.finish()


# ---------------------------------------------------------------- the service node
def upper(task=None):
    answered = 0
    while (msg := (yield task.receive())) != "quit":
        requester, text = msg
        requester.send(text.upper())
        answered += 1
    return answered


def service_main():
    node = netpycos.Pycos(host="127.0.0.1", name="service", discover_peers=False,
                          secret=SECRET)
    service = pycos.Task(upper)
    service.register("upper")
    loc = node.location
    clients = [start_role("client", me, f"{loc.addr}:{loc.port}") for me in ("client",
                                                                             "intruder")]
    try:
        for proc in clients:
            proc.wait(timeout=20)
    finally:
        stop_all(clients)
    service.send("quit")
    answered = service.value(timeout=5)
    stats = node.stats()
    refused = stats["refused_auth"] + stats["refused_by_peer"]
    say(f"service: answered {answered} requests")
    say(f"service: refused connections with a wrong secret: {refused > 0} ({refused})")
    say(f"service: client processes exited with {[proc.returncode for proc in clients]}")
    node.finish()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--role", choices=["service", "client"], default="service")
    parser.add_argument("name", nargs="?", help="'client' or 'intruder' (client role)")
    parser.add_argument("peer", nargs="?", help="ADDR:PORT of the service's node (client role)")
    args = parser.parse_args()
    if args.role == "client":
        client_main(args.name, location(args.peer))
    else:
        service_main()
