"""The remote console: a Python prompt inside a running node, shared by two sessions.

This process runs a node (127.0.0.1, discovery off, nothing broadcast) and a ``ConsoleServer``
on it, served on a Unix socket in a fresh private directory: the socket has mode 0600, its
directory 0700, and the server checks each connection's peer uid (``SO_PEERCRED``) against its
own, so the console needs no secret or TLS certificate (the node has a secret anyway, as every
networked example: only peers that know it may connect to its port). Then, as two terminals
of the node's user would (``python -m pycos console unix:PATH``), it drives two sessions
through the client API:

1. ``alice`` and ``bob`` connect (``pycos.console.connect("unix:" + path)``); each session has
   a namespace of its own, and both see the same ``shared`` object;
2. ``alice`` writes ``shared.m['plan']``, ``bob`` reads it back and changes it, ``alice`` sees
   the change; ``bob`` cannot see ``alice``'s own variable ``x``;
3. tab completion, as the prompt asks the server on Tab: ``complete("shared.m.ke")`` gives
   ``['shared.m.keys(']``, and ``complete("x.bit_l")`` finds ``x`` in ``alice``'s namespace
   only;
4. a running ``while True`` loop is interrupted twice: in ``alice`` with ``interrupt()`` from
   another thread, in ``bob`` with Ctrl-C (SIGINT) while ``run`` waits for the cell; each
   session goes on afterwards;
5. clean shutdown: the sessions close, the server stops and removes its socket, the node ends.

Run: ``python examples/console_session.py`` (about a second).
"""

import os
import secrets
import signal
import stat
import tempfile
import threading
import time

import pycos.netpycos as netpycos
from pycos.console import ConsoleServer, connect

SECRET = os.environ.setdefault("PYCOS_EXAMPLE_SECRET", secrets.token_hex(16))

# A loop that runs until it is interrupted; ``n`` counts its turns and survives the interrupt.
LOOP = "n = 0\nprint('looping', flush=True)\nwhile True:\n    n += 1\n"


def say(text):
    print(text, flush=True)


def show(who, cell, result):
    """One line per cell: the cell's first line, then its value, output or error."""
    first = cell.splitlines()[0] + (" ..." if "\n" in cell else "")
    if result.status != "ok":
        outcome = f"{result.status}: {result.error.strip().splitlines()[-1]}"
    elif result.value_repr is not None:
        outcome = result.value_repr
    elif result.stdout:
        outcome = f"printed {result.stdout!r}"
    else:
        outcome = "ok"
    say(f"{who}: {first} -> {outcome}")
    return result


def run(who, client, cell):
    return show(who, cell, client.run(cell, timeout=10))


def run_loop_until(client, delay, press):
    """Run the loop in ``client``'s session; ``delay`` s after the cell says it is looping,
    ``press()`` runs in a timer thread (while ``run`` waits for the cell's result). Returns
    the ``ConsoleResult`` and the seconds ``run`` took."""
    timers = []

    def on_output(stream, text):
        if "looping" in text and not timers:
            timers.append(threading.Timer(delay, press))
            timers[0].start()

    started = time.monotonic()
    result = client.run(LOOP, timeout=10, on_output=on_output)
    for timer in timers:
        timer.join()
    return result, time.monotonic() - started


def interrupt_with_api(client):
    """The loop stopped by ``client.interrupt()`` from another thread (what a program does)."""
    return run_loop_until(client, 0.3, client.interrupt)


def interrupt_with_ctrl_c(client):
    """The loop stopped by Ctrl-C: SIGINT reaches this (the main) thread while ``run`` waits;
    ``run`` then sends the interrupt and keeps waiting for the cell's result, as the
    interactive prompt does."""
    main = threading.main_thread().ident
    return run_loop_until(client, 0.2, lambda: signal.pthread_kill(main, signal.SIGINT))


def main():
    signal.signal(signal.SIGINT, signal.default_int_handler)  # Ctrl-C as in a terminal
    node = netpycos.Pycos(host="127.0.0.1", udp_port=0, discover_peers=False, secret=SECRET,
                          name="console-node")
    say(f"node: {node.name} at {node.location!r}, discovery off")
    directory = tempfile.mkdtemp(prefix="pycos-console-")
    path = os.path.join(directory, "node.sock")
    server = ConsoleServer(unix_path=path, node=node).start()
    try:
        sock_mode = stat.S_IMODE(os.stat(path).st_mode)
        dir_mode = stat.S_IMODE(os.stat(directory).st_mode)
        say(f"server: console on unix:{path} (socket mode {sock_mode:04o}, "
            f"directory mode {dir_mode:04o})")
        sessions(server, path)
    finally:
        server.stop()
        say(f"server: stopped, socket removed: {not os.path.exists(path)}")
        os.rmdir(directory)
        node.terminate()
    say("node: terminated")
    say("console_session finished")


def sessions(server, path):
    with connect("unix:" + path) as alice, connect("unix:" + path) as bob:
        say(f"alice: session {alice.session} opened; banner: {alice.banner}")
        say(f"bob: session {bob.session} opened")
        peers = sorted(s.peer for s in server.sessions.values())
        say(f"server: {len(peers)} sessions, from {peers} (this process is uid {os.getuid()})")

        # -------------------------------------------------- shared.m and own namespaces
        say("--- shared.m is one dict for every session; other names are per session")
        run("alice", alice, "node.name")
        run("alice", alice, "x = 41\nx + 1")
        run("alice", alice, "shared.m['plan'] = 'ship it'")
        run("bob", bob, "shared.m['plan']")
        run("bob", bob, "shared.m['plan'] += ' on friday'")
        run("alice", alice, "shared.m['plan']")
        run("bob", bob, "x")
        run("bob", bob, "print('hello from bob')")

        # -------------------------------------------------- tab completion
        say("--- tab completion, asked of the server as the prompt does on Tab")
        for who, client, text in (("bob", bob, "shared.m.ke"), ("bob", bob, "sha"),
                                  ("alice", alice, "x.bit_l"), ("bob", bob, "x.bit_l")):
            say(f"{who}: complete({text!r}) -> {client.complete(text)}")

        # -------------------------------------------------- interrupting a running cell
        say("--- interrupting a running loop")
        result, took = interrupt_with_api(alice)
        say(f"alice: while True loop, interrupt() after 0.3 s -> {result.status} "
            f"({result.error.strip()}) in {took:.1f} s")
        run("alice", alice, "n > 0")  # the session goes on, with what the loop did
        result, took = interrupt_with_ctrl_c(bob)
        say(f"bob: while True loop, Ctrl-C after 0.2 s -> {result.status} "
            f"({result.error.strip()}) in {took:.1f} s")
        run("bob", bob, "n > 0")
        run("alice", alice, "sorted(shared.m)")

        stats = server.stats()
        say(f"server: {stats['sessions']} sessions open, {stats['cells']} cells run, "
            f"{stats['refused']} refusals")
    say(f"sessions: closed (alice: {alice.closed}, bob: {bob.closed})")
    deadline = time.monotonic() + 5
    while server.sessions and time.monotonic() < deadline:
        time.sleep(0.01)
    say(f"server: {len(server.sessions)} sessions open after the clients left")
    say(f"server: shared.m kept for the next users: {server.shared.m}")


if __name__ == "__main__":
    main()
