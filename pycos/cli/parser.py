"""The command line's grammar: ``python -m pycos COMMAND ...`` (argparse).

Owns ``build_parser`` (the subcommands ``node``, ``peers``, ``ping``, ``send``, ``diag`` and
``version``, and those of the modules in ``PACKAGE_COMMANDS``, with the options they share:
the secret, TLS, the address the command's own node binds, timeouts, ``--json`` and ``-v``)
and ``parse_node`` (``HOST:PORT`` or ``[V6]:PORT`` to a ``Location``). Usage errors end the
process with status 2, argparse's own. Imports the standard library, ``pycos.net`` and its own
package.
"""

from __future__ import annotations

import argparse
import importlib
from typing import Any

from ..net.location import Location
from .progress import CHOICES
from .secret import ENV_VAR

__all__ = ["build_parser", "parse", "parse_node", "check_tls", "DEFAULT_TIMEOUT", "DEFAULT_BIND",
           "PACKAGE_COMMANDS"]

#: Seconds a query waits to connect and for each answer, unless ``--timeout`` says otherwise.
DEFAULT_TIMEOUT = 5.0
#: The address the command's own node binds: this machine only.
DEFAULT_BIND = "127.0.0.1"
#: Commands that live in a module of their own (``HELP``, ``add_arguments(parser)``,
#: ``run(args, out)``), for the packages built on the node: ``graph`` (pycos.topics),
#: ``console`` (pycos.console), ``fetch`` and ``put`` (pycos.swarm).
PACKAGE_COMMANDS = ("graph", "console", "fetch", "put")

EPILOG = f"""\
exit status: 0 success, 1 failure, 2 usage, 3 unreachable or timeout, 4 authentication
refused, 130 interrupted. The secret comes from --secret-file PATH (mode 0600), else from the
environment variable {ENV_VAR}; --secret VALUE works but is visible in 'ps'.
"""


def parse_node(text: str) -> Location:
    """``HOST:PORT`` (an address or a name) or ``[IPV6]:PORT`` as a ``Location``.

    Raises:
        argparse.ArgumentTypeError: the text is not of that form, the port is not in
            1..65535, or the host name does not resolve.
    """
    text = text.strip()
    if text.startswith("["):
        host, sep, port = text[1:].partition("]:")
    else:
        host, sep, port = text.rpartition(":")
        if ":" in host:
            raise argparse.ArgumentTypeError(
                f"{text!r}: write an IPv6 address in brackets, as [::1]:9706")
    if not sep or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a node's address: expected HOST:PORT (PORT in 1..65535), "
            "e.g. 127.0.0.1:9706")
    try:
        return Location(host, int(port))
    except (OSError, ValueError) as exc:
        raise argparse.ArgumentTypeError(f"{text!r}: cannot resolve {host!r} ({exc})") from None


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r}: seconds must be more than 0")
    return value


def _count(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 10000:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a count in 1..10000")
    return int(text)


def _size(text: str) -> int:
    if not text.isdigit() or int(text) > 16 << 20:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a size in bytes, 0..16777216")
    return int(text)


def _port(text: str) -> int:
    if not text.isdigit() or not 0 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a port in 0..65535")
    return int(text)


def check_tls(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """``--tls CERT KEY [CA]``: two or three paths (a usage error otherwise)."""
    tls = getattr(args, "tls", None)
    if tls is not None and len(tls) not in (2, 3):
        parser.error("--tls takes CERT KEY [CA]: a certificate, its key and optionally the CA "
                     "that signed the peers' certificates")


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Shows ``--tls CERT KEY [CA]`` as it is meant (argparse has no "two or three")."""

    def _format_args(self, action: argparse.Action, default_metavar: str) -> str:
        if action.dest == "tls":
            return "CERT KEY [CA]"
        return super()._format_args(action, default_metavar)


def _common(p: argparse.ArgumentParser, bind: bool = True) -> None:
    """The options every networked command has."""
    g = p.add_argument_group("secret and TLS (the same as the nodes')")
    one = g.add_mutually_exclusive_group()
    one.add_argument("--secret-file", metavar="PATH",
                     help="read the secret from PATH, a file only its owner may read (mode 0600)")
    one.add_argument("--secret", metavar="VALUE",
                     help=f"the secret itself (visible in 'ps': prefer --secret-file or "
                          f"{ENV_VAR})")
    g.add_argument("--tls", nargs="+", metavar="PATH",
                   help="use TLS with this certificate and key (and CA, for mutual TLS)")
    if bind:
        p.add_argument("--bind", metavar="HOST", default=DEFAULT_BIND,
                       help=f"address of this command's own (hidden) node (default "
                            f"{DEFAULT_BIND})")
    p.add_argument("--timeout", type=_seconds, default=DEFAULT_TIMEOUT, metavar="SECONDS",
                   help=f"wait this long to connect and for each answer (default "
                        f"{DEFAULT_TIMEOUT:g})")
    p.add_argument("-v", "--verbose", action="count", default=0,
                   help="log what the node does on stderr (-vv: more)")


def _json(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true",
                   help="write one JSON document on stdout instead of text")


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``python -m pycos``."""
    parser = argparse.ArgumentParser(
        prog="pycos", epilog=EPILOG, formatter_class=_Formatter,
        description="Operate pycos nodes: run one, list a node's peers, ping it, send it "
                    "files,\nfetch files from a gateway and put files there, diagnose the "
                    "network.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    sub_add = sub.add_parser

    def add_parser(name: str, **kwargs: Any) -> argparse.ArgumentParser:
        return sub_add(name, formatter_class=_Formatter, **kwargs)


    p = add_parser("node", help="run a node until Ctrl-C, SIGTERM or the end of stdin",
                       description="Run a node. It writes 'ready NAME LOCATION', then a line "
                                   "for every peer that comes or goes; it stops on Ctrl-C, "
                                   "SIGTERM, or when its standard input is a pipe that closes.")
    p.add_argument("--host", default=DEFAULT_BIND,
                   help=f"address to serve on (default {DEFAULT_BIND}; '' or 0.0.0.0: every "
                        "interface)")
    p.add_argument("--port", type=_port, default=0, help="TCP port (default: any free one)")
    p.add_argument("--udp-port", type=_port, default=None,
                   help="discovery UDP port (default 9705)")
    p.add_argument("--name", help="the node's name (default HOST:PORT)")
    p.add_argument("--peer", type=parse_node, action="append", default=[], metavar="HOST:PORT",
                   help="connect to this node at start (repeatable)")
    p.add_argument("--dest-path", metavar="DIR", help="where files sent by peers are saved")
    p.add_argument("--max-file-size", type=int, default=None, metavar="BYTES",
                   help="largest file accepted from a peer")
    p.add_argument("--reconnect", type=int, default=0, metavar="N",
                   help="redial a --peer that drops, up to N times")
    seen = p.add_mutually_exclusive_group()
    seen.add_argument("--discover", action="store_true",
                      help="announce this node by UDP broadcast (off by default)")
    seen.add_argument("--hidden", action="store_true",
                      help="a hidden node: never announced, not listed to others")
    p.add_argument("--dashboard", nargs="?", const="127.0.0.1:8765", default=None,
                   metavar="HOST:PORT",
                   help="serve a read-only web dashboard of the node (default address "
                        "127.0.0.1:8765; needs pycos[dashboard]; any other address needs "
                        "--tls, and the page's address with its token is printed)")
    _common(p, bind=False)
    p.add_argument("--json", action="store_true", help="write events as JSON lines")

    p = add_parser("peers", help="a node's peers")
    p.add_argument("node", type=parse_node, metavar="NODE", help="HOST:PORT of the node")
    p.add_argument("--watch", type=_seconds, nargs="?", const=2.0, default=None,
                   metavar="SECONDS", help="ask again every SECONDS (default 2) until Ctrl-C")
    _common(p)
    _json(p)

    p = add_parser("ping", help="round-trip times to a node")
    p.add_argument("node", type=parse_node, metavar="NODE", help="HOST:PORT of the node")
    p.add_argument("-c", "--count", type=_count, default=4, help="pings to send (default 4)")
    p.add_argument("-s", "--size", type=_size, default=0, metavar="BYTES",
                   help="payload of each ping (default 0)")
    p.add_argument("-i", "--interval", type=_seconds, default=0.2, metavar="SECONDS",
                   help="pause between pings (default 0.2)")
    _common(p)
    _json(p)

    p = add_parser("send", help="send files to a node, with a progress bar")
    p.add_argument("files", nargs="+", metavar="FILE", help="files to send")
    p.add_argument("node", type=parse_node, metavar="NODE", help="HOST:PORT of the node")
    p.add_argument("--dir", help="directory under the node's dest_path (relative)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace a different file of the same name there")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.add_argument("--progress", choices=CHOICES, default="auto",
                   help="auto: tqdm if installed, else a built-in bar on a terminal")
    _common(p)
    _json(p)

    p = add_parser("diag", help="what a node here sees: addresses, TLS, discovery, peers")
    p.add_argument("--peer", type=parse_node, action="append", default=[], metavar="HOST:PORT",
                   help="check that this node can be reached and authenticated (repeatable)")
    p.add_argument("--discover", action="store_true",
                   help="announce by UDP broadcast and list the nodes heard (off by default)")
    p.add_argument("--udp-port", type=_port, default=None,
                   help="discovery UDP port for --discover (default 9705)")
    p.add_argument("--seconds", type=_seconds, default=3.0,
                   help="how long --discover listens (default 3)")
    _common(p)
    _json(p)

    p = add_parser("version", help="package and protocol versions (and a node's)")
    p.add_argument("node", type=parse_node, nargs="?", metavar="NODE",
                   help="also ask the node at HOST:PORT for its version")
    _common(p)
    _json(p)

    for name in PACKAGE_COMMANDS:  # commands of the packages built on the node
        module = importlib.import_module(f".{name}", __package__)
        module.add_arguments(add_parser(name, help=getattr(module, "HELP", None)))
    return parser


def parse(argv: list[str] | None) -> tuple[argparse.ArgumentParser, Any]:
    """Parse ``argv`` (exits with status 2 on a usage error)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    check_tls(parser, args)
    return parser, args
