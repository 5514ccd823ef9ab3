"""The ``console`` command: ``python -m pycos console NODE|unix:PATH``.

Owns ``add_arguments(parser)`` (the target, and the options this command needs: the secret
and TLS options of the other commands, ``--timeout``, ``--peer`` to find a node by name,
``-c CELL`` to run one cell and exit, ``--history FILE`` / ``--no-history``, ``-v``) and
``run(args, out) -> int``: it connects (``pycos.console.connect``) and runs the interactive
prompt, or the one cell of ``-c`` (exit status 1 when it fails). Failures become messages and
exit statuses: 3 unreachable or timeout, 4 refused (credentials, uid, too many sessions).
Imports the standard library, ``pycos.console``, ``pycos.errors``, ``pycos.net`` and its own
package.
"""

from __future__ import annotations

import argparse
import os
import sys

from ..console import ConsoleError, ConsoleRefused, connect
from ..console.interact import DEFAULT_HISTORY
from ..errors import PycosError
from .output import Output, clean
from .parser import DEFAULT_TIMEOUT, parse_node
from .secret import ENV_VAR
from .session import LogTrap, node_options
from .status import AUTH, FAILURE, OK, UNREACHABLE, CliError

__all__ = ["add_arguments", "run", "parse_target"]


def parse_target(text: str) -> object:
    """``unix:PATH``, ``HOST:PORT`` (a Location) or a node name (with ``--peer``)."""
    if text.startswith("unix:"):
        if len(text) == 5:
            raise argparse.ArgumentTypeError("unix: needs the socket's path, as unix:PATH")
        return text
    if ":" in text:
        return parse_node(text)
    if not text or not text.isprintable():
        raise argparse.ArgumentTypeError(f"{text!r} is not a node")
    return text


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r}: seconds must be more than 0")
    return value


#: The line ``python -m pycos --help`` shows for this command.
HELP = "a Python prompt inside a running node"


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The ``console`` command's arguments (all of them: no other helper adds any)."""
    p.description = ("Open a Python prompt inside a running node: over the node's own port "
                     "(the node needs a secret and TLS) or over its local Unix socket. "
                     "History, tab completion, Ctrl-C to interrupt a cell, Ctrl-D to leave.")
    p.add_argument("target", type=parse_target, metavar="NODE",
                   help="HOST:PORT of the node, unix:PATH of its console socket, or a node "
                        "name (with --peer)")
    p.add_argument("-c", "--command", dest="cell", metavar="CELL",
                   help="run this cell, print its output and value, and exit")
    p.add_argument("--peer", type=parse_node, action="append", default=[], metavar="HOST:PORT",
                   help="a node to ask for a NODE given by name (repeatable)")
    p.add_argument("--history", metavar="FILE", default=DEFAULT_HISTORY,
                   help=f"keep the prompt's history in FILE (default {DEFAULT_HISTORY})")
    p.add_argument("--no-history", action="store_true", help="keep no history")
    g = p.add_argument_group("secret and TLS (the node's)")
    one = g.add_mutually_exclusive_group()
    one.add_argument("--secret-file", metavar="PATH",
                     help="read the secret from PATH (mode 0600)")
    one.add_argument("--secret", metavar="VALUE",
                     help=f"the secret itself (visible in 'ps': prefer --secret-file or "
                          f"{ENV_VAR})")
    g.add_argument("--tls", nargs="+", metavar="PATH",
                   help="CERT KEY [CA]: TLS with this certificate and key (and CA)")
    p.add_argument("--timeout", type=_seconds, default=DEFAULT_TIMEOUT, metavar="SECONDS",
                   help=f"wait this long to connect (default {DEFAULT_TIMEOUT:g})")
    p.add_argument("-v", "--verbose", action="count", default=0,
                   help="log what happens on stderr")


def run(args: argparse.Namespace, out: Output) -> int:
    """Run the ``console`` command; its exit status."""
    tls = getattr(args, "tls", None)
    if tls is not None and len(tls) not in (2, 3):
        raise CliError("--tls takes CERT KEY [CA]", 2)
    target = args.target
    trap = LogTrap(out, args.verbose)
    trap.install()
    try:
        options: dict[str, object] = {}
        if not (isinstance(target, str) and target.startswith("unix:")):
            node_opts, _source = node_options(args, out)
            options = {k: v for k, v in node_opts.items() if v}
        try:
            client = connect(target, timeout=args.timeout, peers=args.peer,
                             **options)  # type: ignore[arg-type]
        except ConsoleRefused as exc:
            raise CliError(clean(exc, 300), AUTH) from None
        except (TimeoutError, ConsoleError, ConnectionError, OSError) as exc:
            raise CliError(f"cannot reach the console at {clean(target)}: "
                           f"{clean(exc, 200)}", UNREACHABLE) from None
        except PycosError as exc:
            raise CliError(clean(exc, 300), FAILURE) from None
        try:
            if args.cell is not None:
                return _one_cell(client, args.cell, out)
            history = None if args.no_history else args.history
            if history:
                history = os.path.expanduser(history)
            return OK if client.interact(history_file=history) == 0 else FAILURE
        except (ConsoleError, OSError) as exc:  # the connection went away meanwhile
            raise CliError(f"lost the console at {clean(target)}: {clean(exc, 200)}",
                           UNREACHABLE) from None
    finally:
        trap.remove()


def _one_cell(client: object, cell: str, out: Output) -> int:
    from ..console.client import ConsoleClient

    assert isinstance(client, ConsoleClient)
    def show(stream: str, text: str) -> None:
        (sys.stderr if stream == "err" else out.stdout).write(text)

    with client:
        result = client.run(cell, on_output=show)
    if result.value_repr is not None:
        out.line(result.value_repr)
    if result.error:
        out.error(result.error.rstrip("\n"))
    return OK if result.ok else FAILURE
