"""Payload serialization: pickle out, a restricted unpickler in.

Owns :func:`dumps`, :func:`loads` and the allow list behind :func:`serialize_allow`. Imports
only the standard library and the protocol's errors (numpy is imported lazily, and only to
resolve the few numpy names listed below).

Unpickling runs code: every global a pickle names is looked up and may be called. The restricted
unpickler therefore resolves only globals on an allow list:

* builtin value types and containers, the ``Ellipsis`` / ``NotImplemented`` singletons, and builtin
  exception classes;
* standard value types: datetime, decimal, fractions, uuid, collections, pathlib, ipaddress;
* from pycos's own modules: every exception class, ``MonitorStatus``, and the value types
  that pycos marks as sent over the wire with :func:`wire_type` (``Location``, ``PeerStatus``,
  remote references …) — never a class that owns resources or runs code when built;
* numpy arrays, dtypes and scalars when numpy is importable;
* what the user allows with :func:`serialize_allow` (a class or function, or a whole module).

An object resolved through a module must be defined in that module (its ``__module__``), so a
module that merely imports, say, ``subprocess.Popen`` does not make ``Popen`` reachable.
``loads(..., allow_all=True)`` is plain, unrestricted pickle: an explicit opt-in for trusted
clusters. Invariant: the allow list only grows, and it is replaced (never mutated) so readers on
other threads always see a consistent list.
"""

from __future__ import annotations

import builtins
import importlib
import io
import pickle
import sys
import types
from typing import Any

from ..errors import SerializationError, UnpicklingRefused

__all__ = ["dumps", "loads", "serialize_allow", "is_allowed", "wire_type", "PICKLE_PROTOCOL"]

PICKLE_PROTOCOL = 5

_BUILTIN_NAMES = frozenset({
    "bool", "int", "float", "complex", "str", "bytes", "bytearray", "list", "tuple", "dict",
    "set", "frozenset", "range", "slice", "Ellipsis", "NotImplemented",
})

_PATH_CLASSES = frozenset({"PurePath", "PurePosixPath", "PureWindowsPath", "Path", "PosixPath",
                           "WindowsPath"})

_STDLIB: dict[str, frozenset[str]] = {
    "datetime": frozenset({"date", "time", "datetime", "timedelta", "timezone"}),
    "decimal": frozenset({"Decimal"}),
    "fractions": frozenset({"Fraction"}),
    "uuid": frozenset({"UUID", "SafeUUID"}),
    "collections": frozenset({"OrderedDict", "defaultdict", "deque", "Counter", "ChainMap"}),
    "pathlib": _PATH_CLASSES,
    "pathlib._local": _PATH_CLASSES,
    "ipaddress": frozenset({"IPv4Address", "IPv6Address", "IPv4Network", "IPv6Network",
                            "IPv4Interface", "IPv6Interface"}),
}

# numpy 2 moved numpy.core to numpy._core; both spellings appear in pickles.
_NUMPY: dict[str, frozenset[str]] = {
    "numpy": frozenset({"ndarray", "dtype"}),
    "numpy._core.multiarray": frozenset({"_reconstruct", "scalar"}),
    "numpy.core.multiarray": frozenset({"_reconstruct", "scalar"}),
    "numpy._core.numeric": frozenset({"_frombuffer"}),
    "numpy.core.numeric": frozenset({"_frombuffer"}),
}

# pycos value types accepted without the user's say-so; see wire_type().
_PYCOS_VALUE_MODULES = ("pycos.core.status",)
_WIRE_TYPES: frozenset[tuple[str, str]] = frozenset()


def wire_type(cls: type) -> type:
    """Class decorator for pycos's own value types that travel in payloads (``Location``,
    ``PeerStatus`` …): the restricted unpickler accepts exactly these pycos classes (plus
    exceptions and ``MonitorStatus``). Only for plain values whose construction has no side
    effects."""
    global _WIRE_TYPES
    _WIRE_TYPES = _WIRE_TYPES | {(cls.__module__, cls.__qualname__)}
    return cls


class _AllowList:
    """The user's allowances: exact (module, qualname) pairs and whole modules."""

    __slots__ = ("names", "modules")

    def __init__(self, names: frozenset[tuple[str, str]] = frozenset(),
                 modules: frozenset[str] = frozenset()) -> None:
        self.names = names
        self.modules = modules


_ALLOW = _AllowList()


def serialize_allow(*objs: type | types.FunctionType | types.ModuleType | str) -> None:
    """Let the restricted unpickler accept more types (plain call).

    Args:
        *objs: each a class or a module-level function (allowed exactly), or a module object
            or module name (every class and function *defined in* that module is allowed, so
            only name modules whose every callable is safe to call with a peer's arguments).

    Raises:
        TypeError: an argument is none of these.
        ValueError: a module name is not a dotted identifier.
    """
    global _ALLOW
    names, modules = set(_ALLOW.names), set(_ALLOW.modules)
    for obj in objs:
        if isinstance(obj, types.ModuleType):
            modules.add(obj.__name__)
        elif isinstance(obj, str):
            if not obj or not all(part.isidentifier() for part in obj.split(".")):
                raise ValueError(f"serialize_allow: {obj!r} is not a module name")
            modules.add(obj)
        elif isinstance(obj, type | types.FunctionType | types.BuiltinFunctionType):
            qualname = getattr(obj, "__qualname__", "")
            if "<" in qualname or not qualname:  # lambdas and local definitions
                raise TypeError(f"serialize_allow: {obj!r} is not defined at module level")
            names.add((obj.__module__, qualname))
        else:
            raise TypeError(
                "serialize_allow expects classes, functions, modules or module names, "
                f"not {type(obj).__name__}"
            )
    _ALLOW = _AllowList(frozenset(names), frozenset(modules))


def dumps(obj: Any) -> bytes:
    """Pickle ``obj`` for the wire (plain call).

    Raises:
        SerializationError: ``obj`` (or something inside it) cannot be pickled.
    """
    try:
        return pickle.dumps(obj, protocol=PICKLE_PROTOCOL)
    except Exception as exc:  # pickle raises several types for the same problem
        raise SerializationError(
            f"cannot pickle a {type(obj).__name__} payload: {exc}") from exc


def loads(data: bytes, allow_all: bool = False) -> Any:
    """Unpickle ``data`` with the restricted unpickler (plain call).

    Args:
        data: bytes produced by :func:`dumps` on the peer.
        allow_all: unrestricted pickle (runs whatever the data names); only for peers that are
            trusted completely.

    Raises:
        UnpicklingRefused: the data names a type that is not allowed; the message says how to
            allow it.
        SerializationError: the data is not a valid pickle, or building a value failed.
    """
    try:
        if allow_all:
            return pickle.loads(data)
        return _RestrictedUnpickler(io.BytesIO(data)).load()
    except UnpicklingRefused:
        raise
    except Exception as exc:  # malformed data surfaces as many exception types
        raise SerializationError(f"cannot unpickle payload: {type(exc).__name__}: {exc}") from exc


def is_allowed(module: str, qualname: str) -> bool:
    """Whether the restricted unpickler accepts the global ``module.qualname`` (plain call)."""
    return _resolve(module, qualname) is not None


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        obj = _resolve(module, name)
        if obj is None:
            raise UnpicklingRefused(module, name)
        return obj

    def persistent_load(self, pid: Any) -> Any:
        raise SerializationError("payload uses persistent ids, which pycos never produces")


def _resolve(module: str, qualname: str) -> Any:
    """The object ``module.qualname`` if the allow list accepts it, else None."""
    if (module, qualname) in _ALLOW.names:
        return _lookup(module, qualname, importing=True, same_module=False)
    if module == "builtins":
        return _builtin(qualname)
    allowed = _STDLIB.get(module) or _NUMPY.get(module)
    if allowed is not None:
        if qualname not in allowed:
            return None
        return _lookup(module, qualname, importing=True, same_module=False)
    if _in_package(module, _ALLOW.modules):
        return _lookup(module, qualname, importing=True)
    if _in_package(module, ("pycos",)):
        return _pycos_class(module, qualname)
    return None


def _pycos_class(module: str, qualname: str) -> Any:
    obj = _lookup(module, qualname, importing=False)
    if not isinstance(obj, type):
        return None
    if (issubclass(obj, BaseException) or module in _PYCOS_VALUE_MODULES
            or (module, qualname) in _WIRE_TYPES):
        return obj
    return None


def _builtin(name: str) -> Any:
    if name in _BUILTIN_NAMES:
        return getattr(builtins, name)
    obj = getattr(builtins, name, None)
    if isinstance(obj, type) and issubclass(obj, BaseException):
        return obj
    return None


def _in_package(module: str, packages: tuple[str, ...] | frozenset[str]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in packages)


def _lookup(module: str, qualname: str, importing: bool, same_module: bool = True) -> Any:
    """Resolve ``qualname`` inside ``module`` without touching dunder attributes.

    ``importing=False`` looks only at modules already loaded. With ``same_module`` the result
    must be defined in ``module`` itself (not merely imported there).
    """
    parts = qualname.split(".")
    if not all(p.isidentifier() and not p.startswith("__") for p in parts):
        return None
    mod = sys.modules.get(module)
    if mod is None and importing:
        try:
            mod = importlib.import_module(module)
        except ImportError:
            return None
    obj: Any = mod
    for part in parts:
        obj = getattr(obj, part, None)
        if obj is None:
            return None
    if same_module and getattr(obj, "__module__", None) != module:
        return None
    return obj
