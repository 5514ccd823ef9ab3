"""Asynchronous sockets: ``pycos.AsyncSocket``.

Owns the socket object tasks use with ``yield``: TCP, UDP and Unix sockets, IPv4 and IPv6, with
optional TLS. Every call first tries the non-blocking system call; only when it would block does
the task wait on the scheduler's poller (see ``pycos._iowait``), so a socket with data ready
costs one system call and no scheduling trip. With ``blocking=True`` the same methods are plain
blocking calls for code outside tasks.

Invariants: at most one task waits per direction (a second one gets ``ConcurrentWaitError``);
``close`` wakes every waiting task with an ``OSError``; a call that fails to start raises in the
calling task. A TLS connection accepted by a server does its handshake in the first operation a
task makes on it (so a slow client never holds up ``accept``); operations of other tasks wait
until it is done. Imports the standard library, ``pycos.core``, ``pycos.errors`` and the other
L3 modules.
"""

from __future__ import annotations

import errno
import os
import socket
import ssl
from collections.abc import Generator
from typing import Any

from . import _sockops as ops
from . import tls
from ._iowait import Op, Pollable, closed_error, on_scheduler
from ._offload import ThreadCall
from .core import lowlevel
from .core.scheduler import _check_timeout
from .core.traps import SUSPEND
from .errors import PycosError

__all__ = ["AsyncSocket", "create_connection", "MessageError", "MessageTooLarge"]

MessageError = ops.MessageError
MessageTooLarge = ops.MessageTooLarge

_HS_PENDING = 1
_HS_FAILED = 2
_PathArg = str | os.PathLike[str] | None


class _Closed:
    """Stands in for the socket object after ``close``: every call fails with EBADF."""

    __slots__ = ()

    def fileno(self) -> int:
        return -1

    def close(self) -> None:
        pass

    def __getattr__(self, name: str) -> Any:
        raise OSError(errno.EBADF, f"socket is closed (accessing {name!r})")


_CLOSED: Any = _Closed()


class AsyncSocket(Pollable):
    """A socket for tasks.

    Args:
        sock: a ``socket.socket`` (TCP, UDP or Unix; IPv4 or IPv6) or an ``ssl.SSLSocket``.
        blocking: False (default): methods return operations to ``yield`` in a task. True:
            methods are ordinary blocking calls (for threads and plain code).
        keyfile, certfile: pycos's TLS spelling: a listening socket presents ``certfile`` to
            clients; a connecting socket trusts exactly ``certfile`` (self-signed model).
        ssl_context: an ``ssl.SSLContext`` used instead: ``accept`` wraps connections on the
            server side, ``connect`` on the client side (see ``pycos.tls``).
        server_hostname: name to check the server certificate against (TLS clients; defaults
            to the host given to ``connect`` when the context checks host names).

    Unknown attributes (``bind``, ``listen``, ``getsockname``, ``setsockopt`` …) are those of the
    wrapped socket. Timeouts (``settimeout``) raise ``socket.timeout`` (``TimeoutError``).
    """

    __slots__ = ("_sock", "_blocking", "_timeout", "_keyfile", "_certfile", "_ssl_context",
                 "_server_hostname", "_hs", "_hs_owner", "_hs_error", "_c_recv",
                 "_c_send", "_c_recvall", "_c_sendall", "__weakref__")

    _sock: Any
    _keyfile: _PathArg
    _certfile: _PathArg
    _ssl_context: ssl.SSLContext | None

    #: Default ``max_size`` of ``recv_msg`` (bytes).
    max_msg_size = 64 * 1024 * 1024

    def __init__(self, sock: socket.socket | AsyncSocket, blocking: bool = False,
                 keyfile: _PathArg = None, certfile: _PathArg = None,
                 ssl_context: ssl.SSLContext | None = None, *,
                 server_hostname: str | None = None) -> None:
        if isinstance(sock, AsyncSocket):
            other, sock = sock, sock._sock
            if sock is _CLOSED:
                raise ValueError(f"{other!r} is closed")
            if other._rtask is not None or other._wtask is not None or other._queue:
                raise RuntimeError(f"{other!r}: tasks are waiting on it; cannot wrap it again")
            other._release_poller()
            keyfile = keyfile or other._keyfile
            certfile = certfile or other._certfile
            ssl_context = ssl_context or other._ssl_context
            other._sock = _CLOSED  # the old wrapper lets go of it
            other._fd = -1
        if not isinstance(sock, socket.socket):
            raise TypeError(f"AsyncSocket needs a socket.socket, got {sock!r}")
        _check_tls_args(keyfile, certfile, ssl_context, server_hostname)
        self._init_pollable(sock.fileno())
        self._sock = sock
        self._keyfile = keyfile
        self._certfile = certfile
        self._ssl_context = ssl_context
        self._server_hostname = server_hostname
        self._timeout: float | None = None
        self._tls = isinstance(sock, ssl.SSLSocket)
        self._hs = 0
        self._hs_owner: Op | None = None
        self._hs_error: BaseException | None = None
        if isinstance(sock, ssl.SSLSocket) and sock.version() is None and _connected(sock):
            self._hs = _HS_PENDING  # wrapped by the caller without a handshake yet
            self._gated = True
        self._c_recv = ops.Recv(self)
        self._c_send = ops.Send(self)
        self._c_recvall = ops.RecvAll(self)
        self._c_sendall = ops.SendAll(self)
        self._blocking: bool | None = None
        self.setblocking(blocking)

    # ------------------------------------------------------------------ basics
    def __getattr__(self, name: str) -> Any:
        if name == "_sock":
            raise AttributeError(name)
        return getattr(self._sock, name)

    def __repr__(self) -> str:
        kind = "TLS " if self._tls else ""
        return f"<AsyncSocket {kind}fd={self._fd}{' blocking' if self._blocking else ''}>"

    def __enter__(self) -> AsyncSocket:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    @property
    def blocking(self) -> bool:
        """True when methods are plain blocking calls."""
        return bool(self._blocking)

    def setblocking(self, blocking: bool) -> None:
        """Plain call: switch between task mode (False) and plain blocking calls (True)."""
        blocking = bool(blocking)
        if blocking == self._blocking:
            return
        if blocking and (self._rtask is not None or self._wtask is not None or self._queue):
            raise RuntimeError(f"{self!r}: tasks are waiting on it; cannot switch to blocking")
        self._blocking = blocking
        if blocking:
            self._release_poller()
            self._sock.settimeout(self._timeout)
            if self._hs == _HS_PENDING:
                self._sock.do_handshake()
                self._handshake_done()
        else:
            self._sock.setblocking(False)

    def settimeout(self, timeout: float | None) -> None:
        """Plain call: time limit, in seconds, of each later operation (None: no limit).

        An operation that waits longer raises ``socket.timeout``, except that ``recvall`` /
        ``sendall`` that have moved some data return it (the bytes received / the number of
        bytes sent), as pycos did. For those two the limit is on inactivity: it restarts
        whenever data moves. As in pycos, 0 means no limit for a task-mode socket.
        """
        _check_timeout(timeout, "timeout")
        if self._blocking:
            self._sock.settimeout(timeout)
            self._timeout = timeout
        else:
            self._timeout = timeout if timeout else None

    def gettimeout(self) -> float | None:
        """Plain call: the timeout set with ``settimeout`` (None: no limit)."""
        return self._timeout

    def close(self) -> None:
        """Plain call: close the socket; tasks waiting on it get ``OSError`` (EBADF).

        From a thread other than the scheduler's, the close of a socket tasks have used is
        done by the scheduler thread (this call waits for it).
        """
        sock = self._sock
        if sock is _CLOSED:
            return
        sched = self._sched
        if sched is not None and lowlevel.alive(sched) and not self._blocking:
            if not lowlevel.in_thread(sched):
                on_scheduler(sched, self.close)
                return
            self._close_waits(_socket_closed, sched)
        self._sock = _CLOSED
        self._fd = -1
        sock.close()

    def unwrap(self) -> socket.socket:
        """Plain call (pycos): detach and return the wrapped socket object; this AsyncSocket
        is unusable afterwards. Use ``tls_unwrap`` to end TLS on a connection."""
        if self._rtask is not None or self._wtask is not None or self._queue:
            raise RuntimeError(f"{self!r}: tasks are waiting on it; cannot unwrap")
        self._release_poller()
        sock, self._sock = self._sock, _CLOSED
        self._fd = -1
        return sock  # type: ignore[no-any-return]

    # ------------------------------------------------------------------ reading
    def recv(self, bufsize: int, flags: int = 0) -> Any:
        """Use with yield: up to ``bufsize`` bytes; ``b''`` at end of stream."""
        if self._blocking:
            return self._sock.recv(bufsize, flags)
        op = self._c_recv
        if op.busy:
            op = ops.Recv(self)
        op.busy = True
        op.n = bufsize
        op.flags = flags
        op.timeout = self._timeout
        return op

    def recv_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> Any:
        """Use with yield: receive into ``buffer``; the number of bytes received."""
        if self._blocking:
            return self._sock.recv_into(buffer, nbytes, flags)
        op = ops.RecvInto(self)
        op.buf, op.n, op.flags, op.timeout = buffer, nbytes, flags, self._timeout
        return op

    def recvall(self, bufsize: int, flags: int = 0) -> Any:
        """Use with yield: exactly ``bufsize`` bytes.

        Fewer bytes come back only when the peer closed the connection (``b''`` if it sent
        nothing) or, with a timeout set, when it passed after some bytes arrived; with none
        received the timeout raises ``socket.timeout``.
        """
        if self._blocking:
            return ops.plain_recvall(self, bufsize, flags)
        op = self._c_recvall
        if op.busy:
            op = ops.RecvAll(self)
        op.start(bufsize, flags)
        op.busy = True
        op.timeout = self._timeout
        return op

    def recvfrom(self, bufsize: int, flags: int = 0) -> Any:
        """Use with yield: ``(data, address)`` of one datagram."""
        if self._blocking:
            return self._sock.recvfrom(bufsize, flags)
        op = ops.RecvFrom(self)
        op.n, op.flags, op.buf, op.timeout = bufsize, flags, None, self._timeout
        return op

    def recvfrom_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> Any:
        """Use with yield: ``(nbytes, address)`` of one datagram received into ``buffer``."""
        if self._blocking:
            return self._sock.recvfrom_into(buffer, nbytes, flags)
        op = ops.RecvFrom(self)
        op.n, op.flags, op.buf, op.timeout = nbytes, flags, buffer, self._timeout
        return op

    def recv_msg(self, max_size: int | None = None) -> Any:
        """Use with yield: one message sent with ``send_msg`` (4-byte big-endian length, then
        the payload); ``b''`` when the peer closed the connection between messages.

        Args:
            max_size: largest payload accepted (default ``AsyncSocket.max_msg_size``, 64 MiB).
                A larger announced length raises ``MessageTooLarge`` before anything is
                allocated for it.

        Raises:
            MessageError: the connection closed inside a message.
            socket.timeout: the timeout passed (the message says if part of a message was
                read, which leaves the connection out of step).
        """
        limit = self.max_msg_size if max_size is None else max_size
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 0:
            raise ValueError(f"max_size must be an int >= 0, got {max_size!r}")
        if self._blocking:
            return ops.plain_recv_msg(self, limit)
        op = ops.RecvMsg(self)
        op.begin(limit)
        op.busy = True
        op.timeout = self._timeout
        return op

    # ------------------------------------------------------------------ writing
    def send(self, data: Any, flags: int = 0) -> Any:
        """Use with yield: send some of ``data``; the number of bytes sent."""
        if self._blocking:
            return self._sock.send(data, flags)
        op = self._c_send
        if op.busy:
            op = ops.Send(self)
        op.busy = True
        op.data = data
        op.flags = flags
        op.timeout = self._timeout
        return op

    def sendall(self, data: Any, flags: int = 0) -> Any:
        """Use with yield: send all of ``data``; None.

        With a timeout set, if it passes after some bytes went out the result is their number
        (as pycos); with none sent it raises ``socket.timeout``.
        """
        if self._blocking:
            return ops.plain_sendall(self, data, flags)
        op = self._c_sendall
        if op.busy:
            op = ops.SendAll(self)
        op.start(data, flags, None)
        op.busy = True
        op.timeout = self._timeout
        return op

    def sendto(self, data: Any, *args: Any) -> Any:
        """Use with yield: ``sendto(data, [flags,] address)``; the number of bytes sent."""
        if self._blocking:
            return self._sock.sendto(data, *args)
        op = ops.SendTo(self)
        op.args, op.timeout = (data, *args), self._timeout
        return op

    def send_msg(self, data: Any) -> Any:
        """Use with yield: send ``data`` as one message for ``recv_msg`` (its length as 4
        bytes, big-endian, then the bytes). Result as ``sendall``."""
        size = memoryview(data).nbytes
        if size > 0xFFFFFFFF:
            raise ValueError(f"a message holds at most 4 GiB - 1 bytes, got {size}")
        head = ops.HEADER.pack(size)
        if self._blocking:
            return ops.plain_sendall(self, head + bytes(data), 0)
        op = ops.SendAll(self)
        if size <= ops.JOIN_LIMIT:
            op.start(head + bytes(data), 0, None)
        else:
            op.start(data, 0, head)
        op.busy = True
        op.timeout = self._timeout
        return op

    # ------------------------------------------------------------ connections
    def accept(self) -> Any:
        """Use with yield: ``(AsyncSocket, address)`` of a new connection.

        With TLS configured the connection is wrapped as the server side; its handshake runs
        in the first operation made on it (or an explicit ``yield conn.do_handshake()``).
        """
        if self._blocking:
            return ops.plain_accept(self)
        op = ops.Accept(self)
        op.timeout = self._timeout
        return op

    def connect(self, address: Any) -> Any:
        """Use with yield: connect to ``address``; 0. With TLS configured (``ssl_context`` or
        ``certfile``) the handshake is done too, and its failure raised here.

        Host names are resolved on a worker thread; connection failures raise the usual
        ``OSError`` subclasses (``ConnectionRefusedError`` …), a timeout ``socket.timeout``.
        """
        if self._blocking:
            return ops.plain_connect(self, address)
        host = address[0] if isinstance(address, tuple) and address else None
        if isinstance(host, str) and self._needs_lookup(host):
            return self._lookup_connect(address)
        op = ops.Connect(self)
        op.address, op.host, op.phase, op.timeout = address, host, 0, self._timeout
        return op

    def create_connection(self, host_port: Any, timeout: float | None = None,
                          source_address: Any = None) -> Any:
        """Use with yield (pycos): set ``timeout``, bind to ``source_address`` if given, then
        ``connect(host_port)``. See also the module function ``create_connection``."""
        if timeout is not None:
            self.settimeout(timeout)
        if source_address is not None:
            self._sock.bind(source_address)
        return self.connect(host_port)

    def do_handshake(self) -> Any:
        """Use with yield: finish the TLS handshake now (normally the first operation does it);
        None. Its failure (``ssl.SSLError``, e.g. an unknown CA) is raised here."""
        if self._blocking:
            if self._hs:
                self._sock.do_handshake()
                self._handshake_done()
            return None
        return ops.Handshake(self, None)

    def starttls(self, ssl_context: ssl.SSLContext | None = None, server_side: bool = False,
                 server_hostname: str | None = None) -> Any:
        """Use with yield: turn this plain connection into a TLS one and do the handshake.

        Args:
            ssl_context: the context; default the one this socket was configured with.
            server_side: act as the TLS server.
            server_hostname: name to verify (client side).
        """
        if self._tls:
            raise ValueError(f"{self!r} already uses TLS")
        ctx = ssl_context
        if ctx is None:
            ctx = self._server_ctx() if server_side else self._client_ctx()
        if not isinstance(ctx, ssl.SSLContext):
            raise TypeError(f"starttls needs an ssl.SSLContext, got {ctx!r}")
        if self._blocking:
            self._sock = ctx.wrap_socket(self._sock, server_side=server_side,
                                         server_hostname=server_hostname)
            self._tls = True
            return None
        op = ops.StartTLS(self, None)
        op.ctx, op.server_side, op.hostname, op.wrapped = (ctx, server_side, server_hostname,
                                                           False)
        return op

    def tls_unwrap(self) -> Any:
        """Use with yield: end TLS with the close-notify exchange (the peer must do the same)
        and keep the connection in plain text; None."""
        if self._blocking:
            self._sock = tls.shutdown_step(self._sock)  # blocking socket: never waits
            self._tls = False
            return None
        op = ops.TLSUnwrap(self)
        op.timeout = self._timeout
        return op

    # ------------------------------------------------------------------ internals
    def _needs_lookup(self, host: str) -> bool:
        if self._sock.family not in (socket.AF_INET, socket.AF_INET6) or host in ("",
                                                                                  "<broadcast>"):
            return False
        try:
            socket.inet_pton(self._sock.family, host.partition("%")[0])
        except (OSError, ValueError):
            return True
        return False

    def _lookup_connect(self, address: tuple[Any, ...]) -> Generator[Any, Any, Any]:
        sock = self._sock
        infos = yield ThreadCall(socket.getaddrinfo, address[0], address[1], sock.family,
                                 sock.type, sock.proto)
        if not infos:
            raise OSError(errno.EHOSTUNREACH, f"no address found for {address[0]!r}")
        op = ops.Connect(self)
        op.address, op.host, op.phase, op.timeout = infos[0][4], address[0], 0, self._timeout
        return (yield op)

    def _server_ctx(self) -> ssl.SSLContext | None:
        if self._ssl_context is not None:
            return self._ssl_context
        if self._certfile is not None:
            return tls.pycos_server_context(self._certfile, self._keyfile)
        return None

    def _client_ctx(self) -> ssl.SSLContext | None:
        if self._ssl_context is not None:
            return self._ssl_context
        if self._certfile is not None:
            return tls.pycos_client_context(self._certfile, self._keyfile)
        return None

    def _adopt(self, conn: socket.socket) -> AsyncSocket:
        """Wrap a connection returned by ``accept`` (TLS server side when configured)."""
        new = AsyncSocket(conn)
        try:
            ctx = self._server_ctx()
            if ctx is not None:
                new._wrap(ctx, True, None)
        except BaseException:
            new.close()
            raise
        return new

    def _wrap(self, ctx: ssl.SSLContext, server_side: bool, hostname: str | None) -> None:
        self._sock = ctx.wrap_socket(self._sock, server_side=server_side,
                                     server_hostname=hostname, do_handshake_on_connect=False)
        self._tls = True
        self._hs = _HS_PENDING
        self._gated = True

    def _wrap_client(self, host: Any, op: Op) -> bool:
        """After a TCP connect: start the client side of TLS if configured."""
        ctx = self._client_ctx()
        if ctx is None:
            return False
        hostname = self._server_hostname
        if hostname is None and ctx.check_hostname and isinstance(host, str):
            hostname = host
        self._wrap(ctx, False, hostname)
        self._hs_owner = op
        return True

    def _gated_begin(self, sched: Any, task: Any, op: Op) -> Any:
        """Start an operation while the TLS handshake is pending (or failed)."""
        if self._hs == _HS_FAILED:
            op.release()
            raise self._handshake_error()
        if self._hs_owner is not None:  # another task runs the handshake: wait for it
            self._enqueue(task, op)
            self._park(sched, task, op)
            return SUSPEND
        hs = op if isinstance(op, ops.Handshake) else ops.Handshake(self, op)
        self._hs_owner = hs
        return hs._run(sched, task)

    def _retry_queue(self) -> None:
        if not self._hs:
            Pollable._retry_queue(self)
            return
        queue, self._queue = self._queue, None
        for task, op in queue or ():
            if not lowlevel.is_parked_on(task, self):
                continue
            if self._hs == _HS_FAILED:
                op.release()
                lowlevel.wake_exc(task, self._handshake_error())
            elif self._hs_owner is None:
                hs = op if isinstance(op, ops.Handshake) else ops.Handshake(self, op)
                self._hs_owner = hs
                self._resume(task, hs)
            else:
                self._enqueue(task, op)

    def _kick_queue(self) -> None:
        if self._queue and self._sched is not None:
            lowlevel.call_soon(self._sched, self._retry_queue)

    def _handshake_done(self) -> None:
        self._hs = 0
        self._gated = False
        self._hs_owner = None
        self._kick_queue()

    def _handshake_failed(self, exc: BaseException) -> None:
        self._hs = _HS_FAILED
        self._hs_error = exc
        self._hs_owner = None
        self._kick_queue()

    def _handshake_error(self) -> ConnectionError:
        err = ConnectionError(f"the TLS handshake of this connection failed: {self._hs_error}")
        err.__cause__ = self._hs_error
        return err


def _socket_closed() -> OSError:
    return closed_error("socket")


def _connected(sock: socket.socket) -> bool:
    try:
        sock.getpeername()
    except OSError:
        return False
    return True


def _check_tls_args(keyfile: Any, certfile: Any, ctx: Any, hostname: Any) -> None:
    for name, value in (("keyfile", keyfile), ("certfile", certfile)):
        if value is not None and not isinstance(value, (str, os.PathLike)):
            raise TypeError(f"{name} must be a path (str or os.PathLike) or None, got {value!r}")
    if keyfile is not None and certfile is None:
        raise ValueError("keyfile given without certfile")
    if ctx is not None and not isinstance(ctx, ssl.SSLContext):
        raise TypeError(f"ssl_context must be an ssl.SSLContext or None, got {ctx!r}")
    if ctx is not None and certfile is not None:
        raise ValueError("give either ssl_context or certfile/keyfile, not both")
    if hostname is not None and not isinstance(hostname, str):
        raise TypeError(f"server_hostname must be a str or None, got {hostname!r}")


# ---------------------------------------------------------------- module level
def create_connection(address: tuple[str, int], timeout: float | None = None,
                      source_address: Any = None, ssl_context: ssl.SSLContext | None = None,
                      server_hostname: str | None = None) -> Generator[Any, Any, AsyncSocket]:
    """Use with yield: a connected ``AsyncSocket`` to ``(host, port)``, IPv4 or IPv6.

    Like ``socket.create_connection``: every address the host resolves to is tried in turn;
    the last error is raised if none works. ``timeout`` applies to each attempt and stays set
    on the socket; ``ssl_context`` makes it a TLS connection (handshake done).
    """
    if not (isinstance(address, tuple) and len(address) == 2):
        raise TypeError(f"address must be a (host, port) tuple, got {address!r}")
    _check_timeout(timeout, "timeout")
    host, port = address
    infos = yield ThreadCall(socket.getaddrinfo, host, port, 0, socket.SOCK_STREAM)
    error: BaseException | None = None
    for family, kind, proto, _name, sockaddr in infos:
        asock = AsyncSocket(socket.socket(family, kind, proto), ssl_context=ssl_context,
                            server_hostname=server_hostname)
        try:
            if source_address is not None:
                asock.bind(source_address)
            asock.settimeout(timeout)
            op = ops.Connect(asock)
            op.address, op.host, op.phase, op.timeout = sockaddr, host, 0, asock._timeout
            yield op
            return asock
        except (OSError, PycosError) as exc:
            asock.close()
            error = exc
    if error is None:
        error = OSError(errno.EHOSTUNREACH, f"no address found for {host!r}")
    raise error
