"""The ``node`` command: run a node until it is told to stop.

Owns ``cmd_node``: it starts a node (127.0.0.1 and no broadcast unless told otherwise; the
secret from a file or the environment, as every command), writes ``ready NAME LOCATION``,
then one line per peer that comes online or goes offline (JSON lines with ``--json``), and
stops cleanly — peers are told goodbye — on SIGINT, SIGTERM, or the end of its standard input
when that is a pipe (its parent went away). It never reads a terminal and never prompts.
Imports the standard library, ``pycos.core``, ``pycos.net``, ``pycos.dashboard`` (with
``--dashboard``) and its own package.
"""

from __future__ import annotations

import argparse
import os
import signal
import stat
import sys
import threading
import time
from typing import Any

from ..core.task import Task
from .output import Output, clean
from .session import LogTrap, node_options
from .status import FAILURE, OK, CliError

__all__ = ["cmd_node", "stdin_is_pipe"]


def stdin_is_pipe() -> bool:
    """True when stdin is a pipe or a socket: its end then means the parent is gone. A
    terminal (a background job would be stopped reading it), ``/dev/null`` or a file is
    never read."""
    try:
        mode = os.fstat(sys.stdin.fileno()).st_mode
    except (OSError, ValueError, AttributeError):
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)


def _watch_stdin(stop: threading.Event, why: list[str]) -> None:
    try:
        fd = sys.stdin.fileno()
        while os.read(fd, 65536):
            pass
    except OSError:
        pass
    why.append("its standard input closed")
    stop.set()


def _status_task(out: Output, task: Any = None) -> Any:
    """Writes a line for each PeerStatus the node sends it."""
    task.set_daemon()
    while True:
        msg = yield task.receive()
        state = "online" if msg.status == msg.Online else "offline"
        if out.json_mode:
            out.event({"event": state, "name": msg.name, "location": repr(msg.location),
                       "time": time.time()})
        else:
            out.line(f"{state} {clean(msg.name)} {msg.location!r}")


def cmd_node(args: argparse.Namespace, out: Output) -> int:
    """``node [--host H] [--port P] [--name N] [--peer HOST:PORT]... ...``."""
    options, _source = node_options(args, out)
    if not options["secret"] and args.host not in ("127.0.0.1", "::1", "localhost"):
        out.warn(f"this node serves on {args.host or 'every interface'!r} without a secret: "
                 "anyone who can reach it can connect (give --secret-file PATH)")
    trap = LogTrap(out, args.verbose, show_warnings=True)
    trap.install()
    from ..net.scheduler import Pycos

    try:
        try:
            node = Pycos(host=args.host, tcp_port=args.port, udp_port=args.udp_port,
                         name=args.name, discover_peers=args.discover, peers=args.peer,
                         dest_path=args.dest_path, max_file_size=args.max_file_size,
                         reconnect=args.reconnect, hidden=args.hidden,
                         handshake_timeout=min(args.timeout, 30.0), **options)
        except (OSError, ValueError, TypeError) as exc:
            raise CliError(f"cannot start the node: {exc}", FAILURE) from None
        dashboard = None
        if args.dashboard is not None:
            from .. import dashboard as web

            try:
                dashboard = web.start(node, args.dashboard)
            except (ImportError, OSError, ValueError, TypeError) as exc:
                node.terminate()
                raise CliError(f"cannot start the dashboard: {exc}", FAILURE) from None
        stop = threading.Event()
        why: list[str] = []

        def on_signal(signum: int, _frame: Any) -> None:
            why.append(signal.Signals(signum).name)
            stop.set()

        saved = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            node.peer_status(Task(_status_task, out))
            if out.json_mode:
                out.event({"event": "ready", "name": node.name, "location": repr(node.location),
                           "addresses": node.addresses, "pid": os.getpid(),
                           "dest_path": node.dest_path, "hidden": args.hidden,
                           "dashboard": dashboard and dashboard.login_url})
            else:
                out.line(f"ready {clean(node.name)} {node.location!r}")
                if dashboard is not None:
                    out.line(f"dashboard {dashboard.login_url}")
            if stdin_is_pipe():
                threading.Thread(target=_watch_stdin, args=(stop, why), daemon=True,
                                 name="pycos-cli-stdin").start()
            while not stop.wait(0.5):
                pass
        finally:
            node.terminate()
            for signum, handler in saved.items():
                signal.signal(signum, handler)
        reason = why[0] if why else "stopped"
        if out.json_mode:
            out.event({"event": "stopped", "name": node.name, "why": reason})
        else:
            out.line(f"stopped {clean(node.name)} ({reason})")
        return OK
    finally:
        trap.remove()
