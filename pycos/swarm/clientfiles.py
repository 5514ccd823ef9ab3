"""The controller's side of file transfers, over one client or a swarm of them.

Owns ``download`` (list the folder on the gateway — the regex is applied here, never there —
skip the files already here with the same size and mtime, share the rest out with
``schedule.Plan``, and receive them with two requests in flight per connection) and ``upload``
(walk a local folder without following links, offer large files first, send small ones
batched inline), ``listing``, ``compile_regex`` and ``Transferred`` (the paths done, and
``failed``: {path: why}). A connection that fails loses only its requests in flight (their
files are reported failed); the other connections take its queued work. Files are written by
``localfiles`` (temporary file, authenticated, then renamed). Imports the standard library,
``pycos.errors``, ``pycos.net.files.paths`` and the package's modules.
"""

from __future__ import annotations

import hmac
import os
import re
import stat
import threading
from collections import deque
from typing import Any

from ..errors import PycosError, RemoteProtocolError
from ..net.files.paths import PathRefused, split_dir
from . import _protocol as P
from .errors import LOST, GatewayClosed, TransferError
from .exports import MAX_ENTRIES, DirCache, open_dir, walk
from .localfiles import EXISTS, SAME, Landing
from .rawio import receive_section, send_section
from .schedule import Plan, Unit, make_units
from .streaming import Consumption

__all__ = ["Transferred", "compile_regex", "listing", "download", "upload"]

_LOST = LOST
_IN_FLIGHT = 2


class Transferred(list):  # type: ignore[type-arg]
    """The paths transferred (or found identical); ``failed`` maps the others to why;
    ``truncated`` is True when the gateway's listing was cut at its limit."""

    def __init__(self) -> None:
        super().__init__()
        self.failed: dict[str, str] = {}
        self.same = 0
        self.truncated = False


def compile_regex(regex: Any) -> re.Pattern[str] | None:
    """``regex`` compiled here, before any traffic (``re.error`` for a bad one)."""
    if regex is None:
        return None
    if isinstance(regex, re.Pattern):
        return regex
    if not isinstance(regex, str):
        raise TypeError(f"regex is a str (matched with re.fullmatch), got {regex!r}")
    return re.compile(regex)


def _paths_arg(paths: Any) -> list[str] | None:
    if paths is None:
        return None
    if isinstance(paths, str) or not all(isinstance(p, str) for p in paths):
        raise TypeError("paths is a list of relative paths (str)")
    return list(paths)


def listing(client: Any, folder: str, rx: re.Pattern[str] | None, paths: list[str] | None
            ) -> tuple[list[tuple[str, int, int, int]], bool, dict[str, str]]:
    """(entries, truncated, errors) of ``folder`` on the gateway, filtered by ``rx``."""
    if not isinstance(folder, str) or not folder:
        raise TypeError(f"folder is 'export[/sub/dirs]' (str), got {folder!r}")
    entries: list[tuple[str, int, int, int]] = []
    errors: dict[str, str] = {}
    truncated = False
    client.begin()
    try:
        cons = Consumption(client, folder, (paths,) if paths is not None else (), {},
                           client.window(64, 16 << 20), False, "list")
        while (item := cons.next_item()) is not None:
            group, cut, errs = _listing_item(item[1])
            truncated = truncated or cut
            errors.update(errs)
            for entry in group:
                if len(entries) >= MAX_ENTRIES:
                    truncated = True
                    break
                if rx is None or rx.fullmatch(entry[0]):
                    entries.append(entry)
    finally:
        client.end()
    return entries, truncated, errors


def _listing_item(value: Any) -> tuple[list[tuple[str, int, int, int]], bool, dict[str, str]]:
    ok = isinstance(value, tuple) and len(value) == 3 and isinstance(value[0], list) and \
        type(value[1]) is bool and isinstance(value[2], dict)
    if ok:
        for entry in value[0]:
            if not (isinstance(entry, tuple) and len(entry) == 4 and type(entry[0]) is str
                    and all(type(f) is int for f in entry[1:]) and entry[1] >= 0):
                ok = False
                break
    if not ok:
        raise RemoteProtocolError("malformed listing from the gateway")
    return value[0], value[1], {str(k): str(v)[:200] for k, v in value[2].items()}


class _State:
    """Counters and results of one transfer, shared by its workers."""

    def __init__(self, progress: Any, total_files: int, total_bytes: int) -> None:
        self.lock = threading.Lock()
        self.progress = progress
        self.result = Transferred()
        self.files = 0
        self.nbytes = 0
        self.total_files = total_files
        self.total_bytes = total_bytes
        self.errors: list[BaseException] = []

    def done(self, path: str, size: int, same: bool = False) -> None:
        with self.lock:
            self.result.append(path)
            self.result.same += same
            self._step(size)

    def fail(self, path: str, why: str) -> None:
        with self.lock:
            self.result.failed[path] = why
            self._step(0)

    def _step(self, size: int) -> None:
        self.files += 1
        self.nbytes += size
        if self.progress is not None:
            self.progress(self.files, self.total_files, self.nbytes, self.total_bytes)


def _run_workers(clients: list[Any], work: Any, plan: Plan, state: _State) -> None:
    if len(clients) == 1:
        work(clients[0], 0)
    else:
        threads = [threading.Thread(target=work, args=(c, i), daemon=True,
                                    name=f"pycos-swarm-files-{i}")
                   for i, c in enumerate(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    while (unit := plan.take(0)) is not None:  # every connection failed
        for path in unit.paths:
            state.fail(path, "no connection was left to transfer it")
    if state.errors and len(state.errors) == len(clients):
        raise state.errors[0]


# ---------------------------------------------------------------------- download
def download(clients: list[Any], folder: str, regex: Any, paths: Any, dest: Any, progress: Any,
             overwrite: bool, durable: bool) -> Transferred:
    """Download ``folder``'s files over ``clients`` (see the module docstring)."""
    rx = compile_regex(regex)
    wanted = _paths_arg(paths)
    dest = clients[0].controller.download_dir if dest is None else dest
    if not isinstance(dest, str | os.PathLike):
        raise TypeError(f"dest is a directory path, got {dest!r}")
    landing = Landing(os.fspath(dest), None, bool(overwrite))
    entries, truncated, errors = listing(clients[0], folder, rx, wanted)
    state = _State(progress, len(entries) + len(errors), sum(e[1] for e in entries))
    state.result.truncated = truncated
    for path, why in errors.items():
        state.fail(path, why)
    todo = []
    for path, size, mtime_ns, mode in entries:
        meta = P.FileMeta(path, size, mtime_ns, mode)
        try:
            answer = landing.check(meta)
        except (PathRefused, OSError) as exc:
            state.fail(path, f"refused here: {exc}")
            continue
        if answer == SAME:
            state.done(landing.target(meta)[1], size, same=True)
        elif answer == EXISTS:
            state.fail(path, "a different file is there (overwrite=False)")
        else:
            todo.append((path, size))
    plan = Plan(make_units(todo), len(clients))

    def work(client: Any, w: int) -> None:
        _Downloader(client, w, plan, folder, landing, state, durable).run()

    _run_workers(clients, work, plan, state)
    return state.result


class _Downloader:
    """One connection's share of a download (on its own thread)."""

    def __init__(self, client: Any, w: int, plan: Plan, folder: str, landing: Landing,
                 state: _State, durable: bool) -> None:
        self.client, self.w, self.plan, self.folder = client, w, plan, folder
        self.landing, self.state, self.durable = landing, state, durable
        self.inflight: dict[int, set[str]] = {}
        self.events: deque[Any] = deque()

    def run(self) -> None:
        client = self.client
        try:
            client.begin()
        except (GatewayClosed, RuntimeError) as exc:
            self.state.errors.append(exc)
            return
        try:
            while True:
                while len(self.inflight) < _IN_FLIGHT:
                    unit = self.plan.take(self.w)
                    if unit is None:
                        break
                    rid = client.request("get", self.folder, (unit.paths,))
                    self.inflight[rid] = set(unit.paths)
                if not self.inflight:
                    break
                if not self.events:
                    self.events.extend(client.receive())
                self.handle(self.events.popleft())
        except Exception as exc:  # noqa: BLE001 - lost, broken, or a bug: its files fail
            for paths in self.inflight.values():
                for path in paths:
                    self.state.fail(path, f"connection lost: {exc}")
            self.inflight.clear()
            self.state.errors.append(exc)
            client.end()
            client.broken(exc)
            return
        client.end()

    def handle(self, event: Any) -> None:
        kind = type(event)
        paths = self.inflight.get(event.id)
        if paths is None:
            return
        if kind is P.FileStart:
            path = event.meta.path
            if path not in paths:
                raise RemoteProtocolError(f"the gateway sent {path[:80]!r}, which was not asked "
                                          "for")
            paths.discard(path)
            self.receive_file(event)
        elif kind is P.End or kind is P.Failure:
            why = ("the gateway aborted the request" if kind is P.End else
                   f"{type(event.exc).__name__}: {event.exc}")
            for path in paths:
                self.state.fail(path, why if kind is P.Failure or event.reason != P.END else
                                "the gateway did not send it")
            del self.inflight[event.id]
            if self.durable:
                os.sync()

    def receive_file(self, event: P.FileStart) -> None:
        meta = event.meta
        if meta.error is not None:
            self.state.fail(meta.path, meta.error)
            return
        incoming = None
        try:
            try:
                incoming = self.landing.begin(meta)
            except (PathRefused, TransferError, OSError) as exc:
                self.state.fail(meta.path, f"refused here: {exc}")
            if event.content is not None:
                if incoming is not None:
                    incoming.write(event.content)
                ok = True
            else:
                ok = self.receive_raw(meta, incoming)
            if incoming is not None and ok:
                target = incoming.finish()
                self.state.done(target, meta.size)
        except (TransferError, OSError) as exc:
            if isinstance(exc, LOST):
                raise
            self.state.fail(meta.path, str(exc))
        finally:
            if incoming is not None:
                incoming.discard()

    def receive_raw(self, meta: P.FileMeta, incoming: Any) -> bool:
        client = self.client
        mac = client.wire.file_mac(meta.size)
        receive_section(client.wire, meta.size, mac,
                        incoming.write if incoming is not None else None)
        with client.proto_lock:
            client.proto.raw_done()
        self.events.extend(client.receive())
        trailer = self.events.popleft()
        if not hmac.compare_digest(trailer.digest, mac.digest()):
            if incoming is not None:
                self.state.fail(meta.path, "the content does not match its digest; discarded")
            return False
        if not trailer.ok:
            if incoming is not None:
                self.state.fail(meta.path, "the file changed while it was sent; discarded")
            return False
        return True


# ---------------------------------------------------------------------- upload
def upload(clients: list[Any], local_folder: Any, regex: Any, dir: Any, progress: Any,
           overwrite: bool, durable: bool) -> Transferred:
    """Upload ``local_folder``'s files over ``clients`` into ``dest_path``/``dir`` there."""
    rx = compile_regex(regex)
    if not isinstance(local_folder, str | os.PathLike):
        raise TypeError(f"local_folder is a directory path, got {local_folder!r}")
    if dir is not None:
        try:
            split_dir(dir)
        except PathRefused as exc:
            raise ValueError(f"dir: {exc}") from None
    root_fd = open_dir(os.path.realpath(os.fspath(local_folder)), [])
    try:
        entries, truncated = walk(root_fd)
        entries = [e for e in entries if rx is None or rx.fullmatch(e[0])]
        state = _State(progress, len(entries), sum(e[1] for e in entries))
        state.result.truncated = truncated
        plan = Plan(make_units((e[0], e[1]) for e in entries), len(clients))

        def work(client: Any, w: int) -> None:
            _Uploader(client, w, plan, root_fd, dir, bool(overwrite), state).run()

        _run_workers(clients, work, plan, state)
    finally:
        os.close(root_fd)
    if durable:
        os.sync()
    return state.result


class _Uploader:
    """One connection's share of an upload (on its own thread)."""

    def __init__(self, client: Any, w: int, plan: Plan, root_fd: int, dir: Any,
                 overwrite: bool, state: _State) -> None:
        self.client, self.w, self.plan, self.root_fd = client, w, plan, root_fd
        self.dir, self.overwrite, self.state = dir, overwrite, state
        self.inflight: deque[tuple[int, dict[str, int]]] = deque()
        self.events: deque[Any] = deque()
        self.dirs = DirCache(root_fd)

    def run(self) -> None:
        client = self.client
        try:
            client.begin()
        except (GatewayClosed, RuntimeError) as exc:
            self.state.errors.append(exc)
            return
        try:
            self._run()
        finally:
            self.dirs.close()

    def _run(self) -> None:
        client = self.client
        try:
            while (unit := self.plan.take(self.w)) is not None:
                if unit.big:
                    while self.inflight:
                        self.wait_oldest()
                    self.put_big(unit)
                else:
                    self.put_small(unit)
                    if len(self.inflight) >= _IN_FLIGHT:
                        self.wait_oldest()
            while self.inflight:
                self.wait_oldest()
        except Exception as exc:  # noqa: BLE001 - lost, broken, or a bug: its files fail
            for _rid, sizes in self.inflight:
                for path in sizes:
                    self.state.fail(path, f"connection lost: {exc}")
            self.state.errors.append(exc)
            client.end()
            client.broken(exc)
            return
        client.end()

    def _open(self, path: str) -> tuple[int | None, P.FileMeta]:
        try:
            fd = self.dirs.open_file(path)
        except (PycosError, OSError) as exc:
            return None, P.FileMeta(path, -1, 0, 0, str(exc)[:200])
        st = os.fstat(fd)
        return fd, P.FileMeta(path, st.st_size, st.st_mtime_ns, stat.S_IMODE(st.st_mode))

    def put_small(self, unit: Unit) -> None:
        client = self.client
        rid = client.request("put", self.dir, (len(unit.files), self.overwrite))
        sizes: dict[str, int] = {}
        parts: list[bytes] = []
        size = 0
        for path, _listed in unit.files:
            fd, meta = self._open(path)
            content = None
            if fd is not None:
                try:
                    content = os.pread(fd, meta.size + 1, 0)
                finally:
                    os.close(fd)
                if len(content) != meta.size:
                    meta, content = P.FileMeta(path, -1, 0, 0, "the file changed while it "
                                                              "was read"), None
            record = P.file_record(rid, meta, content)
            sizes[path] = max(meta.size, 0)
            parts.append(record)
            size += len(record)
            if size >= P.CHUNK_TARGET:
                client.wire.send(b"".join(parts))
                parts, size = [], 0
        if parts:
            client.wire.send(b"".join(parts))
        self.inflight.append((rid, sizes))

    def put_big(self, unit: Unit) -> None:
        client = self.client
        path = unit.files[0][0]
        fd, meta = self._open(path)
        if fd is None:
            self.state.fail(path, meta.error or "cannot be read")
            return
        try:
            try:
                offer = self.call("offer", ([(meta.path, meta.size, meta.mtime_ns, meta.mode,
                                              None)], self.overwrite))
            except _LOST:
                raise
            except Exception as exc:  # noqa: BLE001 - the gateway refused: this file fails
                self.state.fail(path, f"{type(exc).__name__}: {exc}"[:200])
                return
            answer = offer[0] if isinstance(offer, list) and offer else "refused: no answer"
            if answer == SAME:
                self.state.done(path, meta.size, same=True)
                return
            if answer != "send":
                self.state.fail(path, str(answer)[:200])
                return
            rid = client.request("put", self.dir, (1, self.overwrite))
            wire = client.wire
            mac = wire.file_mac(meta.size)
            ok = wire.send_then(P.file_record(rid, meta, None),
                                lambda: send_section(wire, fd, meta.size, meta.mtime_ns, mac))
            wire.send(P.trailer_record(rid, ok, mac.digest()))
            self.inflight.append((rid, {path: meta.size}))
            self.wait_oldest()
        finally:
            os.close(fd)

    def call(self, op: str, args: tuple[Any, ...]) -> Any:
        rid = self.client.request(op, self.dir, args)
        while True:
            event = self.next_event()
            if event.id != rid:
                continue
            if type(event) is P.Result:
                return event.value
            if type(event) is P.Failure:
                raise event.exc
            raise GatewayClosed(f"unexpected answer to {op!r}")

    def next_event(self) -> Any:
        if not self.events:
            self.events.extend(self.client.receive())
        return self.events.popleft()

    def wait_oldest(self) -> None:
        rid, sizes = self.inflight[0]
        while True:
            event = self.next_event()
            if event.id != rid:
                continue
            self.inflight.popleft()
            if type(event) is P.Result and isinstance(event.value, dict):
                for path, size in sizes.items():
                    status = event.value.get(path, "refused: no answer")
                    if status in ("done", SAME):
                        self.state.done(path, size, same=status == SAME)
                    else:
                        self.state.fail(path, str(status)[:200])
            else:
                why = (f"{type(event.exc).__name__}: {event.exc}" if type(event) is P.Failure
                       else "unexpected answer")
                for path in sizes:
                    self.state.fail(path, why)
            return

