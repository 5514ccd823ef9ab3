"""Swarm file transfers of the command line: what ``fetch`` and ``put`` share.

Owns the options both commands have (``add_transfer_options``: ``--regex``, ``--swarm K``,
``--gateway NAME``, ``-q``, ``--progress``, and through ``parser._common`` those
of every networked command), the checks of their arguments that argparse runs (``regex_arg``,
``swarm_arg``, ``folder_arg``, ``relative_dir_arg``: a mistake there is status 2, before any
traffic), and ``Transfer``: through the command's hidden node (``session``) it connects to the
gateway's node (status 3 unreachable or timeout, 4 authentication refused), gets a swarm of K
clients from the gateway (``pycos.swarm.Controller.get_swarm``), runs ``get_files`` or
``put_files`` with the progress bar of ``progress`` and closes the swarm; then ``report``
writes the summary line (or the JSON document) and says which files failed (status 1). Every
failure of the gateway becomes a ``CliError`` that names the mistake and the fix. Imports the
standard library, ``pycos.errors``, ``pycos.net``, ``pycos.swarm`` and its own package.
"""

from __future__ import annotations

import argparse
import os
import re
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..errors import AccessDenied, PeerLost, PycosError
from ..net.files.paths import PathRefused, split_dir
from ..net.location import Location
from ..net.requests import RemoteRequestFailed
from .output import Output, clean, format_bytes
from .parser import _common
from .progress import CHOICES, FileProgress, make_progress
from .session import Session
from .status import AUTH, FAILURE, OK, UNREACHABLE, CliError

if TYPE_CHECKING:
    from ..swarm import Transferred

__all__ = ["add_transfer_options", "regex_arg", "swarm_arg", "folder_arg", "relative_dir_arg",
           "Transfer", "MAX_SWARM", "DEFAULT_SWARM", "DEFAULT_GATEWAY", "MAX_SHOWN_FAILURES"]

#: Connections a transfer uses unless ``--swarm`` says otherwise.
DEFAULT_SWARM = 4
#: The most ``--swarm`` accepts (a gateway serves at most ``pool_size`` of them anyway).
MAX_SWARM = 64
#: The gateway's name on its node unless ``--gateway`` says otherwise (``Gateway``'s default).
DEFAULT_GATEWAY = "gateway"
#: Failed files named one by one on stderr; the others are counted.
MAX_SHOWN_FAILURES = 20


# ---------------------------------------------------------------------- argument checks
def regex_arg(text: str) -> str:
    """``--regex``: a regular expression that compiles here (it never runs on the gateway)."""
    try:
        re.compile(text)
    except re.error as exc:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a regular expression ({exc}); it is matched with re.fullmatch "
            r"against each file's path relative to the folder, e.g. --regex '.+\.log' or "
            r"--regex '2024-.*/app[0-9]+\.log'") from None
    return text


def swarm_arg(text: str) -> int:
    """``--swarm K``: the number of parallel connections, 1..MAX_SWARM."""
    if not text.isdigit() or not 1 <= int(text) <= MAX_SWARM:
        raise argparse.ArgumentTypeError(
            f"{text!r}: expected a number of connections in 1..{MAX_SWARM} (the gateway's "
            "pool_size bounds it too: 5 unless the gateway says otherwise)")
    return int(text)


def folder_arg(text: str) -> str:
    """``EXPORT[/DIR]``: an export's name on the gateway and, below it, a relative folder."""
    if not text or "\0" in text or not text.isprintable():
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a folder: expected EXPORT[/DIR], the name the gateway exports a "
            "directory under (e.g. logs) and optionally a folder below it (logs/2024)")
    if text.startswith("/") or os.path.isabs(text):
        raise argparse.ArgumentTypeError(
            f"{text!r} is a path on the node; name the folder by the gateway's export instead, "
            "as EXPORT[/DIR] (e.g. logs/2024 when the gateway exports the directory as 'logs')")
    parts = [p for p in text.replace("\\", "/").split("/") if p not in ("", ".")]
    if not parts:
        raise argparse.ArgumentTypeError(f"{text!r} names no export: expected EXPORT[/DIR]")
    if ".." in parts:
        raise argparse.ArgumentTypeError(
            f"{text!r} climbs out with '..'; a gateway serves only what is inside its exports: "
            "name a folder below one, as EXPORT[/DIR]")
    return "/".join(parts)


def relative_dir_arg(text: str) -> str:
    """``put --dir D``: a relative directory below the node's ``dest_path``."""
    try:
        split_dir(text)
    except PathRefused as exc:
        raise argparse.ArgumentTypeError(
            f"{exc}; --dir is a directory below the node's dest_path, such as runs/7") \
            from None
    return text


def add_transfer_options(p: argparse.ArgumentParser) -> None:
    """The options ``fetch`` and ``put`` both have (and those of every networked command)."""
    p.add_argument("--regex", type=regex_arg, metavar="R",
                   help="only the files whose path relative to the folder matches R "
                        "(re.fullmatch, applied on this side)")
    p.add_argument("--swarm", type=swarm_arg, default=DEFAULT_SWARM, metavar="K",
                   help=f"transfer over K parallel connections (default {DEFAULT_SWARM}; at "
                        "most the gateway's pool_size)")
    p.add_argument("--gateway", default=DEFAULT_GATEWAY, metavar="NAME",
                   help=f"the gateway's name on the node (default {DEFAULT_GATEWAY!r})")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.add_argument("--progress", choices=CHOICES, default="auto",
                   help="auto: tqdm if installed, else a built-in bar on a terminal")
    _common(p)
    p.add_argument("--json", action="store_true",
                   help="write one JSON document on stdout instead of text")


# ---------------------------------------------------------------------- the transfer
class Transfer:
    """One ``fetch`` or ``put``: ``run(job)`` connects, gets the swarm and calls
    ``job(swarm, progress)``; ``report`` says what happened.

    Args:
        args: the parsed command line (``node``, ``swarm``, ``gateway``, ``quiet``,
            ``progress``, the secret, TLS, ``--bind`` and ``--timeout``).
        out: where to write.
        verb: ``fetch`` or ``put``, and ``done`` its past (``fetched``, ``put``), for the
            messages.
        label: what is transferred, as the bar shows it.
    """

    def __init__(self, args: argparse.Namespace, out: Output, verb: str, done: str,
                 label: str) -> None:
        self.args = args
        self.out = out
        self.verb = verb
        self.done = done
        self.label = label
        self.loc: Location = args.node
        self.seconds = 0.0
        self.counts = (0, 0, 0, 0)

    def run(self, job: Callable[[Any, Any], Transferred]) -> Transferred:
        """Connect, get ``--swarm`` clients from the gateway, run ``job(swarm, progress)``
        with the bar, and close everything; failures as ``CliError``."""
        from ..swarm import Controller  # here: parsing a command line does not need it

        args, out, loc = self.args, self.out, self.loc
        choice = "none" if args.quiet else args.progress
        with Session(args, out) as session:
            session.connect(loc)
            try:
                bar = make_progress(choice, self.label, 0, out.stderr, out.raw_stderr)
            except ValueError as exc:
                raise CliError(str(exc), FAILURE) from None
            progress = FileProgress(bar, self.label)
            try:
                controller = Controller(loc, node=session.node, name=args.gateway,
                                        timeout=session.timeout)
                began = time.monotonic()
                with self._swarm(controller, session) as swarm:
                    result = self._guarded(lambda: job(swarm, progress), session)
                self.seconds = time.monotonic() - began
            finally:
                bar.close()
            self.counts = progress.last
        return result

    def _swarm(self, controller: Any, session: Session) -> Any:
        from ..swarm import PoolFull

        args, loc = self.args, self.loc
        try:
            return controller.get_swarm(args.swarm, wait=True, timeout=session.timeout)
        except PoolFull as exc:
            raise CliError(
                f"gateway {clean(args.gateway)!r} on {loc!r} could not give {args.swarm} "
                f"connection{'s' if args.swarm > 1 else ''} within {session.timeout:g} s "
                f"({clean(exc)}); use a smaller --swarm (at most its pool size), or try again "
                "when its other clients are done", FAILURE) from None
        except AccessDenied as exc:
            text = clean(exc, 300)
            if "has no gateway named" in text:
                raise CliError(f"{text}: give the gateway's name with --gateway NAME (default "
                               f"{DEFAULT_GATEWAY!r})", FAILURE) from None
            raise CliError(f"the gateway on {loc!r} refuses this node: {text}", AUTH) \
                from None
        except RemoteRequestFailed as exc:
            raise CliError(f"{loc!r} runs no swarm gateway ({clean(exc)}); start one there "
                           "(pycos.swarm.Gateway) or name the node that runs it", FAILURE) \
                from None
        except Exception as exc:  # noqa: BLE001 - every other way a connection fails
            raise self._failure(exc, session, "connecting to the gateway") from None

    def _guarded(self, call: Callable[[], Transferred], session: Session) -> Transferred:
        try:
            return call()
        except AccessDenied as exc:
            raise CliError(f"the gateway on {self.loc!r} refused: {clean(exc, 300)}",
                           FAILURE) from None
        except PathRefused as exc:
            raise CliError(f"{clean(exc, 300)}: choose a directory of your own for the "
                           "files", FAILURE) from None
        except (TypeError, ValueError) as exc:
            raise CliError(f"{self.verb}: {clean(exc, 300)}", FAILURE) from None
        except Exception as exc:  # noqa: BLE001 - lost connections, timeouts, odd answers
            raise self._failure(exc, session, f"the {self.verb}") from None

    def _failure(self, exc: BaseException, session: Session, during: str) -> CliError:
        from ..swarm import GatewayClosed

        loc = self.loc
        if isinstance(exc, TimeoutError):
            return CliError(f"{loc!r} did not answer within {session.timeout:g} s during "
                            f"{during} (--timeout sets the limit)", UNREACHABLE)
        if isinstance(exc, GatewayClosed | PeerLost | ConnectionError):
            return CliError(f"lost the connection to {loc!r} during {during}: {clean(exc)}",
                            UNREACHABLE)
        if isinstance(exc, PycosError | OSError):
            return CliError(f"{during} with {loc!r} failed: {type(exc).__name__}: "
                            f"{clean(exc, 300)}", FAILURE)
        raise exc

    # ------------------------------------------------------------------ the report
    def report(self, result: Transferred, where: str, document: dict[str, Any],
               paths: list[str], hints: dict[str, str] | None = None) -> int:
        """The summary line (``where`` says from where to where), one error line per failed
        file, and the JSON document (``document`` plus the counts); the exit status.
        ``hints`` replaces terse reasons (``exists``) by what they mean and what to do."""
        out = self.out
        if hints:
            for path, why in list(result.failed.items()):
                result.failed[path] = hints.get(why, why)
        files, _total_files, nbytes, _total_bytes = self.counts
        moved = len(result) - result.same
        rate = nbytes / self.seconds if self.seconds > 0 else 0.0
        k = self.args.swarm
        if not len(result) and not result.failed:
            regex = self.args.regex
            why = f" matches --regex {regex!r}" if regex is not None else " is there"
            out.line(f"{clean(self.label)}: nothing to {self.verb}: no file{why}")
        else:
            same = f"; {result.same} of them were there already" if result.same else ""
            out.line(f"{clean(self.label)}: {self.done} {len(result)} "
                     f"file{'s' if len(result) != 1 else ''} ({format_bytes(nbytes)}) {where} "
                     f"over {k} connection{'s' if k > 1 else ''} in {self.seconds:.2f} s "
                     f"({format_bytes(rate)}/s){same}")
        if result.truncated:
            out.warn("the gateway's listing stopped at its limit; some files were not "
                     "considered: transfer a smaller folder (EXPORT/DIR) or narrow --regex")
        for n, (path, why) in enumerate(sorted(result.failed.items())):
            if n == MAX_SHOWN_FAILURES:
                out.error(f"... and {len(result.failed) - n} more files failed (--json lists "
                          "them all)")
                break
            out.error(f"{clean(path)}: {clean(why, 300)}")
        code = FAILURE if result.failed or result.truncated else OK  # not all was moved
        out.result({"ok": code == OK, "node": repr(self.loc), "gateway": self.args.gateway,
                    **document, "regex": self.args.regex, "swarm": k, "files": sorted(paths),
                    "transferred": moved, "same": result.same, "failed": dict(result.failed),
                    "bytes": nbytes, "seconds": self.seconds, "done": files,
                    "truncated": result.truncated})
        return code
