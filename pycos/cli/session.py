"""The command line's own node: hidden, ephemeral, and how its failures become exit codes.

Owns ``Session`` (a context manager: the node a query command talks through — hidden, on an
ephemeral TCP port of ``--bind`` (127.0.0.1 by default), never announcing itself, with the
target's secret and TLS — and its end), ``LogTrap`` (the ``pycos`` logger's warnings kept as
the reasons to give, and shown on stderr only with ``-v``) and ``Session.connect``, which turns
a failed connection into ``CliError`` with exit status 3 (unreachable, timeout) or 4
(authentication refused). Imports the standard library, ``pycos.core``, ``pycos.errors``,
``pycos.net`` and its own package.
"""

from __future__ import annotations

import argparse
import collections
import logging
import os
import shutil
import tempfile
from typing import Any

from ..core.blocking import run
from ..errors import PeerLost, PycosError
from ..net.location import Location
from ..net.requests import RemoteRequestFailed
from .output import Output, clean
from .secret import load_secret
from .status import AUTH, FAILURE, UNREACHABLE, CliError

__all__ = ["Session", "LogTrap", "node_options", "describe_failure"]

#: Counters of a node whose change after a failed dial says why it failed.
_AUTH_COUNTERS = ("refused_auth", "refused_by_peer", "tls_errors")


class LogTrap(logging.Handler):
    """Keeps the last warnings of the ``pycos`` logger (the reasons of failures) and, with
    ``verbose``, writes its records to stderr (with ``show_warnings``, its warnings always);
    otherwise nothing of the log reaches the terminal. ``install``/``remove`` restore the
    logger as it was."""

    def __init__(self, out: Output, verbose: int = 0, show_warnings: bool = False) -> None:
        super().__init__(logging.DEBUG)
        self.out = out
        self.verbose = verbose
        self.show_warnings = show_warnings
        self.warnings: collections.deque[str] = collections.deque(maxlen=32)
        self._logger = logging.getLogger("pycos")
        self._saved: tuple[int, bool] | None = None
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            if record.levelno >= logging.WARNING:
                self.warnings.append(record.getMessage())
            if self.verbose or (self.show_warnings and record.levelno >= logging.WARNING):
                self.out.note(clean(self.format(record), 2000))
        except Exception:  # noqa: BLE001 - logging must never break the command
            self.handleError(record)

    def install(self) -> None:
        self._saved = (self._logger.level, self._logger.propagate)
        level = {0: logging.WARNING, 1: logging.INFO}.get(self.verbose, logging.DEBUG)
        self._logger.setLevel(level)
        self._logger.propagate = False
        self._logger.addHandler(self)

    def remove(self) -> None:
        self._logger.removeHandler(self)
        if self._saved is not None:
            self._logger.setLevel(self._saved[0])
            self._logger.propagate = self._saved[1]

    def reason(self, about: Location | None = None) -> str:
        """The last warning (about ``about`` when one names it), or ''."""
        texts = list(self.warnings)
        if about is not None:
            named = [t for t in texts if repr(about) in t]
            texts = named or texts
        return clean(texts[-1], 300) if texts else ""


def tls_files(args: argparse.Namespace) -> tuple[Any, Any, Any]:
    """(certfile, keyfile, cafile) from ``--tls CERT KEY [CA]``."""
    tls = getattr(args, "tls", None) or []
    cert, key, ca = (list(tls) + [None, None, None])[:3]
    for path in (cert, key, ca):
        if path is not None and not os.path.isfile(path):
            raise CliError(f"--tls: no such file: {path}", FAILURE)
    return cert, key, ca


def node_options(args: argparse.Namespace, out: Output,
                 environ: Any = None) -> tuple[dict[str, Any], str]:
    """The secret and TLS arguments of a node for ``args``, and where the secret came from."""
    secret, source = load_secret(getattr(args, "secret_file", None),
                                 getattr(args, "secret", None),
                                 os.environ if environ is None else environ, out)
    cert, key, ca = tls_files(args)
    return {"secret": secret, "certfile": cert, "keyfile": key, "cafile": ca}, source


def describe_failure(before: dict[str, int], after: dict[str, int], reason: str,
                     loc: Location) -> CliError:
    """The ``CliError`` for a dial to ``loc`` that failed, from the node's counters before
    and after it and the last warning logged (``reason``)."""
    changed = {k for k in after if after.get(k, 0) != before.get(k, 0)}
    prefix = f"cannot connect to {loc!r}: "
    if reason.startswith(prefix):
        reason = reason[len(prefix):]
    why = f" ({reason})" if reason else ""
    low = reason.lower()
    if "refused_version" in changed or ("version" in low and "refused_by_peer" in changed):
        return CliError(f"{loc!r} speaks another protocol version{why}; see 'pycos version'",
                        FAILURE)
    if "busy" in low and changed & {"refused_by_peer", "refused_other"}:
        return CliError(f"{loc!r} refused the connection{why}", FAILURE)
    if changed & set(_AUTH_COUNTERS):
        return CliError(f"authentication with {loc!r} failed{why}: check that the secret "
                        "(and the TLS certificates) are the node's", AUTH)
    if "during its handshake" in low:
        why += ("; the node closed the connection before it authenticated: do both sides "
                "use TLS (--tls), or neither?")
    return CliError(f"cannot reach {loc!r}{why}", UNREACHABLE)


class Session:
    """The hidden, ephemeral node of one command (use with ``with``).

    Args:
        args: the parsed command line (``bind``, ``timeout``, the secret and TLS options).
        out: where to write.
        discover: make the node visible and let it announce itself by UDP (``diag
            --discover``); otherwise it is hidden and never announces.
        udp_port: the discovery port with ``discover``.
    """

    def __init__(self, args: argparse.Namespace, out: Output, discover: bool = False,
                 udp_port: int | None = None) -> None:
        self.args = args
        self.out = out
        self.timeout: float = float(args.timeout)
        self.trap = LogTrap(out, getattr(args, "verbose", 0))
        self.discover = discover
        self.udp_port = udp_port
        self.node: Any = None
        self.secret_source = "none"
        self._dest = ""

    def __enter__(self) -> Session:
        options, self.secret_source = node_options(self.args, self.out)
        from ..net.scheduler import Pycos

        self.trap.install()
        self._dest = tempfile.mkdtemp(prefix="pycos-cli-")
        try:
            self.node = Pycos(
                host=self.args.bind, tcp_port=0, udp_port=self.udp_port,
                name=f"pycos-cli-{os.getpid()}", discover_peers=self.discover,
                hidden=not self.discover, dest_path=self._dest, max_file_size=1,
                handshake_timeout=min(self.timeout, 30.0), latency_interval=0, **options)
        except (OSError, ValueError, TypeError) as exc:
            self._cleanup()
            raise CliError(f"cannot start this command's node on {self.args.bind!r}: "
                           f"{exc}", FAILURE) from None
        except BaseException:
            self._cleanup()
            raise
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.node is not None:
            self.node.terminate()
        self._cleanup()

    def _cleanup(self) -> None:
        self.trap.remove()
        if self._dest:
            shutil.rmtree(self._dest, ignore_errors=True)

    # ------------------------------------------------------------------ talking to a node
    def connect(self, loc: Location) -> None:
        """Make the node at ``loc`` a peer (authenticated), or raise ``CliError`` saying why
        not: status 3 when it cannot be reached in time, 4 when it refuses the credentials."""
        node = self.node
        before = node.stats()
        try:
            status = run(node.peer(loc), self.timeout)
        except TimeoutError:
            raise CliError(f"{loc!r} did not answer within {self.timeout:g} s",
                           UNREACHABLE) from None
        if status == 0:
            return
        raise describe_failure(before, node.stats(), self.trap.reason(loc), loc)

    def request(self, loc: Location, kind: str, payload: Any = None) -> Any:
        """``node.request`` with the session's timeout; failures as ``CliError``."""
        try:
            return self.node.request(loc, kind, payload, self.timeout)
        except TimeoutError:
            raise CliError(f"{loc!r} did not answer a {kind!r} request within "
                           f"{self.timeout:g} s", UNREACHABLE) from None
        except PeerLost as exc:
            raise CliError(f"lost the connection to {loc!r}: {clean(exc)}", UNREACHABLE) \
                from None
        except RemoteRequestFailed as exc:
            raise CliError(f"{loc!r} refused a {kind!r} request: {clean(exc)}", FAILURE) \
                from None
        except PycosError as exc:  # RemoteError, SerializationError ...: a strange answer
            raise CliError(f"{loc!r} answered a {kind!r} request with an error: "
                           f"{type(exc).__name__}: {clean(exc)}", FAILURE) from None

    def node_info(self, loc: Location) -> dict[str, Any]:
        """The target's ``node_info`` (``Node.describe()`` there), checked to be a dict."""
        info = self.request(loc, "node_info")
        if not isinstance(info, dict):
            raise CliError(f"{loc!r} answered node_info with {type(info).__name__}, not a "
                           "description of itself", FAILURE)
        return info
