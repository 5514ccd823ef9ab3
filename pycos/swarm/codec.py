"""pynetwork's byte converters (its ``backend2`` module) and ``safe_print``.

Owns ``str_to_bytes`` / ``bytes_to_str``, ``int_to_bytes`` / ``bytes_to_int``,
``obj_to_json_bytes`` / ``json_bytes_to_obj`` and ``safe_print`` (a ``print`` that holds a lock,
so lines written by several handler threads never mix; it writes to ``sys.stdout`` explicitly).
Seed programs written for pynetwork keep working with ``import pycos.swarm.codec as bk``.
Imports only the standard library.

Swarm items need none of these: any value the data-only codec accepts travels as it is, and
``bytes`` travel raw. They are kept for programs that already speak bytes.
"""

from __future__ import annotations

import json
import sys
import threading
from typing import Any

__all__ = ["str_to_bytes", "bytes_to_str", "int_to_bytes", "bytes_to_int", "obj_to_json_bytes",
           "json_bytes_to_obj", "safe_print"]

_PRINT_LOCK = threading.Lock()


def str_to_bytes(text: str, encoding: str = "utf-8") -> bytes:
    """``text`` encoded (UTF-8 by default)."""
    if not isinstance(text, str):
        raise TypeError(f"str_to_bytes() needs a str, got {type(text).__name__}")
    return text.encode(encoding)


def bytes_to_str(data: bytes | bytearray | memoryview, encoding: str = "utf-8") -> str:
    """``data`` decoded (UTF-8 by default)."""
    return bytes(data).decode(encoding)


def int_to_bytes(value: int) -> bytes:
    """``value`` as big-endian two's complement: 8 bytes, more only when it needs them."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"int_to_bytes() needs an int, got {type(value).__name__}")
    size = max(8, (value.bit_length() + 8) // 8)
    return value.to_bytes(size, "big", signed=True)


def bytes_to_int(data: bytes | bytearray | memoryview) -> int:
    """The int ``int_to_bytes`` wrote (big-endian two's complement)."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise TypeError(f"bytes_to_int() needs bytes, got {type(data).__name__}")
    return int.from_bytes(data, "big", signed=True)


def _plain(obj: Any) -> Any:
    state = getattr(obj, "__dict__", None)
    if state is None:
        raise TypeError(f"{type(obj).__name__} objects cannot be written as JSON")
    return state


def obj_to_json_bytes(obj: Any) -> bytes:
    """``obj`` as UTF-8 JSON: plain values as they are, other objects as their ``__dict__``
    (pynetwork's rule: classes of primitive attributes)."""
    return json.dumps(obj, default=_plain, separators=(",", ":")).encode("utf-8")


def json_bytes_to_obj(data: bytes | bytearray | memoryview, cls: type | None = None) -> Any:
    """The value ``obj_to_json_bytes`` wrote; with ``cls``, an instance made with ``cls()``
    (every constructor parameter must have a default, as in pynetwork) and given the JSON
    object's attributes."""
    value = json.loads(bytes(data).decode("utf-8"))
    if cls is None:
        return value
    if not isinstance(value, dict):
        raise TypeError(f"json_bytes_to_obj(..., {cls.__name__}) needs a JSON object, got "
                        f"{type(value).__name__}")
    obj = cls()
    obj.__dict__.update(value)
    return obj


def safe_print(*values: Any, sep: str = " ", end: str = "\n", file: Any = None,
               flush: bool = True) -> None:
    """``print`` for several threads: one call's line is written whole, under a lock, to
    ``file`` (default ``sys.stdout``, looked up at each call)."""
    out = file if file is not None else sys.stdout
    text = sep.join(str(v) for v in values) + end
    with _PRINT_LOCK:
        out.write(text)
        if flush:
            out.flush()
