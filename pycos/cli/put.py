"""The ``put`` command: ``python -m pycos put DIR NODE``, files to a gateway.

Owns ``add_arguments`` (the local ``DIR``, ``NODE``, ``--dir D``, ``--overwrite`` and the
options of ``transfer``) and ``run``: it checks ``DIR`` before any traffic, then uploads its
files (those ``--regex`` matches; symbolic links are never followed) into the gateway node's
``dest_path`` (below ``--dir``) over ``--swarm K`` parallel connections (``Swarm.put_files``,
with a progress bar), under the rules of ``send_file`` there: relative paths, the node's
``max_file_size``, modes and mtimes kept; an identical file there is skipped, a different one
refused unless ``--overwrite``. Exit status 0 when every file is there, 1 when one failed
(each is named), 2 for a mistake on the command line, 3 unreachable or timeout, 4
authentication refused. Imports the standard library and its own package.
"""

from __future__ import annotations

import argparse
import os
import stat
from typing import Any

from .output import Output, clean
from .parser import parse_node
from .status import FAILURE, CliError
from .transfer import Transfer, add_transfer_options, relative_dir_arg

__all__ = ["add_arguments", "run", "HELP", "HINTS", "check_source"]

#: The line ``python -m pycos --help`` shows for this command.
HELP = ("put a directory's files on a gateway's node over a swarm of connections, with a "
        "progress bar")

#: What the gateway's terse answers for a file that was not put mean, and what to do.
HINTS = {"exists": "a different file of that name is there; use --overwrite to replace it"}


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The arguments of ``put`` (for ``parser.py``'s subparser)."""
    p.description = (
        "Upload the files of a local directory (and of the directories below it) to the node "
        "of a pycos.swarm gateway, into its dest_path or --dir D below it, over --swarm K "
        "parallel connections, keeping relative paths, modes and mtimes. A file already "
        "there with the same size, mode and time is skipped; a different one is kept unless "
        "--overwrite.")
    p.add_argument("source", metavar="DIR", help="the local directory whose files to send")
    p.add_argument("node", type=parse_node, metavar="NODE",
                   help="HOST:PORT of the node that runs the gateway")
    p.add_argument("--dir", type=relative_dir_arg, metavar="D",
                   help="a directory below the node's dest_path (relative; default: "
                        "dest_path itself)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace a different file of the same name there")
    add_transfer_options(p)


def check_source(path: str) -> str:
    """``DIR`` as a real path: an existing directory this user may read.

    Raises:
        CliError: it is missing, not a directory, or cannot be read (status 1; nothing has
            been sent).
    """
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise CliError(f"no such directory: {path}", FAILURE) from None
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror or exc}", FAILURE) from None
    if not stat.S_ISDIR(info.st_mode):
        raise CliError(f"{path} is not a directory; put sends the files of a directory (for "
                       "single files use 'pycos send FILE... NODE')", FAILURE)
    if not os.access(path, os.R_OK | os.X_OK):
        raise CliError(f"cannot read the directory {path}: permission denied", FAILURE)
    return os.path.realpath(path)


def run(args: argparse.Namespace, out: Output) -> int:
    """``put DIR NODE [--regex R] [--dir D] [--swarm K] [--overwrite] ...``."""
    source = check_source(args.source)
    label = os.path.basename(source.rstrip(os.sep)) or source
    transfer = Transfer(args, out, "put", "put", label)

    def job(swarm: Any, progress: Any) -> Any:
        return swarm.put_files(source, regex=args.regex, dir=args.dir, progress=progress,
                               overwrite=args.overwrite)

    result = transfer.run(job)
    where = f"from {clean(args.source)} to {args.node!r}"
    if args.dir:
        where += f" into {clean(args.dir)}"
    return transfer.report(result, where, {"from": source, "dir": args.dir}, list(result),
                           HINTS)
