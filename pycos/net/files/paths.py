"""Where a file sent by a peer may go: the sandbox rules of ``send_file`` and ``del_file``.

Owns the checks that turn a peer's (untrusted) file name and relative directory into a path
under this node's ``dest_path``, or refuse them with ``PathRefused``. Pure functions over the
standard library (``os``, ``stat``); nothing here writes to the file system except
``sandbox_root`` (which may create ``dest_path`` itself) and ``make_dirs``.

Rules (every one is a refusal, and a refusal happens before anything is created):

* a name is one path component: a non-empty ``str`` without ``/``, the platform's separators
  or NUL, not ``.`` or ``..``, at most ``NAME_MAX`` bytes once encoded for the file system;
* a directory is relative: ``/``-separated components with the same rules (empty and ``.``
  components are skipped; ``..`` is refused, never resolved), at most ``MAX_DEPTH`` of them;
* the directory is resolved with ``os.path.realpath`` (so a symbolic link inside the tree is
  followed) and must still lie under the real path of ``dest_path``, checked with
  ``os.path.commonpath`` (a sibling such as ``dest_path + "2"`` is outside), and the whole
  target path stays under ``PATH_MAX`` bytes;
* the target itself must not be a symbolic link or a directory.

The sandbox guards against the remote peer, which can only name paths. A local user who can
write into ``dest_path`` could race these checks; ``sandbox_root`` therefore refuses a
``dest_path`` that belongs to another user or that everybody may write to.
"""

from __future__ import annotations

import os
import stat

from ...errors import PycosError

__all__ = ["PathRefused", "NAME_MAX", "PATH_MAX", "MAX_DEPTH", "wire_dir", "check_name",
           "split_dir", "is_within", "sandbox_root", "resolve", "make_dirs", "prune_dirs"]

#: Longest file or directory name, in bytes (the common file-system limit).
NAME_MAX = 255
#: Longest full target path, in bytes.
PATH_MAX = 4096
#: Most components a relative directory may have.
MAX_DEPTH = 64

_SEPARATORS = {"/", os.sep} | ({os.altsep} if os.altsep else set())


class PathRefused(PycosError, ValueError):
    """A file name or directory from a peer would leave the sandbox, or is malformed.

    The message names only what the peer sent (it may be told); ``local`` adds what only this
    node's log should show (real paths on this machine)."""

    def __init__(self, message: str, local: str = "") -> None:
        super().__init__(message)
        self.local = local


def wire_dir(dir: str | os.PathLike[str] | None) -> str | None:
    """The sender's form of ``dir``: None for no directory, else ``/``-separated (plain call).

    Raises:
        TypeError: ``dir`` is not a str, a path or None.
    """
    if dir is None:
        return None
    if not isinstance(dir, (str, os.PathLike)):
        raise TypeError(f"dir must be a relative path (str) or None, got {dir!r}")
    text = os.fspath(dir)
    if not isinstance(text, str):
        raise TypeError(f"dir must be a str path, got {dir!r}")
    for sep in _SEPARATORS - {"/"}:
        text = text.replace(sep, "/")
    return text or None


def _check_component(part: str, what: str) -> None:
    if not part:
        raise PathRefused(f"{what} is empty")
    if "\0" in part:
        raise PathRefused(f"{what} {part!r} contains a NUL character")
    if any(sep in part for sep in _SEPARATORS):
        raise PathRefused(f"{what} {part!r} contains a path separator")
    if part in (".", ".."):
        raise PathRefused(f"{what} {part!r} is not a name")
    try:
        size = len(os.fsencode(part))
    except UnicodeError:
        raise PathRefused(f"{what} {part!r} cannot be encoded for the file system") from None
    if size > NAME_MAX:
        raise PathRefused(f"{what} is {size} bytes long; at most {NAME_MAX} are allowed")


def check_name(name: object) -> str:
    """``name`` if it is a valid file name (one component), else ``PathRefused``."""
    if not isinstance(name, str):
        raise PathRefused(f"a file name must be a str, got {type(name).__name__}")
    _check_component(name, "file name")
    return name


def split_dir(dir: object) -> list[str]:
    """The components of a relative, ``/``-separated directory (None or "": none).

    Raises:
        PathRefused: absolute, ``..``, NUL, over-long or otherwise malformed.
    """
    if dir is None or dir == "":
        return []
    if not isinstance(dir, str):
        raise PathRefused(f"a directory must be a str or None, got {type(dir).__name__}")
    if "\0" in dir:
        raise PathRefused(f"directory {dir!r} contains a NUL character")
    if dir.startswith("/") or os.path.isabs(dir) or os.path.splitdrive(dir)[0]:
        raise PathRefused(f"directory {dir!r} is absolute; it must be relative to dest_path")
    parts = [p for p in dir.split("/") if p not in ("", ".")]
    if len(parts) > MAX_DEPTH:
        raise PathRefused(f"directory {dir!r} is {len(parts)} levels deep; at most "
                          f"{MAX_DEPTH} are allowed")
    for part in parts:
        if part == "..":
            raise PathRefused(f"directory {dir!r} climbs out with '..'")
        _check_component(part, "directory component")
    return parts


def is_within(root: str, path: str) -> bool:
    """True if ``path`` is ``root`` or lies under it (both absolute, already resolved)."""
    try:
        return os.path.commonpath([root, path]) == root
    except ValueError:  # different drives, or a mix of absolute and relative paths
        return False


def sandbox_root(dest_path: str, create: bool) -> str:
    """The real path of ``dest_path``, created (mode 0700) if missing and ``create``.

    Raises:
        PathRefused: it is missing (and not ``create``), not a directory, owned by another
            user or writable by everybody.
        OSError: it cannot be created.
    """
    if create and not os.path.isdir(dest_path):
        os.makedirs(dest_path, mode=0o700, exist_ok=True)
    root = os.path.realpath(dest_path)
    try:
        st = os.stat(root)
    except FileNotFoundError:
        raise PathRefused("dest_path does not exist", f"dest_path is {dest_path!r}") from None
    if not stat.S_ISDIR(st.st_mode):
        raise PathRefused("dest_path is not a directory", f"dest_path is {dest_path!r}")
    geteuid = getattr(os, "geteuid", None)
    if geteuid is not None and st.st_uid != geteuid():
        raise PathRefused("dest_path belongs to another user",
                          f"{root!r} belongs to uid {st.st_uid}")
    if st.st_mode & stat.S_IWOTH:
        raise PathRefused("dest_path is writable by every user", f"dest_path is {root!r}")
    return root


def resolve(root: str, dir: object, name: object) -> tuple[str, str]:
    """(target directory, target file) for ``name`` in ``dir`` under the sandbox ``root``
    (the result of ``sandbox_root``). Creates nothing.

    Raises:
        PathRefused: a rule of this module is broken.
    """
    parts = split_dir(dir)
    name = check_name(name)
    real_dir = os.path.realpath(os.path.join(root, *parts))
    if not is_within(root, real_dir):
        raise PathRefused(f"directory {dir!r} leads outside dest_path (a symbolic link)",
                          f"it resolves to {real_dir!r}")
    target = os.path.join(real_dir, name)
    if len(os.fsencode(target)) >= PATH_MAX:
        raise PathRefused(f"the target path is longer than {PATH_MAX} bytes")
    try:
        st = os.lstat(target)
    except FileNotFoundError:
        return real_dir, target
    except NotADirectoryError:
        raise PathRefused(f"directory {dir!r} is not a directory") from None
    if stat.S_ISLNK(st.st_mode):
        raise PathRefused(f"{name!r} in directory {dir!r} is a symbolic link",
                          f"{target!r} is one")
    if stat.S_ISDIR(st.st_mode):
        raise PathRefused(f"{name!r} in directory {dir!r} is a directory", f"{target!r}")
    return real_dir, target


def make_dirs(root: str, real_dir: str) -> str | None:
    """Create ``real_dir`` (from ``resolve``) and check that it still lies under ``root``.

    Returns:
        The topmost directory this call created (None if ``real_dir`` existed), so that a
        failed transfer can remove what it made (``prune_dirs(root, real_dir, top)``).

    Raises:
        PathRefused: it does not (the tree changed meanwhile).
        OSError: it cannot be created (a component is a file, no permission …).
    """
    top = None
    path = real_dir
    while path != root and is_within(root, path) and not os.path.isdir(path):
        top, path = path, os.path.dirname(path)
    os.makedirs(real_dir, exist_ok=True)
    if not is_within(root, os.path.realpath(real_dir)):
        raise PathRefused("the directory left dest_path while it was being created",
                          f"{real_dir!r}")
    return top


def prune_dirs(root: str, real_dir: str, top: str | None = None) -> None:
    """Remove ``real_dir`` and its parents while they are empty, up to ``top`` (inclusive)
    if given, else up to ``root`` (exclusive)."""
    path = real_dir
    while path != root and is_within(root, path):
        try:
            os.rmdir(path)
        except OSError:
            return
        if path == top:
            return
        path = os.path.dirname(path)
