"""The restricted unpickler, ``serialize_allow`` and ``dumps`` errors."""

from __future__ import annotations

import collections
import datetime
import decimal
import fractions
import ipaddress
import pathlib
import pickle
import pickletools
import subprocess
import sys
import types
import uuid
from dataclasses import dataclass
from subprocess import Popen

import pytest

import pycos
import pycos.proto.serialize as serialize_mod
from pycos.proto import SerializationError, UnpicklingRefused, dumps, loads, serialize_allow
from pycos.proto.serialize import is_allowed

RAN: list[str] = []


def mark(tag: str) -> str:
    RAN.append(tag)
    return tag


@dataclass(frozen=True)
class Point:
    x: int
    y: int


class SubPoint(Point):
    pass


class Outer:
    class Inner:
        def __init__(self, v: int) -> None:
            self.v = v


class Tagged(Exception):
    """A user exception (not builtin): refused until allowed."""


@pytest.fixture(autouse=True)
def fresh_allow_list(monkeypatch):
    monkeypatch.setattr(serialize_mod, "_ALLOW", serialize_mod._AllowList())
    RAN.clear()


def global_pickle(module: str, name: str) -> bytes:
    """A protocol-4 pickle that just names ``module.name`` (STACK_GLOBAL)."""

    def text(s: str) -> bytes:
        raw = s.encode()
        return b"\x8c" + bytes([len(raw)]) + raw

    return b"\x80\x04" + text(module) + text(name) + b"\x93."


def roundtrip(obj):
    return loads(dumps(obj))


VALUES = [
    None, True, 0, -(2**100), 1.5, float("inf"), 3 + 4j, "text", b"\x00\xff", bytearray(b"ab"),
    [1, [2, (3,)]], {"a": {1, 2}}, frozenset({"x"}), range(2, 9, 3), slice(1, None, 2), ...,
    NotImplemented,
    datetime.datetime(2024, 5, 6, 7, 8, 9, 10, tzinfo=datetime.UTC),
    datetime.date(2020, 1, 2), datetime.time(3, 4), datetime.timedelta(days=2, seconds=5),
    datetime.timezone(datetime.timedelta(hours=-3), "X"),
    decimal.Decimal("1.10"), fractions.Fraction(2, 3), uuid.UUID(int=12345),
    collections.OrderedDict(a=1, b=2), collections.Counter("hello"),
    collections.deque([1, 2], maxlen=5), collections.ChainMap({"a": 1}, {"b": 2}),
    pathlib.PurePosixPath("/a/b"), pathlib.PureWindowsPath("c:/x"), pathlib.Path("rel/p"),
    ipaddress.ip_address("::1"), ipaddress.ip_network("10.0.0.0/8"),
]


@pytest.mark.parametrize("value", VALUES, ids=lambda v: type(v).__name__)
def test_standard_values_roundtrip(value):
    assert roundtrip(value) == value


def test_defaultdict_keeps_its_factory():
    d = collections.defaultdict(list, {"k": [1]})
    out = roundtrip(d)
    assert out == d and out.default_factory is list


@pytest.mark.parametrize("exc", [KeyError("k"), FileNotFoundError(2, "nf", "f"),
                                 ValueError("v"), StopIteration(3)])
def test_builtin_exceptions_roundtrip(exc):
    out = roundtrip(exc)
    assert type(out) is type(exc) and out.args == exc.args


def test_pycos_own_types_are_accepted():
    status = pycos.MonitorStatus("info", StopIteration, 5)
    out = roundtrip(status)
    assert (out.info, out.type, out.value) == ("info", StopIteration, 5)
    assert isinstance(roundtrip(pycos.PeerLost("gone")), pycos.PeerLost)
    assert isinstance(roundtrip(UnpicklingRefused("m", "n")), UnpicklingRefused)


def test_pycos_core_and_private_classes_are_refused_but_exceptions_pass():
    for cls in (pycos.Pycos, pycos.Task, pycos.WaitQueue, serialize_mod._AllowList):
        with pytest.raises(UnpicklingRefused, match=cls.__qualname__):
            loads(pickle.dumps(cls))
    assert loads(pickle.dumps(pycos.ConcurrentWaitError)) is pycos.ConcurrentWaitError
    assert not is_allowed("pycos.proto.messages", "Request")  # not marked as a wire type
    assert not is_allowed("pycos.proto.messages", "encode_body")


def test_pycos_functions_are_refused():
    with pytest.raises(UnpicklingRefused, match="serialize_allow"):
        loads(pickle.dumps(serialize_allow))


def test_numpy_arrays_dtypes_and_scalars():
    np = pytest.importorskip("numpy")
    arrays = [np.arange(12.0).reshape(3, 4), np.asfortranarray(np.ones((2, 3))),
              np.arange(10)[::3], np.array([1, "a", None], dtype=object),
              np.zeros(3, dtype=[("a", "i4"), ("b", "f8")])]
    for arr in arrays:
        out = roundtrip(arr)
        assert out.dtype == arr.dtype and out.tolist() == arr.tolist()
    assert roundtrip(np.dtype("complex64")) == np.dtype("complex64")
    assert roundtrip(np.float32(1.5)) == np.float32(1.5)


# ---------------------------------------------------------------- refusals
def test_refused_class_error_names_it_and_the_cure():
    with pytest.raises(UnpicklingRefused) as info:
        roundtrip(Point(1, 2))
    message = str(info.value)
    assert info.value.name == f"{__name__}.Point"
    assert f"pycos.serialize_allow({__name__}.Point)" in message
    assert f"pycos.serialize_allow({__name__!r})" in message
    assert isinstance(info.value, pickle.UnpicklingError)


@pytest.mark.parametrize("obj", [subprocess.Popen, eval, getattr, type, object, sys.exit,
                                 pickle.loads, types.SimpleNamespace])
def test_dangerous_globals_are_refused(obj):
    with pytest.raises(UnpicklingRefused):
        loads(pickle.dumps(obj))


def test_code_executing_reduce_is_refused_and_not_run():
    class Evil:
        def __reduce__(self):
            return (mark, ("ran",))

    data = pickle.dumps(Evil())
    with pytest.raises(UnpicklingRefused, match="mark"):
        loads(data)
    assert RAN == []
    assert loads(data, allow_all=True) == "ran" and RAN == ["ran"]


def test_protocol_0_pickles_go_through_the_same_check():
    data = b"c" + __name__.encode() + b"\nmark\n(S'x'\ntR."
    with pytest.raises(UnpicklingRefused):
        loads(data)
    inst = b"(i" + __name__.encode() + b"\nPoint\n."
    with pytest.raises(UnpicklingRefused):
        loads(inst)
    assert RAN == []


def test_dunder_paths_and_reexports_are_refused():
    serialize_allow(sys.modules[__name__])
    # ``Popen`` and ``subprocess`` are imported into this module but not defined here.
    for name in ["Popen", "subprocess.Popen"]:
        with pytest.raises(UnpicklingRefused):
            loads(global_pickle(__name__, name))
    assert Popen.__module__ == "subprocess"
    assert is_allowed(__name__, "SubPoint")
    for path in ["Point.__class__", "Point.__init__.__globals__", "__builtins__",
                 "SubPoint.__base__"]:
        with pytest.raises(UnpicklingRefused):
            loads(global_pickle(__name__, path))
    assert not is_allowed(__name__, "Point.__init__.__globals__")
    assert not is_allowed(__name__, "subprocess")


def test_malformed_data_is_serialization_error():
    for data in [b"", b"\x80\x05garbage", b"\x80\x04N", pickle.dumps([1, 2])[:-3]]:
        with pytest.raises(SerializationError):
            loads(data)
    with pytest.raises(SerializationError, match="persistent"):
        loads(b"\x80\x04\x8c\x01x\x94Q.")


# ---------------------------------------------------------------- serialize_allow
def test_allow_a_class():
    serialize_allow(Point)
    assert roundtrip(Point(1, 2)) == Point(1, 2)
    with pytest.raises(UnpicklingRefused, match="Tagged"):
        roundtrip(Tagged("x"))


def test_allow_a_nested_class_and_a_function():
    serialize_allow(Outer.Inner, mark)
    assert roundtrip(Outer.Inner(3)).v == 3
    assert loads(pickle.dumps(mark)) is mark


@pytest.mark.parametrize("how", ["module", "name"])
def test_allow_a_whole_module(how):
    serialize_allow(sys.modules[__name__] if how == "module" else __name__)
    assert roundtrip(Point(1, 2)) == Point(1, 2)
    assert isinstance(roundtrip(Tagged("t")), Tagged)
    assert is_allowed(__name__, "Outer.Inner")


def test_allowing_a_package_name_covers_its_submodules():
    assert not is_allowed("json.decoder", "JSONDecoder")
    serialize_allow("json")
    assert is_allowed("json.decoder", "JSONDecoder")


@pytest.mark.parametrize("bad, exc", [(42, TypeError), ("not a name!", ValueError),
                                      ("", ValueError), (Point(1, 2), TypeError),
                                      (lambda: 0, TypeError)])
def test_serialize_allow_rejects_other_arguments(bad, exc):
    with pytest.raises(exc):
        serialize_allow(bad)


# ---------------------------------------------------------------- dumps
def test_dumps_of_unpicklable_payload_is_serialization_error():
    with pytest.raises(SerializationError, match="cannot pickle a function"):
        dumps(lambda: 1)
    with pytest.raises(SerializationError):
        dumps({"gen": (i for i in range(2))})


def test_dumps_uses_protocol_5():
    proto = next(arg for op, arg, _ in pickletools.genops(dumps([1])) if op.name == "PROTO")
    assert proto == 5
