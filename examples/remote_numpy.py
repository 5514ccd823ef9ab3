"""Remote modules: NumPy (and two attributes of ``os``) used from another node.

The sequence of the ChaskiRemote notebook, with pycos: a node serves modules behind an
allow-list (``ModuleService``), another node connects to it and gets proxies with ``proxy()``;
calls through a proxy come back by value (``np.random.normal(0, 1, (4, 4))`` is an ndarray
here); a module the server does not serve gives None; an attribute outside the allow-list is
refused (``AccessDenied``); ``remote_os.name`` is a proxy that behaves as its value, ``._``
gives the value itself, and so does ``with remote_os.name as name:``. A task uses the same
proxies with ``yield``.

It runs the sequence twice: first in one process (two serving nodes, ``mathsrv`` for NumPy and
``ossrv`` for ``os``, and a client node, all on one scheduler, as the notebook does), then as
two processes (this file again as ``--role server``: one node serving all three). Everything
is on 127.0.0.1 with explicit peers; nothing is broadcast. ``--one-process`` or
``--two-processes`` runs one of them only.

Run: ``python examples/remote_numpy.py`` (a few seconds).
"""

import argparse
import os
import secrets
import sys

from _nodes import location, say, start_role, stop_all

import pycos
import pycos.netpycos as netpycos
from pycos.net import Node
from pycos.proxy import AccessDenied, ModuleService, proxy

# Nodes with the same secret become peers; a module service refuses to run without one.
SECRET = os.environ.setdefault("PYCOS_EXAMPLE_SECRET", secrets.token_hex(16))
NODE = dict(host="127.0.0.1", udp_port=0, discover_peers=False, secret=SECRET)


def client_steps(client, where):
    """The notebook's client cells, from plain code, then from a task."""
    np = proxy("numpy", timeout=5, node=client)
    say(f"{where}: {np!r}")
    matrix = np.random.normal(0, 1, (4, 4))
    say(f"{where}: np.random.normal(0, 1, (4, 4)) -> {type(matrix).__name__} "
        f"{matrix.shape} {matrix.dtype}")
    say(f"{where}: its mean is {float(np.mean(matrix)):.3f} (computed remotely)")

    say(f"{where}: proxy('scipy') -> {proxy('scipy', timeout=1, node=client)}")

    remote_os = proxy("os", timeout=5, node=client)
    say(f"{where}: remote_os.name is {remote_os.name!r}")
    say(f"{where}: remote_os.name == 'posix' -> {remote_os.name == 'posix'}")
    say(f"{where}: remote_os.name._ -> {remote_os.name._!r}")
    with remote_os.name as name:
        say(f"{where}: with remote_os.name as name -> {type(name).__name__} {name!r}")
    try:
        remote_os.system("id")
    except AccessDenied as exc:
        say(f"{where}: remote_os.system('id') refused: {exc}")

    def in_task(task=None):
        np = yield proxy("numpy", node=client)
        return (yield np.linalg.inv([[2.0, 0.0], [0.0, 4.0]]))

    inverse = pycos.Task(in_task).value(timeout=10)
    say(f"{where}: from a task, np.linalg.inv(...) -> {inverse.tolist()}")


def one_process():
    """Two serving nodes and a client node in this process, on one scheduler."""
    mathsrv = netpycos.Pycos(name="mathsrv", **NODE)
    ModuleService(available=["numpy"]).register()  # on the default node, mathsrv
    ossrv = Node(name="ossrv", scheduler=mathsrv, **NODE)
    ModuleService(available=["os.name", "os.getcwd"], node=ossrv).register()
    say(f"one process: servers {mathsrv!r} and {ossrv.name} at {ossrv.location!r}")

    client = Node(name="client", scheduler=mathsrv, **NODE)
    for server in (mathsrv.location, ossrv.location):  # the notebook's client.connect(address)
        assert pycos.run(client.peer(server), timeout=10) == 0
    client_steps(client, "one process")
    client.close()
    ossrv.close()
    mathsrv.terminate()


def two_processes():
    """This process is the client; the server is a process of its own."""
    child = start_role("server")
    try:
        line = child.control.get(timeout=30)  # "@serving ADDR:PORT"
        server = location(line.split()[1])
        netpycos.Pycos(name="client", peers=[server], **NODE)
        client_steps(None, "two processes")
    finally:
        stop_all([child])
    say(f"two processes: the server exited with status {child.returncode}")
    pycos.Pycos.instance().terminate()


def server_main(port):
    node = netpycos.Pycos(name="mathsrv", tcp_port=port, **NODE)
    service = ModuleService(available=["numpy", "os.name", "os.getcwd"], audit=True)
    service.register()
    say(f"@serving {node.location!r}")
    sys.stdin.read()  # until the parent closes our stdin
    stats = service.stats()
    say(f"server: {stats['calls']} calls, {stats['gets']} reads, {stats['refused']} refused")
    node.terminate()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--role", choices=["server"])
    parser.add_argument("--port", type=int, default=0, help="the server's TCP port (0: any)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--one-process", action="store_true")
    mode.add_argument("--two-processes", action="store_true")
    args = parser.parse_args()
    if args.role == "server":
        server_main(args.port)
        return
    if not args.two_processes:
        one_process()
    if not args.one_process:
        two_processes()
    say("remote_numpy finished")


if __name__ == "__main__":
    main()
