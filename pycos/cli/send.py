"""The ``send`` command: files to a node's ``dest_path``, with a progress bar.

Owns ``cmd_send``: it checks every file before it starts a node (a missing file is status 1,
and nothing is sent), connects (status 3 or 4 when that fails), then sends the files one
after the other with ``node.send_file``, feeding the bar of ``progress`` from the node's
scheduler thread, and says for each whether it was sent, was there already, or was refused.
Imports the standard library, ``pycos.core``, ``pycos.net`` and its own package.
"""

from __future__ import annotations

import argparse
import os
import stat
import time
from typing import Any

from ..core.blocking import run
from ..net.location import Location
from .output import Output, clean, format_bytes
from .progress import make_progress
from .session import Session
from .status import FAILURE, OK, CliError

__all__ = ["cmd_send", "check_files", "outcome"]


def check_files(paths: list[str]) -> list[tuple[str, int]]:
    """(path, size) of each file to send.

    Raises:
        CliError: a path does not exist, is not a regular file or cannot be read (status 1).
    """
    found = []
    for path in paths:
        try:
            info = os.stat(path)
        except FileNotFoundError:
            raise CliError(f"no such file: {path}", FAILURE) from None
        except OSError as exc:
            raise CliError(f"cannot read {path}: {exc.strerror or exc}", FAILURE) from None
        if not stat.S_ISREG(info.st_mode):
            raise CliError(f"{path} is not a regular file (send sends files, one by one)",
                           FAILURE)
        if not os.access(path, os.R_OK):
            raise CliError(f"cannot read {path}: permission denied", FAILURE)
        found.append((path, info.st_size))
    return found


def outcome(result: Any) -> tuple[str, str]:
    """``send_file``'s result as (status word, what it means)."""
    if result == 0 and isinstance(result, int):
        return "sent", "sent"
    if result == 1 and isinstance(result, int):
        return "same", "the same file is there already (size, mode and time match)"
    if hasattr(result, "st_size"):
        return "exists", (f"a different file of that name is there ({result.st_size} bytes); "
                          "use --overwrite to replace it")
    return "failed", "the transfer failed"


def cmd_send(args: argparse.Namespace, out: Output) -> int:
    """``send FILE... NODE [--dir D] [--overwrite] [-q] [--progress P]``."""
    files = check_files(args.files)
    loc: Location = args.node
    choice = "none" if args.quiet else args.progress
    report: list[dict[str, Any]] = []
    code = OK
    with Session(args, out) as session:
        session.connect(loc)
        for path, size in files:
            name = os.path.basename(path)
            try:
                bar = make_progress(choice, name, size, out.stderr, out.raw_stderr)
            except ValueError as exc:
                raise CliError(str(exc), FAILURE) from None
            began = time.monotonic()
            try:
                op = session.node.send_file(loc, path, args.dir, args.overwrite,
                                            session.timeout, progress=bar.update)
                result = run(op)
            except (TypeError, ValueError) as exc:
                raise CliError(f"{clean(path)}: {clean(exc)}", FAILURE) from None
            finally:
                bar.close()
            seconds = time.monotonic() - began
            word, meaning = outcome(result)
            entry: dict[str, Any] = {"file": path, "name": name, "size": size,
                                     "status": word, "seconds": seconds}
            if word == "sent":
                rate = size / seconds if seconds > 0 else 0.0
                out.line(f"{clean(path)}: sent {format_bytes(size)} to {loc!r} in "
                         f"{seconds:.2f} s ({format_bytes(rate)}/s)")
            elif word == "same":
                out.line(f"{clean(path)}: {meaning}")
            else:
                if word == "failed":
                    reason = session.trap.reason()
                    meaning = f"{meaning}: {reason}" if reason else meaning
                entry["error"] = meaning
                out.error(f"{clean(path)}: {meaning}")
                code = FAILURE
            report.append(entry)
    out.result({"ok": code == OK, "node": repr(loc), "dir": args.dir, "files": report})
    return code
