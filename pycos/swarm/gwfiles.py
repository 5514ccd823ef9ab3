"""The gateway's side of the file operations: ``list``, ``get``, ``offer`` and ``put``.

Owns the four request handlers a ``Handler`` runs for files. ``list`` streams a bounded listing
of a folder inside an export (with credit, 1,000 entries an item); ``get`` sends the files
asked for, small ones inline (whole, in authenticated frames), large ones as raw sections with
an authenticated trailer, and a file that cannot be read or that changes while it is read as a
FILE record carrying the reason (the request goes on); ``offer`` says which of the files a
client proposes to upload are wanted; ``put`` writes uploaded files below the node's
``dest_path`` under the ``send_file`` rules. Imports the standard library, ``pycos.errors``,
``pycos.net.files.paths`` and the package's modules.
"""

from __future__ import annotations

import hmac
import os
import stat
import time
from typing import Any

from ..errors import AccessDenied, RemoteProtocolError
from ..net.files.paths import PathRefused
from . import _protocol as P
from .errors import TransferError
from .exports import MAX_ENTRIES, DirCache, open_dir, open_file, walk
from .localfiles import SEND, Landing
from .rawio import receive_section, send_section

__all__ = ["list_files", "get_files", "offer_files", "put_files", "INLINE_MAX", "LIST_GROUP",
           "MAX_GET_FILES"]

#: Files up to this size travel inline (whole, inside frames).
INLINE_MAX = 64 * 1024
#: Entries per item of a listing.
LIST_GROUP = 1000
#: Files one ``get`` request may ask for.
MAX_GET_FILES = 1024


def _str_list(value: Any, limit: int, what: str) -> list[str]:
    if not isinstance(value, list | tuple) or len(value) > limit or not all(
            type(v) is str for v in value):
        raise ValueError(f"{what} is a list of at most {limit} relative paths (str)")
    return list(value)


# ---------------------------------------------------------------------- list
def list_files(handler: Any, req: P.Request) -> None:
    """Stream ``(entries, truncated, errors)`` items: ``entries`` of (path, size, mtime_ns,
    mode), ``truncated`` True on the last item when the tree was cut at ``max_entries``,
    ``errors`` {path: reason} for asked paths that cannot be listed."""
    gw = handler.gw
    root, parts = gw.exports.locate(req.name)
    paths = req.args[0] if req.args else None
    fd = open_dir(root, parts)
    errors: dict[str, str] = {}
    try:
        if paths is None:
            entries, truncated = walk(fd, min(gw.max_entries, MAX_ENTRIES))
            if truncated:
                gw.count("listings_truncated")
        else:
            entries, truncated = [], False
            for path in _str_list(paths, MAX_ENTRIES, "paths"):
                try:
                    ffd = open_file(fd, path)
                except (AccessDenied, OSError) as exc:
                    errors[path] = _reason(exc)
                    continue
                try:
                    st = os.fstat(ffd)
                finally:
                    os.close(ffd)
                entries.append((path, st.st_size, st.st_mtime_ns, stat.S_IMODE(st.st_mode)))
    finally:
        os.close(fd)
    groups = [entries[i:i + LIST_GROUP] for i in range(0, len(entries), LIST_GROUP)] or [[]]
    last = len(groups) - 1
    items = ((i, (group, truncated if i == last else False, errors if i == last else {}))
             for i, group in enumerate(groups))
    handler.run_stream(req, items)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


# ---------------------------------------------------------------------- get
def get_files(handler: Any, req: P.Request) -> None:
    """Send each file asked for (``args[0]``, paths relative to the folder), then EOS."""
    gw = handler.gw
    root, parts = gw.exports.locate(req.name)
    paths = _str_list(req.args[0] if req.args else (), MAX_GET_FILES, "paths")
    fd = open_dir(root, parts)
    dirs = DirCache(fd)
    handler.active, handler.cancel_active = req.id, False
    reason = P.END
    try:
        for path in paths:
            if handler.cancel_active:
                reason = P.ABORT
                break
            _send_file(handler, req.id, dirs, path)
            if time.monotonic() - handler.last_poll > 0.005:
                handler.poll()
    finally:
        handler.active = 0
        dirs.close()
        os.close(fd)
    handler.emit(handler.proto.end(req.id, reason))


def _send_file(handler: Any, rid: int, dirs: DirCache, path: str) -> None:
    try:
        fd = dirs.open_file(path)
    except (AccessDenied, OSError) as exc:
        handler.emit(P.file_record(rid, P.FileMeta(path, -1, 0, 0, _reason(exc)), None))
        handler.gw.count("files_refused")
        return
    try:
        st = os.fstat(fd)
        meta = P.FileMeta(path, st.st_size, st.st_mtime_ns, stat.S_IMODE(st.st_mode))
        if st.st_size <= INLINE_MAX:
            data = _read_all(fd, st.st_size)
            after = os.fstat(fd)
            if data is None or after.st_size != st.st_size or after.st_mtime_ns != \
                    st.st_mtime_ns:
                handler.gw.count("files_changed")
                handler.emit(P.file_record(rid, P.FileMeta(
                    path, -1, 0, 0, "the file changed while it was read"), None))
                return
            handler.emit(P.file_record(rid, meta, data))
        else:
            _send_raw(handler, rid, fd, meta)
        handler.gw.count("files_sent")
    finally:
        os.close(fd)


def _read_all(fd: int, size: int) -> bytes | None:
    """Exactly ``size`` bytes of ``fd``, or None when it has more or fewer."""
    data = os.pread(fd, size + 1, 0)
    while len(data) < size + 1:
        more = os.pread(fd, size + 1 - len(data), len(data))
        if not more:
            break
        data += more
    return data if len(data) == size else None


def _send_raw(handler: Any, rid: int, fd: int, meta: P.FileMeta) -> None:
    wire = handler.wire
    with handler.out_lock:
        handler.out.append(P.file_record(rid, meta, None))
        chunk = b"".join(handler.out)
        handler.out.clear()
        handler.out_size = 0
        mac = wire.file_mac(meta.size)
        ok = wire.send_then(chunk, lambda: send_section(wire, fd, meta.size, meta.mtime_ns,
                                                        mac))
    if not ok:
        handler.gw.count("files_changed")
    handler.emit(P.trailer_record(rid, ok, mac.digest()))


# ---------------------------------------------------------------------- offer / put
def _landing(handler: Any, req: P.Request, overwrite: Any) -> Landing:
    node = handler.gw.node
    try:
        return Landing(node.dest_path, req.name, bool(overwrite), node.max_file_size)
    except PathRefused as exc:
        raise AccessDenied(f"uploads refused: {exc}") from None


def offer_files(handler: Any, req: P.Request) -> None:
    """Answer, for each proposed (path, size, mtime_ns, mode), ``send``, ``same``,
    ``exists`` or ``refused: why``."""
    metas = req.args[0] if req.args else ()
    if not isinstance(metas, list | tuple) or len(metas) > P.MAX_PUT_FILES:
        raise ValueError(f"an offer proposes at most {P.MAX_PUT_FILES} files")
    landing = _landing(handler, req, req.args[1] if len(req.args) > 1 else False)
    answers = []
    for fields in metas:
        try:
            meta = P.FileMeta(*fields)
            if type(meta.path) is not str or type(meta.size) is not int or meta.size < 0:
                raise PathRefused("malformed file description")
            answers.append(landing.check(meta))
        except (PathRefused, TypeError, ValueError, OSError) as exc:
            answers.append(f"refused: {_reason(exc)}")
    handler.emit(handler.proto.result(req.id, answers))


def put_files(handler: Any, req: P.Request) -> None:
    """Write the ``args[0]`` files that follow the request; answer {path: status}, where
    status is ``done``, ``same``, ``exists`` or ``refused: why``. Every announced file is
    read, even after a refusal, so the connection stays in step."""
    count = req.args[0]
    try:
        landing: Landing | None = _landing(handler, req, req.args[1] if len(req.args) > 1
                                           else False)
        refusal = ""
    except AccessDenied as exc:
        landing, refusal = None, str(exc)
    statuses: dict[str, str] = {}
    handler.active_put = req.id
    try:
        for _ in range(count):
            event = handler.next_file_event(req.id)
            if type(event) is not P.FileStart:
                raise RemoteProtocolError("a TRAILER where a FILE was due")
            meta = event.meta
            statuses[meta.path] = _receive_one(handler, landing, refusal, event)
    finally:
        handler.active_put = 0
        handler.drop_files(req.id)
    handler.emit(handler.proto.result(req.id, statuses))


def _receive_one(handler: Any, landing: Landing | None, refusal: str, event: Any) -> str:
    meta = event.meta
    gw = handler.gw
    incoming = None
    status = "done"
    try:
        if meta.error is not None:
            status = f"refused: {meta.error}"
        elif landing is None:
            status = f"refused: {refusal}"
        else:
            try:
                answer = landing.check(meta)
                if answer == SEND:
                    incoming = landing.begin(meta)
                else:
                    status = answer
            except (PathRefused, TransferError, OSError) as exc:
                status = f"refused: {_reason(exc)}"
        if event.content is not None:
            if incoming is not None:
                incoming.write(event.content)
        elif meta.error is None:
            status = _receive_raw(handler, meta, incoming, status)
        if incoming is not None and status == "done":
            incoming.finish()
            gw.count("files_received")
        elif status.startswith("refused"):
            gw.count("files_refused")
    except (TransferError, OSError) as exc:
        status = f"refused: {_reason(exc)}"
        gw.count("files_refused")
    finally:
        if incoming is not None:
            incoming.discard()
    return status


def _receive_raw(handler: Any, meta: P.FileMeta, incoming: Any, status: str) -> str:
    wire = handler.wire
    mac = wire.file_mac(meta.size)
    receive_section(wire, meta.size, mac, incoming.write if incoming is not None else None)
    handler.proto.raw_done()
    trailer = handler.next_file_event(handler.active_put)
    if type(trailer) is not P.Trailer:
        raise RemoteProtocolError("a FILE where a TRAILER was due")
    if not hmac.compare_digest(trailer.digest, mac.digest()):
        handler.gw.count("file_integrity_failures")
        return "refused: the content does not match its digest; discarded"
    if not trailer.ok:
        handler.gw.count("files_changed")
        return "refused: the file changed while it was sent; discarded"
    return status
