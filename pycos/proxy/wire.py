"""What remote-module requests and replies look like, and how large values travel.

Owns the request kinds (``KINDS``), the reply *envelopes*, ``Ref`` (the wire type a proxy
becomes when it is passed as an argument: the serving node resolves it to its object),
``encode_args`` (arguments as one payload, noting whether proxies are inside), and the bulk
transfer of a value over a ``StreamConn``: a header value, then the pickle (protocol 5) and its
out-of-band buffers as raw bytes (NumPy array data is never copied into the pickle), then an
authenticator of those bytes (Poly1305 when ``cryptography`` is installed at both ends, else
HMAC-SHA256) under a one-time key derived from the stream's handshake and a fresh nonce; none
when the stream is TLS, which protects the bytes already. Imports the standard library,
``pycos.errors``, ``pycos.proto`` and its own package.

Requests (payloads are tuples; every field is checked by the serving node):

* ``pmod.probe`` ``(service, root, max_frame)`` -> ``{"name", "location", "incarnation",
  "handles"}`` or None;
* ``pmod.get`` ``(service, hid, path, releases)`` -> envelope;
* ``pmod.call`` ``(service, hid, path, args, has_refs, releases)`` -> envelope;
* ``pmod.dir`` ``(service, hid, path)`` -> list of names;
* ``pmod.batch`` ``(service, calls, releases)`` -> list of envelopes (the first failure ends
  it, as ``("e", exception)``);
* ``pmod.release`` ``(service, hids)`` -> how many were released;
* ``pmod.ticket`` ``(service,)`` -> a token opening one ``pmod.calls`` stream.

``hid`` is 0 for a path from a module entry, else the handle the path starts at. Envelopes:
``("v", value)`` a value; ``("p", payload)`` a value already encoded; ``("h", hid,
type_name)`` a handle; ``("b", token, size)`` a large value to fetch over a ``pmod.fetch``
stream (opened with ``(service, token, digests)``, as a ``pmod.calls`` stream is with a
ticket); ``("e", exception)`` a failure (on streams; requests fail as requests do). On a
``pmod.calls`` stream each message is ``(op, body)`` with ``op`` one of ``get``, ``call``,
``dir``, ``batch``, and the reply an envelope, or a bulk header ``("B", ...)`` for a large
value.
"""

from __future__ import annotations

import hashlib
import hmac
import mmap
import os
import pickle
import ssl
import threading
from typing import Any

from ..errors import SerializationError
from ..proto import _w
from ..proto.codec import decode, encode
from ..proto.wiretypes import register

__all__ = ["KINDS", "PROXYREF", "Ref", "encode_args", "note_ref", "send_bulk", "recv_bulk",
           "bulk_parts", "choose_digest", "DIGESTS", "BULK_LABEL", "MAX_BULK_BUFFERS",
           "STREAM_CALLS", "STREAM_FETCH", "MAX_BATCH", "MAX_RELEASES"]

KINDS = ("pmod.probe", "pmod.get", "pmod.call", "pmod.dir", "pmod.batch", "pmod.release",
         "pmod.ticket")
STREAM_CALLS = "pmod.calls"
STREAM_FETCH = "pmod.fetch"
#: Wire type code of ``Ref`` (pycos's own codes are below 60).
PROXYREF = 60
#: Calls in one batch; handle numbers released by one message.
MAX_BATCH = 1024
MAX_RELEASES = 4096
#: Out-of-band buffers of one bulk value.
MAX_BULK_BUFFERS = 4096
#: The label of the key that authenticates bulk bytes (``Connection.derive_key``).
BULK_LABEL = b"pycos.proxy bulk"
_CHUNK = 8 << 20
_MAPPED = 1 << 20
_MAP_FLAGS = mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | getattr(mmap, "MAP_POPULATE", 0)

_counter = threading.local()


class Ref:
    """A proxy passed as an argument, as the serving node receives it: which node and service
    it belongs to, the handle it starts at (0: a module path) and its path."""

    __slots__ = ("inc", "service", "hid", "path")

    def __init__(self, inc: bytes, service: str, hid: int, path: tuple[str, ...]) -> None:
        self.inc, self.service, self.hid, self.path = inc, service, hid, path

    def __reduce__(self) -> Any:
        note_ref()
        return (_w.o, (PROXYREF, self.inc, self.service, self.hid, self.path))

    def __repr__(self) -> str:
        return f"Ref({self.service!r}, {self.hid}, {'.'.join(self.path)!r})"


def _build_ref(inc: Any, service: Any, hid: Any, path: Any) -> Ref:
    if not (type(inc) is bytes and len(inc) <= 64 and type(service) is str
            and len(service) <= 255 and type(hid) is int and hid >= 0 and type(path) is tuple
            and len(path) <= 64):
        raise ValueError("malformed proxy reference")
    return Ref(inc, service, hid, path)


register(PROXYREF, Ref, lambda r: (r.inc, r.service, r.hid, r.path), _build_ref, cost=256)


def note_ref() -> None:
    """Count one proxy written by the encoder on this thread (``encode_args``)."""
    _counter.n = getattr(_counter, "n", 0) + 1


def encode_args(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[bytes, bool]:
    """The call's arguments as one payload, and whether proxies are among them.

    Raises:
        SerializationError: an argument cannot be sent (its class is named).
    """
    if not args and not kwargs:
        return b"", False
    _counter.n = 0
    blob = encode((args, kwargs or None))
    return blob, _counter.n > 0


# ---------------------------------------------------------------------- bulk values
def bulk_parts(value: Any) -> tuple[bytes, list[memoryview]]:
    """``value`` as a pickle and its out-of-band buffers (raw byte views, not copies).

    Raises:
        SerializationError: it cannot be sent.
    """
    buffers: list[pickle.PickleBuffer] = []
    data = encode(value, buffer_callback=buffers.append)
    return data, [buf.raw() for buf in buffers]


class _Sha256:
    """HMAC-SHA256 (always available)."""

    def __init__(self, key: bytes) -> None:
        self.mac = hmac.new(key, digestmod=hashlib.sha256)
        self.update = self.mac.update

    def digest(self) -> bytes:
        return self.mac.digest()


class _Poly1305:
    """Poly1305 (about four times faster than SHA-256 here), with ``cryptography``."""

    def __init__(self, key: bytes) -> None:
        from cryptography.hazmat.primitives.poly1305 import Poly1305

        self.mac = Poly1305(key)
        self.update = self.mac.update

    def digest(self) -> bytes:
        return self.mac.finalize()


def _digests() -> tuple[str, ...]:
    try:
        from cryptography.hazmat.primitives.poly1305 import Poly1305  # noqa: F401
    except Exception:  # noqa: BLE001 - not installed (or broken): SHA-256 only
        return ("sha256",)
    return ("poly1305", "sha256")


#: The digests of bulk bytes this process can compute, fastest first.
DIGESTS = _digests()
_MAKERS = {"sha256": _Sha256, "poly1305": _Poly1305}


def _mac(stream: Any, alg: str, nonce: bytes) -> Any:
    """A one-time authenticator of one value's bytes: its key derived from the stream's
    handshake (a secret only the two ends know, with a node secret) and a fresh nonce."""
    base = stream.conn.derive_key(BULK_LABEL)
    key = hmac.new(base, alg.encode() + nonce, hashlib.sha256).digest()
    return _MAKERS[alg](key)


def _tls(stream: Any) -> bool:
    return isinstance(stream.sock, ssl.SSLSocket)


def _buffer(size: int) -> Any:
    """A writable buffer of ``size`` bytes for received data: large ones are anonymous
    memory mapped (and populated) at once, which costs half of zero-filling a bytearray."""
    if size < _MAPPED:
        return bytearray(size)
    try:
        return mmap.mmap(-1, size, flags=_MAP_FLAGS)
    except (OSError, ValueError):
        return bytearray(size)


def choose_digest(stream: Any, accepted: Any) -> str | None:
    """The digest to send bulk bytes with to a receiver that ``accepted`` these (None: the
    stream is TLS, which protects them already)."""
    if _tls(stream):
        return None
    if type(accepted) is tuple:
        for alg in DIGESTS:
            if alg in accepted:
                return alg
    return "sha256"


def send_bulk(stream: Any, data: bytes, views: list[memoryview], digest: str | None) -> int:
    """Send a value as a header ``("B", len(data), sizes, digest, nonce)``, the raw bytes of
    ``data`` and of each view, then their digest (a thread's call; blocks). Returns the bytes
    sent."""
    nonce = os.urandom(16)
    mac = _mac(stream, digest, nonce) if digest is not None else None
    sizes = [v.nbytes for v in views]
    stream.send(("B", len(data), sizes, digest, nonce))
    for view in (memoryview(data), *views):
        for start in range(0, len(view), _CHUNK):
            part = view[start:start + _CHUNK]
            if mac is not None:
                mac.update(part)
            stream.send_raw(part)
    if mac is not None:
        stream.send(mac.digest())
    return len(data) + sum(sizes)


def recv_bulk(stream: Any, header: Any, trusted: bool, limit: int) -> Any:
    """The value whose bulk ``header`` was just received from ``stream`` (a thread's call).

    Raises:
        SerializationError: a malformed header, more than ``limit`` bytes, a missing or wrong
            digest, or a value this node does not accept.
        StreamError, OSError: the stream broke.
    """
    from ..net.streams import StreamError

    if not (type(header) is tuple and len(header) == 5 and type(header[1]) is int
            and header[1] >= 0 and type(header[2]) is list
            and len(header[2]) <= MAX_BULK_BUFFERS
            and all(type(n) is int and n >= 0 for n in header[2])
            and (header[3] is None or header[3] in DIGESTS) and type(header[4]) is bytes):
        raise SerializationError("malformed large-value header")
    _kind, size, sizes, digest, nonce = header
    total = size + sum(sizes)
    if total > limit:
        raise SerializationError(f"a value of {total} bytes is larger than this node takes "
                                 f"({limit})")
    if digest is None and not _tls(stream):
        raise SerializationError("a large value without a digest on a stream without TLS")
    mac = _mac(stream, digest, nonce) if digest is not None else None
    data = bytearray(size)
    buffers = [_buffer(n) for n in sizes]
    for buf in (data, *buffers):
        view = memoryview(buf)
        for start in range(0, len(view), _CHUNK):
            part = view[start:start + _CHUNK]
            if stream.recv_into(part) != len(part):
                raise StreamError("the stream closed in the middle of a value")
            if mac is not None:
                mac.update(part)
    if mac is not None:
        got = stream.recv()
        if type(got) is not bytes or not hmac.compare_digest(got, mac.digest()):
            raise SerializationError("a large value failed its integrity check")
    return decode(data, buffers=buffers, trusted=trusted)
