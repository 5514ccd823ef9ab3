"""What a payload may build: the types of the wire, how each is taken apart and rebuilt.

Owns the allow list (:func:`serialize_allow`), the registry of value types that travel as
``o(code, *fields)`` (standard types here, pycos's own registered by the layers that own them
with :func:`register`), and the rebuilding rules behind the four builders of
``pycos.proto._w``: ``o`` (a registered type), ``u`` (an instance of a class the user allowed),
``e`` (an exception) and ``f`` (an allowed function called with plain arguments). Imports only
the standard library, ``pycos.errors`` and ``pycos.proto.wirecost`` (numpy only when a payload
names it and it is already installed).

Rules every builder keeps: its arguments were built by the unpickler from plain data; it checks
their types and sizes before using them; it builds a fresh object (or returns an allowed class,
function or singleton, which the dialect cannot modify); it never imports a module that was not
allowed, never runs a module's ``__getattr__``, never does I/O, and costs at most linear time in
its input. What builders allocate is charged to the decode's memory budget
(``wirecost.charge``), so a payload that calls a builder again and again on the same memoized
arguments is refused instead of multiplying its size; and no text is ever made from an
unbounded value (``wirecost.brief``).
"""

from __future__ import annotations

import builtins
import collections
import contextvars
import datetime
import decimal
import fractions
import importlib
import ipaddress
import pathlib
import sys
import types
import uuid
from collections.abc import Callable
from typing import Any

from ..errors import RemoteError, SerializationError, UnpicklingRefused
from .wirecost import BRIEF_LIMIT, CHAR_COST, ITEM_COST, brief, charge

__all__ = ["serialize_allow", "is_allowed", "register", "Registered", "REGISTRY", "BY_TYPE",
           "GLOBAL", "build_u", "build_e", "build_f", "qualified_name", "resolve_allowed",
           "decode_context", "decoding", "MAX_DECIMAL_DIGITS", "MAX_FRACTION_BITS",
           "exception_reduce", "BUILTIN_EXCEPTION_TYPES", "DEFAULT_COST"]

MAX_DECIMAL_DIGITS = 4300
MAX_FRACTION_BITS = 8192
_IDENT_LIMIT = 512
#: What a registered type's builder is charged per call when it does not say (bytes).
DEFAULT_COST = 512


class Registered:
    """One registered type: ``reduce(obj) -> fields`` and ``build(*fields) -> obj``.

    ``cost`` is what one build allocates besides its fields (charged to the decode's memory
    budget, with :func:`weigh` of the fields or ``weigh_fields(fields)`` when given); ``name``
    names the type in errors (default: its class's)."""

    __slots__ = ("code", "cls", "reduce", "build", "name", "cost", "weigh_fields")

    def __init__(self, code: int, cls: type, reduce: Callable[[Any], tuple[Any, ...]],
                 build: Callable[..., Any], cost: int = DEFAULT_COST, name: str | None = None,
                 weigh_fields: Callable[[tuple[Any, ...]], int] | None = None) -> None:
        self.code = code
        self.cls = cls
        self.reduce = reduce
        self.build = build
        self.name = name or f"{cls.__module__}.{cls.__qualname__}"
        self.cost = cost
        self.weigh_fields = weigh_fields


#: code -> Registered; and exact type -> Registered (for the encoder).
REGISTRY: dict[int, Registered] = {}
BY_TYPE: dict[type, Registered] = {}


def register(code: int, cls: type, reduce: Callable[[Any], tuple[Any, ...]],
             build: Callable[..., Any], cost: int = DEFAULT_COST) -> None:
    """Make ``cls`` a wire type under ``code`` (plain call; pycos's own layers at import).
    ``cost``: about how many bytes one rebuilt value takes besides its fields.

    Raises:
        ValueError: the code is taken by another type.
    """
    old = REGISTRY.get(code)
    if old is not None and old.cls is not cls and old.cls is not object:
        raise ValueError(f"wire type code {code} is already {old.name}")
    entry = Registered(code, cls, reduce, build, cost)
    REGISTRY[code] = entry
    BY_TYPE[cls] = entry


# ---------------------------------------------------------------------- decode context
_context: contextvars.ContextVar[Any] = contextvars.ContextVar("pycos_decode_context",
                                                               default=None)


def decode_context() -> Any:
    """The object (a node) on whose behalf the current thread decodes, or None."""
    return _context.get()


class decoding:  # noqa: N801 - used as a context manager
    """``with decoding(node): ...`` — builders of references see ``node`` (plain call)."""

    __slots__ = ("value", "token")

    def __init__(self, value: Any) -> None:
        self.value = value
        self.token: Any = None

    def __enter__(self) -> None:
        self.token = _context.set(self.value)

    def __exit__(self, *exc: object) -> None:
        _context.reset(self.token)


# ---------------------------------------------------------------------- allow list
_Snapshot = tuple[int, dict[str, tuple[str, str]], frozenset[str]]


class _AllowList:
    """What ``serialize_allow`` allowed, without a lock (``pycos.proto`` uses no threads):
    every call appends one entry to ``log`` (``list.append`` is atomic), and readers use a
    snapshot of the log, rebuilt whenever the log has grown since it was taken, so no call
    is ever lost to another running at the same time."""

    __slots__ = ("log", "snap")

    def __init__(self) -> None:
        self.log: list[tuple[dict[str, tuple[str, str]], frozenset[str]]] = []
        self.snap: _Snapshot = (0, {}, frozenset())

    def add(self, names: dict[str, tuple[str, str]], modules: frozenset[str]) -> None:
        self.log.append((names, modules))

    def current(self) -> _Snapshot:
        """(entries seen, exact names -> (module, qualname), module names)."""
        snap = self.snap
        if snap[0] != len(self.log):
            entries = self.log[:]
            names: dict[str, tuple[str, str]] = {}
            modules: set[str] = set()
            for more_names, more_modules in entries:
                names.update(more_names)
                modules.update(more_modules)
            snap = (len(entries), names, frozenset(modules))
            self.snap = snap  # a slower reader may store an older one: the length tells
        return snap


_ALLOW = _AllowList()


def qualified_name(obj: Any) -> str:
    """``module.qualname`` of a class or function (plain call)."""
    return f"{obj.__module__}.{obj.__qualname__}"


def serialize_allow(*objs: type | types.FunctionType | types.ModuleType | str) -> None:
    """Let this node send and receive instances of more classes (plain call).

    Args:
        *objs: each a class or a module-level function (allowed exactly), or a module object
            or module name (every class and function *defined in* that module is allowed).
            Objects of an allowed class are rebuilt by creating the instance and setting its
            state (``__setstate__`` when the class defines one, else its ``__dict__``), as
            ``pickle`` does; an allowed function may be called with plain arguments by a
            payload (only when a class's ``__reduce__`` names it).

    Raises:
        TypeError: an argument is none of these, or is a lambda / local definition.
        ValueError: a module name is not a dotted identifier.
    """
    names: dict[str, tuple[str, str]] = {}
    modules: set[str] = set()
    for obj in objs:
        if isinstance(obj, types.ModuleType):
            modules.add(obj.__name__)
        elif isinstance(obj, str):
            if not obj or not all(part.isidentifier() for part in obj.split(".")):
                raise ValueError(f"serialize_allow: {obj!r} is not a module name")
            modules.add(obj)
        elif isinstance(obj, type | types.FunctionType | types.BuiltinFunctionType):
            qualname = getattr(obj, "__qualname__", "")
            module = getattr(obj, "__module__", None)
            if "<" in qualname or not qualname or not isinstance(module, str) or not all(
                    part.isidentifier() for part in f"{module}.{qualname}".split(".")):
                raise TypeError(f"serialize_allow: {obj!r} is not defined at module level "
                                "(a lambda or a local definition cannot be allowed)")
            names[f"{module}.{qualname}"] = (module, qualname)
        else:
            raise TypeError("serialize_allow expects classes, functions, modules or module "
                            f"names, not {type(obj).__name__}")
    _ALLOW.add(names, frozenset(modules))


def is_allowed(module: str, qualname: str) -> bool:
    """Whether ``module.qualname`` is allowed by :func:`serialize_allow` (plain call)."""
    return resolve_allowed(f"{module}.{qualname}") is not None


def resolve_allowed(name: str) -> Any:
    """The class or function ``name`` ("module.qualname") when the user allowed it, else None.
    Only modules the user named (or that hold an exactly allowed name) are ever imported."""
    if type(name) is not str or len(name) > _IDENT_LIMIT:
        return None
    _seen, names, modules = _ALLOW.current()
    exact = names.get(name)
    if exact is not None:  # allowed by itself: split where serialize_allow saw it
        return _lookup(exact[0], exact[1], exact=False)
    if not modules:
        return None
    split = _split(name, modules)
    if split is None:
        return None
    return _lookup(split[0], split[1], exact=True)


def _split(name: str, modules: frozenset[str]) -> tuple[str, str] | None:
    """Split "pkg.mod.Class.Inner" at the longest prefix that is an allowed module (or one of
    its submodules) already loaded, or named by ``serialize_allow`` itself."""
    parts = name.split(".")
    if not all(p.isidentifier() for p in parts):
        return None
    for i in range(len(parts) - 1, 0, -1):
        if any(p.startswith("__") for p in parts[i:]):
            continue  # attributes never start with '__' (no __dict__, __globals__ …)
        module = ".".join(parts[:i])
        if not any(module == m or module.startswith(m + ".") for m in modules):
            continue
        if module in sys.modules or module in modules:
            return module, ".".join(parts[i:])
    return None


# Attribute lookups of decoding read the namespaces themselves: no module ``__getattr__``
# (PEP 562), no metaclass ``__getattr__``, no descriptor of a class's own runs.
_MODULE_DICT: Any = vars(types.ModuleType)["__dict__"]
_TYPE_DICT: Any = vars(type)["__dict__"]
_TYPE_MODULE: Any = vars(type)["__module__"]


def _is_class(obj: Any) -> bool:
    return issubclass(type(obj), type)  # never the object's own __class__


def _module_namespace(module: str) -> dict[str, Any] | None:
    """The namespace of the already imported module ``module``, or None."""
    mod = sys.modules.get(module)
    if mod is None or not issubclass(type(mod), types.ModuleType):
        return None
    namespace = _MODULE_DICT.__get__(mod)
    return namespace if type(namespace) is dict else None


def _lookup(module: str, qualname: str, exact: bool) -> Any:
    if sys.modules.get(module) is None:
        try:
            importlib.import_module(module)  # a module the user allowed
        except Exception:  # noqa: BLE001 - an allowed module that cannot be imported
            return None
    namespace = _module_namespace(module)
    if namespace is None:
        return None
    first, *rest = qualname.split(".")
    obj = namespace.get(first)
    for part in rest:  # nested classes: Outer.Inner
        if not _is_class(obj):
            return None
        obj = _TYPE_DICT.__get__(obj).get(part)
    if _is_class(obj):
        defined_in = _TYPE_MODULE.__get__(obj)
    elif type(obj) is types.FunctionType or type(obj) is types.BuiltinFunctionType:
        defined_in = obj.__module__
    else:
        return None
    if exact and defined_in != module:
        return None  # merely imported there, not defined there
    return obj


# ---------------------------------------------------------------------- checks
def _need(cond: bool, what: str) -> None:
    if not cond:
        raise SerializationError(f"malformed {what} in a payload")


def _int(value: Any, what: str, lo: int | None = None, hi: int | None = None) -> int:
    _need(type(value) is int and (lo is None or value >= lo) and (hi is None or value <= hi),
          what)
    return int(value)


def _opt_int(value: Any, what: str) -> int | None:
    return None if value is None else _int(value, what)


def _str(value: Any, what: str, limit: int = 1 << 20) -> str:
    _need(type(value) is str and len(value) <= limit, what)
    return str(value)


# ---------------------------------------------------------------------- o(): registered types
GLOBAL = 1


def _build_global(name: Any) -> Any:
    """An allowed class or function, or an exception class (builtin, pycos, or standard
    library already imported), by name."""
    name = _str(name, "global name", _IDENT_LIMIT)
    obj = _exception_class(name) or resolve_allowed(name)
    if obj is None:
        module, _, qualname = name.rpartition(".")
        raise UnpicklingRefused(module, qualname)
    return obj


def _reduce_global(obj: Any) -> tuple[Any, ...]:
    return (qualified_name(obj),)


_STDLIB_TOP = frozenset(getattr(sys, "stdlib_module_names", ())) | {"builtins"}


def _exception_class(name: str) -> type[BaseException] | None:
    """The exception class ``name`` if it is a builtin, pycos's, or defined in an already
    imported standard-library module (constructing those runs no user code). Only names
    already in the module's namespace count: nothing is imported, no module ``__getattr__``
    runs, and the value must be an exception class itself."""
    module, _, qualname = name.rpartition(".")
    if not module or not qualname.isidentifier():
        return None
    top = module.split(".")[0]
    if top != "pycos" and top not in _STDLIB_TOP:
        return None
    namespace = _module_namespace(module)
    obj: Any = namespace.get(qualname) if namespace is not None else None
    if _is_class(obj) and issubclass(obj, BaseException):
        return obj  # type: ignore[no-any-return]
    return None


# ---------------------------------------------------------------------- e(): exceptions
#: The builtin exception classes: their ``__init__`` runs no user code, so they are rebuilt
#: by calling them (``StopIteration(3).value``, ``OSError``'s errno and file name ...), from
#: the arguments their ``__reduce__`` gives, as pickle does.
BUILTIN_EXCEPTION_TYPES: frozenset[type] = frozenset(
    obj for obj in vars(builtins).values()
    if isinstance(obj, type) and issubclass(obj, BaseException))


def exception_reduce(exc: BaseException) -> tuple[tuple[Any, ...], dict[str, Any] | None]:
    """(arguments, state) that :func:`build_e` rebuilds ``exc`` from (plain call; the
    encoder's side). A builtin exception: what its ``__reduce__`` gives, which its class is
    called with; any other: its ``args`` and attributes, set on an instance made without
    ``__init__``."""
    if type(exc) in BUILTIN_EXCEPTION_TYPES:
        rv = exc.__reduce__()
        if type(rv) is tuple and 2 <= len(rv) <= 3 and type(rv[1]) is tuple:
            state = rv[2] if len(rv) == 3 and type(rv[2]) is dict else None
            return rv[1], state
    return exc.args, dict(vars(exc))


def build_e(name: Any, args: Any, state: Any) -> BaseException:
    """The builder ``e``: an exception with ``args`` and ``state`` (attributes): a builtin one
    called with ``args``; pycos's, the standard library's or an allowed class's made without
    calling ``__init__``; a ``RemoteError`` standing for it when its class is not allowed
    here."""
    name = _str(name, "exception name", _IDENT_LIMIT)
    _need(type(args) is tuple, "exception arguments")
    _need(state is None or (type(state) is dict and all(type(k) is str for k in state)),
          "exception state")
    charge(DEFAULT_COST + ITEM_COST * (len(args) + (len(state) if state else 0)))
    cls = _exception_class(name)
    if cls is None:
        allowed = resolve_allowed(name)
        if _is_class(allowed) and issubclass(allowed, BaseException):
            cls = allowed
    if cls is None:
        return _remote_error(name, args, (state or {}).get("remote_traceback"))
    exc = None
    if cls in BUILTIN_EXCEPTION_TYPES:
        try:
            exc = cls(*args)
        except Exception:  # noqa: BLE001 - arguments its __init__ refuses: as any other class
            exc = None
    if exc is None:
        try:
            exc = cls.__new__(cls, *args)
            exc.args = args
        except Exception:  # noqa: BLE001 - a class whose __new__ wants other arguments
            return _remote_error(name, args, None)
    if state:
        for key, value in state.items():
            if key.startswith("__") or key in ("args",):
                continue
            try:
                setattr(exc, key, value)
            except (AttributeError, TypeError):
                pass
    return exc


def _remote_error(name: str, args: tuple[Any, ...], remote_tb: Any) -> RemoteError:
    message = _message(args)
    if type(remote_tb) is not str:
        remote_tb = None
    charge(CHAR_COST * (2 * len(message) + len(name)))  # its text copies the message
    return RemoteError(name, message, remote_tb)


def _message(args: tuple[Any, ...]) -> str:
    """The text of an exception's arguments, as ``str`` would make it, bounded (4,096
    characters, never formatting more than that)."""
    if len(args) == 1 and type(args[0]) is str:
        return args[0][:BRIEF_LIMIT]
    return brief(args[0] if len(args) == 1 else args)


# ---------------------------------------------------------------------- u(): user classes
_NEW, _CALL_CLASS, _CALL_FUNCTION = 0, 1, 2


def build_u(name: Any, how: Any, args: Any, state: Any, items: Any, pairs: Any) -> Any:
    """The builder ``u``: an instance of a class (or the result of a function) the user
    allowed with ``serialize_allow``, rebuilt as pickle would: ``cls.__new__(cls, *args)``
    (``how`` 0), ``cls(*args)`` (1) or ``fn(*args)`` (2), then its state, list items and
    dict items."""
    name = _str(name, "class name", _IDENT_LIMIT)
    _need(how in (_NEW, _CALL_CLASS, _CALL_FUNCTION) and type(how) is int, "rebuild mode")
    _need(type(args) is tuple, "constructor arguments")
    _need(items is None or type(items) is list, "list items")
    _need(pairs is None or type(pairs) is list, "dict items")
    target = resolve_allowed(name)
    if target is None:
        module, _, qualname = name.rpartition(".")
        raise UnpicklingRefused(module, qualname)
    state_size = len(state) if type(state) is dict else 0
    if type(state) is tuple:
        state_size = sum(len(part) for part in state if type(part) is dict)
    charge(DEFAULT_COST + ITEM_COST * (len(args) + len(items or ()) + len(pairs or ())
                                        + state_size))
    if how == _CALL_FUNCTION:
        _need(callable(target) and not _is_class(target), "function")
        obj = target(*args)
    else:
        _need(_is_class(target), "class")
        obj = target.__new__(target, *args) if how == _NEW else target(*args)
    if state is not None:
        _set_state(obj, state)
    if items:
        extend = getattr(obj, "extend", None)
        if extend is not None:
            extend(items)
        else:
            for item in items:
                obj.append(item)
    if pairs:
        for pair in pairs:
            _need(type(pair) is tuple and len(pair) == 2, "dict item")
            obj[pair[0]] = pair[1]
    return obj


def _set_state(obj: Any, state: Any) -> None:
    setstate = getattr(type(obj), "__setstate__", None)
    if setstate is not None and setstate is not getattr(object, "__setstate__", None):
        obj.__setstate__(state)
        return
    slots = None
    if type(state) is tuple and len(state) == 2:
        state, slots = state
    if state is not None:
        _need(type(state) is dict and all(type(k) is str for k in state), "instance state")
        obj.__dict__.update(state)
    if slots is not None:
        _need(type(slots) is dict and all(type(k) is str for k in slots), "slot state")
        for key, value in slots.items():
            setattr(obj, key, value)


def build_f(name: Any, args: Any) -> Any:
    """The builder ``f``: an allowed function called with plain arguments."""
    return build_u(name, _CALL_FUNCTION, args, None, None, None)


# ---------------------------------------------------------------------- standard types
def _tz(value: Any) -> datetime.tzinfo | None:
    _need(value is None or type(value) is datetime.timezone, "time zone")
    return value  # type: ignore[no-any-return]


def _build_timezone(offset: Any, name: Any) -> datetime.timezone:
    _need(type(offset) is datetime.timedelta, "time zone offset")
    if name is None:
        return datetime.timezone(offset)
    return datetime.timezone(offset, _str(name, "time zone name", 64))


def _build_decimal(text: Any) -> decimal.Decimal:
    text = _str(text, "Decimal", MAX_DECIMAL_DIGITS + 32)
    return decimal.Decimal(text)


def _build_fraction(num: Any, den: Any) -> fractions.Fraction:
    _need(type(num) is int and type(den) is int and den > 0, "Fraction")
    _need(num.bit_length() <= MAX_FRACTION_BITS and den.bit_length() <= MAX_FRACTION_BITS,
          "Fraction (too large)")
    return fractions.Fraction(num, den)


def _weigh_ints(fields: tuple[Any, ...]) -> int:
    return sum(f.bit_length() >> 2 for f in fields if type(f) is int)


def _build_deque(items: Any, maxlen: Any) -> collections.deque[Any]:
    _need(type(items) is tuple, "deque items")
    return collections.deque(items, _opt_int(maxlen, "deque maxlen"))


def _pairs(items: Any, what: str) -> tuple[tuple[Any, Any], ...]:
    _need(type(items) is tuple and all(type(p) is tuple and len(p) == 2 for p in items), what)
    return items  # type: ignore[no-any-return]


_FACTORIES: dict[str, Any] = {"list": list, "dict": dict, "set": set, "int": int,
                              "float": float, "str": str, "tuple": tuple, "bytes": bytes,
                              "frozenset": frozenset}


def _build_defaultdict(factory: Any, items: Any) -> collections.defaultdict[Any, Any]:
    _need(factory is None or factory in _FACTORIES, "defaultdict factory")
    return collections.defaultdict(_FACTORIES.get(factory), _pairs(items, "defaultdict"))


def _reduce_defaultdict(d: collections.defaultdict[Any, Any]) -> tuple[Any, ...]:
    factory = d.default_factory
    name = None
    if factory is not None:
        fname = getattr(factory, "__name__", "")
        name = fname if _FACTORIES.get(fname) is factory else None
        if name is None:
            raise SerializationError(f"a defaultdict whose default_factory is {factory!r} "
                                     "cannot be sent (only builtin types)")
    return (name, tuple(d.items()))


def _build_counter(items: Any) -> collections.Counter[Any]:
    return collections.Counter(dict(_pairs(items, "Counter")))


def _build_chainmap(maps: Any) -> collections.ChainMap[Any, Any]:
    _need(type(maps) is tuple and all(type(m) is dict for m in maps), "ChainMap")
    return collections.ChainMap(*maps)


_PATHS = {cls.__name__: cls for cls in (pathlib.PurePosixPath, pathlib.PureWindowsPath,
                                        pathlib.PosixPath, pathlib.WindowsPath, pathlib.Path,
                                        pathlib.PurePath)}


def _build_path(kind: Any, text: Any) -> pathlib.PurePath:
    cls = _PATHS.get(kind) if type(kind) is str else None
    _need(cls is not None, "path kind")
    if cls is pathlib.WindowsPath and sys.platform != "win32":
        cls = pathlib.PureWindowsPath
    if cls is pathlib.PosixPath and sys.platform == "win32":
        cls = pathlib.PurePosixPath
    return cls(_str(text, "path", 65536))  # type: ignore[misc]


_IPS = {cls.__name__: cls for cls in (ipaddress.IPv4Address, ipaddress.IPv6Address,
                                      ipaddress.IPv4Network, ipaddress.IPv6Network,
                                      ipaddress.IPv4Interface, ipaddress.IPv6Interface)}


def _build_ip(kind: Any, text: Any) -> Any:
    cls = _IPS.get(kind) if type(kind) is str else None
    _need(cls is not None, "IP address kind")
    return cls(_str(text, "IP address", 64))  # type: ignore[misc]


def _register_standard() -> None:
    reg = register
    reg(GLOBAL, type, _reduce_global, _build_global, cost=0)
    reg(2, complex, lambda c: (c.real, c.imag), _build_complex, cost=64)
    reg(3, range, lambda r: (r.start, r.stop, r.step),
        lambda a, b, c: range(_int(a, "range"), _int(b, "range"), _int(c, "range")), cost=64)
    reg(4, slice, lambda s: (s.start, s.stop, s.step), lambda a, b, c: slice(a, b, c),
        cost=64)
    reg(5, type(Ellipsis), lambda e: (), lambda: Ellipsis, cost=0)
    reg(6, type(NotImplemented), lambda e: (), lambda: NotImplemented, cost=0)
    reg(10, datetime.date, lambda d: (d.year, d.month, d.day),
        lambda y, m, d: datetime.date(_int(y, "date"), _int(m, "date"), _int(d, "date")),
        cost=64)
    reg(11, datetime.time,
        lambda t: (t.hour, t.minute, t.second, t.microsecond, t.tzinfo, t.fold),
        lambda h, m, s, us, tz, fold: datetime.time(
            _int(h, "time"), _int(m, "time"), _int(s, "time"), _int(us, "time"), _tz(tz),
            fold=_int(fold, "time", 0, 1)), cost=64)
    reg(12, datetime.datetime,
        lambda d: (d.year, d.month, d.day, d.hour, d.minute, d.second, d.microsecond,
                   d.tzinfo, d.fold),
        lambda y, mo, d, h, mi, s, us, tz, fold: datetime.datetime(
            _int(y, "datetime"), _int(mo, "datetime"), _int(d, "datetime"),
            _int(h, "datetime"), _int(mi, "datetime"), _int(s, "datetime"),
            _int(us, "datetime"), _tz(tz), fold=_int(fold, "datetime", 0, 1)), cost=64)
    reg(13, datetime.timedelta, lambda t: (t.days, t.seconds, t.microseconds),
        lambda d, s, us: datetime.timedelta(_int(d, "timedelta"), _int(s, "timedelta"),
                                            _int(us, "timedelta")), cost=64)
    reg(14, datetime.timezone, _reduce_timezone, _build_timezone, cost=128)
    reg(15, decimal.Decimal, lambda d: (str(d),), _build_decimal, cost=128)
    REGISTRY[16] = BY_TYPE[fractions.Fraction] = Registered(
        16, fractions.Fraction, lambda f: (f.numerator, f.denominator), _build_fraction,
        cost=128, weigh_fields=_weigh_ints)  # its ints are copied (divided by their gcd)
    reg(17, uuid.UUID, lambda u: (u.int,),
        lambda i: uuid.UUID(int=_int(i, "UUID", 0, (1 << 128) - 1)), cost=128)
    reg(18, collections.deque, lambda d: (tuple(d), d.maxlen), _build_deque, cost=800)
    reg(19, collections.OrderedDict, lambda d: (tuple(d.items()),),
        lambda items: collections.OrderedDict(_pairs(items, "OrderedDict")), cost=256)
    reg(20, collections.defaultdict, _reduce_defaultdict, _build_defaultdict, cost=256)
    reg(21, collections.Counter, lambda c: (tuple(c.items()),), _build_counter, cost=256)
    reg(22, collections.ChainMap, lambda c: (tuple(c.maps),), _build_chainmap, cost=512)
    # A path keeps its text and a str of each part (about 20 bytes a character at worst).
    weigh_path = lambda fields: 24 * sum(len(f) for f in fields if type(f) is str)  # noqa: E731
    for cls in set(_PATHS.values()) | {type(pathlib.Path())}:
        code = 23
        BY_TYPE[cls] = Registered(code, cls, lambda p: (type(p).__name__, str(p)), _build_path,
                                  cost=256, weigh_fields=weigh_path)
    REGISTRY[23] = Registered(23, pathlib.PurePath, lambda p: (type(p).__name__, str(p)),
                              _build_path, cost=256, weigh_fields=weigh_path)
    for ip_cls in _IPS.values():
        BY_TYPE[ip_cls] = Registered(24, ip_cls, lambda a: (type(a).__name__, str(a)), _build_ip,
                                     cost=1024)
    REGISTRY[24] = Registered(24, ipaddress.IPv4Address, lambda a: (type(a).__name__, str(a)),
                              _build_ip, cost=1024)


def _build_complex(re: Any, im: Any) -> complex:
    _need(type(re) is float and type(im) is float, "complex")
    return complex(re, im)


def _reduce_timezone(tz: datetime.timezone) -> tuple[Any, ...]:
    offset = tz.utcoffset(None)
    name = tz.tzname(None)
    default = datetime.timezone(offset).tzname(None)
    return (offset, None if name == default else name)


_register_standard()
