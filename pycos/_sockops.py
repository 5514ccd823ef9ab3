"""The operations behind ``AsyncSocket`` methods (layer L3, private).

Owns one ``Op`` class per socket call: each ``attempt`` makes the non-blocking call on the
owner's current socket object (``owner._sock``, which TLS may replace) and says whether it must
wait. Multi-step calls (``recvall``, ``sendall``, the framed ``recv_msg`` / ``send_msg``,
``connect`` with its TLS handshake) keep their progress in the op, so a wake-up continues where
the last attempt stopped and a timeout can report what was done. Also owns the framing errors
and the blocking-mode (``blocking=True``) bodies of ``recvall``, ``sendall``, ``recv_msg``,
``accept`` and ``connect``. Imports the standard library, ``pycos.errors``, ``pycos.core``,
``pycos._iowait`` and ``pycos.tls``.
"""

from __future__ import annotations

import errno
import os
import socket
import ssl
import struct
from typing import Any

from . import tls
from ._iowait import WANT_READ, WANT_WRITE, Op, ReadOp
from .core.poller import WRITE
from .errors import PycosError

__all__ = ["MessageError", "MessageTooLarge", "HEADER"]

#: The frame header of ``send_msg`` / ``recv_msg``: payload length, 4 bytes, big-endian.
HEADER = struct.Struct(">L")
#: ``recvall`` sizes up to this try one ``recv`` first (no extra buffer when it all arrived).
FAST_RECV = 256 * 1024
#: Largest single TLS write (TLS writes are all-or-nothing; keep each one moderate).
TLS_CHUNK = 256 * 1024
#: ``send_msg`` payloads up to this size are joined to their header in one buffer.
JOIN_LIMIT = 64 * 1024

_Want = (BlockingIOError, ssl.SSLWantReadError)
_CONNECTING = {errno.EINPROGRESS, errno.EALREADY, errno.EWOULDBLOCK, errno.EAGAIN}


class MessageError(PycosError, ConnectionError):
    """``recv_msg`` found no valid message: the peer closed the connection inside one.

    The stream is out of step afterwards; close the connection.
    """


class MessageTooLarge(MessageError):
    """``recv_msg``: the peer announced a message larger than ``max_size``.

    Nothing was allocated for it. Attributes ``size`` (announced) and ``max_size``.
    """

    def __init__(self, size: int, max_size: int) -> None:
        super().__init__(f"peer announced a message of {size} bytes, more than max_size="
                         f"{max_size}; refused without reading it (the connection is now out "
                         "of step and should be closed)")
        self.size = size
        self.max_size = max_size


class Recv(ReadOp):
    """``recv(n, flags)``."""

    __slots__ = ("n", "flags")
    n: int
    flags: int

    def attempt(self) -> Any:
        owner = self.owner
        try:
            data = owner._sock.recv(self.n, self.flags)
        except _Want:
            return WANT_READ
        except ssl.SSLWantWriteError:
            return WANT_WRITE
        owner._rhint = False
        return data


class RecvInto(ReadOp):
    """``recv_into(buffer, nbytes, flags)``."""

    __slots__ = ("buf", "n", "flags")
    buf: Any
    n: int
    flags: int

    def attempt(self) -> Any:
        owner = self.owner
        try:
            k = owner._sock.recv_into(self.buf, self.n, self.flags)
        except _Want:
            return WANT_READ
        except ssl.SSLWantWriteError:
            return WANT_WRITE
        owner._rhint = False
        return k

    def release(self) -> None:
        self.buf = None
        self.busy = False


class RecvFrom(ReadOp):
    """``recvfrom(n, flags)`` / ``recvfrom_into(buffer, n, flags)`` (``buf`` not None)."""

    __slots__ = ("n", "flags", "buf")
    n: int
    flags: int
    buf: Any

    def attempt(self) -> Any:
        owner = self.owner
        try:
            if self.buf is None:
                result = owner._sock.recvfrom(self.n, self.flags)
            else:
                result = owner._sock.recvfrom_into(self.buf, self.n, self.flags)
        except BlockingIOError:
            return WANT_READ
        owner._rhint = False  # more datagrams may be queued
        return result

    def release(self) -> None:
        self.buf = None
        self.busy = False


class Send(Op):
    """``send(data, flags)``."""

    __slots__ = ("data", "flags")
    direction = WRITE
    data: Any
    flags: int

    def attempt(self) -> Any:
        owner = self.owner
        try:
            sent = owner._sock.send(self.data, self.flags)
        except BlockingIOError:
            return WANT_WRITE
        except ssl.SSLWantWriteError:
            return WANT_WRITE
        except ssl.SSLWantReadError:
            return WANT_READ
        owner._rhint = True  # an answer, if any, cannot be here yet
        return sent

    def release(self) -> None:
        self.data = None
        self.busy = False


class SendTo(Op):
    """``sendto(data, [flags,] address)``."""

    __slots__ = ("args",)
    direction = WRITE
    args: tuple[Any, ...]

    def attempt(self) -> Any:
        owner = self.owner
        try:
            sent = owner._sock.sendto(*self.args)
        except BlockingIOError:
            return WANT_WRITE
        owner._rhint = True
        return sent

    def release(self) -> None:
        self.args = ()
        self.busy = False


class RecvAll(ReadOp):
    """``recvall(n)``: exactly ``n`` bytes, fewer only at EOF or on timeout."""

    __slots__ = ("n", "flags", "buf", "view", "got")
    n: int
    flags: int
    buf: bytearray | None
    view: memoryview | None
    got: int

    def start(self, n: int, flags: int) -> None:
        if not isinstance(n, int) or isinstance(n, bool) or n < 0:
            raise ValueError(f"recvall needs a byte count >= 0, got {n!r}")
        self.n = n
        self.flags = flags
        self.buf = self.view = None
        self.got = 0

    def attempt(self) -> Any:
        sock = self.owner._sock
        view = self.view
        n = self.n
        if view is None:
            if n == 0:
                return b""
            buf = None
            if n <= FAST_RECV:
                try:
                    data = sock.recv(n, self.flags)
                except _Want:
                    return WANT_READ
                except ssl.SSLWantWriteError:
                    return WANT_WRITE
                if len(data) == n or not data:
                    owner = self.owner
                    owner._rhint = False
                    return data
                buf = bytearray(n)
                buf[:len(data)] = data
                self.got = len(data)
                self.moved = True
            else:
                buf = bytearray(n)
            self.buf = buf
            view = self.view = memoryview(buf)
        got = start = self.got
        flags = self.flags
        try:
            while got < n:
                k = sock.recv_into(view[got:], n - got, flags)
                if not k:
                    break
                got += k
        except _Want:
            return self._pause(got, start, WANT_READ)
        except ssl.SSLWantWriteError:
            return self._pause(got, start, WANT_WRITE)
        self.owner._rhint = False
        if got == n:
            return bytes(self.buf)  # type: ignore[arg-type]
        return bytes(view[:got])

    def _pause(self, got: int, start: int, want: Any) -> Any:
        if got != start:
            self.got = got
            self.moved = True
        return want

    def expired(self) -> Any:
        if self.got and self.view is not None:
            return bytes(self.view[:self.got])
        raise TimeoutError("timed out")

    def release(self) -> None:
        self.buf = self.view = None
        self.busy = False


class RecvMsg(RecvAll):
    """``recv_msg(max_size)``: one frame (4-byte big-endian length, then the payload)."""

    __slots__ = ("max_size", "head")
    max_size: int
    head: bytes

    def begin(self, max_size: int) -> None:
        self.start(0, 0)
        self.n = -1  # header not read yet
        self.max_size = max_size
        self.head = b""

    def attempt(self) -> Any:
        if self.n < 0:
            head = self.head
            sock = self.owner._sock
            while len(head) < 4:
                try:
                    chunk = sock.recv(4 - len(head))
                except _Want:
                    return self._keep_head(head, WANT_READ)
                except ssl.SSLWantWriteError:
                    return self._keep_head(head, WANT_WRITE)
                if not chunk:
                    if head:
                        raise MessageError(f"connection closed inside a message header "
                                           f"({len(head)} of 4 bytes)")
                    return b""  # clean end of stream between messages
                head += chunk
            size = HEADER.unpack(head)[0]
            if size > self.max_size:
                raise MessageTooLarge(size, self.max_size)
            self.n = size
            self.moved = True
        data = RecvAll.attempt(self)
        if data is WANT_READ or data is WANT_WRITE:
            return data
        if len(data) != self.n:
            raise MessageError(f"connection closed inside a message ({len(data)} of {self.n} "
                               "bytes)")
        return data

    def _keep_head(self, head: bytes, want: Any) -> Any:
        if head != self.head:
            self.head = head
            self.moved = True
        return want

    def expired(self) -> Any:
        done = len(self.head) + self.got
        if not done:
            raise TimeoutError("timed out")
        raise TimeoutError(f"timed out inside a message ({done} bytes of it read); the "
                           "connection is out of step and should be closed")


class SendAll(Op):
    """``sendall(data)`` (and ``send_msg``: ``head`` is sent first). Result None; on timeout
    the number of bytes sent, if any."""

    __slots__ = ("view", "flags", "head", "sent")
    direction = WRITE
    view: memoryview | None
    flags: int
    head: bytes | None
    sent: int

    def start(self, data: Any, flags: int, head: bytes | None) -> None:
        view = memoryview(data)
        if view.ndim != 1 or view.itemsize != 1:
            view = view.cast("B")
        self.view = view
        self.flags = flags
        self.head = head
        self.sent = 0

    def attempt(self) -> Any:
        owner = self.owner
        sock = owner._sock
        tls_on = owner._tls
        view: Any = self.view
        sent = self.sent
        flags = self.flags
        try:
            while True:
                head = self.head
                if head is not None:
                    if tls_on:
                        k = sock.send(head)
                    else:
                        k = sock.sendmsg([head, view], (), flags)
                    sent += k
                    if k >= len(head):
                        view = view[k - len(head):]
                        self.head = None
                    else:
                        self.head = head[k:]
                elif not view:
                    owner._rhint = True
                    return None
                else:
                    k = sock.send(view[:TLS_CHUNK] if tls_on else view, flags)
                    sent += k
                    view = view[k:]
        except (BlockingIOError, ssl.SSLWantWriteError):
            want = WANT_WRITE
        except ssl.SSLWantReadError:
            want = WANT_READ
        if sent != self.sent:
            self.sent = sent
            self.view = view
            self.moved = True
        return want

    def expired(self) -> Any:
        if self.sent:
            return self.sent
        raise TimeoutError("timed out")

    def release(self) -> None:
        self.view = self.head = None
        self.busy = False


class Accept(Op):
    """``accept()``: ``(AsyncSocket, address)``."""

    __slots__ = ()

    def attempt(self) -> Any:
        owner = self.owner
        try:
            conn, addr = owner._sock.accept()
        except (BlockingIOError, ConnectionAbortedError):
            return WANT_READ
        return owner._adopt(conn), addr


class Connect(Op):
    """``connect(address)``, then the TLS handshake when the socket is configured for TLS.
    Result 0."""

    __slots__ = ("address", "host", "phase")
    direction = WRITE
    address: Any
    host: Any
    phase: int

    def attempt(self) -> Any:
        owner = self.owner
        if self.phase == 0:
            sock = owner._sock
            err = sock.connect_ex(self.address)
            if err in _CONNECTING:
                if sock.family != socket.AF_UNIX:
                    self.phase = 1  # in progress: the outcome comes with writability
                return WANT_WRITE
            if err not in (0, errno.EISCONN):
                raise OSError(err, f"{os.strerror(err)}: {self.address!r}")
            self.phase = 2
        if self.phase == 1:
            err = owner._sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                raise OSError(err, f"{os.strerror(err)}: {self.address!r}")
            self.phase = 2
        if self.phase == 2:
            self.phase = 3
            if not owner._wrap_client(self.host, self):
                return 0
        try:
            want = tls.handshake_step(owner._sock)
        except Exception as exc:
            owner._handshake_failed(exc)
            raise
        if want is not None:
            return want
        owner._handshake_done()
        return 0

    def expired(self) -> Any:
        if self.phase == 3:
            raise TimeoutError("timed out during the TLS handshake")
        raise TimeoutError("timed out")

    def release(self) -> None:
        owner = self.owner
        if owner._hs_owner is self:
            owner._hs_owner = None
            owner._kick_queue()
        self.busy = False


class Handshake(Op):
    """The TLS handshake, then (optionally) the operation that was waiting for it."""

    __slots__ = ("then",)

    def __init__(self, owner: Any, then: Op | None) -> None:
        super().__init__(owner)
        self.then = then
        self.busy = True
        self.timeout = then.timeout if then is not None else owner._timeout

    @property
    def direction(self) -> int:  # type: ignore[override]
        return self.then.direction if self.then is not None else WRITE

    def attempt(self) -> Any:
        owner = self.owner
        if owner._hs_owner is self:
            try:
                want = tls.handshake_step(owner._sock)
            except Exception as exc:
                owner._handshake_failed(exc)
                raise
            if want is not None:
                return want
            owner._handshake_done()
        then = self.then
        return None if then is None else then.attempt()

    def expired(self) -> Any:
        if self.owner._hs_owner is self or self.then is None:
            raise TimeoutError("timed out during the TLS handshake")
        return self.then.expired()

    def release(self) -> None:
        owner = self.owner
        if owner._hs_owner is self:
            owner._hs_owner = None  # abandoned (timeout, terminate): another op may take over
            owner._kick_queue()
        if self.then is not None:
            self.then.release()
            self.then = None
        self.busy = False


class StartTLS(Handshake):
    """Wrap the connected socket in TLS and run the handshake."""

    __slots__ = ("ctx", "server_side", "hostname", "wrapped")
    ctx: ssl.SSLContext
    server_side: bool
    hostname: str | None
    wrapped: bool

    def attempt(self) -> Any:
        if not self.wrapped:
            self.wrapped = True
            self.owner._wrap(self.ctx, self.server_side, self.hostname)
            self.owner._hs_owner = self
        return Handshake.attempt(self)


class TLSUnwrap(Op):
    """Close-notify exchange; the socket continues in plain text."""

    __slots__ = ()
    direction = WRITE

    def attempt(self) -> Any:
        owner = self.owner
        if not owner._tls:
            raise ValueError(f"{owner!r} is not a TLS socket")
        plain = tls.shutdown_step(owner._sock)
        if plain is WANT_READ or plain is WANT_WRITE:
            return plain
        owner._sock = plain
        owner._tls = False
        return None


# ------------------------------------------------------------------ blocking mode
# The bodies of ``AsyncSocket(sock, blocking=True)`` calls that are more than the wrapped
# socket's own method (plain blocking code for threads; never used by tasks).
def plain_recvall(asock: Any, n: int, flags: int) -> bytes:
    """Exactly ``n`` bytes; fewer at EOF, or on timeout once some arrived."""
    if not isinstance(n, int) or isinstance(n, bool) or n < 0:
        raise ValueError(f"recvall needs a byte count >= 0, got {n!r}")
    buf = bytearray(n)
    view = memoryview(buf)
    got = 0
    try:
        while got < n:
            k = asock._sock.recv_into(view[got:], n - got, flags)
            if not k:
                break
            got += k
    except TimeoutError:
        if not got:
            raise
    return bytes(buf) if got == n else bytes(view[:got])


def plain_sendall(asock: Any, data: Any, flags: int) -> int | None:
    """All of ``data``: None; on timeout after some bytes went out, their number."""
    view = memoryview(data).cast("B")
    sent = 0
    try:
        while sent < len(view):
            sent += asock._sock.send(view[sent:sent + TLS_CHUNK] if asock._tls
                                     else view[sent:], flags)
    except TimeoutError:
        if not sent:
            raise
        return sent
    return None


def plain_recv_msg(asock: Any, limit: int) -> bytes:
    """One framed message (``b''`` at a clean end of stream), at most ``limit`` bytes."""
    head = plain_recvall(asock, 4, 0)
    if not head:
        return b""
    if len(head) < 4:
        raise MessageError(f"connection closed inside a message header ({len(head)} of 4 "
                           "bytes)")
    size = HEADER.unpack(head)[0]
    if size > limit:
        raise MessageTooLarge(size, limit)
    data = plain_recvall(asock, size, 0)
    if len(data) != size:
        raise MessageError(f"connection closed inside a message ({len(data)} of {size} bytes)")
    return data


def plain_accept(asock: Any) -> tuple[Any, Any]:
    """``(AsyncSocket, address)``; TLS connections have done their handshake."""
    conn, addr = asock._sock.accept()
    new = type(asock)(conn, blocking=True)
    try:
        ctx = asock._server_ctx()
        if ctx is not None:
            new._sock = ctx.wrap_socket(new._sock, server_side=True)
            new._tls = True
    except BaseException:
        new.close()
        raise
    return new, addr


def plain_connect(asock: Any, address: Any) -> None:
    """Connect, then do the TLS handshake when the socket is configured for TLS."""
    asock._sock.connect(address)
    ctx = asock._client_ctx()
    if ctx is not None:
        hostname = asock._server_hostname
        if hostname is None and ctx.check_hostname and isinstance(address, tuple):
            hostname = address[0]
        asock._sock = ctx.wrap_socket(asock._sock, server_hostname=hostname)
        asock._tls = True
