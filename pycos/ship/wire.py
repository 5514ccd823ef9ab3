"""The request kinds of code shipping and the checks on their payloads.

Owns the kind names (``ship.load``, ``ship.call``, ``ship.map``, ``ship.exec``, ``ship.put``,
``ship.get``, ``ship.drop``) and ``check_*`` functions that take a payload as it arrived from a
peer and return its checked fields, or raise ``CodeRefused`` saying what is wrong (nothing of a
malformed payload is used). Shared by the host (``host``) and the callers (``client``,
``cluster``). Imports the standard library and its package.
"""

from __future__ import annotations

import re
from typing import Any

from .errors import CodeRefused

__all__ = ["LOAD", "CALL", "MAP", "EXEC", "PUT", "GET", "DROP", "KINDS", "check_sha",
           "check_name", "check_module", "check_call", "check_map", "check_exec",
           "check_key", "NAME_LIMIT"]

LOAD, CALL, MAP, EXEC = "ship.load", "ship.call", "ship.map", "ship.exec"
PUT, GET, DROP = "ship.put", "ship.get", "ship.drop"
KINDS = (LOAD, CALL, MAP, EXEC, PUT, GET, DROP)
NAME_LIMIT = 200
_SHA = re.compile(r"[0-9a-f]{64}\Z")


def _refuse(what: str) -> CodeRefused:
    return CodeRefused(f"malformed request: {what}")


def check_sha(sha: Any) -> str:
    if type(sha) is not str or not _SHA.match(sha):
        raise _refuse("a module hash is 64 lowercase hex digits")
    return sha


def check_name(name: Any, what: str = "name") -> str:
    if type(name) is not str or not 0 < len(name) <= NAME_LIMIT or not name.isprintable():
        raise _refuse(f"a {what} is a printable str of 1..{NAME_LIMIT} characters")
    return name


def check_module(payload: Any) -> tuple[str, str, str | None]:
    """``ship.load``: (sha, name, source or None)."""
    if type(payload) is not tuple or len(payload) != 3:
        raise _refuse("ship.load takes (sha, name, source)")
    sha, name, source = payload
    if source is not None and type(source) is not str:
        raise _refuse("a module's source is a str")
    return check_sha(sha), check_name(name, "module name"), source


def check_call(payload: Any) -> tuple[str, str, tuple[Any, ...], dict[str, Any], str | None,
                                      str, bool]:
    """``ship.call``: (sha, function, args, kwargs, source or None, module name, want_task)."""
    if type(payload) is not tuple or len(payload) != 7:
        raise _refuse("ship.call takes (sha, function, args, kwargs, source, name, task)")
    sha, fname, args, kwargs, source, name, want_task = payload
    check_module((sha, name, source))
    check_name(fname, "function name")
    if type(args) is not tuple or type(kwargs) is not dict or \
            not all(type(k) is str for k in kwargs) or type(want_task) is not bool:
        raise _refuse("arguments are a tuple and a dict with str keys")
    return sha, fname, args, kwargs, source, name, want_task


def check_map(payload: Any) -> tuple[str, str, list[Any], str | None, str]:
    """``ship.map``: (sha, function, items, source or None, module name)."""
    if type(payload) is not tuple or len(payload) != 5:
        raise _refuse("ship.map takes (sha, function, items, source, name)")
    sha, fname, items, source, name = payload
    check_module((sha, name, source))
    check_name(fname, "function name")
    if type(items) is not list:
        raise _refuse("map items are a list")
    return sha, fname, items, source, name


def check_exec(payload: Any) -> tuple[str, str, bool]:
    """``ship.exec``: (namespace, source, keep)."""
    if type(payload) is not tuple or len(payload) != 3:
        raise _refuse("ship.exec takes (namespace, source, keep)")
    namespace, source, keep = payload
    if type(source) is not str or type(keep) is not bool:
        raise _refuse("ship.exec takes a str of source and a bool")
    return check_name(namespace, "namespace"), source, keep


def check_key(payload: Any, with_value: bool) -> tuple[str, str, Any, bool]:
    """``ship.put`` (namespace, key, value, keep) / ``ship.get`` (namespace, key)."""
    size = 4 if with_value else 2
    if type(payload) is not tuple or len(payload) != size:
        raise _refuse("ship.put takes (namespace, key, value, keep); ship.get (namespace, key)")
    namespace, key = payload[0], payload[1]
    if type(key) is not str or not key.isidentifier():
        raise _refuse("a scattered variable's name is an identifier")
    value, keep = (payload[2], payload[3]) if with_value else (None, False)
    if type(keep) is not bool:
        raise _refuse("keep is a bool")
    return check_name(namespace, "namespace"), key, value, keep
