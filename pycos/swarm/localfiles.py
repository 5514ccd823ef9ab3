"""Writing the files a swarm connection brings: sandboxed, temporary file, rename.

Owns ``Landing`` (where the files of one transfer land: a sandbox root and an optional
relative directory, checked with the ``send_file`` rules of ``pycos.net.files.paths``), its
``check`` (is this file wanted: ``send``, ``same`` — the same size and mtime are there already,
so it is skipped, which is how an interrupted transfer resumes — or ``exists``), and
``Incoming`` (one file being written: a new ``O_EXCL`` temporary file of mode 0600 in the target
directory, renamed into place only when complete and authenticated; every other way out removes
it, and directories made for it when they stay empty). A received file's mode is the sender's
permission bits less this process's umask (never set-uid, set-gid or sticky), and its mtime is
the sender's. Imports the standard library, ``pycos.net.files`` and the package's modules.
"""

from __future__ import annotations

import atexit
import os
import stat
import threading
import time
from typing import Any

from ..net.files.paths import (
    PATH_MAX,
    PathRefused,
    make_dirs,
    prune_dirs,
    resolve,
    sandbox_root,
    split_dir,
)
from ..net.files.receive import TEMP_PREFIX, TEMP_SUFFIX, open_temp, received_mode, same_mtime
from ._protocol import FileMeta
from .errors import TransferError
from .exports import split_relpath

__all__ = ["Landing", "Incoming", "SEND", "SAME", "EXISTS", "TEMP_PREFIX", "TEMP_SUFFIX",
           "same_file"]

SEND, SAME, EXISTS = "send", "same", "exists"

_temps_lock = threading.Lock()
_temps: set[str] = set()


def _remove_temps() -> None:
    with _temps_lock:
        left = list(_temps)
        _temps.clear()
    for path in left:
        try:
            os.unlink(path)
        except OSError:
            pass


atexit.register(_remove_temps)


def same_file(st: os.stat_result, meta: FileMeta) -> bool:
    """True when ``st`` (a regular file) has ``meta``'s size and mtime."""
    return (stat.S_ISREG(st.st_mode) and st.st_size == meta.size
            and same_mtime(st.st_mtime_ns, meta.mtime_ns))


class Landing:
    """Where the files of one transfer land.

    Args:
        dest: the sandbox directory (created, mode 0700, when missing).
        base: a relative directory below it (``put_files(dir=...)``), or None.
        overwrite: replace a different file of the same name (else it is reported
            ``exists`` and kept).
        max_file_size: refuse files larger than this (None: no limit).

    Raises:
        PathRefused: ``dest`` is unusable (another user's, world-writable) or ``base``
            breaks a rule.
    """

    def __init__(self, dest: str, base: Any = None, overwrite: bool = False,
                 max_file_size: int | None = None) -> None:
        self.root = sandbox_root(dest, create=True)
        self.base = split_dir(base)
        self.overwrite = overwrite
        self.max_file_size = max_file_size
        self.mask = received_mode(0o777)  # the umask, read once
        self._dirs: dict[tuple[str, ...], str] = {}

    def target(self, meta: FileMeta) -> tuple[str, str]:
        """(real directory, target path) of ``meta``; PathRefused when it breaks a rule.
        A directory found inside the sandbox once is remembered for this transfer."""
        parts, name = split_relpath(meta.path)
        key = tuple(parts)
        real_dir = self._dirs.get(key)
        if real_dir is None:
            real_dir, target = resolve(self.root, "/".join(self.base + parts) or None, name)
            if len(self._dirs) < 4096 and os.path.isdir(real_dir):
                self._dirs[key] = real_dir
            return real_dir, target
        target = os.path.join(real_dir, name)
        if len(os.fsencode(target)) >= PATH_MAX:
            raise PathRefused(f"the target path is longer than {PATH_MAX} bytes")
        return real_dir, target

    def check(self, meta: FileMeta) -> str:
        """``send``, ``same`` or ``exists`` for ``meta``.

        Raises:
            PathRefused: it would leave the sandbox, or it is too large.
        """
        if self.max_file_size and meta.size > self.max_file_size:
            raise PathRefused(f"{meta.path!r} is {meta.size} bytes; at most "
                              f"{self.max_file_size} are accepted (max_file_size)")
        _dir, target = self.target(meta)
        try:
            st = os.lstat(target)
        except FileNotFoundError:
            return SEND
        except NotADirectoryError:
            raise PathRefused(f"a component of {meta.path!r} is not a directory") from None
        if not stat.S_ISREG(st.st_mode):
            raise PathRefused(f"{meta.path!r} exists there and is not a regular file")
        if same_file(st, meta) and stat.S_IMODE(st.st_mode) & 0o777 == meta.mode & self.mask:
            return SAME
        return SEND if self.overwrite else EXISTS

    def begin(self, meta: FileMeta) -> Incoming:
        """An ``Incoming`` for ``meta`` (its temporary file created)."""
        real_dir, target = self.target(meta)
        made = None
        key = tuple(split_relpath(meta.path)[0])
        if self._dirs.get(key) != real_dir:
            made = make_dirs(self.root, real_dir)
            if len(self._dirs) < 4096:
                self._dirs[key] = real_dir
        try:
            if meta.size > 1 << 20:
                fs = os.statvfs(real_dir)
                if fs.f_bavail * fs.f_frsize < meta.size:
                    raise TransferError(f"not enough free space for {meta.path!r} "
                                        f"({meta.size} bytes)")
            return Incoming(self, meta, real_dir, target, made)
        except BaseException:
            if made is not None:
                prune_dirs(self.root, real_dir, made)
            raise


class Incoming:
    """One file being written (by one thread)."""

    def __init__(self, landing: Landing, meta: FileMeta, real_dir: str, target: str,
                 made: str | None) -> None:
        self.landing = landing
        self.meta = meta
        self.real_dir = real_dir
        self.target = target
        self.made = made
        self.written = 0
        opened = open_temp(real_dir)
        if opened is None:
            raise TransferError("cannot create a temporary file in the target directory")
        self.fd, path = opened
        self.temp: str | None = path
        with _temps_lock:
            _temps.add(path)

    def write(self, data: Any) -> None:
        """Append ``data`` (never past the announced size)."""
        view = memoryview(data).cast("B")
        if self.written + len(view) > self.meta.size:
            raise TransferError(f"{self.meta.path!r}: more bytes than announced")
        while view:
            n = os.write(self.fd, view)
            view = view[n:]
            self.written += n

    def finish(self) -> str:
        """Mode, times, rename into place; returns the target path."""
        meta = self.meta
        if self.written != meta.size:
            raise TransferError(f"{meta.path!r}: {self.written} of {meta.size} bytes arrived")
        os.fchmod(self.fd, meta.mode & self.landing.mask)
        os.utime(self.fd, ns=(time.time_ns(), meta.mtime_ns))
        os.close(self.fd)
        self.fd = -1
        temp = self.temp
        assert temp is not None
        if not self.landing.overwrite and os.path.lexists(self.target):
            try:
                st = os.lstat(self.target)
            except OSError:
                st = None
            if st is None or not same_file(st, meta):
                raise TransferError(f"{meta.path!r} appeared meanwhile; kept as it is")
        os.replace(temp, self.target)
        with _temps_lock:
            _temps.discard(temp)
        self.temp = None
        self.made = None
        return self.target

    def discard(self) -> None:
        """Remove the temporary file (and directories made for it, if empty); idempotent."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        temp, self.temp = self.temp, None
        if temp is not None:
            with _temps_lock:
                _temps.discard(temp)
            try:
                os.unlink(temp)
            except OSError:
                pass
        if self.made is not None:
            prune_dirs(self.landing.root, self.real_dir, self.made)
            self.made = None
