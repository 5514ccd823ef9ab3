"""File transfer between nodes: ``send_file`` and ``del_file`` (SPEC §3.6).

Owns the two operations behind ``node.send_file`` / ``node.del_file`` and their handlers on
the receiving node: the ``"file"`` stream (a connection that carries one transfer, see
``receive`` for why transfers get their own connection, and the receiving end; ``send`` for the
sending end) and the ``"_del_file"`` request. Path rules live in ``paths``. Imports the
standard library, ``pycos.core``, ``pycos.errors`` and its own package.

Results, as pycos gave them: ``send_file`` → 0 sent; 1 the same file (size, mode, mtime) is
there already; an ``os.stat_result`` of the receiver's file when a different one is there and
``overwrite`` is False; -1 on any error (the reason is logged, at both ends when the receiver
refused). ``del_file`` → 0 deleted, -1 otherwise.

Invariants: a user task waits only on a ``Pending`` (the transfer runs on a thread of its own
and always completes it, every blocking step having a time limit); progress callbacks run on
the node's scheduler thread, never more than one queued at a time plus the final one.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Generator
from typing import Any

from ...core import lowlevel
from ...errors import PeerLost, PycosError
from ..limits import escape
from ..location import Location
from ..pending import Pending
from ..requests import RemoteRequestFailed, RequestContext, RequestError
from .paths import PathRefused, check_name, prune_dirs, resolve, sandbox_root, split_dir
from .paths import wire_dir as _wire_dir
from .receive import DEFAULT_IDLE, STREAM_KIND, incoming_slot, receive
from .send import SendJob, send

__all__ = ["send_file", "del_file", "DEFAULT_IDLE", "install"]

logger = logging.getLogger("pycos.net.files")

Progress = Callable[[int, int], Any]


# ---------------------------------------------------------------------- sending side
def send_file(node: Any, location: Location, file: str | os.PathLike[str],
              dir: str | os.PathLike[str] | None = None, overwrite: bool = False,
              timeout: float | None = None,
              progress: Progress | None = None) -> Generator[Any, Any, Any]:
    """Use with yield: ``status = yield node.send_file(location, file)`` (the node's method).

    Args:
        node: the sending node.
        location: the ``Location`` of the receiving node (it need not be a peer yet).
        file: path of a regular file; it is saved under its base name.
        dir: relative directory under the receiver's ``dest_path`` (None: ``dest_path``).
        overwrite: replace a different file of that name at the receiver.
        timeout: seconds without progress after which the transfer is abandoned (None or 0:
            ``DEFAULT_IDLE``); the receiver applies the same limit.
        progress: ``fn(sent_bytes, total_bytes)``, called on the node's scheduler thread as
            the data goes out (not for every chunk when the scheduler is busy; always for the
            last one).

    Returns:
        0 when sent; 1 when the same file (size, mode, modification time) is there already;
        the receiver's ``os.stat_result`` when a different file is there and ``overwrite`` is
        False; -1 on error (logged).

    Raises:
        TypeError, ValueError: an argument has the wrong type or value (paths that break the
            receiver's rules are not raised: they give -1, like any refusal).
    """
    if not isinstance(location, Location):
        raise TypeError(f"send_file() needs a Location, got {location!r}")
    path = _file_arg(file, "send_file")
    wdir = _wire_dir(dir)
    lowlevel.check_timeout(timeout, "timeout")
    if progress is not None and not callable(progress):
        raise TypeError(f"progress must be a callable fn(sent, total) or None, got {progress!r}")
    return _send_file(node, location, path, wdir, bool(overwrite),
                      float(timeout) if timeout else DEFAULT_IDLE, progress)


def _file_arg(file: Any, what: str) -> str:
    if not isinstance(file, (str, os.PathLike)):
        raise TypeError(f"{what}() needs a file path (str or os.PathLike), got {file!r}")
    path = os.fspath(file)
    if not isinstance(path, str):
        raise TypeError(f"{what}() needs a str file path, got {file!r}")
    return path


def _send_file(node: Any, location: Location, path: str, dir: str | None, overwrite: bool,
               idle: float, progress: Progress | None) -> Generator[Any, Any, Any]:
    name = os.path.basename(path)
    try:
        check_name(name)
        split_dir(dir)
    except PathRefused as exc:
        logger.warning("send_file(%r, dir=%r): %s", path, dir, exc)
        return -1
    pending = Pending()
    job = SendJob(config=node.config, sockaddr=location.sockaddr(),
                  family=location.family, path=path, name=name, dir=dir, overwrite=overwrite,
                  idle=idle, report=_Reporter(node, progress),
                  cancelled=lambda: pending.cancelled)
    threading.Thread(target=_run_send, args=(job, pending), name="pycos-file-out",
                     daemon=True).start()
    result = yield pending
    return result


def _run_send(job: SendJob, pending: Pending) -> None:
    result: Any = -1
    try:
        result = send(job)
    except Exception:  # a bug must not leave the waiting task hanging
        logger.exception("send_file: internal error sending %r", job.path)
    finally:
        pending.resolve(result)


class _Reporter:
    """Hands progress to the user's callback on the node's scheduler thread, coalescing
    reports while one is still queued (the last one always goes)."""

    def __init__(self, node: Any, fn: Progress | None) -> None:
        self.node = node
        self.fn = fn
        self.queued = False

    def __call__(self, sent: int, total: int) -> None:
        if self.fn is None or (self.queued and sent < total):
            return
        self.queued = True
        lowlevel.call_soon(self.node.sched, self._call, sent, total)

    def _call(self, sent: int, total: int) -> None:
        self.queued = False
        fn = self.fn
        if fn is None:
            return
        try:
            fn(sent, total)
        except Exception:
            logger.exception("send_file: the progress callback failed; it is not called again")
            self.fn = None


# ---------------------------------------------------------------------- deleting
def del_file(node: Any, location: Location, file: str | os.PathLike[str],
             dir: str | os.PathLike[str] | None = None,
             timeout: float | None = None) -> Generator[Any, Any, int]:
    """Use with yield: ``status = yield node.del_file(location, file, dir)`` (the node's
    method): delete a file that ``send_file`` saved at the node at ``location`` (same
    ``file`` base name and ``dir``), and the directories this leaves empty under its
    ``dest_path``.

    Returns:
        0 when deleted, -1 otherwise (no such file, a path that breaks the rules, the node
        cannot be reached …; logged).

    Raises:
        TypeError, ValueError: an argument has the wrong type or value.
    """
    if not isinstance(location, Location):
        raise TypeError(f"del_file() needs a Location, got {location!r}")
    path = _file_arg(file, "del_file")
    wdir = _wire_dir(dir)
    lowlevel.check_timeout(timeout, "timeout")
    return _del_file(node, location, os.path.basename(path), wdir,
                     float(timeout) if timeout else DEFAULT_IDLE)


def _del_file(node: Any, location: Location, name: str, dir: str | None,
              timeout: float) -> Generator[Any, Any, int]:
    try:
        check_name(name)
        split_dir(dir)
    except PathRefused as exc:
        logger.warning("del_file(%r, dir=%r): %s", name, dir, exc)
        return -1
    try:
        result = yield from node.request(location, "_del_file", (name, dir), timeout)
    except (PeerLost, RemoteRequestFailed, TimeoutError, PycosError) as exc:
        logger.warning("del_file(%r, dir=%r) at %r failed: %s", name, dir, location, exc)
        return -1
    return 0 if result == 0 else -1


# ---------------------------------------------------------------------- receiving side
def _file_stream(node: Any, sock: Any, conn: Any, payload: bytes, who: str) -> None:
    """A peer opened a connection to send a file: receive it (on the stream's thread)."""
    try:
        source = str(sock.getpeername()[0])
    except OSError:
        source = who
    why = incoming_slot(source)
    if why is not None:
        node.stats["rejected_busy"] += 1
        node.peers.log.event("file_refused", "refused a file from %s: %s", who, why)
        sock.close()
        return
    sock.setblocking(True)
    receive(node, sock, conn, payload, who, source)


def _del_file_request(ctx: RequestContext, payload: Any) -> Any:
    """Delete a received file (0 / -1); runs on a handler thread (file systems may block)."""
    if not (isinstance(payload, tuple) and len(payload) == 2 and isinstance(payload[0], str)
            and (payload[1] is None or isinstance(payload[1], str))):
        raise RequestError("_del_file takes (name: str, dir: str or None)")
    name, dir_ = payload
    who = ctx.peer.name if ctx.peer is not None else "a peer"
    try:
        root = sandbox_root(ctx.node.dest_path, create=False)
        real_dir, target = resolve(root, dir_, name)
        os.unlink(target)
    except (PathRefused, OSError) as exc:
        local = f" ({exc.local})" if isinstance(exc, PathRefused) and exc.local else ""
        ctx.node.peers.log.event(
            "del_file_refused", "refused to delete %s (dir %s) for %s: %s%s", escape(name, 200),
            escape(str(dir_), 200), escape(who, 60),
            exc.strerror if isinstance(exc, OSError) and exc.strerror else exc, local)
        return -1
    prune_dirs(root, real_dir)
    return 0


def install(node: Any) -> None:
    """Receive files and deletions on ``node``."""
    node.handlers.stream(STREAM_KIND, _file_stream)
    node.handlers.serve("_del_file", _del_file_request, "thread", reserved_ok=True)
