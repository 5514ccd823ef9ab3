"""Payloads of the topic requests, encoded on behalf of the right node.

Owns ``pack`` and ``unpack``. A process may host several node identities on one scheduler; a
channel inside a payload must travel as a reference of the node that sends it (the topic node's
own), whichever node the scheduler calls its default. ``pack`` encodes a value as bytes with
that node set as the encoding one, and ``unpack`` decodes such bytes with the receiving node
bound to the references (always with the restricted decoder: these are control messages).
Imports ``pycos.net.hub``, ``pycos.proto`` and its own package.
"""

from __future__ import annotations

from typing import Any

from ..errors import SerializationError
from ..net.hub import encoding
from ..proto.codec import decode, encode
from ..proto.wiretypes import decoding
from ._protocol import Malformed

__all__ = ["pack", "unpack", "MAX_PAYLOAD"]

#: Largest control payload accepted (a full interest message of 1,024 long topics fits).
MAX_PAYLOAD = 1 << 20


def pack(node: Any, value: Any) -> bytes:
    """``value`` encoded as bytes, its tasks and channels as references of ``node``."""
    with encoding(node):
        return bytes(encode(value))


def unpack(node: Any, data: Any) -> Any:
    """The value of a payload ``pack`` made, references bound to ``node``.

    Raises:
        Malformed: not bytes, too large, or not decodable (the reason is in the message).
    """
    if type(data) is not bytes:
        raise Malformed(f"a topic payload is bytes, got {type(data).__name__}")
    if len(data) > MAX_PAYLOAD:
        raise Malformed(f"a topic payload of {len(data)} bytes is larger than {MAX_PAYLOAD}")
    try:
        with decoding(node):
            return decode(data)
    except SerializationError as exc:
        raise Malformed(f"undecodable payload: {exc}") from None
