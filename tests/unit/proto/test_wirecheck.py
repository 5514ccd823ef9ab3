"""The checker of the wire's pickle dialect (``pycos.proto.wirecheck`` and the compiled
``pycos.proto._wirecheck``), attacked opcode by opcode.

Every rule of the dialect is tried from the attacker's side, against both checkers and through
``codec.decode``: globals other than the four builders (``os.system``, ``builtins.eval``,
``builtins.bytearray``, ``fractions.Fraction``, pycos's own classes), every opcode outside the
dialect (GLOBAL, BUILD, INST, OBJ, NEWOBJ, EXT, PERSID, PUT and a ``LONG_BINPUT`` of 2**28,
the text opcodes …), REDUCE of anything but a builder, a builder used as a value or a
builder's result used as a container, lengths beyond the payload (a 32-byte payload asking for
a 1.5 GiB bytearray), and nesting: 2,000,000 levels of tuples, lists, frozensets, and of
deques / slices built by builders — refused quickly, never a crash. Each refusal is a
``WireError`` (or, from the compiled checker, its reason) and nothing else.

Hypothesis checks that the Python reference and the compiled checker agree — both accept or
both refuse, at the same byte — on arbitrary bytes, on opcode soup, and on valid payloads with
bytes inserted, deleted or flipped, and on payloads reusing memoized containers (10,000
cases, derandomized).
"""

from __future__ import annotations

import pickle
import re
import time
import tracemalloc

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from proto_helpers import (
    ADDITEMS,
    APPEND,
    APPENDS,
    BUILD,
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
    POP_MARK,
    REDUCE,
    SETITEM,
    SETITEMS,
    STACK_GLOBAL,
    STOP,
    TUPLE,
    TUPLE1,
    TUPLE2,
    TUPLE3,
    VALUES,
    builder,
    call,
    get,
    global_,
    integer,
    mutate,
    payload,
    text,
)

import pycos.proto.codec as codec
from pycos.errors import SerializationError
from pycos.proto import wirecheck
from pycos.proto.wirecheck import DEFAULT_MAX_DEPTH, WireError

_wirecheck = pytest.importorskip("pycos.proto._wirecheck")

FAST = settings(deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.filter_too_much])
#: Hypothesis cases per differential test (their sum is reported in the module docstring).
CASES_RAW, CASES_SOUP, CASES_MUTATED, CASES_MEMO = 2000, 3000, 3000, 2000
#: CPU seconds any single check or refusal may take (it is microseconds in practice).
TIME_LIMIT = 1.0


def py_check(data: bytes, max_depth: int = DEFAULT_MAX_DEPTH, buffers: int = 0) -> str | None:
    """The Python reference, with the compiled checker's interface (None or the reason)."""
    try:
        wirecheck.check(data, max_depth, buffers)
    except WireError as exc:
        return str(exc)
    return None


def c_check(data: bytes, max_depth: int = DEFAULT_MAX_DEPTH, buffers: int = 0) -> str | None:
    return _wirecheck.check(data, max_depth, buffers)  # type: ignore[no-any-return]


CHECKERS = {"python": py_check, "compiled": c_check}


def refusal_position(reason: str) -> int:
    head = "payload refused at byte "
    assert reason.startswith(head), reason
    return int(reason[len(head):].split(":")[0])


def refused_by_all(data: bytes, why: str, max_depth: int = DEFAULT_MAX_DEPTH,
                   buffers: int = 0) -> int:
    """Both checkers and ``codec.decode`` refuse ``data``, saying ``why``, at the same byte,
    quickly; nothing else is raised. Returns the byte position."""
    positions = []
    for name, check in CHECKERS.items():
        start = time.process_time()
        reason = check(data, max_depth, buffers)
        assert time.process_time() - start < TIME_LIMIT, name
        assert reason is not None, f"{name} checker accepted it"
        assert why in reason, (name, reason)
        positions.append(refusal_position(reason))
    assert positions[0] == positions[1], positions
    if buffers == 0:
        with pytest.raises(WireError, match=re.escape(why)):
            codec.decode(data, max_depth=max_depth)
    return positions[0]


def accepted_by_all(data: bytes, max_depth: int = DEFAULT_MAX_DEPTH, buffers: int = 0) -> None:
    for name, check in CHECKERS.items():
        assert check(data, max_depth, buffers) is None, name


def memoized_builder(name: str) -> bytes:
    """Push builder ``name`` and leave it in memo 0..2 (module, name, builder), as pickle does."""
    return text("pycos.proto._w") + MEMOIZE + text(name) + MEMOIZE + STACK_GLOBAL + MEMOIZE


# ---------------------------------------------------------------- what is accepted
ACCEPTED_VALUES = [
    None, True, False, 0, -1, 255, 65536, -(2**31), 2**31, 2**1000, -(2**1000), 1.5, float("inf"),
    "", "é" * 300, b"", b"\x00" * 300, bytearray(b"abc"), (), (1,), (1, 2), (1, 2, 3),
    (1, 2, 3, 4), [], [1, [2, [3]]], {}, {"a": 1, 2: [3]}, set(), {1, 2}, frozenset(),
    frozenset({1, "a"}), [[]] * 3, ("shared",) * 4,
]


@pytest.mark.parametrize("value", ACCEPTED_VALUES, ids=repr)
@pytest.mark.parametrize("protocol", [4, 5])
def test_plain_pickles_of_builtin_values_are_in_the_dialect(value, protocol):
    if protocol == 4 and type(value) is bytearray:  # protocol 4 calls builtins.bytearray
        refused_by_all(pickle.dumps(value, protocol), "a global other than pycos's builders")
        return
    accepted_by_all(pickle.dumps(value, protocol))
    accepted_by_all(codec.encode(value))


def test_self_referencing_containers_are_in_the_dialect():
    loop: list = []
    loop.append(loop)
    accepted_by_all(pickle.dumps(loop, 5))
    out = codec.decode(pickle.dumps(loop, 5))
    assert out[0] is out


def test_builder_calls_are_in_the_dialect():
    accepted_by_all(payload(call("o", integer(5))))  # Ellipsis
    accepted_by_all(payload(memoized_builder("o"), MARK, integer(5), TUPLE, REDUCE, POP,
                            get(2), MARK, integer(6), TUPLE, REDUCE))
    assert codec.decode(payload(call("o", integer(5)))) is Ellipsis


def test_checkers_accept_bytes_bytearray_and_memoryview():
    data = pickle.dumps([1, "x"], 5)
    for form in (data, bytearray(data), memoryview(data)):
        accepted_by_all(form)
        assert codec.decode(form) == [1, "x"]


def test_checker_entry_points_agree():
    assert wirecheck.have_c_checker()
    assert wirecheck.check_fast(pickle.dumps(1, 5)) is None
    with pytest.raises(WireError, match="a global other than pycos's builders"):
        wirecheck.check_fast(pickle.dumps(print, 5))


# ---------------------------------------------------------------- framing of a payload
@pytest.mark.parametrize("data, why", [
    (b"", "PROTO 4 or 5"), (b"\x80", "PROTO 4 or 5"), (b"N.", "PROTO 4 or 5"),
    (b"\x80\x03N.", "PROTO 4 or 5"), (b"\x80\x06N.", "PROTO 4 or 5"),
    (b"\x80\x05N", "end with STOP"), (b"\x80\x05N.N", "end with STOP"),
    (b"\x80\x05N.N.", "not allowed"),  # a STOP before the end is an opcode like any other
    (b"\x80\x05.", "exactly one value"), (b"\x80\x05NN.", "exactly one value"),
    (b"\x80\x05(N.", "exactly one value"), (b"\x80\x05\x80\x05N.", "not allowed"),
    (b"\x80\x05\x95" + (100).to_bytes(8, "little") + b"N.", "FRAME runs past the payload"),
    (b"\x80\x05\x95\x01N.", "truncated FRAME"),
])
def test_malformed_framing_is_refused(data, why):
    refused_by_all(data, why)


# ---------------------------------------------------------------- globals
@pytest.mark.parametrize("module, name", [
    ("os", "system"), ("posix", "system"), ("builtins", "eval"), ("builtins", "exec"),
    ("builtins", "getattr"), ("builtins", "bytearray"), ("builtins", "__import__"),
    ("fractions", "Fraction"), ("decimal", "Decimal"), ("collections", "deque"),
    ("subprocess", "Popen"), ("pickle", "loads"), ("copyreg", "_reconstructor"),
    ("pycos.net.location", "Location"), ("pycos.proto.wiretypes", "build_u"),
    ("pycos.proto.wiretypes", "REGISTRY"), ("pycos.proto._w", "_types"),
    ("pycos.proto._w", "oo"), ("pycos.proto._w", "O"), ("pycos.proto._w", ""),
    ("pycos.proto._w ", "o"), ("pycos.proto", "_w"), ("pycos.proto._w.o", "o"),
])
def test_stack_global_naming_anything_but_a_builder_is_refused(module, name):
    refused_by_all(payload(global_(module, name)), "a global other than pycos's builders")
    # The text GLOBAL opcode is outside the dialect whatever it names.
    refused_by_all(payload(f"c{module}\n{name}\n".encode()), "not allowed")
    # ... also when called at once, the usual shape of an attack.
    refused_by_all(payload(global_(module, name), text("true"), TUPLE1, REDUCE),
                   "a global other than pycos's builders")


def test_stack_global_needs_two_strings():
    refused_by_all(payload(integer(1), text("o"), STACK_GLOBAL), "a global other")
    refused_by_all(payload(text("pycos.proto._w"), b"C\x01o", STACK_GLOBAL), "a global other")
    refused_by_all(payload(text("o"), STACK_GLOBAL), "STACK_GLOBAL without module and name")
    refused_by_all(payload(text("pycos.proto._w"), MARK, text("o"), STACK_GLOBAL),
                   "STACK_GLOBAL without module and name")


def test_builder_names_may_come_from_the_memo_but_must_still_be_builders():
    accepted_by_all(payload(text("pycos.proto._w"), MEMOIZE, text("o"), MEMOIZE, POP, POP,
                            get(0), get(1), STACK_GLOBAL, MARK, integer(5), TUPLE, REDUCE))
    refused_by_all(payload(text("os"), MEMOIZE, text("system"), MEMOIZE, POP, POP, get(0),
                           get(1), STACK_GLOBAL), "a global other")


@pytest.mark.parametrize("data", [
    b"\x80\x05cos\nsystem\n.",  # GLOBAL
    b"\x80\x02cbuiltins\neval\n.",
    b"\x80\x05cpycos.proto._w\no\n.",  # GLOBAL of a builder: only STACK_GLOBAL is the dialect
], ids=["os.system", "eval", "builder"])
def test_text_global_opcode_is_refused(data):
    why = "not allowed" if data[1] == 5 else "PROTO 4 or 5"
    refused_by_all(data, why)


# ---------------------------------------------------------------- forbidden opcodes
FORBIDDEN = {
    "BUILD": payload(EMPTY_DICT, EMPTY_DICT, BUILD),
    "INST": payload(MARK, b"ios\nsystem\n"),
    "OBJ": payload(MARK, call("o", integer(5)), b"o"),
    "NEWOBJ": payload(call("o", integer(5)), EMPTY_TUPLE, b"\x81"),
    "NEWOBJ_EX": payload(call("o", integer(5)), EMPTY_TUPLE, EMPTY_DICT, b"\x92"),
    "EXT1": payload(b"\x82\x01"), "EXT2": payload(b"\x83\x01\x00"),
    "EXT4": payload(b"\x84\x01\x00\x00\x00"),
    "PERSID": payload(b"Pid\n"), "BINPERSID": payload(text("id"), b"Q"),
    "PUT": payload(NONE, b"p0\n"), "BINPUT": payload(NONE, b"q\x00"),
    "LONG_BINPUT 2**28": payload(NONE, b"r" + (2**28).to_bytes(4, "little")),
    "GET": payload(NONE, MEMOIZE, b"g0\n"),
    "DUP": payload(EMPTY_LIST, b"2", APPEND),
    "INT": payload(b"I12\n"), "LONG": payload(b"L12L\n"), "FLOAT": payload(b"F1.5\n"),
    "STRING": payload(b"S'x'\n"), "UNICODE": payload(b"Vx\n"),
    "BINSTRING": payload(b"T\x01\x00\x00\x00x"), "SHORT_BINSTRING": payload(b"U\x01x"),
    "LIST": payload(MARK, b"l"), "DICT": payload(MARK, b"d"),
    "NEWOBJ on a builder": payload(builder("o"), EMPTY_TUPLE, b"\x81"),
}


@pytest.mark.parametrize("data", FORBIDDEN.values(), ids=FORBIDDEN.keys())
def test_opcodes_outside_the_dialect_are_refused(data):
    refused_by_all(data, "not allowed")


def test_long_binput_with_a_huge_index_allocates_nothing():
    data = FORBIDDEN["LONG_BINPUT 2**28"]
    tracemalloc.start()
    try:
        refused_by_all(data, "not allowed")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20


# ---------------------------------------------------------------- BUILD and REDUCE
def test_build_on_a_builder_or_its_result_is_refused():
    state = EMPTY_DICT + text("pwned") + NEWTRUE + SETITEM
    refused_by_all(payload(builder("u"), state, BUILD), "not allowed")
    refused_by_all(payload(call("o", integer(1), text("builtins.KeyError")), state, BUILD),
                   "not allowed")
    refused_by_all(payload(call("o", integer(18), EMPTY_TUPLE, NONE), state, BUILD),
                   "not allowed")


@pytest.mark.parametrize("target", [
    EMPTY_TUPLE, EMPTY_LIST, EMPTY_DICT, text("os.system"), integer(1), NONE,
    call("o", integer(5)),  # the result of a builder is not a builder
    EMPTY_SET,
], ids=["tuple", "list", "dict", "str", "int", "None", "builder result", "set"])
def test_reduce_of_anything_but_a_builder_is_refused(target):
    refused_by_all(payload(target, text("true"), TUPLE1, REDUCE),
                   "REDUCE of something other than a pycos builder")


@pytest.mark.parametrize("args", [EMPTY_LIST, EMPTY_DICT, text("x"), NONE, integer(5),
                                  builder("o")],
                         ids=["list", "dict", "str", "None", "int", "builder"])
def test_reduce_needs_a_tuple_of_arguments(args):
    refused_by_all(payload(builder("o"), args, REDUCE),
                   "REDUCE of something other than a pycos builder")


def test_reduce_needs_its_two_operands():
    refused_by_all(payload(EMPTY_TUPLE, REDUCE), "REDUCE without a callable and arguments")
    refused_by_all(payload(builder("o"), MARK, EMPTY_TUPLE, REDUCE),
                   "REDUCE without a callable and arguments")


def test_a_builder_is_never_a_value():
    b = builder("o")
    for data in (payload(b), payload(b, TUPLE1), payload(EMPTY_LIST, b, APPEND),
                 payload(EMPTY_DICT, text("k"), b, SETITEM), payload(MARK, b, FROZENSET),
                 payload(EMPTY_SET, MARK, b, ADDITEMS), payload(MARK, b, TUPLE),
                 payload(EMPTY_LIST, MARK, b, APPENDS)):
        reason = c_check(data)
        assert reason is not None and (
            "a builder used as a value" in reason or "exactly one value" in reason), reason
        assert py_check(data) is not None
        with pytest.raises(WireError):
            codec.decode(data)


@pytest.mark.parametrize("container, op", [
    (call("o", integer(18), EMPTY_TUPLE, NONE), integer(1) + APPEND),  # a deque
    (call("o", integer(19), EMPTY_TUPLE), text("k") + NONE + SETITEM),  # an OrderedDict
    (call("o", integer(21), EMPTY_TUPLE), MARK + text("k") + NONE + SETITEMS),  # a Counter
    (call("o", integer(1), text("builtins.KeyError")), text("k") + NONE + SETITEM),  # a class
    (call("o", integer(1), text("builtins.KeyError")), MARK + integer(1) + ADDITEMS),
    (call("o", integer(1), text("builtins.KeyError")), MARK + integer(1) + APPENDS),
], ids=["deque+APPEND", "OrderedDict+SETITEM", "Counter+SETITEMS", "class+SETITEM",
        "class+ADDITEMS", "class+APPENDS"])
def test_a_builder_result_is_never_the_target_of_item_opcodes(container, op):
    refused_by_all(payload(container, op), "items added to a container of another kind")


@pytest.mark.parametrize("data", [
    payload(EMPTY_DICT, integer(1), APPEND), payload(EMPTY_TUPLE, integer(1), APPEND),
    payload(text("s"), integer(1), APPEND), payload(EMPTY_LIST, text("k"), NONE, SETITEM),
    payload(EMPTY_SET, text("k"), NONE, SETITEM),
    payload(MARK, FROZENSET, MARK, integer(1), ADDITEMS),
    payload(EMPTY_LIST, MARK, integer(1), ADDITEMS), payload(EMPTY_DICT, MARK, NONE, APPENDS),
])
def test_items_only_go_into_containers_of_their_kind(data):
    refused_by_all(data, "items added to a container of another kind")


@pytest.mark.parametrize("data, why", [
    (payload(EMPTY_DICT, MARK, text("k"), SETITEMS), "odd number of items"),
    (payload(integer(1), APPEND), "without its container or items"),
    (payload(APPEND), "without its container or items"),
    (payload(EMPTY_LIST, MARK, integer(1), APPEND), "without its container or items"),
    (payload(EMPTY_LIST, APPENDS), "needs MARK"), (payload(TUPLE), "needs MARK"),
    (payload(FROZENSET), "needs MARK"), (payload(POP_MARK), "POP_MARK without MARK"),
    (payload(POP), "POP with nothing to pop"), (payload(NONE, MARK, POP, POP_MARK), "POP with"),
    (payload(MEMOIZE), "MEMOIZE with nothing to store"),
    (payload(NONE, MARK, MEMOIZE, POP_MARK), "MEMOIZE with nothing to store"),
    (payload(NONE, TUPLE2), "TUPLE of missing items"),
    (payload(NONE, MARK, NONE, TUPLE3, POP_MARK), "TUPLE of missing items"),
    (payload(get(0)), "never stored"), (payload(NONE, MEMOIZE, get(1)), "never stored"),
    (payload(b"j" + (2**28).to_bytes(4, "little")), "never stored"),
    (payload(b"h"), "truncated memo index"),
])
def test_stack_and_memo_rules(data, why):
    refused_by_all(data, why)


# ---------------------------------------------------------------- counted lengths
GiB = 1 << 30


@pytest.mark.parametrize("data", [
    payload(b"\x96" + (3 * GiB // 2).to_bytes(8, "little")),  # BYTEARRAY8 of 1.5 GiB
    payload(b"\x8e" + (2**62).to_bytes(8, "little") + b"x"),  # BINBYTES8
    payload(b"\x8e" + (2**64 - 1).to_bytes(8, "little")),
    payload(b"\x8d" + GiB.to_bytes(8, "little")),  # BINUNICODE8
    payload(b"X" + (2**32 - 1).to_bytes(4, "little")),  # BINUNICODE
    payload(b"B" + (2**31).to_bytes(4, "little")),  # BINBYTES
    payload(b"C\xff" + b"x" * 20),  # SHORT_BINBYTES
    payload(b"\x8c\x05abcd"),  # SHORT_BINUNICODE one byte short (STOP is not content)
    payload(b"\x8b" + (2**31 - 1).to_bytes(4, "little")),  # LONG4
    payload(b"\x8a\xff\x01"),  # LONG1
], ids=["BYTEARRAY8-1.5GiB", "BINBYTES8-2**62", "BINBYTES8-max", "BINUNICODE8", "BINUNICODE",
        "BINBYTES", "SHORT_BINBYTES", "SHORT_BINUNICODE", "LONG4", "LONG1"])
def test_lengths_beyond_the_payload_are_refused_without_allocating(data):
    assert len(data) <= 32
    tracemalloc.start()
    try:
        refused_by_all(data, "past the payload")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20


@pytest.mark.parametrize("data, why", [
    (payload(b"\x8b" + (2**32 - 1).to_bytes(4, "little")), "length"),  # LONG4 of -1 bytes
    (payload(b"J\x01\x02"), "truncated argument"), (payload(b"G" + bytes(7)), "truncated"),
    (payload(b"\x8e\x01"), "truncated length"), (payload(b"X\x01\x00"), "truncated length"),
])
def test_truncated_arguments_are_refused(data, why):
    refused_by_all(data, why)


# ---------------------------------------------------------------- out-of-band buffers
def test_out_of_band_buffers_only_when_supplied():
    data = payload(b"\x97", b"\x98")  # NEXT_BUFFER, READONLY_BUFFER
    accepted_by_all(data, buffers=1)
    refused_by_all(data, "not supplied", buffers=0)
    refused_by_all(payload(b"\x97", b"\x97", TUPLE2), "not supplied", buffers=1)
    refused_by_all(payload(text("x"), b"\x98"), "READONLY_BUFFER of something other")
    with pytest.raises(WireError, match="not supplied"):
        codec.decode(data, buffers=[])


# ---------------------------------------------------------------- nesting
LEVELS = 2_000_000
MiB = 1 << 20


def nested(kind: str, levels: int) -> bytes:
    """``levels`` containers of ``kind``, each holding the next."""
    if kind == "tuple":
        return payload(EMPTY_TUPLE, TUPLE1 * levels)
    if kind == "mark-tuple":
        return payload(MARK * levels, TUPLE * levels)
    if kind == "list":
        return payload(EMPTY_LIST * (levels + 1), APPEND * levels)
    if kind == "dict":
        return payload((EMPTY_DICT + NONE) * levels, EMPTY_DICT, SETITEM * levels)
    if kind == "frozenset":
        return payload(MARK * (levels + 1), FROZENSET * (levels + 1))
    if kind == "deque":  # o(18, (inner,), None) all the way down: nesting through a builder
        return payload(memoized_builder("o"), POP, (get(2) + integer(18)) * levels,
                       get(2), integer(18), EMPTY_TUPLE, NONE, TUPLE3, REDUCE,
                       (TUPLE1 + NONE + TUPLE3 + REDUCE) * levels)
    if kind == "slice":  # o(4, inner, None, None): slice(slice(...))
        return payload(memoized_builder("o"), POP, (get(2) + MARK + integer(4)) * levels,
                       NONE, (NONE + NONE + TUPLE + REDUCE) * levels)
    raise AssertionError(kind)


NESTINGS = ["tuple", "mark-tuple", "list", "dict", "frozenset", "deque", "slice"]


#: Nesting depth of ``nested(kind, levels)``, as the dialect counts it.
DEPTH_OF = {"tuple": lambda n: n + 1, "mark-tuple": lambda n: n, "list": lambda n: n + 1,
            "dict": lambda n: n + 1, "frozenset": lambda n: n + 1,
            "deque": lambda n: 3 * n + 3, "slice": lambda n: 2 * n}


@pytest.mark.parametrize("kind", NESTINGS)
def test_two_million_levels_are_refused_quickly(kind):
    """A few MiB of nesting: refused by the compiled checker and by ``decode`` before a single
    object is built (no deep structure that would crash the interpreter when freed)."""
    data = nested(kind, LEVELS)
    assert len(data) < 24 * MiB
    for check in (c_check, lambda d: _decode_reason(d)):
        start = time.process_time()
        reason = check(data)
        assert time.process_time() - start < TIME_LIMIT
        assert reason is not None and "nesting deeper than" in reason, reason


def _decode_reason(data: bytes) -> str | None:
    try:
        codec.decode(data)
    except WireError as exc:
        return str(exc)
    return None


@pytest.mark.parametrize("kind", NESTINGS)
def test_deep_nesting_is_refused_by_the_python_reference(kind):
    """The reference checker (used where no C compiler was available) refuses the same."""
    data = nested(kind, LEVELS // 10)
    start = time.process_time()
    reason = py_check(data)
    assert time.process_time() - start < 10 * TIME_LIMIT
    assert reason is not None and "nesting deeper than" in reason
    assert refusal_position(reason) == refusal_position(c_check(data))


@pytest.mark.parametrize("kind", NESTINGS)
@pytest.mark.parametrize("max_depth", [7, 50, 301])
def test_the_depth_limit_is_exact(kind, max_depth):
    """The deepest accepted payload and the shallowest refused one, for every way of nesting:
    exactly at ``max_depth``."""
    depth = DEPTH_OF[kind]
    levels = max(n for n in range(max_depth + 1) if depth(n) <= max_depth)
    accepted_by_all(nested(kind, levels), max_depth)
    refused_by_all(nested(kind, levels + 1), "nesting deeper than", max_depth)


def test_decoded_nesting_at_the_limit_is_usable():
    data = nested("tuple", DEFAULT_MAX_DEPTH - 1)
    value = codec.decode(data)
    depth = 0
    while value:
        value = value[0]
        depth += 1
    assert depth == DEFAULT_MAX_DEPTH - 1
    hash(codec.decode(data))  # deep hashing stays within the C stack


def memo_chain(levels: int, kind: bytes = EMPTY_LIST, add: bytes = APPEND) -> bytes:
    """Lists nested ``levels`` deep, built so that the stack never holds more than two: each
    new list is memoized, appended to the previous one, and fetched back from the memo."""
    parts = [kind, MEMOIZE]
    for i in range(1, levels):
        item = kind + MEMOIZE
        if add == SETITEM:
            parts.append(integer(0) + item + add + POP + get(i))
        else:
            parts.append(item + add + POP + get(i))
    parts.append(POP + get(0))
    return payload(*parts)


def grown_after_wrapping(levels: int) -> bytes:
    """A list is put inside 999 tuples while it is empty (depth 1000: allowed), then filled
    through the memo with a chain of ``levels`` more lists: the tuples were counted when the
    list was shallow."""
    wraps = DEFAULT_MAX_DEPTH - 1
    fill = b"".join(EMPTY_LIST + MEMOIZE + APPEND + POP + get(2 + i) for i in range(levels))
    # memo 0: the list; memo 1: the outermost tuple; memo 2...: the chain.
    return payload(EMPTY_LIST, MEMOIZE, TUPLE1 * wraps, MEMOIZE, POP, get(0), fill, POP, get(1))


@pytest.mark.parametrize("make", [
    lambda n: memo_chain(n),
    lambda n: memo_chain(n, EMPTY_DICT, SETITEM),
    grown_after_wrapping,
], ids=["list-chain", "dict-chain", "grown-after-wrapping"])
def test_the_memo_cannot_be_used_to_nest_deeper_than_the_limit(make):
    """The dialect promises nesting of at most ``max_depth``: a list taken back from the memo
    after it was filled must count with its real depth, not the depth it had when memoized."""
    data = make(5 * DEFAULT_MAX_DEPTH)
    for name, check in CHECKERS.items():
        assert check(data) is not None, f"{name} checker accepted nesting of 5000 levels"
    assert refused_by_all(data, "nesting deeper than") == len(data) - 1  # checked as a whole
    with pytest.raises(WireError):
        codec.decode(data)


@pytest.mark.parametrize("make", [
    lambda n: memo_chain(n),
    lambda n: memo_chain(n, EMPTY_DICT, SETITEM),
    grown_after_wrapping,
], ids=["list-chain", "dict-chain", "grown-after-wrapping"])
def test_memo_nesting_is_exact_at_the_limit(make):
    """Measured on what the payload builds: a chain of lists grown through the memo is
    accepted up to the limit exactly, and refused one level past it."""
    if make is grown_after_wrapping:
        accepted_by_all(make(0))
        refused_by_all(make(1), "nesting deeper than")
        return
    accepted_by_all(make(50), max_depth=50)
    refused_by_all(make(51), "nesting deeper than", max_depth=50)


def test_cycles_through_the_memo_are_still_accepted():
    """Pickle fills a container after taking it back from the memo only for cycles: those
    still pass the whole-value check, whatever their size."""
    nodes: list = [{"id": i} for i in range(2000)]
    for node in nodes:
        node["all"] = nodes
    tree: dict = {"children": []}
    for i in range(200):
        tree["children"].append({"parent": tree, "kids": [{"parent": tree, "n": i}]})
    for value in (nodes, tree):
        data = codec.encode(value)
        accepted_by_all(data)
        assert codec.decode(data) is not None


def test_memo_chain_really_nests_as_deep_as_it_says():
    """The attack above is real: with a small chain, the decoded value has that depth."""
    value = codec.decode(memo_chain(10))
    depth = 0
    while value:
        (value,) = value
        depth += 1
    assert depth == 9


# ---------------------------------------------------------------- memory budget
DENSE = {
    "empty sets": EMPTY_SET,
    "empty frozensets": MARK + FROZENSET,
    "sets and lists": EMPTY_SET + EMPTY_LIST + EMPTY_SET,
    "frozensets of one": MARK + NONE + FROZENSET,
    "memoized sets": EMPTY_SET + MEMOIZE,
}


@pytest.mark.parametrize("item", DENSE.values(), ids=DENSE.keys())
@pytest.mark.parametrize("count", [100, 1_000, 10_000, 100_000])
def test_payloads_denser_than_the_budget_are_refused_by_both_at_the_same_byte(item, count):
    """Values that would take more than COST_PER_BYTE bytes of memory per byte of payload
    are refused where the payload crosses the line, by both checkers alike (small payloads
    stay within the fixed allowance)."""
    data = payload(EMPTY_LIST, MARK, item * count, APPENDS)
    py, c = py_check(data), c_check(data)
    assert (py is None) == (c is None), (py, c)
    if py is None:
        assert len(data) * wirecheck.COST_PER_BYTE < 300 * count * len(item)
        return
    assert "bytes per byte of payload" in py and refusal_position(py) == refusal_position(c)
    refused_by_all(data, "bytes per byte of payload")


@pytest.mark.parametrize("data", [
    pickle.dumps([1, "x", {"k": (2.5,)}], 5),
    payload(call("o", integer(5))),
    payload(memoized_builder("o"), MARK, integer(5), TUPLE, REDUCE, POP, get(2), MARK,
            integer(6), TUPLE, REDUCE),
    payload(b"\x97", b"\x98"),
], ids=["plain", "one call", "two calls", "buffer"])
def test_both_checkers_leave_the_builders_the_same_budget(data):
    """``scan``: None when the payload calls no builder, else what is left of its budget for
    them, the same from both checkers."""
    py = wirecheck.scan(data, DEFAULT_MAX_DEPTH, 1)
    assert _wirecheck.scan(data, DEFAULT_MAX_DEPTH, 1) == py
    assert (py is None) == (b"R" not in data[2:])
    if py is not None:
        assert 0 < py < wirecheck.COST_PER_BYTE * len(data) + wirecheck.COST_SLACK


# ---------------------------------------------------------------- checker arguments
def test_checker_arguments():
    with pytest.raises(ValueError, match="max_depth"):
        _wirecheck.check(b"\x80\x05N.", 0, 0)
    with pytest.raises(TypeError):
        _wirecheck.check("text", 10, 0)
    with pytest.raises(TypeError):
        _wirecheck.check(b"\x80\x05N.", 10)


# ---------------------------------------------------------------- hypothesis: the two agree
def assert_agree(data: bytes, max_depth: int = DEFAULT_MAX_DEPTH, buffers: int = 0) -> None:
    py, c = py_check(data, max_depth, buffers), c_check(data, max_depth, buffers)
    event("both accept" if py is None and c is None else "both refuse" if py and c else "DIFFER")
    assert (py is None) == (c is None), (data, py, c)
    if py is not None:
        assert refusal_position(py) == refusal_position(c), (data, py, c)
        with pytest.raises(SerializationError):
            codec.decode(data, max_depth=max_depth)


SINGLE_OPS = [NONE, NEWTRUE, EMPTY_TUPLE, EMPTY_LIST, EMPTY_DICT, EMPTY_SET, MARK, POP,
              POP_MARK, TUPLE1, TUPLE2, TUPLE3, TUPLE, APPEND, APPENDS, SETITEM, SETITEMS,
              ADDITEMS, FROZENSET, STACK_GLOBAL, REDUCE, MEMOIZE, BUILD, STOP, b"\x97", b"\x98"]
COUNTED_OPS = [b"\x8e", b"\x96", b"B", b"X", b"\x8d", b"\x8b", b"\x8a", b"C", b"\x8c", b"\x95",
               b"j", b"h", b"J", b"K", b"M", b"G"]
TOKEN = st.one_of(
    st.sampled_from(SINGLE_OPS),
    st.integers(-(2**70), 2**70).map(integer),
    st.sampled_from(["pycos.proto._w", "o", "u", "e", "f", "x", "os", "system"]).map(text),
    st.integers(0, 8).map(get),
    st.sampled_from("ouef").map(builder),
    st.tuples(st.sampled_from(COUNTED_OPS), st.binary(max_size=9)).map(lambda t: t[0] + t[1]),
    st.binary(min_size=1, max_size=1),
)
SOUP = st.tuples(st.sampled_from([5, 5, 5, 4, 3]), st.lists(TOKEN, max_size=40),
                 st.booleans()).map(lambda t: b"\x80" + bytes([t[0]]) + b"".join(t[1])
                                    + (STOP if t[2] else b""))
DEPTHS = st.sampled_from([DEFAULT_MAX_DEPTH, DEFAULT_MAX_DEPTH, 1, 2, 5])


@settings(FAST, max_examples=CASES_RAW)
@given(data=st.binary(max_size=200) | st.binary(max_size=200).map(lambda b: b"\x80\x05" + b),
       max_depth=DEPTHS, buffers=st.integers(0, 2))
def test_checkers_agree_on_arbitrary_bytes(data, max_depth, buffers):
    assert_agree(data, max_depth, buffers)


@settings(FAST, max_examples=CASES_SOUP)
@given(data=SOUP, max_depth=DEPTHS, buffers=st.integers(0, 2))
def test_checkers_agree_on_opcode_soup(data, max_depth, buffers):
    assert_agree(data, max_depth, buffers)


@settings(FAST, max_examples=CASES_MUTATED)
@given(value=VALUES, edits=EDITS, max_depth=DEPTHS)
def test_checkers_agree_on_mutated_payloads(value, edits, max_depth):
    assert_agree(mutate(codec.encode(value), edits), max_depth)


MEMO_TOKEN = st.one_of(
    st.sampled_from([EMPTY_LIST, EMPTY_DICT, EMPTY_SET, NONE, MEMOIZE, APPEND, SETITEM, POP,
                     TUPLE1, MARK, APPENDS, TUPLE, EMPTY_LIST + MEMOIZE, APPEND + POP]),
    st.integers(0, 12).map(get),
)
MEMO_SOUP = st.lists(MEMO_TOKEN, max_size=120).map(
    lambda ts: b"\x80\x05" + EMPTY_LIST + MEMOIZE + b"".join(ts) + STOP)


@settings(FAST, max_examples=CASES_MEMO)
@given(data=MEMO_SOUP, max_depth=st.sampled_from([2, 3, 5, 50]))
def test_checkers_agree_on_memo_reuse(data, max_depth):
    """Containers filled after being taken back from the memo (what the whole-value check
    is for), at small depth limits."""
    assert_agree(data, max_depth)
