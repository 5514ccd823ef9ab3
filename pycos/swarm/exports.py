"""Named export roots, and reading a directory tree without following a symbolic link.

Owns ``Exports`` (a gateway's ``{name: directory}`` read roots and the resolution of a client's
``folder``, ``export[/sub/dirs]``, inside one), ``walk`` (a bounded listing: relative path, size,
mtime, mode of every regular file), ``open_dir`` and ``open_file``. Every directory and file is
opened relative to its parent's descriptor with ``O_NOFOLLOW``, so a symbolic link is never
followed (not even one swapped in during the walk) and nothing outside the root is reached. The
components a peer names pass the ``send_file`` rules first (``pycos.net.files.paths``: no
``..``, no absolute path, no NUL, bounded length and depth). Used by the gateway (downloads) and
by the controller (the local side of uploads). Imports the standard library, ``pycos.errors``
and ``pycos.net.files.paths``.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterable
from typing import Any

from ..errors import AccessDenied
from ..net.files.paths import MAX_DEPTH, PathRefused, check_name, split_dir

__all__ = ["Exports", "walk", "open_dir", "open_file", "split_relpath", "MAX_ENTRIES",
           "Entry", "DirCache"]

#: Most files a listing returns (a larger tree is cut, and the listing says so).
MAX_ENTRIES = 100_000
_DIR_FLAGS = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_NOFOLLOW", 0) | \
    getattr(os, "O_CLOEXEC", 0)
_FILE_FLAGS = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0) | \
    getattr(os, "O_NONBLOCK", 0)

#: (relative path, size, mtime in ns, permission bits)
Entry = tuple[str, int, int, int]


def _shown(text: Any, limit: int = 80) -> str:
    out = repr(text)
    return out if len(out) <= limit else out[:limit] + "…"


class Exports:
    """A gateway's read roots.

    Args:
        exports: ``{name: directory}``, or directories (each exported under the path as
            given, so a seed's ``folder='/var/log/app'`` finds it), or None (no files).

    Raises:
        TypeError, ValueError: a name or directory is malformed, or a directory does not
            exist.
    """

    def __init__(self, exports: Any = None) -> None:
        self.roots: dict[str, str] = {}
        if exports is None:
            return
        if isinstance(exports, str | bytes | os.PathLike):
            raise TypeError("exports is a dict {name: directory} or a list of directories")
        pairs: Iterable[tuple[Any, Any]] = exports.items() if isinstance(exports, dict) else (
            (os.fspath(p), p) for p in exports)
        for name, path in pairs:
            if not isinstance(name, str) or not name or "\0" in name or not name.isprintable():
                raise ValueError(f"an export name is a non-empty printable str, got {name!r}")
            if not isinstance(path, str | os.PathLike):
                raise TypeError(f"export {name!r}: a directory path is needed, got {path!r}")
            real = os.path.realpath(os.fspath(path))
            if not os.path.isdir(real):
                raise ValueError(f"export {name!r}: {os.fspath(path)!r} is not a directory")
            self.roots[name.rstrip("/\\") or name] = real

    def __bool__(self) -> bool:
        return bool(self.roots)

    def names(self) -> list[str]:
        return sorted(self.roots)

    def locate(self, folder: Any) -> tuple[str, list[str]]:
        """(real root, components below it) of ``folder``: the longest export name that is
        ``folder`` or is followed in it by a separator, then checked components.

        Raises:
            AccessDenied: no export matches, or the rest leaves it (``..``, absolute, NUL …).
        """
        if not isinstance(folder, str) or not folder or "\0" in folder or len(folder) > 4096:
            raise AccessDenied(f"a folder is 'export[/sub/dirs]', got {_shown(folder)}")
        best = None
        for name in self.roots:
            if folder == name or (folder.startswith(name) and folder[len(name)] in "/\\"):
                if best is None or len(name) > len(best):
                    best = name
        if best is None:
            raise AccessDenied(f"no export named {_shown(folder.split('/')[0])}; this gateway "
                               f"exports {self.names() or 'nothing'}")
        rest = folder[len(best):].replace("\\", "/").lstrip("/")
        try:
            parts = split_dir(rest)
        except PathRefused as exc:
            raise AccessDenied(f"folder {_shown(folder)} refused: {exc}") from None
        return self.roots[best], parts


def open_dir(root: str, parts: list[str]) -> int:
    """A descriptor of ``root/parts...``, each component opened with ``O_NOFOLLOW``.

    Raises:
        AccessDenied: a component is a symbolic link, not a directory, or missing.
    """
    fd = os.open(root, _DIR_FLAGS)
    try:
        for part in parts:
            try:
                child = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except OSError as exc:
                raise AccessDenied(_refusal(part, exc)) from None
            os.close(fd)
            fd = child
    except BaseException:
        os.close(fd)
        raise
    return fd


def _refusal(part: str, exc: OSError) -> str:
    if exc.errno in (errno.ELOOP, errno.EMLINK):
        return f"{_shown(part)} is a symbolic link (never followed)"
    if exc.errno == errno.ENOTDIR:
        return f"{_shown(part)} is not a directory (or is a symbolic link)"
    if exc.errno == errno.ENOENT:
        return f"{_shown(part)} does not exist"
    return f"{_shown(part)}: {exc.strerror or exc}"


def split_relpath(relpath: Any) -> tuple[list[str], str]:
    """(directory components, file name) of a relative ``/``-separated path.

    Raises:
        PathRefused: absolute, ``..``, NUL, too deep or long, or empty.
    """
    if not isinstance(relpath, str) or not relpath:
        raise PathRefused(f"a relative file path is needed, got {_shown(relpath)}")
    head, _, name = relpath.rpartition("/")
    parts = split_dir(head) if head else []
    return parts, check_name(name)


def open_file(root_fd: int, relpath: str) -> int:
    """A read descriptor of the regular file ``relpath`` below the directory ``root_fd``,
    never through a symbolic link.

    Raises:
        AccessDenied: the path is malformed, leaves the root, is a link or not a file.
        OSError: it cannot be opened (missing, no permission).
    """
    try:
        parts, name = split_relpath(relpath)
    except PathRefused as exc:
        raise AccessDenied(str(exc)) from None
    fd = os.dup(root_fd)
    try:
        for part in parts:
            try:
                child = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except OSError as exc:
                raise AccessDenied(_refusal(part, exc)) from None
            os.close(fd)
            fd = child
        try:
            file_fd = os.open(name, _FILE_FLAGS, dir_fd=fd)
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.EMLINK):
                raise AccessDenied(_refusal(name, exc)) from None
            raise
    finally:
        os.close(fd)
    if not stat.S_ISREG(os.fstat(file_fd).st_mode):
        os.close(file_fd)
        raise AccessDenied(f"{_shown(relpath)} is not a regular file")
    return file_fd


class DirCache:
    """Files opened below one directory descriptor, the descriptors of its subdirectories
    kept (at most ``limit``) while a request lasts: ``open_file`` without reopening every
    component each time. ``close()`` closes them (not the root)."""

    def __init__(self, root_fd: int, limit: int = 256) -> None:
        self.root = root_fd
        self.limit = limit
        self.fds: dict[tuple[str, ...], int] = {}

    def _dir(self, parts: tuple[str, ...]) -> int:
        if not parts:
            return self.root
        fd = self.fds.get(parts)
        if fd is None:
            parent = self._dir(parts[:-1])
            try:
                fd = os.open(parts[-1], _DIR_FLAGS, dir_fd=parent)
            except OSError as exc:
                raise AccessDenied(_refusal(parts[-1], exc)) from None
            if len(self.fds) >= self.limit:
                self.close()
            self.fds[parts] = fd
        return fd

    def open_file(self, relpath: str) -> int:
        """As ``open_file(root_fd, relpath)``."""
        try:
            parts, name = split_relpath(relpath)
        except PathRefused as exc:
            raise AccessDenied(str(exc)) from None
        try:
            file_fd = os.open(name, _FILE_FLAGS, dir_fd=self._dir(tuple(parts)))
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.EMLINK):
                raise AccessDenied(_refusal(name, exc)) from None
            raise
        if not stat.S_ISREG(os.fstat(file_fd).st_mode):
            os.close(file_fd)
            raise AccessDenied(f"{_shown(relpath)} is not a regular file")
        return file_fd

    def close(self) -> None:
        fds, self.fds = self.fds, {}
        for fd in fds.values():
            os.close(fd)


def walk(dir_fd: int, limit: int = MAX_ENTRIES, max_depth: int = MAX_DEPTH
         ) -> tuple[list[Entry], bool]:
    """(entries, truncated): every regular file below ``dir_fd`` (which stays open), depth
    first, at most ``limit`` of them and ``max_depth`` levels; symbolic links, devices,
    sockets and unreadable directories are skipped."""
    entries: list[Entry] = []
    stack: list[tuple[int, str, int]] = [(os.dup(dir_fd), "", 0)]
    try:
        while stack:
            fd, prefix, depth = stack.pop()
            try:
                with os.scandir(fd) as it:
                    for entry in it:
                        name = entry.name
                        try:
                            if entry.is_dir(follow_symlinks=False):
                                if depth < max_depth:
                                    child = os.open(name, _DIR_FLAGS, dir_fd=fd)
                                    stack.append((child, f"{prefix}{name}/", depth + 1))
                            elif entry.is_file(follow_symlinks=False):
                                st = entry.stat(follow_symlinks=False)
                                entries.append((prefix + name, st.st_size, st.st_mtime_ns,
                                                stat.S_IMODE(st.st_mode)))
                                if len(entries) >= limit:
                                    return entries, True
                        except OSError:
                            continue  # vanished meanwhile, or unreadable: skipped
            except OSError:
                pass
            finally:
                os.close(fd)
    finally:
        for fd, _p, _d in stack:
            os.close(fd)
    return entries, False
