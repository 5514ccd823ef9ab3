"""What a client holds: ``ModuleProxy``, ``ObjectProxy``, batches, ``names`` and ``attribute``.

Owns the proxy classes. An attribute of a proxy is a new proxy with a longer path (no network
traffic); a call, ``._`` and ``dir()`` are *yield or block*: in a task the expression is an
operation to ``yield``; in plain code it blocks and gives the result. In plain code a proxy
also acts as its value (``==``, ``str``, ``bool``, ``len``, arithmetic …: one round trip each,
as the seed's attribute proxies do); in a task those raise ``ContextError`` (write
``yield p._``). ``repr`` never touches the network. A proxy passed as an argument of a call to
its own serving node stands for its object there. ``batch(p)`` queues calls and sends them in
one round trip. Imports the standard library, ``pycos.core``, ``pycos.errors``, ``pycos.proto``
and its own package.
"""

from __future__ import annotations

import operator
from collections.abc import Generator
from typing import Any

from ..core.blocking import in_task
from ..core.traps import describe_generator_op, note_made
from ..errors import AccessDenied, ContextError
from ..proto import _w
from .session import Handle, Raised, Session
from .wire import MAX_BATCH, PROXYREF, encode_args, note_ref

__all__ = ["ModuleProxy", "ObjectProxy", "Batch", "batch", "names", "attribute"]

describe_generator_op(Session.operation, "a remote module call", ("__call__", "_", "run"))


def _dispatch(session: Session, op: str, body: tuple[Any, ...]) -> Any:
    if in_task():
        return note_made(session.operation(op, body))
    return session.call(op, body)


class _Proxy:
    """A path on a serving node (base of ``ModuleProxy`` and ``ObjectProxy``)."""

    __slots__ = ("_s", "_path", "_h")

    def __init__(self, session: Session, path: tuple[str, ...], handle: Handle | None = None):
        object.__setattr__(self, "_s", session)
        object.__setattr__(self, "_path", path)
        object.__setattr__(self, "_h", handle)

    # ------------------------------------------------------------------ paths
    def __getattr__(self, name: str) -> Any:
        if name.startswith("_") or not name.isidentifier():
            raise AttributeError(name)
        return type(self)(self._s, (*self._path, name), self._h)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"{self!r}: remote attributes cannot be set")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"{self!r}: remote attributes cannot be deleted")

    def _hid(self) -> int:
        handle = self._h
        if handle is None:
            return 0
        if handle.released:
            raise ValueError(f"{self!r}: this handle was released")
        hid: int = handle.hid
        return hid

    # ------------------------------------------------------------------ operations
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Yield or block: call the remote object; its result by value (or a handle)."""
        blob, refs = encode_args(args, kwargs)
        return _dispatch(self._s, "call", (self._hid(), self._path, blob, refs))

    @property
    def _(self) -> Any:
        """Yield or block: the remote value (``value = yield p._`` in a task)."""
        return _dispatch(self._s, "get", (self._hid(), self._path))

    def __dir__(self) -> list[str]:
        if in_task():
            raise ContextError("dir() of a proxy blocks: in a task use "
                               "'yield pycos.proxy.names(p)'")
        return self._s.call("dir", (self._hid(), self._path))  # type: ignore[no-any-return]

    def __reduce__(self) -> Any:
        note_ref()
        s = self._s
        return (_w.o, (PROXYREF, s.inc, s.service, self._hid(), self._path))

    def _value(self) -> Any:
        """The value, for the operators of plain code (never a proxy: a value that cannot
        come by value raises TypeError instead of recursing)."""
        if in_task():
            raise ContextError(f"{self!r} stands for a remote value: in a task get it with "
                               "'value = yield p._'")
        if self._h is not None and not self._path:
            raise TypeError(f"{self!r} is a handle: its object cannot come by value (allow its "
                            "class with pycos.serialize_allow to receive such values)")
        value = self._s.call("get", (self._hid(), self._path))
        if isinstance(value, _Proxy):
            value.release()
            raise TypeError(f"{self!r} cannot come by value: it is an object of a class this "
                            "node does not accept (pycos.serialize_allow); call its methods, "
                            "or ask for it with p._ to get a handle")
        return value

    # ------------------------------------------------------------------ with
    def __enter__(self) -> Any:
        if self._h is not None and not self._path:
            return self  # a handle: released on exit
        return self._value()

    def __exit__(self, *exc: object) -> None:
        if self._h is not None and not self._path:
            self._h.release()

    # ------------------------------------------------------------------ value semantics
    def __str__(self) -> str:
        """The value's ``str``; the proxy's ``repr`` for what cannot come by value (a module,
        a handle), as ``print(np)`` shows in the seed."""
        if self._h is not None and not self._path:
            return repr(self)
        try:
            return str(self._value())
        except TypeError:
            return repr(self)
        except AccessDenied as exc:
            if getattr(exc, "reason", None) == "boundary":  # a module: reached by path only
                return repr(self)
            raise

    def __bytes__(self) -> bytes:
        return bytes(self._value())

    def __format__(self, spec: str) -> str:
        return format(self._value(), spec)

    def __bool__(self) -> bool:
        return bool(self._value())

    def __len__(self) -> int:
        return len(self._value())

    def __iter__(self) -> Any:
        return iter(self._value())

    def __reversed__(self) -> Any:
        return reversed(self._value())

    def __contains__(self, item: Any) -> bool:
        return item in self._value()

    def __getitem__(self, key: Any) -> Any:
        return self._value()[key]

    def __hash__(self) -> int:
        return hash(self._value())

    def __int__(self) -> int:
        return int(self._value())

    def __float__(self) -> float:
        return float(self._value())

    def __complex__(self) -> complex:
        return complex(self._value())

    def __index__(self) -> int:
        return operator.index(self._value())

    def __round__(self, ndigits: Any = None) -> Any:
        return round(self._value(), ndigits)

    def __divmod__(self, other: Any) -> Any:
        return divmod(self._value(), other)


def _binary(fn: Any) -> tuple[Any, Any]:
    def forward(self: _Proxy, other: Any) -> Any:
        return fn(self._value(), other)

    def reflected(self: _Proxy, other: Any) -> Any:
        return fn(other, self._value())

    return forward, reflected


for _name in ("add", "sub", "mul", "truediv", "floordiv", "mod", "pow", "matmul", "and", "or",
              "xor", "lshift", "rshift"):
    _fn = getattr(operator, _name if _name not in ("and", "or") else _name + "_")
    _fwd, _ref = _binary(_fn)
    setattr(_Proxy, f"__{_name}__", _fwd)
    setattr(_Proxy, f"__r{_name}__", _ref)
for _name in ("eq", "ne", "lt", "le", "gt", "ge"):
    setattr(_Proxy, f"__{_name}__", _binary(getattr(operator, _name))[0])
for _name in ("neg", "pos", "abs", "invert"):
    setattr(_Proxy, f"__{_name}__",
            (lambda fn: lambda self: fn(self._value()))(getattr(operator, _name)))


class ModuleProxy(_Proxy):
    """A path from a module (or object) served by a ``ModuleService``, made by ``proxy()``."""

    __slots__ = ()

    def __repr__(self) -> str:
        s = self._s
        return f"ModuleProxy({'.'.join(self._path)!r} @ {s.server} {s.location!r})"


class ObjectProxy(_Proxy):
    """A handle: a result the serving node keeps because it cannot be sent by value (and paths
    from it). ``release()`` (or ``with h:``) frees it early; it is freed when the last proxy
    of it is collected, and on the serving node when this node goes Offline."""

    __slots__ = ()

    def __repr__(self) -> str:
        s, h = self._s, self._h
        assert h is not None
        tail = "".join("." + p for p in self._path)
        state = ", released" if h.released else ""
        return (f"ObjectProxy(<handle {h.hid}: {h.type_name}{state}>{tail} @ {s.server} "
                f"{s.location!r})")

    def release(self) -> None:
        """Plain call: free the handle on the serving node (batched with the next call, or
        sent within a fraction of a second). Using it afterwards raises ValueError."""
        assert self._h is not None
        self._h.release()


def attribute(p: _Proxy, name: str) -> Any:
    """The attribute proxy ``p.<name>`` for a name the proxy class itself uses
    (``attribute(h, "release")``)."""
    if not isinstance(p, _Proxy):
        raise TypeError(f"attribute() needs a proxy, got {p!r}")
    if not isinstance(name, str) or not name.isidentifier() or name.startswith("_"):
        raise ValueError(f"{name!r} is not a public name")
    return type(p)(p._s, (*p._path, name), p._h)


def names(p: _Proxy) -> Any:
    """Yield or block: the public names a client may use under ``p`` (what ``dir(p)`` shows in
    plain code)."""
    if not isinstance(p, _Proxy):
        raise TypeError(f"names() needs a proxy, got {p!r}")
    return _dispatch(p._s, "dir", (p._hid(), p._path))


# ---------------------------------------------------------------------- batches
class _Queued:
    """A path in a batch: calling it queues the call."""

    __slots__ = ("_batch", "_hid", "_path")

    def __init__(self, owner: Batch, hid: int, path: tuple[str, ...]) -> None:
        self._batch, self._hid, self._path = owner, hid, path

    def __getattr__(self, name: str) -> _Queued:
        if name.startswith("_") or not name.isidentifier():
            raise AttributeError(name)
        return _Queued(self._batch, self._hid, (*self._path, name))

    def __call__(self, *args: Any, **kwargs: Any) -> int:
        return self._batch._queue(self._hid, self._path, args, kwargs)


class Batch:
    """Calls on one proxy's serving node, queued and sent in one round trip.

    Attribute chains from the batch are the proxy's; calling one queues it and returns its
    index in ``results``. ``run()`` (yield or block) sends them: they run in order on the
    serving node; ``results`` then holds their values; the first failure stops the batch and is
    raised (``results`` holding the values before it). In plain code ``with batch(p) as b:``
    runs the batch when the block ends.
    """

    def __init__(self, p: _Proxy) -> None:
        if not isinstance(p, _Proxy):
            raise TypeError(f"batch() needs a proxy, got {p!r}")
        self._proxy = p
        self._calls: list[tuple[int, tuple[str, ...], bytes, bool]] = []
        self.results: list[Any] | None = None

    def __getattr__(self, name: str) -> _Queued:
        if name.startswith("_") or not name.isidentifier():
            raise AttributeError(name)
        p = self._proxy
        return _Queued(self, p._hid(), (*p._path, name))

    def __call__(self, *args: Any, **kwargs: Any) -> int:
        p = self._proxy
        return self._queue(p._hid(), p._path, args, kwargs)

    def _queue(self, hid: int, path: tuple[str, ...], args: tuple[Any, ...],
               kwargs: dict[str, Any]) -> int:
        if len(self._calls) >= MAX_BATCH:
            raise ValueError(f"a batch holds at most {MAX_BATCH} calls")
        blob, refs = encode_args(args, kwargs)
        self._calls.append((hid, path, blob, refs))
        return len(self._calls) - 1

    def __len__(self) -> int:
        return len(self._calls)

    def run(self) -> Any:
        """Yield or block: send the queued calls; their results (also in ``results``)."""
        calls, self._calls = tuple(self._calls), []
        if not calls:
            raise ValueError("the batch is empty")
        session = self._proxy._s
        if in_task():
            return note_made(self._run_task(session, calls))
        return self._take(session.call("batch", (calls,)))

    def _run_task(self, session: Session, calls: tuple[Any, ...]) -> Generator[Any, Any, Any]:
        raw = yield session.operation("batch", (calls,))
        return self._take(raw)

    def _take(self, values: Any) -> list[Any]:
        results: list[Any] = []
        for value in values:
            if type(value) is Raised:
                self.results = results
                raise value.exc
            results.append(value)
        self.results = results
        return results

    def __enter__(self) -> Batch:
        if in_task():
            raise ContextError("a batch runs when its with-block ends, which blocks: in a task "
                               "use 'results = yield b.run()'")
        return self

    def __exit__(self, exc_type: Any, *exc: object) -> None:
        if exc_type is None:
            self.run()


def batch(p: _Proxy) -> Batch:
    """A ``Batch`` of calls on ``p``'s serving node (Pyro5's ``BatchProxy``)."""
    return Batch(p)
