"""Small helpers pycos 4.12 programs use from the ``pycos`` module (layer L0).

Owns ``Singleton`` (a metaclass: one instance per class), ``Struct`` (a record of named fields)
and ``serialize`` / ``deserialize``, which use the same data-only encoding as messages between
nodes (``pycos.proto.codec``), so ``deserialize`` of bytes from anywhere can only build data.
Imports the standard library, ``pycos._log`` and ``pycos.proto.codec``.
"""

from __future__ import annotations

import threading
from typing import Any

from ._log import logger
from .proto.codec import decode, encode

__all__ = ["Singleton", "Struct", "serialize", "deserialize"]


class Singleton(type):
    """Metaclass making a class have one instance: the first call creates it (with that call's
    arguments); later calls return it, whatever their arguments.

    ``Singleton.instance(cls)`` is the instance (None before the first call);
    ``Singleton.discard(cls)`` forgets it, so the next call creates a new one.
    """

    _instances: dict[type, Any] = {}
    _lock = threading.Lock()

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        obj = Singleton._instances.get(cls)
        if obj is None:
            with Singleton._lock:
                obj = Singleton._instances.get(cls)
                if obj is None:
                    obj = Singleton._instances[cls] = super().__call__(*args, **kwargs)
        return obj

    @staticmethod
    def instance(cls: type) -> Any:
        """The instance of ``cls``, or None."""
        return Singleton._instances.get(cls)

    @staticmethod
    def discard(cls: type) -> None:
        """Forget the instance of ``cls``."""
        Singleton._instances.pop(cls, None)


class Struct:
    """A record of named fields: ``s = Struct(a=1, b='two'); s.a = 3``.

    Reading a field it does not have gives None (and logs a warning naming it), as in pycos
    4.12; assigning one it does not have adds it.
    """

    def __init__(self, **fields: Any) -> None:
        self.__dict__.update(fields)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)  # copy, pickle and the like probe for these
        logger.warning("Struct has no field %r; reads as None", name)
        return None

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in self.__dict__.items())
        return f"Struct({fields})"

    def __eq__(self, other: object) -> bool:
        return type(other) is Struct and other.__dict__ == self.__dict__

    __hash__ = None  # type: ignore[assignment]


def serialize(obj: Any) -> bytes:
    """``obj`` as bytes (plain call), in the encoding messages between nodes use: data,
    references, and classes allowed with ``pycos.serialize_allow``.

    Raises:
        SerializationError: ``obj`` holds something that cannot be sent (the message names it
            and the fix).
    """
    return encode(obj)


def deserialize(data: bytes) -> Any:
    """The value ``serialize`` made of ``data`` (plain call); bytes from anywhere can only build
    data.

    Raises:
        SerializationError: ``data`` is not a valid encoding, or names a class this process
            does not allow.
        TypeError: ``data`` is not bytes.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise TypeError(f"deserialize() needs bytes, got {type(data).__name__}")
    return decode(data)
