"""Payloads (``pycos.proto.codec``): what travels, what is refused, and what an attacker gets.

* Round trips, exact in type and value: builtin values and containers (shared and cyclic
  references too), complex, range, slice, Ellipsis, the datetime family with time zones,
  Decimal, Fraction, UUID, deque, OrderedDict, defaultdict, Counter, ChainMap, pathlib,
  ipaddress, exceptions (builtin, pycos's, allowed, and not allowed → ``RemoteError``), numpy
  when it imports, and user classes after ``serialize_allow`` (plain, ``__slots__``,
  ``__setstate__``, namedtuple, IntEnum). A class that is not allowed is refused when it is
  *encoded*, in the sender, with a message naming it and ``pycos.serialize_allow``.
* Attacks through the four builders (``o``, ``u``, ``e``, ``f``): unknown codes, wrong
  argument types and sizes (a 10**100000 numerator, 100,000 Decimal digits), globals that are
  not allowed (``os.system``, ``builtins.eval``, pycos's own classes), attributes set on an
  allowed class, the 44-byte Fraction and the 32-byte 1.5 GiB bytearray of the original issue.
  Each is refused with a ``SerializationError`` (``WireError``, ``UnpicklingRefused``) and
  nothing else, in bounded time and memory, and runs nothing.
* Cost: decoding a payload of N bytes allocates at most a small multiple of N
  (``MAX_BYTES_PER_PAYLOAD_BYTE``), measured with tracemalloc on large adversarial payloads
  that the dialect accepts.
* Hypothesis (derandomized): ``decode`` of arbitrary bytes, of altered valid payloads and of
  random calls of the builders with random arguments gives a value or a
  ``SerializationError``, never another exception, and runs nothing (4,000 cases); generated
  values of all the supported types round-trip exactly (2,000 cases).
"""

from __future__ import annotations

import builtins
import collections
import dataclasses
import datetime
import decimal
import enum
import fractions
import ipaddress
import math
import os
import pathlib
import pickle
import resource
import struct
import subprocess
import sys
import time
import tracemalloc
import types
import uuid
from subprocess import Popen
from typing import Any, NamedTuple
from unittest import mock

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from proto_helpers import (
    APPENDS,
    EDITS,
    EMPTY_DICT,
    EMPTY_LIST,
    EMPTY_SET,
    EMPTY_TUPLE,
    FROZENSET,
    MARK,
    MEMOIZE,
    NEWTRUE,
    NONE,
    POP,
    REDUCE,
    SETITEM,
    STACK_GLOBAL,
    TUPLE,
    TUPLE1,
    TUPLE2,
    VALUES,
    call,
    get,
    global_,
    integer,
    mutate,
    payload,
    text,
)

import pycos.proto.codec as codec
from pycos.errors import (
    AccessDenied,
    PeerLost,
    RemoteError,
    SerializationError,
    UnpicklingRefused,
)
from pycos.proto import WireError, is_allowed, serialize_allow, wirecheck, wirecost, wiretypes

HYPOTHESIS = settings(deadline=None, derandomize=True, database=None,
                      suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                             HealthCheck.filter_too_much])
#: Hypothesis cases: arbitrary bytes, altered payloads, random builder calls, round trips.
CASES_ARBITRARY, CASES_MUTATED, CASES_CALLS, CASES_ROUNDTRIP = 1000, 1500, 1500, 2000
#: CPU seconds decoding (or refusing) a 200 KB payload may take, measured under tracemalloc,
#: which slows Python code several times: the compiled checker needs milliseconds; the Python
#: one (a machine without a C compiler) about a second, still linear in the payload.
TIME_LIMIT = 1.0 if codec._c is not None else 5.0
#: The "small multiple": bytes decoding may allocate per byte of payload, at its peak. One
#: byte of payload can make one small container (an empty list is 56 bytes plus its slot and
#: the unpickler's stack entry), so this is about the least a pickle dialect can promise; a
#: 16 MiB frame (the default limit) then costs at most 1.6 GiB.
MAX_BYTES_PER_PAYLOAD_BYTE = 100
MiB = 1 << 20

try:
    import numpy as np
except ImportError:  # pragma: no cover - numpy is optional
    np = None


def rt(value: Any) -> Any:
    return codec.decode(codec.encode(value))


def same(a: Any, b: Any) -> bool:
    """Equal in value *and* type, all the way down (1 is not True is not 1.0; -0.0 is not
    0.0; NaN is NaN; dict order, deque maxlen and defaultdict factories count)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return (math.isnan(a) and math.isnan(b)) or (
            a == b and math.copysign(1, a) == math.copysign(1, b))
    if isinstance(a, complex):
        return same(a.real, b.real) and same(a.imag, b.imag)
    if isinstance(a, decimal.Decimal):
        return str(a) == str(b)
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, collections.deque):
        return a.maxlen == b.maxlen and same(list(a), list(b))
    if isinstance(a, collections.defaultdict) and a.default_factory is not b.default_factory:
        return False
    if isinstance(a, dict):
        return same(list(a.items()), list(b.items()))
    if isinstance(a, collections.ChainMap):
        return same(a.maps, b.maps)
    if isinstance(a, set | frozenset):
        return len(a) == len(b) and all(any(same(x, y) for y in b) for x in a)
    if isinstance(a, slice):
        return same((a.start, a.stop, a.step), (b.start, b.stop, b.step))
    if isinstance(a, BaseException):
        return same(a.args, b.args)
    if np is not None and isinstance(a, np.ndarray):
        nan = a.dtype.kind in "fc"
        return a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b, equal_nan=nan)
    if np is not None and isinstance(a, np.generic):
        return a.dtype == b.dtype and a.tobytes() == b.tobytes()
    return bool(a == b)


# ---------------------------------------------------------------- user classes
@dataclasses.dataclass(frozen=True)
class Point:
    x: int
    y: int


class Plain:
    def __init__(self, a: Any) -> None:
        self.a = a


class Slotted:
    __slots__ = ("x", "y")

    def __init__(self, x: Any, y: Any) -> None:
        self.x, self.y = x, y


class Stateful:
    """Sends only ``v``; ``__setstate__`` rebuilds the rest."""

    def __init__(self, v: Any) -> None:
        self.v, self.cache = v, object()

    def __getstate__(self) -> dict[str, Any]:
        return {"v": self.v}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.v, self.cache = state["v"], "rebuilt"


class Pair(NamedTuple):
    left: Any
    right: Any


class Color(enum.IntEnum):
    RED = 1
    GREEN = 2


class Listy(list):
    pass


class Outer:
    class Inner:
        def __init__(self, v: int) -> None:
            self.v = v


class Tagged(Exception):
    """A user exception: travels as itself once allowed, as a RemoteError before."""


class Target:
    """An allowed class whose attributes an attacker would like to change."""

    greeting = "hello"

    def method(self) -> str:
        return "original"


def helper(x: int) -> int:
    return x + 1


@pytest.fixture(autouse=True)
def fresh_allow_list(monkeypatch):
    monkeypatch.setattr(wiretypes, "_ALLOW", wiretypes._AllowList())


@pytest.fixture
def tripwires(monkeypatch):
    """Anything a payload could try to run: each call is recorded, and fails the test."""
    calls: list[str] = []

    def trip(name: str) -> Any:
        def tripped(*args: Any, **kwargs: Any) -> Any:
            calls.append(name)
            raise AssertionError(f"{name} was called by decoding")
        tripped.__module__ = "tripwires"  # not this module, which tests allow as a whole
        return tripped

    monkeypatch.setattr(os, "system", trip("os.system"))
    monkeypatch.setattr(os, "popen", trip("os.popen"))
    monkeypatch.setattr(subprocess, "Popen", trip("subprocess.Popen"))
    monkeypatch.setattr(builtins, "eval", trip("eval"))
    monkeypatch.setattr(builtins, "exec", trip("exec"))
    yield calls
    assert calls == []


# ---------------------------------------------------------------- round trips
NAMED_TZ = datetime.timezone(datetime.timedelta(hours=-3, minutes=-30), "NST")
ROUNDTRIP = [
    None, True, False, 0, -1, 2**64, -(2**1000), 1.5, -0.0, float("inf"), float("-inf"),
    float("nan"), "", "ünïcode ☃ \U0001f600", "\x00\ud800", b"", b"\x00\xff" * 100,
    bytearray(b"ab"), bytearray(), (), (1,), (1, 2, 3, 4), [], [1, [2, (3,)]],
    {"a": {1, 2}, 2: [None]}, set(), {1, "x", (2, 3)}, frozenset(), frozenset({"x", 1.5}),
    {frozenset({1}): {(): b""}}, 3 + 4j, complex(-0.0, float("inf")), range(2, 9, 3),
    range(-5), range(0, 10**30, 7), slice(1, None, 2), slice("a", [1], {2: 3}), ...,
    NotImplemented,
    datetime.date(2020, 1, 2), datetime.date.min, datetime.date.max,
    datetime.time(3, 4), datetime.time(23, 59, 59, 999999, NAMED_TZ, fold=1),
    datetime.datetime(2024, 5, 6, 7, 8, 9, 10), datetime.datetime(2024, 5, 6, tzinfo=datetime.UTC),
    datetime.datetime(2021, 11, 7, 1, 30, fold=1, tzinfo=NAMED_TZ),
    datetime.datetime.min, datetime.datetime.max,
    datetime.timedelta(days=-2, seconds=5, microseconds=7), datetime.timedelta.max,
    datetime.UTC, datetime.timezone(datetime.timedelta(hours=5)), NAMED_TZ,
    decimal.Decimal("1.10"), decimal.Decimal("-0"), decimal.Decimal("NaN"),
    decimal.Decimal("-Infinity"), decimal.Decimal("1E+999999"), decimal.Decimal("9" * 4000),
    fractions.Fraction(2, 3), fractions.Fraction(-1, 10**30), fractions.Fraction(0),
    uuid.UUID(int=0), uuid.UUID("12345678-1234-5678-1234-567812345678"),
    collections.deque(), collections.deque([1, "a"], maxlen=5), collections.deque([[]]),
    collections.OrderedDict([("b", 1), ("a", 2)]), collections.defaultdict(list, {"k": [1]}),
    collections.defaultdict(None, {1: 2}), collections.defaultdict(int),
    collections.Counter("hello"), collections.Counter({"neg": -2, "zero": 0}),
    collections.ChainMap({"a": 1}, {"b": 2}), collections.ChainMap(),
    pathlib.PurePosixPath("/a/b"), pathlib.PureWindowsPath("c:/x/y"), pathlib.Path("rel/p"),
    pathlib.PurePath("p"),
    ipaddress.ip_address("10.1.2.3"), ipaddress.ip_address("::1"),
    ipaddress.IPv6Address("fe80::1%eth0"), ipaddress.ip_network("10.0.0.0/8"),
    ipaddress.ip_network("2001:db8::/32"), ipaddress.ip_interface("192.0.2.5/24"),
    ipaddress.ip_interface("2001:db8::5/64"),
    [collections.deque([fractions.Fraction(1, 3)]), {"when": datetime.date(2000, 1, 1)},
     (decimal.Decimal("2.5"), uuid.UUID(int=7), pathlib.PurePosixPath("x"))],
]


@pytest.mark.parametrize("value", ROUNDTRIP, ids=lambda v: type(v).__name__)
def test_values_round_trip_exactly(value):
    assert same(rt(value), value)


def test_payloads_are_pickle_protocol_5_in_the_dialect():
    for value in ROUNDTRIP:
        data = codec.encode(value)
        assert data[:2] == b"\x80\x05" and data[-1:] == b"."
        assert wirecheck.check_fast(data) is None


def test_shared_and_cyclic_references_survive():
    shared = [1]
    out = rt([shared, shared, (shared,)])
    assert out[0] is out[1] is out[2][0]
    loop: list[Any] = []
    loop.append(loop)
    out = rt(loop)
    assert out[0] is out
    d: dict[str, Any] = {}
    d["self"] = d
    out = rt(d)
    assert out["self"] is out


def test_decode_takes_bytes_bytearray_and_memoryview():
    data = codec.encode({"k": [1, 2]})
    for form in (data, bytearray(data), memoryview(data)):
        assert codec.decode(form) == {"k": [1, 2]}


def test_depth_limits_at_both_ends():
    deep: list[Any] = []
    for _ in range(30):
        deep = [deep]
    assert same(codec.decode(codec.encode(deep), max_depth=31), deep)
    with pytest.raises(WireError, match="nesting deeper than"):
        codec.decode(codec.encode(deep), max_depth=30)
    with pytest.raises(SerializationError, match="deep"):
        codec.encode(deep, max_depth=20)
    very_deep: list[Any] = []
    for _ in range(5000):
        very_deep = [very_deep]
    with pytest.raises(SerializationError, match="deep"):
        codec.encode(very_deep)


# ---------------------------------------------------------------- exceptions
BUILTIN_EXCEPTIONS = [
    (KeyError("k"), ()), (ValueError("v", 2), ()), (ZeroDivisionError(), ()),
    (ConnectionResetError(104, "reset"), ("errno", "strerror")),
    (StopIteration(3), ("value",)), (SystemExit(1), ("code",)),
    (FileNotFoundError(2, "not found", "f.txt"), ("errno", "strerror", "filename")),
    (UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte"),
     ("encoding", "object", "start", "end", "reason")),
    (ImportError("no module", name="mod", path="/p"), ("name", "path")),
]


@pytest.mark.parametrize("exc, attrs", BUILTIN_EXCEPTIONS,
                         ids=[type(e).__name__ for e, _ in BUILTIN_EXCEPTIONS])
def test_builtin_exceptions_round_trip(exc, attrs):
    """As pickle sends them: the class, the arguments, and what ``__init__`` made of them
    (a generator's return value, an exit code, a file name ...)."""
    out = rt(exc)
    assert type(out) is type(exc) and out.args == exc.args
    assert str(out) == str(exc)
    assert {a: getattr(out, a) for a in attrs} == {a: getattr(exc, a) for a in attrs}


def test_exception_attributes_travel_and_unsendable_arguments_become_text():
    exc = ValueError("v")
    exc.detail = {"k": [1]}  # type: ignore[attr-defined]
    assert rt(exc).detail == {"k": [1]}
    out = rt(KeyError(lambda: 0))
    assert type(out) is KeyError and "lambda" in out.args[0]


@pytest.mark.parametrize("exc", [
    PeerLost("gone"), RemoteError("mod.Cls", "msg", "Traceback ..."),
    UnpicklingRefused("mod", "Cls"), SerializationError("x"), WireError("y"),
    AccessDenied("no"),
])
def test_pycos_exceptions_round_trip(exc):
    out = rt(exc)
    assert type(out) is type(exc) and str(out) == str(exc)
    if isinstance(exc, RemoteError):
        assert (out.type_name, out.message, out.remote_traceback) == (
            "mod.Cls", "msg", "Traceback ...")
    if isinstance(exc, UnpicklingRefused):
        assert out.name == "mod.Cls"


def test_pycos_value_types_registered_by_their_layers_round_trip():
    from pycos.core.status import MonitorStatus
    from pycos.net.location import LOCATION, Location

    status = rt(MonitorStatus("info", StopIteration, 5))
    assert (status.info, status.type, status.value) == ("info", StopIteration, 5)
    assert rt(Location("127.0.0.1", 9705)) == Location("127.0.0.1", 9705)
    # A location in a payload is an address, never a name to look up while decoding.
    refused(o(LOCATION, text("localhost"), integer(9705)), SerializationError)


def test_allowed_user_exception_round_trips():
    serialize_allow(Tagged)
    out = rt(Tagged("t", 1))
    assert type(out) is Tagged and out.args == ("t", 1)


def test_user_exception_that_is_not_allowed_arrives_as_remote_error():
    data = codec.encode(Tagged("boom"))  # exceptions always travel ...
    out = codec.decode(data)  # ... and stand as RemoteError where their class is not allowed
    assert type(out) is RemoteError
    assert out.type_name == f"{__name__}.Tagged" and out.message == "boom"
    out2 = rt(Tagged("a", 2))
    assert out2.message == "('a', 2)"


# ---------------------------------------------------------------- user classes
def test_user_classes_after_serialize_allow():
    serialize_allow(Point, Plain, Slotted, Stateful, Pair, Color, Listy, helper)
    assert rt(Point(1, 2)) == Point(1, 2)
    assert rt(Plain([1, "x"])).a == [1, "x"]
    s = rt(Slotted(1, (2,)))
    assert type(s) is Slotted and (s.x, s.y) == (1, (2,))
    st_ = rt(Stateful(5))
    assert type(st_) is Stateful and st_.v == 5 and st_.cache == "rebuilt"
    assert same(rt(Pair(1, [2])), Pair(1, [2]))
    assert rt(Color.GREEN) is Color.GREEN
    assert rt([Color.RED, Color.GREEN]) == [Color.RED, Color.GREEN]
    listy = rt(Listy([1, 2]))
    assert type(listy) is Listy and listy == [1, 2]
    assert rt(Point) is Point and rt(helper) is helper and rt(Color) is Color


def test_enum_members_travel_by_value_on_every_python(monkeypatch):
    """Before 3.12 some Pythons pickle an Enum member as ``getattr(cls, name)``; getattr is
    never allowed on the wire, so members are sent by value whatever this Python does."""
    serialize_allow(Color)
    monkeypatch.setattr(Color, "__reduce_ex__", lambda self, proto: (getattr, (Color,
                                                                             self.name)))
    assert rt(Color.GREEN) is Color.GREEN
    assert rt({"c": [Color.RED]}) == {"c": [Color.RED]}


def test_allowing_a_nested_class():
    """``serialize_allow(Outer.Inner)`` allows exactly that class (``module.Outer.Inner``)."""
    serialize_allow(Outer.Inner)
    assert is_allowed(__name__, "Outer.Inner")
    assert rt(Outer.Inner(3)).v == 3


def test_serialize_allow_from_many_threads_loses_nothing():
    """The allow list takes no lock (``pycos.proto`` uses no threads): calls racing from many
    threads each still count."""
    import threading

    names = [f"pycos_race_{i}" for i in range(400)]
    barrier = threading.Barrier(8)

    def allow(part: list[str]) -> None:
        barrier.wait()
        for name in part:
            serialize_allow(name)

    threads = [threading.Thread(target=allow, args=(names[i::8],)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert wiretypes._ALLOW.current()[2] >= set(names)


def test_allowing_a_whole_module():
    serialize_allow(sys.modules[__name__])
    assert rt(Point(1, 2)) == Point(1, 2)
    assert type(rt(Tagged("t"))) is Tagged
    assert is_allowed(__name__, "Outer.Inner")


def test_allowing_a_package_name_covers_its_submodules():
    assert not is_allowed("json.decoder", "JSONDecoder")
    serialize_allow("json")
    assert is_allowed("json.decoder", "JSONDecoder")


@pytest.mark.parametrize("value, name", [
    (Point(1, 2), "Point"), (Plain(1), "Plain"), (Slotted(1, 2), "Slotted"),
    (Stateful(1), "Stateful"), (Pair(1, 2), "Pair"), (Color.RED, "Color"),
    ([1, {"deep": (Plain(2),)}], "Plain"), (Point, "Point"), (helper, "helper"),
])
def test_a_class_that_is_not_allowed_is_refused_when_encoded(value, name):
    with pytest.raises(SerializationError) as info:
        codec.encode(value)
    message = str(info.value)
    assert name in message and "pycos.serialize_allow" in message, message


def test_refusal_at_encode_says_how_to_allow():
    with pytest.raises(SerializationError) as info:
        codec.encode(Point(1, 2))
    message = str(info.value)
    assert "pycos.serialize_allow(Point)" in message
    assert f"pycos.serialize_allow('{__name__}')" in message


@pytest.mark.parametrize("value", [
    lambda: 0, (i for i in range(2)), types.SimpleNamespace(a=1), sys, open,
    collections.defaultdict(lambda: 0), object(), type("Local", (), {})(),
], ids=["lambda", "generator", "SimpleNamespace", "module", "open", "defaultdict-lambda",
        "object", "local-class"])
def test_values_that_cannot_travel_are_refused_at_encode(value):
    with pytest.raises(SerializationError):
        codec.encode(value)


def test_allowed_by_the_sender_but_not_by_the_receiver():
    serialize_allow(Point)
    data = codec.encode(Point(1, 2))
    wiretypes._ALLOW = wiretypes._AllowList()  # the receiving node did not allow it
    with pytest.raises(UnpicklingRefused) as info:
        codec.decode(data)
    assert info.value.name == f"{__name__}.Point"
    assert f"pycos.serialize_allow({__name__}.Point)" in str(info.value)


def test_allowing_a_module_does_not_allow_what_it_imports_or_dunder_paths(tripwires):
    serialize_allow(sys.modules[__name__])
    assert Popen.__module__ == "subprocess"  # imported here, not defined here
    for name in [f"{__name__}.Popen", f"{__name__}.subprocess.Popen", f"{__name__}.os.system",
                 f"{__name__}.Point.__class__", f"{__name__}.Point.__init__.__globals__",
                 f"{__name__}.__builtins__", f"{__name__}.Tagged.__base__"]:
        with pytest.raises(UnpicklingRefused):
            codec.decode(payload(call("o", integer(1), text(name))))
        with pytest.raises(UnpicklingRefused):
            codec.decode(payload(call("u", text(name), integer(1), EMPTY_TUPLE, NONE, NONE,
                                      NONE)))
    assert not is_allowed(__name__, "Point.__init__.__globals__")
    assert not is_allowed(__name__, "Popen")


@pytest.mark.parametrize("bad, exc", [(42, TypeError), ("not a name!", ValueError),
                                      ("", ValueError), (Point(1, 2), TypeError),
                                      (lambda: 0, TypeError)])
def test_serialize_allow_rejects_other_arguments(bad, exc):
    with pytest.raises(exc):
        serialize_allow(bad)


# ---------------------------------------------------------------- numpy
@pytest.mark.skipif(np is None, reason="numpy is not installed")
def test_numpy_arrays_scalars_and_dtypes():
    arrays = [np.arange(12.0).reshape(3, 4), np.asfortranarray(np.ones((2, 3))),
              np.arange(10)[::3], np.zeros(3, dtype=[("a", "i4"), ("b", "f8")]),
              np.array(True), np.zeros((0, 5)), np.array([1 + 2j], dtype="c16"),
              np.array([b"ab"], dtype="S2"), np.array(["ü"], dtype="U1"),
              np.array([1.5], dtype=">f8"), np.zeros(2, dtype="V3")]
    for arr in arrays:
        out = rt(arr)
        assert same(out, arr) and out.flags.writeable
    for scalar in (np.float32(1.5), np.int64(-7), np.bool_(True), np.complex64(1j),
                   np.datetime64("2020-01-01"), np.timedelta64(5, "s")):
        assert same(rt(scalar), scalar)
    for dtype in (np.dtype("complex64"), np.dtype([("x", "<i2", (2,))])):
        assert rt(dtype) == dtype


@pytest.mark.skipif(np is None, reason="numpy is not installed")
@pytest.mark.parametrize("dtype", ["datetime64[D]", "timedelta64[s]", [("t", "M8[D]")]],
                         ids=["datetime64", "timedelta64", "struct-with-datetime64"])
def test_numpy_datetime_arrays_round_trip(dtype):
    """Plain dtypes all travel (pickle sends these); their scalars already do."""
    arr = np.zeros(3, dtype=dtype)
    assert same(rt(arr), arr)


@pytest.mark.skipif(np is None, reason="numpy is not installed")
def test_numpy_out_of_band_buffers():
    buffers: list[pickle.PickleBuffer] = []
    data = codec.encode(np.arange(1000.0), buffer_callback=buffers.append)
    assert len(buffers) == 1 and len(data) < 200
    assert same(codec.decode(data, buffers=buffers), np.arange(1000.0))
    with pytest.raises(WireError, match="not supplied"):
        codec.decode(data)


@pytest.mark.skipif(np is None, reason="numpy is not installed")
def test_numpy_object_arrays_are_refused_at_encode():
    with pytest.raises(SerializationError, match="Python objects"):
        codec.encode(np.array([1, "a", None], dtype=object))


@pytest.mark.skipif(np is None, reason="numpy is not installed")
@pytest.mark.parametrize("args, match", [
    ((integer(30), text("<f8"), integer(3), TUPLE1, b"C\x08" + b"x" * 8), "does not match"),
    ((integer(30), text("O"), integer(1), TUPLE1, b"C\x08" + b"x" * 8), "Python objects"),
    ((integer(30), text("<f8"), integer(-1), TUPLE1, b"C\x00"), "shape"),
    ((integer(30), text("<f8"), integer(0), integer(2**62), integer(2**62), b"\x87",
      b"C\x00"), "too big"),
    ((integer(30), text("<f8"), (integer(1) * 65), b"C\x08" + bytes(8)), "malformed"),
    ((integer(31), text("<f8"), b"C\x01x"), "malformed numpy scalar"),
    ((integer(32), text("x" * 65)), "malformed numpy dtype"),
    ((integer(32), EMPTY_LIST, MARK, text("a"), text("O"), TUPLE2, APPENDS), "Python objects"),
    ((integer(32), text("(2147483647,2147483647)f8")), "size"),
    ((integer(32), integer(5)), "malformed numpy dtype"),
])
def test_malformed_numpy_payloads_are_refused(args, match):
    if args[2:3] == (integer(1) * 65,):
        args = (args[0], args[1], MARK + integer(1) * 65 + TUPLE, args[3])
    refused(payload(call("o", *args)), SerializationError, match)


@pytest.mark.skipif(np is None, reason="numpy is not installed")
def test_the_first_numpy_payload_error_names_numpy(monkeypatch):
    """A node that has not decoded numpy yet (numpy's types are registered on first use)
    still names the type it refuses: ``numpy.ndarray``, not ``builtins.object``."""
    monkeypatch.setattr(codec, "_numpy_ready", False)
    for code in (30, 31, 32):
        monkeypatch.setitem(wiretypes.REGISTRY, code, wiretypes.Registered(
            code, object, lambda v: (), codec._build_numpy(code)))
    with pytest.raises(SerializationError) as info:
        codec.decode(payload(call("o", integer(30), text("<f8"), integer(1), TUPLE1,
                                  text("not bytes"))))
    assert "numpy" in str(info.value) and "builtins.object" not in str(info.value)


# ---------------------------------------------------------------- attacks through builders
def refused(data: bytes, exc: type[SerializationError] = SerializationError,
            match: str = "") -> SerializationError:
    """``decode`` refuses ``data`` with ``exc``: nothing else, quickly, in little memory."""
    tracemalloc.start()
    start = time.process_time()
    try:
        with pytest.raises(SerializationError) as info:
            codec.decode(data)
        elapsed = time.process_time() - start
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert isinstance(info.value, exc), repr(info.value)
    assert match in str(info.value), str(info.value)
    assert elapsed < TIME_LIMIT, f"refusing took {elapsed:.2f} s"
    assert peak < MAX_BYTES_PER_PAYLOAD_BYTE * len(data) + MiB, f"peak {peak} bytes"
    return info.value


def o(code: int, *args: bytes) -> bytes:
    return payload(call("o", integer(code), *args))


def date_args(*fields: int) -> tuple[bytes, ...]:
    return tuple(integer(f) for f in fields)


BUILDER_ATTACKS = {
    "o unknown code": (o(999), "unknown wire type 999"),
    "o code is a str": (payload(call("o", text("15"), text("1"))), "unknown wire type"),
    "o code is a bool": (payload(call("o", NEWTRUE)), "unknown wire type"),
    "o code is a float": (payload(call("o", b"G" + bytes(8))), "unknown wire type"),
    "o without code": (payload(call("o")), ""),
    "o too many fields": (o(5, NONE, NONE), "malformed"),
    "complex of str": (o(2, text("1"), text("2")), "malformed complex"),
    "complex of ints": (o(2, integer(1), integer(2)), "malformed complex"),
    "range step 0": (o(3, integer(0), integer(9), integer(0)), "malformed"),
    "range of floats": (o(3, b"G" + bytes(8), integer(9), integer(1)), "malformed range"),
    "date month 13": (o(10, *date_args(2020, 13, 1)), "malformed"),
    "date year 0": (o(10, *date_args(0, 1, 1)), "malformed"),
    "datetime tz str": (o(12, *date_args(2020, 1, 1, 0, 0, 0, 0), text("UTC"), integer(0)),
                        "malformed time zone"),
    "datetime fold 2": (o(12, *date_args(2020, 1, 1, 0, 0, 0, 0), NONE, integer(2)),
                        "malformed datetime"),
    "time tz class": (o(11, *date_args(1, 2, 3, 4), call("o", integer(1),
                                                           text("builtins.KeyError")),
                        integer(0)), "malformed time zone"),
    "timedelta overflow": (o(13, integer(10**20), integer(0), integer(0)), "malformed"),
    "timezone offset int": (o(14, integer(5), NONE), "malformed time zone offset"),
    "timezone 25 hours": (o(14, call("o", integer(13), integer(1), integer(3600), integer(0)),
                            NONE), "malformed"),
    "timezone long name": (o(14, call("o", integer(13), integer(0), integer(60), integer(0)),
                             text("x" * 65)), "malformed time zone name"),
    "Decimal of 100,000 digits": (o(15, text("1" * 100_000)), "malformed Decimal"),
    "Decimal of garbage": (o(15, text("1.2.3")), "malformed"),
    "Decimal of bytes": (o(15, b"C\x011"), "malformed Decimal"),
    "Decimal of an int": (o(15, integer(5)), "malformed Decimal"),
    "Fraction of 10**100000": (o(16, integer(10**100_000), integer(1)), "too large"),
    "Fraction huge denominator": (o(16, integer(1), integer(3**20000)), "too large"),
    "Fraction zero denominator": (o(16, integer(1), integer(0)), "malformed Fraction"),
    "Fraction negative denominator": (o(16, integer(1), integer(-1)), "malformed Fraction"),
    "Fraction of a str (the old 44-byte attack)": (o(16, text("1e20000000"), integer(1)),
                                                   "malformed Fraction"),
    "Fraction of floats": (o(16, b"G" + bytes(8), integer(1)), "malformed Fraction"),
    "UUID too large": (o(17, integer(2**128)), "malformed UUID"),
    "UUID negative": (o(17, integer(-1)), "malformed UUID"),
    "UUID of a str": (o(17, text("12345678123456781234567812345678")), "malformed UUID"),
    "deque of a list": (o(18, EMPTY_LIST, NONE), "malformed deque items"),
    "deque negative maxlen": (o(18, EMPTY_TUPLE, integer(-1)), "malformed"),
    "deque maxlen str": (o(18, EMPTY_TUPLE, text("1")), "malformed deque maxlen"),
    "OrderedDict bad pairs": (o(19, integer(1) + TUPLE1 + TUPLE1), "malformed"),
    "OrderedDict of a dict": (o(19, EMPTY_DICT), "malformed"),
    "defaultdict eval factory": (o(20, text("eval"), EMPTY_TUPLE), "defaultdict factory"),
    "defaultdict dotted factory": (o(20, text("builtins.eval"), EMPTY_TUPLE),
                                   "defaultdict factory"),
    "defaultdict class factory": (o(20, call("o", integer(1), text("builtins.KeyError")),
                                    EMPTY_TUPLE), "defaultdict factory"),
    "Counter of a str": (o(21, text("abc")), "malformed Counter"),
    "ChainMap of lists": (o(22, EMPTY_LIST, TUPLE1), "malformed ChainMap"),
    "path kind os": (o(23, text("os"), text("/")), "malformed path kind"),
    "path of an int": (o(23, text("PurePosixPath"), integer(1)), "malformed path"),
    "ip host name": (o(24, text("IPv4Address"), text("localhost")), "malformed"),
    "ip kind socket": (o(24, text("socket"), text("1.2.3.4")), "malformed IP address kind"),
    "ip too long": (o(24, text("IPv6Address"), text("1" * 65)), "malformed IP address"),
    "global name too long": (o(1, text("a." * 300 + "b")), "malformed global name"),
    "global of an int": (o(1, integer(5)), "malformed global name"),
    "u bad mode": (payload(call("u", text(f"{__name__}.Point"), integer(7), EMPTY_TUPLE, NONE,
                                NONE, NONE)), "malformed rebuild mode"),
    "u args list": (payload(call("u", text(f"{__name__}.Point"), integer(0), EMPTY_LIST,
                                 NONE, NONE, NONE)), "malformed constructor arguments"),
    "u name int": (payload(call("u", integer(1), integer(0), EMPTY_TUPLE, NONE, NONE, NONE)),
                   "malformed class name"),
    "e args str": (payload(call("e", text("builtins.KeyError"), text("x"), NONE)),
                   "malformed exception arguments"),
    "e state int keys": (payload(call("e", text("builtins.KeyError"), EMPTY_TUPLE,
                                      EMPTY_DICT + integer(1) + NONE + SETITEM)),
                         "malformed exception state"),
    "f args list": (payload(call("f", text("os.system"), EMPTY_LIST)), ""),
}


@pytest.mark.parametrize("data, match", BUILDER_ATTACKS.values(), ids=BUILDER_ATTACKS.keys())
def test_builder_arguments_are_checked(data, match, tripwires):
    refused(data, SerializationError, match)


GLOBALS = ["os.system", "posix.system", "builtins.eval", "builtins.exec", "builtins.getattr",
           "builtins.bytearray", "builtins.__import__", "builtins.type", "builtins.object",
           "fractions.Fraction", "decimal.Decimal", "collections.deque", "subprocess.Popen",
           "pickle.loads", "importlib.import_module", "pycos.net.location.Location",
           "pycos.proto.wiretypes.build_u", "pycos.proto._w.o", "pycos.Pycos",
           "pycos.serialize_allow", f"{__name__}.Point", f"{__name__}.helper",
           "sys.modules", "os.environ"]


@pytest.mark.parametrize("name", GLOBALS)
def test_globals_that_are_not_allowed_are_refused_by_every_builder(name, tripwires):
    true = text("true") + TUPLE1
    assert refused(o(1, text(name)), UnpicklingRefused).name == name
    refused(payload(call("u", text(name), integer(2), true, NONE, NONE, NONE)),
            UnpicklingRefused)
    refused(payload(call("u", text(name), integer(1), true, NONE, NONE, NONE)),
            UnpicklingRefused)
    refused(payload(call("u", text(name), integer(0), EMPTY_TUPLE, NONE, NONE, NONE)),
            UnpicklingRefused)
    refused(payload(call("f", text(name), true)), UnpicklingRefused)


@pytest.mark.parametrize("name", ["os.system", "builtins.eval", "builtins.exec"])
def test_exceptions_named_after_callables_build_nothing_but_remote_errors(name, tripwires):
    out = codec.decode(payload(call("e", text(name), text("true") + TUPLE1, NONE)))
    assert type(out) is RemoteError and out.type_name == name


def test_pycos_classes_named_directly_are_refused(tripwires):
    for module, name in [("pycos.net.location", "Location"), ("pycos.core.task", "Task"),
                         ("pycos", "Pycos")]:
        with pytest.raises(WireError, match="a global other than pycos's builders"):
            codec.decode(payload(global_(module, name), EMPTY_TUPLE, REDUCE))


def test_payload_cannot_set_attributes_on_an_allowed_class(tripwires):
    """Old attack: GLOBAL of an allowed class, then BUILD with {"attr": evil}. Every route the
    dialect leaves is tried; the class is unchanged afterwards."""
    serialize_allow(Target)
    before = dict(vars(Target))
    name = text(f"{__name__}.Target")
    evil = EMPTY_DICT + text("greeting") + text("pwned") + SETITEM
    attempts = [
        payload(global_(__name__, "Target"), evil, b"b"),  # STACK_GLOBAL + BUILD
        payload(call("o", integer(1), name), evil, b"b"),  # o(GLOBAL) + BUILD
        payload(call("o", integer(1), name), text("greeting"), text("pwned"), SETITEM),
        payload(call("u", name, integer(2), EMPTY_TUPLE, evil, NONE, NONE)),  # "call" a class
        payload(call("u", text(f"{__name__}.Target.__dict__"), integer(0), EMPTY_TUPLE, evil,
                     NONE, NONE)),
        payload(call("e", name, EMPTY_TUPLE, evil)),  # not an exception class
    ]
    for data in attempts:
        try:
            codec.decode(data)
        except SerializationError:
            pass
    # What the dialect does allow: a new instance with its own state, never the class.
    inst = codec.decode(payload(call("u", name, integer(0), EMPTY_TUPLE,
                                     EMPTY_DICT + text("greeting") + text("mine") + SETITEM
                                     + text("method") + NONE + SETITEM, NONE, NONE)))
    assert type(inst) is Target and inst.greeting == "mine" and inst.method is None
    slots = codec.decode(payload(call("u", name, integer(0), EMPTY_TUPLE,
                                      NONE + EMPTY_DICT + text("__class__")
                                      + call("o", integer(1), name) + SETITEM + TUPLE2,
                                      NONE, NONE)))
    assert type(slots) is Target
    assert dict(vars(Target)) == before and Target.greeting == "hello"
    assert Target().method() == "original"


def test_the_44_byte_fraction_of_the_issue_costs_nothing(tripwires):
    """pycos 4.12 unpickled ``Fraction('1e20000000')`` from 44 bytes: 20 s of CPU."""
    old = pickle.dumps(fractions.Fraction(1), 4).replace(b"\x8c\x011", b"\x8c\n1e20000000")
    assert len(old) < 64 and b"Fraction" in old
    refused(old, WireError, "a global other than pycos's builders")
    refused(o(16, text("1e20000000"), integer(1)), SerializationError, "malformed Fraction")
    start = time.process_time()
    value = codec.decode(o(15, text("1e20000000")))  # a Decimal that large is cheap to hold
    assert value == decimal.Decimal("1e20000000") and time.process_time() - start < 0.1


def test_the_32_byte_payload_asking_for_1_5_gib_allocates_nothing():
    data = b"\x80\x05\x96" + (3 << 29).to_bytes(8, "little") + b"."  # BYTEARRAY8 of 1.5 GiB
    old = b"\x80\x05\x8c\x08builtins\x8c\tbytearray\x93J\x00\x00\x00`\x85R."
    assert len(data) <= 32 and len(old) <= 32
    rss = _rss()
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    refused(data, WireError, "past the payload")
    refused(old, WireError, "a global other than pycos's builders")
    assert _rss() - rss < 64 * MiB
    assert (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - maxrss) * 1024 < 64 * MiB


def _rss() -> int:
    try:
        import psutil
    except ImportError:  # pragma: no cover
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return int(psutil.Process().memory_info().rss)


def test_decoding_never_calls_a_module_getattr(monkeypatch, tripwires):
    """Naming an exception makes the decoder look its class up; the lookup must not run a
    module's ``__getattr__`` (PEP 562), which imports modules on demand (``pycos.netpycos``
    through ``pycos.__getattr__``, multiprocessing through ``concurrent.futures``)."""
    looked_up: list[str] = []
    lazy = types.ModuleType("json._pycos_lazy")

    def module_getattr(name: str) -> Any:
        looked_up.append(name)
        return ValueError

    lazy.__getattr__ = module_getattr  # type: ignore[method-assign]
    monkeypatch.setitem(sys.modules, "json._pycos_lazy", lazy)
    out = codec.decode(payload(call("e", text("json._pycos_lazy.Lazy"), EMPTY_TUPLE, NONE)))
    try:
        codec.decode(o(1, text("json._pycos_lazy.Lazy")))
    except UnpicklingRefused:
        pass
    assert looked_up == []
    assert type(out) is RemoteError


@pytest.mark.parametrize("name", ["os.sep", "json.loads", "builtins.print", "sys.modules",
                                  "pycos.errors.__name__"])
def test_an_exception_name_must_name_an_exception_class(name, tripwires):
    """Whatever else a module holds under that name arrives as a RemoteError standing for
    it; nothing is called or imported."""
    out = codec.decode(payload(call("e", text(name), text("x") + TUPLE1, NONE)))
    assert type(out) is RemoteError and out.type_name == name and out.message == "x"


# ---------------------------------------------------------------- cost of what is accepted
def memoized_builder(name: str) -> bytes:
    """The builder in memo 2 (module, name and builder memoized, as pickle writes them)."""
    return text("pycos.proto._w") + MEMOIZE + text(name) + MEMOIZE + STACK_GLOBAL + MEMOIZE


def many(item: bytes, size: int) -> bytes:
    """A list of as many ``item`` as fit in about ``size`` bytes."""
    return payload(EMPTY_LIST, MARK, item * (size // len(item)), APPENDS)


def deep_lists(size: int) -> bytes:
    one = EMPTY_LIST * 999 + b"a" * 998  # 999 nested lists: allowed
    return many(one, size)


COSTLY = {
    "short strings": lambda n: many(text("ab"), n),
    "small ints": lambda n: many(integer(7), n),
    "floats": lambda n: many(b"G" + bytes(8), n),
    "empty lists": lambda n: many(EMPTY_LIST, n),
    "empty dicts": lambda n: many(EMPTY_DICT, n),
    "deep-but-allowed nesting": deep_lists,
    "memo references": lambda n: payload(EMPTY_LIST, MEMOIZE, POP, EMPTY_LIST, MARK,
                                         get(0) * (n // 2), APPENDS),
}
#: Denser than the bound allows: one byte of payload that makes a 216-byte set, two that make
#: a frozenset, five that call a builder again on memoized arguments (a 760-byte deque, a
#: RemoteError copying a 4 KiB message). No decoder of CPython objects can build these within
#: the bound: they are refused, by the check (plain values) or by the builders' budget.
TOO_DENSE = {
    "empty sets": lambda n: many(EMPTY_SET, n),
    "empty frozensets": lambda n: many(MARK + FROZENSET, n),
    "memoized builder calls (deques)": lambda n: payload(
        memoized_builder("o"), MARK, integer(18), EMPTY_TUPLE, NONE, TUPLE, MEMOIZE, POP, POP,
        EMPTY_LIST, MARK, (get(2) + get(3) + REDUCE) * (n // 5), APPENDS),
    "memoized e() calls (RemoteError)": lambda n: payload(
        memoized_builder("e"), MARK, text("nosuch.Error"), text("x" * 4096), TUPLE1, NONE,
        TUPLE, MEMOIZE, POP, POP, EMPTY_LIST, MARK, (get(2) + get(3) + REDUCE) * (n // 5),
        APPENDS),
}


def _decode_measured(data: bytes) -> tuple[Any, SerializationError | None, int, float]:
    """(value, refusal, peak bytes, CPU seconds) of decoding ``data``."""
    tracemalloc.start()
    start = time.process_time()
    value, refusal = None, None
    try:
        try:
            value = codec.decode(data)
        except SerializationError as exc:
            refusal = exc
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return value, refusal, peak, time.process_time() - start


@pytest.mark.parametrize("make", COSTLY.values(), ids=COSTLY.keys())
def test_decoding_allocates_a_small_multiple_of_the_payload(make):
    """SPEC §3.3: "the memory it allocates is at most a small multiple of the frame's size".
    Large payloads that the dialect accepts, each as dense in objects as an attacker can
    make them."""
    data = make(200_000)
    assert wirecheck.check_fast(data) is None  # accepted: this is about cost, not refusal
    value, refusal, peak, elapsed = _decode_measured(data)
    assert refusal is None, refusal
    del value
    ratio = peak / len(data)
    assert ratio <= MAX_BYTES_PER_PAYLOAD_BYTE, (
        f"{len(data)} bytes of payload allocated {peak} bytes ({ratio:.0f} per byte)")
    assert elapsed < TIME_LIMIT


@pytest.mark.parametrize("make", TOO_DENSE.values(), ids=TOO_DENSE.keys())
def test_payloads_denser_than_the_bound_are_refused_within_it(make):
    """What no decoder could build within the bound is refused, and refusing it stays within
    the bound too (the builders' budget stops them before they allocate past it)."""
    data = make(200_000)
    value, refusal, peak, elapsed = _decode_measured(data)
    assert value is None and refusal is not None, "decoded"
    assert "bytes per byte of payload" in str(refusal) or "fixed multiple of its size" in str(
        refusal), str(refusal)
    ratio = peak / len(data)
    assert ratio <= MAX_BYTES_PER_PAYLOAD_BYTE, (
        f"{len(data)} bytes of payload allocated {peak} bytes ({ratio:.0f} per byte)")
    assert elapsed < TIME_LIMIT


def test_the_builders_budget_counts_what_each_call_copies():
    """A builder call that copies a memoized container (a Counter of 10,000 pairs, five
    bytes a call) is charged for the copy: refused long before the copies add up."""
    pairs = MARK + b"".join(integer(i) + NONE + TUPLE2 for i in range(10_000)) + TUPLE
    data = payload(memoized_builder("o"), MARK, integer(21), pairs, TUPLE, MEMOIZE, POP, POP,
                   EMPTY_LIST, MARK, (get(2) + get(3) + REDUCE) * 2_000, APPENDS)
    value, refusal, peak, _elapsed = _decode_measured(data)
    assert refusal is not None and "fixed multiple of its size" in str(refusal)
    assert peak <= MAX_BYTES_PER_PAYLOAD_BYTE * len(data) + MiB
    assert len(codec.decode(payload(call("o", integer(21), pairs)))) == 10_000  # once is fine


@pytest.mark.parametrize("fields", [
    (), ("abc", 1, 2.5, None), ((1, 2), [3], {4: 5}, {6}, frozenset({7})), (b"xy", bytearray(3)),
    (memoryview(b"abcd"), pickle.PickleBuffer(b"abcdef")), ("é" * 10, 2**100, Point(1, 2)),
])
def test_compiled_and_python_charges_agree(fields):
    """The builders' charge, compiled and in Python: the same bytes off the same budget, and
    nothing at all outside a decode."""
    spent = []
    for charge in {wirecost.charge, wirecost._charge}:
        with wirecost.budget(10**6):
            charge(100, fields)
            spent.append(10**6 - wirecost.decode_budget.get()[0])  # type: ignore[index]
        charge(10**12, fields)  # no budget: nothing
    assert len(set(spent)) == 1 and spent[0] == 100 + wirecost.weigh(fields)
    with wirecost.budget(50), pytest.raises(SerializationError, match="fixed multiple"):
        wirecost.charge(51)


def test_honest_values_near_the_bound_are_refused_when_encoded():
    """The sender checks what the receiver will: a value that would cost more than the bound
    to decode (tens of thousands of empty sets) is refused by ``encode``, before sending."""
    with pytest.raises(SerializationError, match="bytes per byte of payload"):
        codec.encode([set() for _ in range(20_000)])
    assert len(rt([set() for _ in range(200)])) == 200  # a few are fine


def doubling(levels: int) -> bytes:
    """Pushes a list of two references to a list of two references to … (``levels`` deep):
    ``levels * 9`` bytes whose text is ``2**levels`` items long."""
    out = EMPTY_LIST + MEMOIZE
    for i in range(levels):
        out += POP + EMPTY_LIST + MARK + get(i) + get(i) + APPENDS + MEMOIZE
    return out


@pytest.mark.parametrize("attack", [
    pytest.param(lambda d: call("e", text("nosuch.Boom"), d + TUPLE1, NONE), id="e-one-arg"),
    pytest.param(lambda d: call("e", text("nosuch.Boom"), d + d + TUPLE2, NONE),
                 id="e-two-args"),
    pytest.param(lambda d: call("o", d), id="o-code"),  # "unknown wire type ..." message
    pytest.param(lambda d: call("o", integer(32), EMPTY_LIST + MARK + text("a") + d + TUPLE2
                                + APPENDS), id="numpy-dtype",
                 marks=pytest.mark.skipif(np is None, reason="numpy is not installed")),
])
def test_error_messages_and_remote_errors_do_not_expand_shared_references(attack):
    """A few hundred bytes of shared references have an exponentially long ``repr``; building
    an error message or a RemoteError's text from it must not print it all (with 18 levels,
    as here, that is megabytes; with 40, terabytes)."""
    data = payload(attack(doubling(18)))
    assert len(data) < 400
    tracemalloc.start()
    start = time.process_time()
    try:
        try:
            codec.decode(data)
        except SerializationError:
            pass
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < MiB, f"{len(data)} bytes of payload allocated {peak} bytes"
    assert time.process_time() - start < TIME_LIMIT


# ---------------------------------------------------------------- hypothesis
@settings(HYPOTHESIS, max_examples=CASES_ROUNDTRIP)
@given(value=VALUES)
def test_generated_values_round_trip_exactly(value):
    assert same(rt(value), value)


def decode_or_refuse(data: bytes) -> None:
    try:
        codec.decode(data)
    except SerializationError as exc:
        event(f"refused: {type(exc).__name__}")
    else:
        event("decoded")


@settings(HYPOTHESIS, max_examples=CASES_ARBITRARY)
@given(data=st.binary(max_size=300) | st.binary(max_size=300).map(
    lambda b: b"\x80\x05" + b + b"."))
def test_decode_of_arbitrary_bytes_only_raises_serialization_errors(data):
    decode_or_refuse(data)


@settings(HYPOTHESIS, max_examples=CASES_MUTATED)
@given(value=VALUES, edits=EDITS)
def test_decode_of_altered_payloads_only_raises_serialization_errors(value, edits):
    decode_or_refuse(mutate(codec.encode(value), edits))


NAMES = ["builtins.KeyError", "builtins.OSError", "builtins.UnicodeDecodeError", "os.system",
         f"{__name__}.Point", "datetime.timezone", "pycos.errors.RemoteError", "IPv4Address",
         "IPv6Network", "PurePosixPath", "WindowsPath", "list", "int", "1.5", "NaN", "1e999",
         "<f8", "O", "(3,)i4", "UTC", "", "x" * 70]


def builder_args(children: st.SearchStrategy[bytes]) -> st.SearchStrategy[bytes]:
    """Bytes pushing one argument: a tuple, list or dict of others, or a builder call."""
    return st.one_of(
        st.lists(children, max_size=4).map(lambda xs: MARK + b"".join(xs) + TUPLE),
        st.lists(children, max_size=4).map(lambda xs: EMPTY_LIST + MARK + b"".join(xs)
                                           + APPENDS),
        st.lists(st.tuples(st.sampled_from(NAMES).map(text), children), max_size=3).map(
            lambda kv: EMPTY_DICT + b"".join(k + v + SETITEM for k, v in kv)),
        st.tuples(st.sampled_from("ouef"), st.lists(children, max_size=6)).map(
            lambda t: call(t[0], *t[1])),
    )


ARG = st.recursive(
    st.one_of(st.integers(0, 40).map(integer), st.integers().map(integer),
              st.sampled_from(NAMES).map(text), st.sampled_from([NONE, NEWTRUE, EMPTY_TUPLE]),
              st.floats().map(lambda f: b"G" + struct.pack(">d", f)),
              st.binary(max_size=16).map(lambda b: b"C" + bytes([len(b)]) + b)),
    builder_args, max_leaves=6)
CALLS = st.tuples(st.sampled_from("ouef"), st.integers(0, 40), st.lists(ARG, max_size=7)).map(
    lambda t: payload(call(t[0], integer(t[1]), *t[2]) if t[0] == "o"
                      else call(t[0], *t[2])))


@settings(HYPOTHESIS, max_examples=CASES_CALLS)
@given(data=CALLS)
def test_random_builder_calls_only_raise_serialization_errors(data):
    """Every builder, with arguments of every type and shape (nested calls included): a value
    of an allowed type, or a SerializationError."""
    assert wirecheck.check_fast(data) is None
    with mock.patch.object(os, "system", side_effect=AssertionError("os.system ran")):
        decode_or_refuse(data)
