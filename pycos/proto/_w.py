"""The four builders a wire payload may call (see ``pycos.proto.wirecheck``).

A payload names these, and only these, as globals: ``o`` (a registered value type), ``u`` (an
instance of a class the user allowed), ``e`` (an exception) and ``f`` (an allowed function).
Each checks its arguments; the rules are in ``pycos.proto.wiretypes``. The module's name and
the builders' names are part of the wire format: keep them stable. Imports only its own package
and ``pycos.errors``.
"""

from __future__ import annotations

from typing import Any

from ..errors import SerializationError
from . import wiretypes as _types
from .wirecost import brief, charge, describe_error

__all__ = ["o", "u", "e", "f"]

_REGISTRY = _types.REGISTRY
_charge = charge


def o(code: Any, *fields: Any) -> Any:
    """Rebuild a registered value type (``code``) from its fields."""
    entry = _REGISTRY.get(code) if type(code) is int else None
    if entry is None:
        raise SerializationError(f"payload names an unknown wire type {brief(code, 80)} "
                                 "(a newer pycos on the other node?)")
    weigh = entry.weigh_fields
    if weigh is None:
        _charge(entry.cost, fields)
    else:
        _charge(entry.cost + weigh(fields))
    try:
        return entry.build(*fields)
    except SerializationError:
        raise
    except (TypeError, ValueError, OverflowError, ArithmeticError) as exc:
        raise SerializationError(f"malformed {entry.name} in a payload: "
                                 f"{describe_error(exc)}") from None


def u(name: Any, how: Any, args: Any, state: Any, items: Any, pairs: Any) -> Any:
    """Rebuild an instance of a class the user allowed."""
    return _types.build_u(name, how, args, state, items, pairs)


def e(name: Any, args: Any, state: Any) -> Any:
    """Rebuild an exception."""
    return _types.build_e(name, args, state)


def f(name: Any, args: Any) -> Any:
    """Call a function the user allowed, with plain arguments."""
    return _types.build_f(name, args)
