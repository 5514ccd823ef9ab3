"""The command line, ``python -m pycos`` (layer L6): operate nodes from a shell.

Owns ``main(argv)``: parse the command line (``parser``), run one command — ``node``
(``runnode``), ``peers``, ``ping``, ``version`` (``queries``), ``send`` (``send``, with the bars
of ``progress``), ``diag`` (``diag``), ``graph``, ``console``, or ``fetch`` and ``put``
(``fetch``, ``put`` and what they share, ``transfer``: swarm file transfers with a gateway) —
through a hidden, ephemeral node of its own (``session``), with the secret from a private file
or the environment (``secret``), and turn every failure into a message and an exit status
(``status``); ``output`` is the only module that writes. Imports the standard library,
``pycos.core``, ``pycos.errors``, ``pycos.net``, ``pycos.proto``, the packages built on the
node (``pycos.topics``, ``pycos.console``, ``pycos.swarm``: only when their command runs) and
its own modules (never the ``pycos.netpycos`` facade).
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable

from .output import Output
from .parser import PACKAGE_COMMANDS, build_parser, check_tls
from .status import AUTH, FAILURE, INTERRUPTED, OK, UNREACHABLE, USAGE, CliError, code_name

__all__ = ["main", "OK", "FAILURE", "USAGE", "UNREACHABLE", "AUTH", "INTERRUPTED"]


def _command(name: str) -> Callable[[argparse.Namespace, Output], int]:
    if name == "node":
        from .runnode import cmd_node

        return cmd_node
    if name == "send":
        from .send import cmd_send

        return cmd_send
    if name == "diag":
        from .diag import cmd_diag

        return cmd_diag
    if name in PACKAGE_COMMANDS:
        run: Callable[[argparse.Namespace, Output], int] = importlib.import_module(
            f".{name}", __package__).run
        return run
    from . import queries

    return {"peers": queries.cmd_peers, "ping": queries.cmd_ping,
            "version": queries.cmd_version}[name]


def main(argv: list[str] | None = None) -> int:
    """Run ``python -m pycos`` with ``argv`` (default ``sys.argv[1:]``); returns the exit
    status (0 success, 1 failure, 2 usage, 3 unreachable or timeout, 4 authentication
    refused, 130 interrupted). With ``--json`` a failure is a JSON document too:
    ``{"ok": false, "error": ..., "exit": N, "status": ...}``."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2)
        return int(exc.code) if isinstance(exc.code, int) else USAGE
    out = Output(json_mode=bool(getattr(args, "json", False)) and args.command != "node")
    if args.command == "node":
        out.json_mode = bool(args.json)
    try:
        check_tls(parser, args)
    except SystemExit:
        return USAGE
    try:
        return _command(args.command)(args, out)
    except CliError as exc:
        out.error(exc.message)
        out.result({"ok": False, "error": exc.message, "exit": exc.code,
                    "status": code_name(exc.code)})
        return exc.code
    except KeyboardInterrupt:
        out.error("interrupted")
        out.result({"ok": False, "error": "interrupted", "exit": INTERRUPTED,
                    "status": code_name(INTERRUPTED)})
        return INTERRUPTED
