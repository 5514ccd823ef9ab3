"""The ``fetch`` command: ``python -m pycos fetch NODE EXPORT[/DIR]``, files from a gateway.

Owns ``add_arguments`` (``NODE``, the folder, ``--to DIR``, ``--keep``, ``--durable`` and the
options of ``transfer``) and ``run``: it checks ``--to`` before any traffic, then downloads the
folder's files (those ``--regex`` matches, applied here) from the gateway's named export root
into ``--to`` over ``--swarm K`` parallel connections (``Swarm.get_files``, with a progress
bar), keeping relative paths, modes and mtimes and skipping files already there with the same
size, mode and time. Exit status 0 when every file is there, 1 when one failed (each is
named), 2 for a mistake on the command line, 3 unreachable or timeout, 4 authentication
refused. Imports the standard library, ``pycos.net`` and its own package.
"""

from __future__ import annotations

import argparse
import os
import stat
from typing import Any

from ..net.files.paths import PathRefused, sandbox_root
from .output import Output, clean
from .parser import parse_node
from .status import FAILURE, CliError
from .transfer import Transfer, add_transfer_options, folder_arg

__all__ = ["add_arguments", "run", "HELP", "HINTS", "check_destination"]

#: The line ``python -m pycos --help`` shows for this command.
HELP = "fetch files from a gateway's export over a swarm of connections, with a progress bar"

#: What the swarm's terse reasons for a file that failed mean, and what to do.
HINTS = {"a different file is there (overwrite=False)":
         "a different file of that name is in --to; without --keep it is replaced"}


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The arguments of ``fetch`` (for ``parser.py``'s subparser)."""
    p.description = (
        "Download the files of a folder that a pycos.swarm gateway exports (EXPORT is the "
        "name it exports a directory under; DIR a folder below it) into --to DIR, over "
        "--swarm K parallel connections, keeping relative paths, modes and mtimes. Files "
        "already there with the same size, mode and time are skipped, so an interrupted "
        "fetch resumes.")
    p.add_argument("node", type=parse_node, metavar="NODE",
                   help="HOST:PORT of the node that runs the gateway")
    p.add_argument("folder", type=folder_arg, metavar="EXPORT[/DIR]",
                   help="the folder on the gateway: an export's name, optionally with a "
                        "folder below it")
    p.add_argument("--to", default=".", metavar="DIR",
                   help="where the files go, keeping their paths below the folder (default: "
                        "the current directory; created when missing)")
    p.add_argument("--keep", action="store_true",
                   help="keep a different file of the same name already in --to (the file "
                        "is then reported as failed) instead of replacing it")
    p.add_argument("--durable", action="store_true",
                   help="flush the files received to the disk (fsync) before ending")
    add_transfer_options(p)


def check_destination(path: str) -> str:
    """The real path of ``--to`` when it exists (a directory of one's own), else ``path``.

    Raises:
        CliError: it is not a directory, or it is a directory others may write to or that
            belongs to another user (status 1; nothing has been sent).
    """
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return path  # made when the first file comes
    except OSError as exc:
        raise CliError(f"--to {path}: {exc.strerror or exc}", FAILURE) from None
    if not stat.S_ISDIR(info.st_mode):
        raise CliError(f"--to {path} is not a directory; name the directory the files go "
                       "into (it is created when missing)", FAILURE)
    try:
        return sandbox_root(path, create=False)
    except PathRefused as exc:
        why = clean(exc, 300).replace("dest_path", "the directory")
        raise CliError(f"--to {path}: {why}; choose a directory of your own (e.g. --to "
                       "./fetched)", FAILURE) from None


def run(args: argparse.Namespace, out: Output) -> int:
    """``fetch NODE EXPORT[/DIR] [--regex R] [--swarm K] [--to DIR] [--keep] ...``."""
    check_destination(args.to)
    transfer = Transfer(args, out, "fetch", "fetched", args.folder)

    def job(swarm: Any, progress: Any) -> Any:
        return swarm.get_files(args.folder, regex=args.regex, dest=args.to,
                               progress=progress, overwrite=not args.keep,
                               durable=args.durable)

    existed = os.path.lexists(args.to)
    try:
        result = transfer.run(job)
    except CliError:
        if not existed:  # made for this fetch, which failed: leave no empty directory
            try:
                os.rmdir(args.to)
            except OSError:
                pass
        raise
    root = os.path.realpath(args.to)
    paths = [os.path.relpath(os.path.realpath(p), root) for p in result]
    return transfer.report(result, f"from {args.node!r} into {clean(args.to)}",
                           {"folder": args.folder, "to": root}, paths, HINTS)
