"""What decoding a payload may cost: the builders' memory budget, and bounded texts.

Owns the budget of the builders of ``pycos.proto._w`` (:data:`decode_budget`, set by
``pycos.proto.codec`` around unpickling a payload that calls any: what is left of
``wirecheck.COST_PER_BYTE`` bytes per byte of payload once its plain values are counted), what
each builder is charged (:data:`charge`, :func:`weigh`: about what it allocates, so a payload
that calls a builder again and again on memoized arguments is refused instead of multiplying
its size), and the only way a value from a payload is ever turned into text (:func:`brief`,
:func:`describe_error`: bounded, never the value's own ``repr``, since a payload's shared
references can have an exponentially long one). Imports only the standard library,
``pycos.errors`` and the checker (``wirecheck``, and ``_wirecheck`` for the compiled
:data:`charge`).
"""

from __future__ import annotations

import contextvars
import pickle
from collections.abc import Callable
from typing import Any

from ..errors import SerializationError
from .wirecheck import C_API

__all__ = ["decode_budget", "budget", "charge", "weigh", "brief", "describe_error",
           "ITEM_COST", "CHAR_COST", "BRIEF_LIMIT"]

#: Charged per item of a container handed to a builder (the builders copy them: a deque
#: 8 bytes an item, an OrderedDict about 75, a Counter twice a dict's 30).
ITEM_COST = 80
#: Charged per character of a str handed to a builder (a str is at most 4 bytes a
#: character; what a builder makes of one, Decimal or IP address, is no larger).
CHAR_COST = 4


# ---------------------------------------------------------------------- decode budget
decode_budget: contextvars.ContextVar[list[int] | None] = contextvars.ContextVar(
    "pycos_decode_budget", default=None)
_SPENT = ("payload refused: decoding it would allocate more than a fixed multiple of its size "
          "(the same values built again and again from memoized arguments?)")


class budget:  # noqa: N801 - used as a context manager
    """``with budget(n): ...`` — builders may allocate about ``n`` more bytes (plain call;
    ``pycos.proto.codec`` around unpickling a payload that calls builders)."""

    __slots__ = ("cell", "token")

    def __init__(self, n: int) -> None:
        self.cell = [n]
        self.token: Any = None

    def __enter__(self) -> None:
        self.token = decode_budget.set(self.cell)

    def __exit__(self, *exc: object) -> None:
        decode_budget.reset(self.token)


def _charge(n: int, fields: tuple[Any, ...] | list[Any] = ()) -> None:
    """:data:`charge`, in Python."""
    cell = decode_budget.get()
    if cell is not None:
        left = cell[0] - n - (weigh(fields) if fields else 0)
        cell[0] = left
        if left < 0:
            raise SerializationError(_SPENT)


_PICKLE_BUFFER = pickle.PickleBuffer
_CONTAINERS = (tuple, list, dict, set, frozenset)
#: Charged per item of a container, character of a str, byte of a buffer handed to a builder.
_PER_ITEM: dict[type, int] = {tuple: ITEM_COST, list: ITEM_COST, dict: ITEM_COST,
                              set: ITEM_COST, frozenset: ITEM_COST, str: CHAR_COST,
                              bytes: 1, bytearray: 1}


def weigh(values: tuple[Any, ...] | list[Any]) -> int:
    """What a builder may allocate copying ``values`` (its arguments): bytes (plain call).
    Shallow: a container counts its items, not what they hold (those were built by the
    unpickler, and charged there); a str 4 bytes a character, a buffer its bytes; anything
    else nothing (a builder that copies more says so: ``Registered.weigh_fields``)."""
    n = 0
    for v in values:
        per = _PER_ITEM.get(type(v))
        if per is not None:
            n += per * len(v)
        elif type(v) is _PICKLE_BUFFER or type(v) is memoryview:
            n += memoryview(v).nbytes
    return n


#: ``charge(n, fields=())``: charge ``n`` bytes, plus :func:`weigh` of ``fields``, to the
#: current decode's budget (plain call; no budget set: nothing). Raises SerializationError when
#: the payload builds more than its size allows (before the builder allocates it). Compiled
#: when available: the builders' path is hot (a reference to a task is a builder call).
charge: Callable[..., None] = _charge
try:
    from . import _wirecheck as _c

    if getattr(_c, "API", None) == C_API:  # not a stale build
        _c.set_budget(decode_budget, SerializationError, _SPENT)
        charge = _c.charge
except ImportError:  # no C compiler
    pass


# ---------------------------------------------------------------------- bounded text
#: The longest text made from a payload's value.
BRIEF_LIMIT = 4096
_TYPE_MODULE: Any = vars(type)["__module__"]
_TYPE_QUALNAME: Any = vars(type)["__qualname__"]
_BRIEF_ITEMS = 8
_BRIEF_LEVELS = 3
_BRIEF_STR = 200


def brief(value: Any, limit: int = BRIEF_LIMIT) -> str:
    """A short ``repr``-like text of ``value`` (plain call): at most ``limit`` characters,
    made in bounded time whatever ``value`` is. Builtin values and containers are shown (a few
    levels and items of them); anything else only by its type, never by calling its
    ``repr`` or ``str`` (a payload's shared references make texts exponentially long)."""
    out: list[str] = []
    _brief_into(value, out, _BRIEF_LEVELS, [limit])
    text = "".join(out)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _brief_into(value: Any, out: list[str], levels: int, left: list[int]) -> None:
    if left[0] <= 0:
        return
    t = type(value)
    if value is None or t is bool or t is float or t is complex:
        text = repr(value)
    elif t is int:
        text = repr(value) if value.bit_length() <= 256 else f"<int of {value.bit_length()} bits>"
    elif t is str or t is bytes or t is bytearray:
        text = repr(value[:_BRIEF_STR]) + ("..." if len(value) > _BRIEF_STR else "")
    elif t in _CONTAINERS:
        if t is dict:
            opening, closing = "{", "}"
        elif t is list:
            opening, closing = "[", "]"
        elif t is tuple:
            opening, closing = "(", ")"
        elif t is set:
            opening, closing = "{", "}"
        else:
            opening, closing = "frozenset({", "})"
        if not value:
            text = opening + closing if t in (tuple, list, dict) else t.__name__ + "()"
        elif levels <= 0:
            text = opening + "..." + closing
        else:
            out.append(opening)
            left[0] -= len(opening)
            items = value.items() if t is dict else value
            for i, item in enumerate(items):
                if i:
                    out.append(", ")
                    left[0] -= 2
                if i >= _BRIEF_ITEMS or left[0] <= 0:
                    out.append("...")
                    break
                if t is dict:
                    _brief_into(item[0], out, levels - 1, left)
                    out.append(": ")
                    left[0] -= 2
                    _brief_into(item[1], out, levels - 1, left)
                else:
                    _brief_into(item, out, levels - 1, left)
            out.append("," + closing if t is tuple and len(value) == 1 else closing)
            left[0] -= len(closing)
            return
    else:  # only its type's name, read from the type itself (no metaclass hook)
        text = f"<{_TYPE_MODULE.__get__(t)}.{_TYPE_QUALNAME.__get__(t)} object>"
    out.append(text)
    left[0] -= len(text)


def describe_error(exc: BaseException) -> str:
    """``exc``'s type and message, bounded (plain call): its arguments shown with
    :func:`brief`, never its own ``str`` (which may print a payload's value in full)."""
    args = exc.args if type(exc.args) is tuple else ()
    if len(args) == 1 and type(args[0]) is str:
        text = args[0] if len(args[0]) <= 500 else args[0][:500] + "..."
    elif not args:
        text = ""
    else:
        text = brief(args, 500)
    name = type(exc).__name__
    return f"{name}: {text}" if text else name
