"""The checker of the wire's pickle dialect: what a payload may contain before it is unpickled.

Owns :func:`check` (the reference implementation, in Python) and :data:`check_fast`, the same
rules compiled from ``_wirecheck.c`` when a C compiler was available at install time (else the
reference). Imports only the standard library and ``pycos.errors``.

Payloads between nodes are pickles, written by pycos's own encoder (``pycos.proto.codec``) in a
narrow dialect of protocol 5, and a payload is unpickled only after this check accepts it. The
check walks the opcodes once, keeping a model of the unpickler's stack (the *kind* of each item
and the nesting depth of containers), and accepts exactly:

* values: ``None``, booleans, ints (``BININT*``, ``LONG1``/``LONG4``), floats (``BINFLOAT``),
  strings (``*BINUNICODE*``), bytes (``*BINBYTES*``) and bytearrays (``BYTEARRAY8``); every
  counted length fits in the rest of the payload, so nothing larger than the payload is ever
  allocated for it;
* containers built by their own opcodes: tuples, lists (``APPEND(S)`` only onto a list),
  dicts (``SETITEM(S)`` only into a dict), sets (``ADDITEMS`` only into a set), frozensets;
* the memo only through ``MEMOIZE`` and ``BINGET``/``LONG_BINGET`` of an existing entry (never
  ``PUT`` with an index of the payload's choosing);
* globals only through ``STACK_GLOBAL`` naming one of the four builders of
  ``pycos.proto._w`` (``o``, ``u``, ``e``, ``f``), each called once by ``REDUCE`` with a tuple of
  arguments; the builders check their arguments and build only allowed types
  (``pycos.proto.wiretypes``);
* ``PROTO`` first, ``FRAME`` within bounds, ``MARK``, ``POP``, ``POP_MARK``, and ``STOP`` as
  the last byte with exactly one item on the stack.

Everything else (``GLOBAL``, ``INST``, ``OBJ``, ``NEWOBJ*``, ``BUILD``, ``EXT*``, persistent
ids, ``PUT``, text opcodes, ``DUP`` …) is refused. So decoding can call no other callable, can
mutate nothing but the containers the payload itself built, and nests at most ``max_depth``
levels (deep nesting would otherwise crash the interpreter while hashing or freeing the value).
Out-of-band buffers (``NEXT_BUFFER``/``READONLY_BUFFER``) are accepted only when the caller
supplies that many.

Nesting is counted as the opcodes build it, which is exact as long as no list, dict or set
grows after it was taken back from the memo: pickle itself only does that for a container
that holds itself (a cycle). When a payload does it, the value it builds is checked once more
as a whole, after the walk: a second pass builds the graph of its containers and measures the
depth of every one (a depth-first search that does not follow an edge back into a container
it is inside of, which is where pickle's own recursion stops), so that a memoized list filled
afterwards cannot carry nesting past the limit.

Memory is bounded the same way: every value the unpickler will make is charged (about what
CPython allocates for it, its slot on the unpickler's stack included), and a payload whose
values would take more than ``COST_PER_BYTE`` bytes per byte of payload (plus
``COST_SLACK``) is refused where it crosses the line. What is left of that budget is what the
builders may still allocate (:func:`scan`; they charge what they build,
``pycos.proto.wirecost.charge``).
"""

from __future__ import annotations

from ..errors import SerializationError

__all__ = ["WireError", "check", "check_fast", "scan", "MODULE", "BUILDERS",
           "DEFAULT_MAX_DEPTH", "COST_PER_BYTE", "COST_SLACK", "have_c_checker"]

#: The module of the builders a payload may name, and their names.
MODULE = "pycos.proto._w"
BUILDERS = frozenset({"o", "u", "e", "f"})
#: Deepest nesting accepted (Python's own default recursion limit).
DEFAULT_MAX_DEPTH = 1000
#: What decoding a payload may allocate: bytes per byte of payload, and a fixed allowance.
COST_PER_BYTE = 100
COST_SLACK = 65536


class WireError(SerializationError):
    """A payload is not in pycos's wire dialect: it was refused before any unpickling."""


# Kinds of the items on the modelled stack.
ATOM, STR, BYTES, TUPLE, LIST, DICT, SET, FROZENSET, BUILDER, OBJECT, BUFFER = range(11)
_MARK = -1

# Opcode bytes.
_PROTO, _FRAME, _STOP, _MARKOP, _POP, _POP_MARK = 0x80, 0x95, 0x2E, 0x28, 0x30, 0x31
_MEMOIZE, _BINGET, _LONG_BINGET = 0x94, 0x68, 0x6A
_NONE, _NEWTRUE, _NEWFALSE = 0x4E, 0x88, 0x89
_BININT, _BININT1, _BININT2, _LONG1, _LONG4, _BINFLOAT = 0x4A, 0x4B, 0x4D, 0x8A, 0x8B, 0x47
_SHORT_BINUNICODE, _BINUNICODE, _BINUNICODE8 = 0x8C, 0x58, 0x8D
_SHORT_BINBYTES, _BINBYTES, _BINBYTES8, _BYTEARRAY8 = 0x43, 0x42, 0x8E, 0x96
_EMPTY_TUPLE, _TUPLE1, _TUPLE2, _TUPLE3, _TUPLE = 0x29, 0x85, 0x86, 0x87, 0x74
_EMPTY_LIST, _APPEND, _APPENDS = 0x5D, 0x61, 0x65
_EMPTY_DICT, _SETITEM, _SETITEMS = 0x7D, 0x73, 0x75
_EMPTY_SET, _ADDITEMS, _FROZENSET = 0x8F, 0x90, 0x91
_STACK_GLOBAL, _REDUCE = 0x93, 0x52
_NEXT_BUFFER, _READONLY_BUFFER = 0x97, 0x98

# Fixed-size arguments, and counted ones: opcode -> (size of the count, kind pushed).
_FIXED = {_BININT: 4, _BININT1: 1, _BININT2: 2, _BINFLOAT: 8}
_COUNTED = {
    _LONG1: (1, ATOM), _LONG4: (4, ATOM),
    _SHORT_BINUNICODE: (1, STR), _BINUNICODE: (4, STR), _BINUNICODE8: (8, STR),
    _SHORT_BINBYTES: (1, BYTES), _BINBYTES: (4, BYTES), _BINBYTES8: (8, BYTES),
    _BYTEARRAY8: (8, BYTES),
}
_MUTABLE = (LIST, DICT, SET)

# What the unpickler allocates for each opcode (bytes, about CPython's sizes; a slot on its
# stack is 16 with the growth margin). The compiled checker uses the same numbers.
_C_PUSH = 16
_C_FIXED = {_BININT: 48, _BININT1: 48, _BININT2: 48, _BINFLOAT: 40}  # slot + int / float
# Counted: a fixed part and bytes per byte of content (a str of n characters is at most 4n).
_C_COUNTED = {_LONG1: (48, 1), _LONG4: (48, 1),
              _SHORT_BINUNICODE: (80, 4), _BINUNICODE: (80, 4), _BINUNICODE8: (80, 4),
              _SHORT_BINBYTES: (64, 1), _BINBYTES: (64, 1), _BINBYTES8: (64, 1),
              _BYTEARRAY8: (80, 1)}
_C_TUPLE, _C_TUPLE_ITEM = 72, 8  # slot + tuple header, and per item
_C_FROZENSET, _C_SET_ITEM = 232, 48  # slot + set object, and per item (its table)
_C_LIST, _C_DICT, _C_SET = 72, 80, 232  # slot + the empty object
_C_APPEND, _C_SETITEM = 16, 96  # per item (list growth), per pair (dict table)
_C_READONLY = 200  # a memoryview


_TOO_COSTLY = (f"the values it makes would take more than {COST_PER_BYTE} bytes per byte of "
               "payload")


def _fail(pos: int, why: str) -> WireError:
    return WireError(f"payload refused at byte {pos}: {why} (not pycos's wire format; "
                     "a peer running pycos never sends this)")


def check(data: bytes | bytearray | memoryview, max_depth: int = DEFAULT_MAX_DEPTH,
          buffers: int = 0) -> None:
    """Accept ``data`` as a payload of the wire dialect, or raise (plain call).

    Args:
        data: the payload.
        max_depth: the deepest nesting of containers accepted.
        buffers: how many out-of-band buffers the caller supplies.

    Raises:
        WireError: ``data`` breaks a rule of the dialect (the message says which, and where).
    """
    scan(data, max_depth, buffers)


def scan(data: bytes | bytearray | memoryview, max_depth: int = DEFAULT_MAX_DEPTH,
         buffers: int = 0) -> int | None:
    """:func:`check`, and what the builders the payload calls may still allocate: None when
    it calls none, else the bytes left of its budget (plain call; same arguments, same
    errors)."""
    buf = memoryview(data).cast("B") if not isinstance(data, bytes) else data
    end = len(buf)
    if end < 2 or buf[0] != _PROTO or buf[1] not in (4, 5):
        raise _fail(0, "it does not start with PROTO 4 or 5")
    if buf[end - 1] != _STOP:
        raise _fail(end - 1, "it does not end with STOP")
    stack: list[tuple[int, int, object]] = []  # (kind, depth, str value / node or None)
    marks: list[int] = []
    memo: list[tuple[int, int, object]] = []
    fetched: set[object] = set()  # mutable containers taken back from the memo (their node)
    regrown = False  # one of those received items afterwards
    reduces = 0
    left = COST_PER_BYTE * end + COST_SLACK
    pos = 2
    last = at = end - 1
    while pos < last:
        if left < 0:
            raise _fail(at, _TOO_COSTLY)
        op = buf[pos]
        at = pos
        pos += 1
        size = _FIXED.get(op)
        if size is not None:
            if pos + size > last:
                raise _fail(at, "truncated argument")
            pos += size
            left -= _C_FIXED[op]
            stack.append((ATOM, 0, None))
            continue
        counted = _COUNTED.get(op)
        if counted is not None:
            nbytes, kind = counted
            if pos + nbytes > last:
                raise _fail(at, "truncated length")
            length = int.from_bytes(buf[pos:pos + nbytes], "little",
                                    signed=op == _LONG4)
            pos += nbytes
            if length < 0 or length > last - pos:
                raise _fail(at, f"a length of {length} bytes runs past the payload")
            value = None
            if kind is STR and length <= 64:
                value = bytes(buf[pos:pos + length])
            pos += length
            fixed, per_byte = _C_COUNTED[op]
            left -= fixed + per_byte * length
            stack.append((kind, 0, value))
            continue
        if op == _MEMOIZE:
            if len(stack) <= (marks[-1] if marks else 0):
                raise _fail(at, "MEMOIZE with nothing to store")
            top = stack[-1]
            if top[0] in _MUTABLE and top[2] is None:  # its node: where it was first stored
                top = stack[-1] = (top[0], top[1], len(memo))
            memo.append(top)
            left -= _C_PUSH
        elif op == _BINGET or op == _LONG_BINGET:
            n = 1 if op == _BINGET else 4
            if pos + n > last:
                raise _fail(at, "truncated memo index")
            index = int.from_bytes(buf[pos:pos + n], "little")
            pos += n
            if index >= len(memo):
                raise _fail(at, f"memo index {index} was never stored")
            item = memo[index]
            if item[0] in _MUTABLE:
                fetched.add(item[2])
            stack.append(item)
            left -= _C_PUSH
        elif op == _NONE or op == _NEWTRUE or op == _NEWFALSE:
            stack.append((ATOM, 0, None))
            left -= _C_PUSH
        elif op == _FRAME:
            if pos + 8 > last:
                raise _fail(at, "truncated FRAME")
            length = int.from_bytes(buf[pos:pos + 8], "little")
            pos += 8
            if length > end - pos:
                raise _fail(at, "FRAME runs past the payload")
        elif op == _MARKOP:
            marks.append(len(stack))
            left -= _C_PUSH
        elif op == _POP:
            if not stack or (marks and marks[-1] == len(stack)):
                raise _fail(at, "POP with nothing to pop")
            stack.pop()
        elif op == _POP_MARK:
            if not marks:
                raise _fail(at, "POP_MARK without MARK")
            del stack[marks.pop():]
        elif op == _EMPTY_TUPLE:
            stack.append((TUPLE, 1, None))
            left -= _C_PUSH
        elif op in (_TUPLE1, _TUPLE2, _TUPLE3):
            n = op - _TUPLE1 + 1
            base = len(stack) - n
            if base < (marks[-1] if marks else 0):
                raise _fail(at, "TUPLE of missing items")
            _no_builder(at, stack[base:])
            depth = 1 + max(d for _k, d, _v in stack[base:])
            del stack[base:]
            stack.append(_container(at, TUPLE, depth, max_depth))
            left -= _C_TUPLE + _C_TUPLE_ITEM * n
        elif op in (_TUPLE, _FROZENSET):
            base = _pop_mark(at, marks)
            items = stack[base:]
            _no_builder(at, items)
            depth = 1 + max((d for _k, d, _v in items), default=0)
            del stack[base:]
            stack.append(_container(at, TUPLE if op == _TUPLE else FROZENSET, depth,
                                    max_depth))
            if op == _TUPLE:
                left -= _C_TUPLE + _C_TUPLE_ITEM * len(items)
            else:
                left -= _C_FROZENSET + _C_SET_ITEM * len(items)
        elif op == _EMPTY_LIST:
            stack.append((LIST, 1, None))
            left -= _C_LIST
        elif op == _EMPTY_DICT:
            stack.append((DICT, 1, None))
            left -= _C_DICT
        elif op == _EMPTY_SET:
            stack.append((SET, 1, None))
            left -= _C_SET
        elif op == _APPEND:
            regrown |= _add_items(at, stack, len(stack) - 1, LIST, 1, max_depth, marks, fetched)
            left -= _C_APPEND
        elif op == _SETITEM:
            regrown |= _add_items(at, stack, len(stack) - 2, DICT, 2, max_depth, marks, fetched)
            left -= _C_SETITEM
        elif op in (_APPENDS, _SETITEMS, _ADDITEMS):
            base = _pop_mark(at, marks)
            kind = {_APPENDS: LIST, _SETITEMS: DICT, _ADDITEMS: SET}[op]
            if kind is DICT and (len(stack) - base) % 2:
                raise _fail(at, "SETITEMS with an odd number of items")
            n = len(stack) - base
            regrown |= _add_items(at, stack, base, kind, 0, max_depth, marks, fetched)
            left -= (_C_APPEND * n if kind is LIST
                     else _C_SETITEM * (n // 2) if kind is DICT else _C_SET_ITEM * n)
        elif op == _STACK_GLOBAL:
            if len(stack) < 2 or (marks and marks[-1] > len(stack) - 2):
                raise _fail(at, "STACK_GLOBAL without module and name")
            (k1, _d1, module), (k2, _d2, name) = stack[-2], stack[-1]
            if k1 != STR or k2 != STR or module != MODULE.encode() or \
                    not isinstance(name, bytes) or name.decode("ascii", "replace") not in BUILDERS:
                raise _fail(at, f"a global other than pycos's builders "
                                f"({_show(module)}.{_show(name)})")
            del stack[-2:]
            stack.append((BUILDER, 0, None))
            left -= _C_PUSH
        elif op == _REDUCE:
            if len(stack) < 2 or (marks and marks[-1] > len(stack) - 2):
                raise _fail(at, "REDUCE without a callable and arguments")
            (kf, _df, _vf), (ka, da, _va) = stack[-2], stack[-1]
            if kf != BUILDER or ka != TUPLE:
                raise _fail(at, "REDUCE of something other than a pycos builder")
            del stack[-2:]
            stack.append(_container(at, OBJECT, da + 1, max_depth))
            left -= _C_PUSH
            reduces += 1
        elif op == _NEXT_BUFFER:
            buffers -= 1
            if buffers < 0:
                raise _fail(at, "an out-of-band buffer that was not supplied")
            stack.append((BUFFER, 0, None))
            left -= _C_PUSH
        elif op == _READONLY_BUFFER:
            if not stack or stack[-1][0] != BUFFER:
                raise _fail(at, "READONLY_BUFFER of something other than a buffer")
            left -= _C_READONLY
        else:
            raise _fail(at, f"opcode 0x{op:02x} is not allowed")
    if left < 0:
        raise _fail(at, _TOO_COSTLY)
    if marks or len(stack) != 1 or stack[0][0] == BUILDER:
        raise _fail(last, "the payload does not leave exactly one value")
    if regrown and _deepest(buf, last, max_depth) > max_depth:
        raise _fail(last, f"nesting deeper than {max_depth} levels (through the memo)")
    return left if reduces else None


def _pop_mark(at: int, marks: list[int]) -> int:
    if not marks:
        raise _fail(at, "an opcode that needs MARK without one")
    return marks.pop()


def _no_builder(at: int, items: list[tuple[int, int, object]]) -> None:
    for kind, _d, _v in items:
        if kind == BUILDER:
            raise _fail(at, "a builder used as a value")


def _container(at: int, kind: int, depth: int, max_depth: int,
               node: object = None) -> tuple[int, int, object]:
    if depth > max_depth:
        raise _fail(at, f"nesting deeper than {max_depth} levels")
    return (kind, depth, node)


def _add_items(at: int, stack: list[tuple[int, int, object]], base: int, kind: int,
               count: int, max_depth: int, marks: list[int], fetched: set[object]) -> bool:
    """Items ``stack[base:]`` go into the container just below them, which must be ``kind``.
    ``count`` is the exact number for APPEND / SETITEM, 0 for the MARK forms. True when that
    container was taken back from the memo before (its depth, as counted where it was
    referenced, may now be too small)."""
    if base < 1 or (marks and marks[-1] > base - 1):
        raise _fail(at, "an item opcode without its container or items")
    ckind, cdepth, node = stack[base - 1]
    if ckind != kind:
        raise _fail(at, "items added to a container of another kind")
    items = stack[base:]
    if items:
        _no_builder(at, items)
        cdepth = max(cdepth, 1 + max(d for _k, d, _v in items))
    del stack[base:]
    stack[base - 1] = _container(at, kind, cdepth, max_depth, node)
    return node is not None and node in fetched


def _deepest(buf: bytes | memoryview, last: int, max_depth: int) -> int:
    """The depth of the deepest container a valid payload builds, measured on the graph of
    what holds what once everything is built (the second pass of :func:`scan`); stops early,
    returning more than ``max_depth``, as soon as that is certain. Every container is a node
    (numbered as made); a depth-first search from each, in that order, following items in
    the order they were added, does not follow an edge into a container it is inside of."""
    children: list[list[int]] = []  # per node; -1 stands for a value that holds nothing
    stack: list[int] = []
    marks: list[int] = []
    memo: list[int] = []

    def node(items: list[int]) -> int:
        children.append(items)
        return len(children) - 1

    pos = 2
    while pos < last:
        op = buf[pos]
        pos += 1
        size = _FIXED.get(op)
        if size is not None:
            pos += size
            stack.append(-1)
            continue
        counted = _COUNTED.get(op)
        if counted is not None:
            nbytes = counted[0]
            pos += nbytes + int.from_bytes(buf[pos:pos + nbytes], "little")
            stack.append(-1)
            continue
        if op == _MEMOIZE:
            memo.append(stack[-1])
        elif op == _BINGET or op == _LONG_BINGET:
            n = 1 if op == _BINGET else 4
            stack.append(memo[int.from_bytes(buf[pos:pos + n], "little")])
            pos += n
        elif op == _FRAME:
            pos += 8
        elif op == _MARKOP:
            marks.append(len(stack))
        elif op == _POP:
            stack.pop()
        elif op == _POP_MARK:
            del stack[marks.pop():]
        elif op in (_EMPTY_TUPLE, _EMPTY_LIST, _EMPTY_DICT, _EMPTY_SET):
            stack.append(node([]))
        elif op in (_TUPLE1, _TUPLE2, _TUPLE3, _TUPLE, _FROZENSET):
            if op == _TUPLE or op == _FROZENSET:
                base = marks.pop()
            else:
                base = len(stack) - (op - _TUPLE1 + 1)
            items = stack[base:]
            del stack[base:]
            stack.append(node(items))
        elif op == _APPEND or op == _SETITEM:
            base = len(stack) - (1 if op == _APPEND else 2)
            children[stack[base - 1]].extend(stack[base:])
            del stack[base:]
        elif op in (_APPENDS, _SETITEMS, _ADDITEMS):
            base = marks.pop()
            children[stack[base - 1]].extend(stack[base:])
            del stack[base:]
        elif op == _STACK_GLOBAL:
            del stack[-2:]
            stack.append(-1)
        elif op == _REDUCE:
            args = stack.pop()
            stack[-1] = node([args])
        elif op in (_NONE, _NEWTRUE, _NEWFALSE, _NEXT_BUFFER):
            stack.append(-1)
        # READONLY_BUFFER changes nothing that nests; nothing else is in a checked payload.
    count = len(children)
    state = bytearray(count)  # 0: not seen, 1: on the search's path, 2: done
    depth = [0] * count
    cursor = [0] * count
    for root in range(count):
        if state[root]:
            continue
        path = [root]
        state[root], depth[root] = 1, 1
        while path:
            current = path[-1]
            kids = children[current]
            i = cursor[current]
            if i < len(kids):
                cursor[current] = i + 1
                child = kids[i]
                if child < 0 or state[child] == 1:
                    continue  # a value that holds nothing, or an edge back up the path
                if state[child] == 2:
                    if depth[child] + 1 > depth[current]:
                        depth[current] = depth[child] + 1
                    continue
                state[child], depth[child] = 1, 1
                path.append(child)
                if len(path) > max_depth:
                    return len(path)
                continue
            path.pop()
            state[current] = 2
            if depth[current] > max_depth:
                return depth[current]
            if path and depth[current] + 1 > depth[path[-1]]:
                depth[path[-1]] = depth[current] + 1
    return max(depth, default=0)


def _show(value: object) -> str:
    if isinstance(value, bytes):
        return repr(value.decode("utf-8", "replace")[:40])
    return "?"


#: The version of ``_wirecheck``'s interface this source expects (a stale build is ignored).
C_API = 2

try:
    from ._wirecheck import API as _c_api
    from ._wirecheck import check as _c_check

    if _c_api != C_API:
        raise ImportError("pycos.proto._wirecheck was built from another source")
except ImportError:  # no C compiler at install time (or a stale build): the reference
    _c_check = None


def have_c_checker() -> bool:
    """Whether the compiled checker is in use (plain call)."""
    return _c_check is not None


def _check_fast(data: bytes | bytearray | memoryview, max_depth: int = DEFAULT_MAX_DEPTH,
                buffers: int = 0) -> None:
    """:func:`check`, compiled when available; same arguments, same errors."""
    assert _c_check is not None
    message = _c_check(data, max_depth, buffers)
    if message is not None:
        raise WireError(message)


check_fast = _check_fast if _c_check is not None else check
