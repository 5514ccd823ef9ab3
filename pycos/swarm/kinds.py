"""Subroutines a gateway serves, and how their kind is told.

Owns ``Kind`` (``stream``, ``batch``, ``sink``), ``Subroutine`` and ``infer_kind``: a
generator function is a stream; a function with a parameter named ``buffer`` (or taking
``**kwargs`` and registered with ``add_sink``) is a sink; anything else callable is a batch.
``Subroutines`` is the table of one gateway, safe to change from any thread while handlers
read it (before or after ``start``). Imports only the standard library and the package's
errors.
"""

from __future__ import annotations

import enum
import functools
import inspect
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .errors import SubroutineNotFound

__all__ = ["Kind", "Subroutine", "Subroutines", "infer_kind", "check_name"]

_MAX_NAME = 200


class Kind(enum.Enum):
    """What a subroutine does with a client."""

    STREAM = "stream"  # a generator: (ident, value) items, with credit
    BATCH = "batch"  # a function: one value back
    SINK = "sink"  # a function given ``buffer=``: an int back (0 for None)


@dataclass(frozen=True, slots=True)
class Subroutine:
    """A registered subroutine."""

    name: str
    fn: Callable[..., Any]
    kind: Kind


def _unwrap(fn: Any) -> Any:
    while isinstance(fn, functools.partial):
        fn = fn.func
    return inspect.unwrap(fn) if callable(fn) else fn


def infer_kind(fn: Callable[..., Any]) -> Kind:
    """The kind of ``fn``: STREAM for a generator function, SINK when it has a parameter
    named ``buffer``, else BATCH.

    Raises:
        TypeError: ``fn`` is not callable, or is an async function (subroutines run in a
            handler's thread as plain Python).
    """
    if not callable(fn):
        raise TypeError(f"a subroutine must be callable, got {fn!r}")
    inner = _unwrap(fn)
    target = inner
    if not inspect.isroutine(inner) and not inspect.isclass(inner):
        target = type(inner).__call__  # a callable object: its __call__ method
    if inspect.iscoroutinefunction(target) or inspect.isasyncgenfunction(target):
        raise TypeError(f"{fn!r} is an async function; subroutines are plain functions or "
                        "generators (they run in a handler's thread)")
    if inspect.isgeneratorfunction(target):
        return Kind.STREAM
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return Kind.BATCH
    buffer = params.get("buffer")
    if buffer is not None and buffer.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD,
                                              inspect.Parameter.KEYWORD_ONLY):
        return Kind.SINK
    return Kind.BATCH


def check_name(name: Any) -> str:
    """``name`` if it is a valid subroutine name (printable str of 1..200 characters)."""
    if not isinstance(name, str) or not 0 < len(name) <= _MAX_NAME or not name.isprintable():
        raise ValueError(f"a subroutine name is a printable str of 1..{_MAX_NAME} "
                         f"characters, got {name!r}")
    return name


class Subroutines:
    """The subroutines of one gateway (any thread)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._table: dict[str, Subroutine] = {}

    def add(self, name: str, fn: Callable[..., Any], kind: Kind | str | None = None) -> Kind:
        """Register ``fn`` as ``name`` (replacing one of that name); returns its kind."""
        check_name(name)
        if kind is None:
            kind = infer_kind(fn)
        else:
            kind = Kind(kind)  # explicit: a function returning an iterator may be a stream
            if not callable(fn):
                raise TypeError(f"a subroutine must be callable, got {fn!r}")
        with self._lock:
            self._table[name] = Subroutine(name, fn, kind)
        return kind

    def remove(self, name: str) -> bool:
        with self._lock:
            return self._table.pop(name, None) is not None

    def get(self, name: Any, kind: Kind) -> Subroutine:
        """The subroutine ``name`` of ``kind``.

        Raises:
            SubroutineNotFound: none of that name, or it is of another kind (the message
                says which call to use).
        """
        sub = self._table.get(name) if type(name) is str else None
        if sub is None:
            shown = name if isinstance(name, str) and len(name) <= 60 else repr(name)[:60]
            raise SubroutineNotFound(f"the gateway has no subroutine {shown!r}")
        if sub.kind is not kind:
            call = {Kind.STREAM: "stream()", Kind.BATCH: "batch()", Kind.SINK: "send()"}
            raise SubroutineNotFound(f"{name!r} is a {sub.kind.value} subroutine; use "
                                     f"{call[sub.kind]}, not {call[kind]}")
        return sub

    def names(self) -> dict[str, str]:
        """{name: kind} of every subroutine."""
        with self._lock:
            return {n: s.kind.value for n, s in self._table.items()}
