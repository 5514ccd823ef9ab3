"""Encoding and decoding of payloads: pycos's wire dialect of pickle.

Owns :func:`encode` and :func:`decode`. Imports the standard library, ``pycos.errors`` and its
own package (numpy only when a value is a numpy object, so it is installed).

A payload is a pickle (protocol 5) in the narrow dialect that ``pycos.proto.wirecheck``
accepts: builtin values and containers as pickle writes them, and every other value as a call
of one of the four builders of ``pycos.proto._w`` with plain fields (``pycos.proto.wiretypes``
holds the rules). Decoding first checks the payload against the dialect (compiled, a fraction
of the cost of unpickling) and only then unpickles it, so whatever bytes a peer sends can
build nothing but allowed values, mutate nothing existing, and cost at most what the frame's
size allows: the check charges every value the unpickler will make against a budget of
``wirecheck.COST_PER_BYTE`` bytes per byte of payload, and what is left of it is the budget of
the builders (``wirecost.charge``), set only for payloads that call one.

Encoding tries plain ``pickle.dumps`` first: builtin values, and pycos's own types (whose
``__reduce__`` already names a builder), come out in the dialect directly — the check of the
result costs little. Anything else (standard-library types, numpy, classes the user allowed,
exceptions) is encoded again by a pickler whose ``reducer_override`` rewrites each object into
its builder call; an object that has no such form raises ``SerializationError`` naming its class
and ``pycos.serialize_allow``, in the sending task, before anything is sent.
"""

from __future__ import annotations

import copyreg
import enum
import io
import pickle
import sys
import types
from collections.abc import Callable, Iterable
from typing import Any

from ..errors import SerializationError
from . import _w, wirecheck
from .wirecheck import DEFAULT_MAX_DEPTH, WireError
from .wirecost import charge, decode_budget, describe_error
from .wiretypes import (
    BY_TYPE,
    GLOBAL,
    REGISTRY,
    Registered,
    _exception_class,
    exception_reduce,
    qualified_name,
    register,
    resolve_allowed,
)

__all__ = ["encode", "decode", "PICKLE_PROTOCOL", "WireError"]

PICKLE_PROTOCOL = 5
_dumps = pickle.dumps
_loads = pickle.loads
_BUILDERS = (_w.o, _w.u, _w.e, _w.f)
_O, _U, _E = _w.o, _w.u, _w.e

_c: Any = None
_c_check = _c_scan = _c_loads = _c_dumps = None
if wirecheck.have_c_checker():  # else no C compiler (or a stale build): the Python reference
    from . import _wirecheck

    _c = _wirecheck
    _c_check, _c_scan, _c_loads, _c_dumps = _c.check, _c.scan, _c.loads, _c.dumps


def _reason(data: Any, max_depth: int, buffers: int) -> str | None:
    """None when ``data`` is in the dialect, else why not."""
    if _c_check is not None:
        return _c_check(data, max_depth, buffers)  # type: ignore[no-any-return]
    try:
        wirecheck.check(data, max_depth, buffers)
    except WireError as exc:
        return str(exc)
    return None


def _scan(data: Any, max_depth: int, buffers: int) -> int | None:
    """What is left of the payload's memory budget for the builders it calls (None: it calls
    none).

    Raises:
        WireError: the payload is not in the dialect.
    """
    if _c_scan is None:
        return wirecheck.scan(data, max_depth, buffers)
    left = _c_scan(data, max_depth, buffers)
    if type(left) is str:
        raise WireError(left)
    return left  # type: ignore[no-any-return]


def _loads_budgeted(data: Any, left: int, buffers: list[Any] | None = None) -> Any:
    """``pickle.loads`` of a checked payload whose builders may allocate ``left`` bytes (the
    compiled ``loads`` does the same itself)."""
    token = decode_budget.set([left])
    try:
        return _loads(data, buffers=buffers)
    finally:
        decode_budget.reset(token)


def encode(obj: Any, buffer_callback: Callable[[pickle.PickleBuffer], Any] | None = None,
           max_depth: int = DEFAULT_MAX_DEPTH) -> bytes:
    """``obj`` as a payload (plain call, any thread).

    Args:
        obj: the value.
        buffer_callback: as ``pickle.dumps``'s: large buffers (numpy array data) are handed to
            it instead of being copied into the payload (out-of-band).
        max_depth: the deepest nesting accepted (the receiver's limit).

    Raises:
        SerializationError: ``obj`` (or something inside it) cannot be sent: its class is not a
            wire type and not allowed with ``pycos.serialize_allow`` (the message names the class
            and the call), it cannot be pickled, or it nests too deeply.
    """
    if buffer_callback is None:
        if _c_dumps is not None:
            data = _c_dumps(obj, max_depth)
            if data is not None:
                return data  # type: ignore[no-any-return]
        else:  # pragma: no cover - without the compiled checker
            try:
                data = _dumps(obj, PICKLE_PROTOCOL)
            except Exception:  # noqa: BLE001 - retried by the canonical pickler, which explains
                data = None
            if data is not None and _reason(data, max_depth, 0) is None:
                return bytes(data)
    out = io.BytesIO()
    buffers: list[pickle.PickleBuffer] = []
    pickler = _Canonical(out, PICKLE_PROTOCOL,
                         buffer_callback=None if buffer_callback is None else buffers.append)
    try:
        pickler.dump(obj)
    except SerializationError:
        raise
    except RecursionError:
        raise SerializationError(f"cannot send a {type(obj).__name__}: it nests too deeply "
                                 f"(more than {max_depth} levels)") from None
    except Exception as exc:  # noqa: BLE001 - pickle raises many types for one problem
        raise SerializationError(f"cannot send a {type(obj).__name__}: {exc}") from exc
    data = out.getvalue()
    why = _reason(data, max_depth, len(buffers))
    if why is not None:
        raise SerializationError(f"cannot send a {type(obj).__name__}: {why}")
    if buffer_callback is not None:
        for buf in buffers:
            buffer_callback(buf)
    return data


def decode(data: bytes | bytearray | memoryview, buffers: Iterable[Any] | None = None,
           trusted: bool = False, max_depth: int = DEFAULT_MAX_DEPTH) -> Any:
    """The value of a payload (plain call, any thread).

    References in the payload are bound to the node set with
    ``pycos.proto.wiretypes.decoding(node)`` around the call.

    Args:
        data: the payload.
        buffers: the out-of-band buffers that came with it, in order.
        trusted: skip the dialect check and unpickle anything (the node's
            ``allow_unsafe_pickle``: for fully trusted meshes only).
        max_depth: the deepest nesting accepted.

    Raises:
        WireError: the payload is not in the dialect (nothing was unpickled).
        UnpicklingRefused: it names a class this node does not allow (the message says how to
            allow it).
        SerializationError: any other reason it cannot be decoded.
    """
    if buffers is None and not trusted and _c_loads is not None:
        return _c_loads(data, max_depth)
    bufs = None if buffers is None else list(buffers)
    left = None
    if not trusted:
        left = _scan(data, max_depth, 0 if bufs is None else len(bufs))
        if left is not None and bufs:
            # Out-of-band buffers are part of what was sent: the builders may copy them.
            left += wirecheck.COST_PER_BYTE * sum(memoryview(b).nbytes for b in bufs)
    try:
        if left is None:
            return _loads(data, buffers=bufs)
        return _loads_budgeted(data, left, bufs)
    except SerializationError:
        raise
    except MemoryError:
        raise SerializationError("payload too large to decode (out of memory)") from None
    except Exception as exc:  # noqa: BLE001 - malformed data surfaces as many types
        raise SerializationError(f"cannot decode payload: {describe_error(exc)}") from exc


if _c is not None:
    # The compiled entries take the common cases themselves and hand the rest to the
    # functions above (same signatures, same errors).
    _c.configure(_loads, _dumps, WireError, SerializationError, decode, encode,
                 describe_error)
    encode = _c.encode  # noqa: F811
    decode = _c.decode  # noqa: F811


# ---------------------------------------------------------------------- the canonical pickler
class _Canonical(pickle.Pickler):
    """Writes every value that is not a builtin one as a builder call."""

    def reducer_override(self, obj: Any) -> Any:  # noqa: C901 - one branch per family
        cls = type(obj)
        if isinstance(obj, type) or isinstance(obj, types.FunctionType | types.BuiltinFunctionType):
            if obj is _O or obj is _U or obj is _E or obj is _w.f:
                return NotImplemented  # the builders themselves: written as globals
            return _global(obj)  # a class is checked like its instances (never GLOBAL blindly)
        entry = BY_TYPE.get(cls)
        if entry is not None:
            return _O, (entry.code, *entry.reduce(obj))
        if cls is bytearray or cls is pickle.PickleBuffer:
            return NotImplemented
        if isinstance(obj, BaseException):
            return _exception(obj)
        module = getattr(cls, "__module__", "") or ""
        if module == "numpy" or module.startswith("numpy."):
            numpy_entry = _numpy_entry(obj)
            if numpy_entry is not None:
                return _O, (numpy_entry.code, *numpy_entry.reduce(obj))
        return _instance(obj, cls)


def _global(obj: Any) -> Any:
    name = qualified_name(obj)
    if (isinstance(obj, type) and issubclass(obj, BaseException)
            and _exception_class(name) is obj) or resolve_allowed(name) is obj:
        return _O, (GLOBAL, name)
    raise _not_allowed(obj, f"the {'class' if isinstance(obj, type) else 'function'} "
                            f"{name}")


def _exception(exc: BaseException) -> Any:
    args, attrs = exception_reduce(exc)
    state = {k: v for k, v in (attrs or {}).items() if type(k) is str and not k.startswith("__")}
    if state and not _picklable(state):  # attributes that cannot travel are dropped
        state = {k: v for k, v in state.items() if _picklable(v)}
    if not _picklable(args):  # arguments that cannot travel go as their text
        args = tuple(repr(a) for a in args)
    return _E, (qualified_name(type(exc)), args, state or None)


def _picklable(value: Any) -> bool:
    try:
        _dumps(value, PICKLE_PROTOCOL)
    except Exception:  # noqa: BLE001 - any reason at all
        return False
    return True


def _instance(obj: Any, cls: type) -> Any:
    if isinstance(obj, enum.Enum):
        # By value, whatever this Python's Enum does (before 3.12 some pickle members as
        # getattr(cls, name), and getattr is never allowed on the wire).
        rv: Any = (cls, (obj._value_,))
    else:
        rv = obj.__reduce_ex__(PICKLE_PROTOCOL)
    if isinstance(rv, str):  # a module-level singleton, sent by name
        module = getattr(obj, "__module__", None) or getattr(cls, "__module__", "")
        target = resolve_allowed(f"{module}.{rv}")
        if target is None:
            raise _not_allowed(obj, f"the object {module}.{rv}")
        return _O, (GLOBAL, f"{module}.{rv}")
    if not isinstance(rv, tuple) or len(rv) < 2:
        raise SerializationError(f"cannot send a {cls.__qualname__}: its __reduce_ex__ "
                                 f"returned {type(rv).__name__}")
    fn, args = rv[0], rv[1]
    if fn in _BUILDERS:
        return rv
    state, items, pairs = (tuple(rv[2:5]) + (None, None, None))[:3]
    if fn is getattr(copyreg, "__newobj__", None):
        target, how, args = args[0], 0, tuple(args[1:])
    elif fn is getattr(copyreg, "__newobj_ex__", None):
        target, args, kwargs = args
        if kwargs:
            raise SerializationError(f"cannot send a {cls.__qualname__}: its __new__ needs "
                                     "keyword arguments")
        how = 0
    elif isinstance(fn, type):
        target, how = fn, 1
    else:
        target, how = fn, 2
    name = qualified_name(target)
    if resolve_allowed(name) is not target:
        raise _not_allowed(obj, f"{'class' if isinstance(target, type) else 'function'} "
                                f"{name}")
    return _U, (name, how, tuple(args), state,
                None if items is None else list(items),
                None if pairs is None else list(pairs))


def _not_allowed(obj: Any, what: str) -> SerializationError:
    if isinstance(obj, type | types.FunctionType | types.BuiltinFunctionType):
        head, target = f"cannot send {what} to another node: it is not allowed on the wire", obj
    else:
        head = (f"cannot send a {type(obj).__qualname__} to another node: {what} is not allowed "
                "on the wire")
        target = type(obj)
    return SerializationError(
        f"{head}; call pycos.serialize_allow({getattr(target, '__qualname__', '?')}) on both "
        f"nodes (or pycos.serialize_allow('{getattr(target, '__module__', '?')}') for its whole "
        "module) before sending")


# ---------------------------------------------------------------------- numpy
_NDARRAY, _NPSCALAR, _DTYPE = 30, 31, 32
_NUMPY_NAMES = {_NDARRAY: "numpy.ndarray", _NPSCALAR: "numpy.generic", _DTYPE: "numpy.dtype"}
_numpy_ready = False
#: Limits of a dtype in a payload: format strings, nesting of structured dtypes, dimensions.
_MAX_DTYPE_TEXT, _MAX_DTYPE_LEVELS, _MAX_DIMS, _MAX_FIELDS = 64, 8, 64, 4096
#: What numpy allocates for a dtype (about 50 bytes a field) and an array's header.
_DTYPE_COST, _DTYPE_FIELD_COST, _ARRAY_COST = 1024, 128, 256


def _numpy_entry(obj: Any) -> Registered | None:
    np = sys.modules.get("numpy")
    if np is None:
        return None
    _register_numpy(np)
    if isinstance(obj, np.ndarray):
        return REGISTRY[_NDARRAY]
    if isinstance(obj, np.generic):
        return REGISTRY[_NPSCALAR]
    if isinstance(obj, np.dtype):
        return REGISTRY[_DTYPE]
    return None


def _dtype_spec(dtype: Any) -> Any:
    if dtype.hasobject:
        raise SerializationError("cannot send a numpy array of Python objects (dtype "
                                 f"{dtype}); convert it to a plain dtype or a list")
    return dtype.str if dtype.fields is None and dtype.subdtype is None else dtype.descr


def _spec_fields(spec: Any) -> int:
    """How many fields the dtype ``spec`` of a payload has, once it is checked to be what
    ``dtype.str`` / ``dtype.descr`` make: a format string, or a list of ``(name, format)`` /
    ``(name, format, shape)`` where a name is a str or a (title, name) pair of str, a format a
    string or such a list (nested), and a shape an int or a tuple of ints.

    Raises:
        SerializationError: it is anything else (checked before numpy sees it, so numpy's own
            errors never print a payload's value), or has more than ``_MAX_FIELDS`` fields
            counting each use of a shared one.
    """
    count = [0]
    _count_fields(spec, 0, count)
    return count[0]


def _count_fields(spec: Any, level: int, count: list[int]) -> None:
    count[0] += 1
    if count[0] > _MAX_FIELDS:
        raise SerializationError("malformed numpy dtype in a payload (too many fields)")
    if type(spec) is str:
        if len(spec) > _MAX_DTYPE_TEXT:
            raise SerializationError("malformed numpy dtype in a payload")
        return
    if type(spec) is not list or level >= _MAX_DTYPE_LEVELS:
        raise SerializationError("malformed numpy dtype in a payload")
    for field in spec:
        ok = type(field) is tuple and len(field) in (2, 3)
        if ok:
            name = field[0]
            ok = (type(name) is str and len(name) <= _MAX_DTYPE_TEXT) or (
                type(name) is tuple and len(name) == 2
                and all(type(n) is str and len(n) <= _MAX_DTYPE_TEXT for n in name))
        if ok and len(field) == 3:
            shape = field[2]
            ok = type(shape) is int or (type(shape) is tuple and len(shape) <= _MAX_DIMS
                                        and all(type(n) is int for n in shape))
        if not ok:
            raise SerializationError("malformed numpy dtype in a payload")
        _count_fields(field[1], level + 1, count)


def _make_dtype(np: Any, spec: Any) -> Any:
    if type(spec) is str and len(spec) <= _MAX_DTYPE_TEXT:  # the common case, quickly
        charge(_DTYPE_COST)
    else:
        charge(_DTYPE_COST + _DTYPE_FIELD_COST * _spec_fields(spec))
    try:
        dtype = np.dtype(spec)
    except SerializationError:
        raise
    except Exception as exc:  # noqa: BLE001 - numpy raises many types for a bad spec
        raise SerializationError(f"malformed numpy dtype in a payload: "
                                 f"{describe_error(exc)}") from None
    if dtype.hasobject:
        raise SerializationError("payload asks for a numpy array of Python objects (refused)")
    return dtype


def _has_datetime(dtype: Any) -> bool:
    """Whether ``dtype`` holds datetime64 / timedelta64 values (anywhere in a structure)."""
    if dtype.kind in "mM":
        return True
    if dtype.subdtype is not None:
        return _has_datetime(dtype.subdtype[0])
    return dtype.fields is not None and any(_has_datetime(f[0]) for f in dtype.fields.values())


def _register_numpy(np: Any) -> None:
    global _numpy_ready
    if _numpy_ready:
        return

    def reduce_array(arr: Any) -> tuple[Any, ...]:
        spec = _dtype_spec(arr.dtype)
        if not arr.flags.c_contiguous:
            arr = np.ascontiguousarray(arr)
        data = arr
        if _has_datetime(arr.dtype):
            # numpy gives no buffer of datetimes: their bytes (int64 counts of the unit the
            # dtype string keeps), viewed as plain bytes.
            data = arr.reshape(-1).view(np.uint8)
        return (spec, tuple(arr.shape), pickle.PickleBuffer(data))

    def build_array(spec: Any, shape: Any, buf: Any) -> Any:
        dtype = _make_dtype(np, spec)
        if (type(shape) is not tuple or len(shape) > _MAX_DIMS
                or not all(type(n) is int and n >= 0 for n in shape)):
            raise SerializationError("malformed numpy shape in a payload")
        view = memoryview(buf)
        count = 1
        for n in shape:
            count *= n
        if count * dtype.itemsize != view.nbytes:
            raise SerializationError("numpy array data does not match its shape and dtype")
        arr = np.frombuffer(view, dtype=dtype) if count else np.empty(0, dtype=dtype)
        arr = arr.reshape(shape)
        return arr if arr.flags.writeable else arr.copy()

    def reduce_scalar(value: Any) -> tuple[Any, ...]:
        return (_dtype_spec(value.dtype), value.tobytes())

    def build_scalar(spec: Any, data: Any) -> Any:
        dtype = _make_dtype(np, spec)
        if type(data) is not bytes or len(data) != dtype.itemsize:
            raise SerializationError("malformed numpy scalar in a payload")
        return np.frombuffer(data, dtype=dtype)[0]

    register(_NDARRAY, np.ndarray, reduce_array, build_array, cost=_ARRAY_COST)
    register(_NPSCALAR, np.generic, reduce_scalar, build_scalar, cost=_ARRAY_COST)
    register(_DTYPE, np.dtype, lambda d: (_dtype_spec(d),), lambda s: _make_dtype(np, s),
             cost=0)
    _numpy_ready = True


def _build_numpy(code: int) -> Callable[..., Any]:
    def build(*fields: Any) -> Any:
        np = sys.modules.get("numpy")
        if np is None:
            try:
                import numpy as np  # noqa: PLC0415 - only when a payload holds numpy values
            except ImportError:
                raise SerializationError("payload holds numpy values and numpy is not "
                                         "installed here") from None
        _register_numpy(np)
        entry = REGISTRY[code]
        charge(entry.cost)
        try:
            return entry.build(*fields)
        except SerializationError:
            raise
        except (TypeError, ValueError, OverflowError, ArithmeticError) as exc:
            raise SerializationError(f"malformed {entry.name} in a payload: "
                                     f"{describe_error(exc)}") from None

    return build


# Until numpy is loaded, its codes build through a loader that imports it first (and are
# named as numpy's types in errors, not as the placeholder class).
for _code in (_NDARRAY, _NPSCALAR, _DTYPE):
    REGISTRY.setdefault(_code, Registered(_code, object, lambda v: (), _build_numpy(_code),
                                          cost=0, name=_NUMPY_NAMES[_code]))
