"""Blocking chunk I/O over one swarm connection (a ``pycos.net.StreamConn``).

Owns ``Wire``: ``send(chunk)`` frames one chunk of records (``_protocol``) and writes it under
a lock, so several threads may write (a consumer granting credit while another thread reads);
``recv(timeout)`` returns the next chunk (one thread reads at a time); ``readable(timeout)``
waits for input without consuming it; ``send_raw`` / ``recv_raw_into`` move the raw sections of
large files, and ``file_mac`` gives the HMAC of one. Every blocking call has a time limit.
Imports the standard library, ``pycos.errors``, ``pycos.proto`` and ``pycos.net.streams``.
"""

from __future__ import annotations

import hashlib
import hmac
import select
import socket
import ssl
import struct
import threading
from typing import Any

from ..errors import PycosError, RemoteProtocolError
from ..proto import NEED_DATA, Batch, Bye, ConnectionClosed, Heartbeat, Refused
from .errors import GatewayClosed, Stalled

__all__ = ["Wire", "FILE_KEY_LABEL", "READ_SIZE"]

READ_SIZE = 1024 * 1024
#: Label of the key that authenticates raw file sections (``Connection.derive_key``).
FILE_KEY_LABEL = b"pycos.swarm.file.v1"
_U64 = struct.Struct(">QQ")


class Wire:
    """One end of a swarm connection.

    Args:
        stream: the ``StreamConn`` (its ``sock`` and ``conn``; the go-ahead was exchanged).
        timeout: seconds any single read or write may take (the idle limit).
    """

    def __init__(self, stream: Any, timeout: float) -> None:
        self.stream = stream
        self.sock: socket.socket = stream.sock
        self.conn = stream.conn
        self.peer: str = stream.peer
        self.lock = threading.Lock()
        self.timeout = timeout
        self.closed = False
        self._file_key: bytes | None = None
        self.files = 0  # raw sections so far (both directions share the count)
        self._eof = False
        self.sock.settimeout(timeout)

    def __repr__(self) -> str:
        return f"<swarm Wire with {self.peer}>"

    # ------------------------------------------------------------------ output
    def send(self, chunk: bytes) -> None:
        """Frame ``chunk`` and write it (any thread; blocks up to the idle limit).

        Raises:
            GatewayClosed: the connection is gone.
        """
        with self.lock:
            self._send(chunk)

    def _send(self, chunk: bytes) -> None:
        try:
            self.sock.sendall(self.conn.send_batch(chunk))
        except TimeoutError:
            self.closed = True
            raise Stalled(f"{self.peer} took nothing for {self.timeout:.3g} s") from None
        except (OSError, PycosError) as exc:
            self.closed = True
            raise GatewayClosed(f"connection with {self.peer} lost: {_why(exc)}") from None

    def send_then(self, chunk: bytes, then: Any) -> Any:
        """Frame and write ``chunk``, then call ``then()`` (which writes a raw section) before
        any other thread may write; returns what ``then`` returns."""
        with self.lock:
            self._send(chunk)
            return then()

    def send_raw(self, data: Any) -> None:
        """Write raw bytes after the frames sent so far (the writer holds ``lock``)."""
        try:
            self.sock.sendall(data)
        except TimeoutError:
            self.closed = True
            raise Stalled(f"{self.peer} took nothing for {self.timeout:.3g} s") from None
        except OSError as exc:
            self.closed = True
            raise GatewayClosed(f"connection with {self.peer} lost: {_why(exc)}") from None

    # ------------------------------------------------------------------ input
    def readable(self, timeout: float | None) -> bool:
        """True when input is waiting (buffered or on the socket) within ``timeout`` s."""
        if self.conn.buffered:
            return True
        sock = self.sock
        if isinstance(sock, ssl.SSLSocket) and sock.pending():
            return True
        try:
            ready, _, _ = select.select([sock], [], [], timeout)
        except (OSError, ValueError):
            return True  # closed: the next read says so
        return bool(ready)

    def writable(self) -> bool:
        """True when a write would not block now (the other end keeps up)."""
        try:
            _, ready, _ = select.select([], [self.sock], [], 0)
        except (OSError, ValueError):
            return True  # closed: the write says so
        return bool(ready)

    def recv(self) -> Any:
        """The next chunk (one reading thread at a time; blocks up to the idle limit).

        Raises:
            GatewayClosed: the other end closed the connection, or it broke.
            Stalled: nothing arrived within the idle limit.
            RemoteProtocolError: the other end broke the protocol.
        """
        conn = self.conn
        plain = not conn.authenticated  # frames without MACs: the copy-saving path
        while True:
            if plain and not self._eof:
                body = conn.next_batch()
                if body is NEED_DATA or (body is None and conn.buffered
                                         and conn.partial() is None):
                    self._fill()  # wait for the rest of the frame rather than copy it
                    continue
                if body is not None:
                    return body
            try:
                event = conn.next_event()
            except RemoteProtocolError:
                self._flush_refusal()
                raise
            if event is NEED_DATA:
                self._fill()
                continue
            if isinstance(event, Batch):
                return event.body
            if isinstance(event, Heartbeat):
                continue
            self.closed = True
            if isinstance(event, Refused):
                raise GatewayClosed(f"{self.peer} refused the connection: {event.reason}")
            if isinstance(event, Bye | ConnectionClosed):
                raise GatewayClosed(f"{self.peer} closed the connection")
            raise RemoteProtocolError(f"unexpected {type(event).__name__} from {self.peer}")

    def _fill(self) -> None:
        """Read what the socket has (at least one byte; EOF is fed as such)."""
        try:
            data = self.sock.recv(READ_SIZE)
        except TimeoutError:
            self.closed = True
            raise Stalled(f"nothing from {self.peer} for {self.timeout:.3g} s") from None
        except OSError as exc:
            self.closed = True
            raise GatewayClosed(f"connection with {self.peer} lost: {_why(exc)}") from None
        if not data:
            self._eof = True
        self.conn.receive_data(data)

    def recv_raw_into(self, view: memoryview) -> int:
        """Fill ``view`` with raw bytes (buffered ones first); returns how many (fewer only
        when the connection closed)."""
        have: int = self.conn.take_buffered(view)
        want = len(view)
        sock = self.sock
        while have < want:
            try:
                n = sock.recv_into(view[have:], want - have)
            except TimeoutError:
                self.closed = True
                raise Stalled(f"nothing from {self.peer} for {self.timeout:.3g} s") \
                    from None
            except OSError as exc:
                self.closed = True
                raise GatewayClosed(f"connection with {self.peer} lost: {_why(exc)}") from None
            if not n:
                self.closed = True
                break
            have += n
        return have

    def _flush_refusal(self) -> None:
        out = self.conn.data_to_send()
        if out:
            with self.lock:
                try:
                    self.sock.sendall(out)
                except OSError:
                    pass

    # ------------------------------------------------------------------ files
    def file_mac(self, size: int) -> Any:
        """A fresh HMAC for the next raw section of ``size`` bytes (both ends number the
        sections alike, so a section cannot be replayed in another place)."""
        if self._file_key is None:
            self._file_key = self.conn.derive_key(FILE_KEY_LABEL)
        mac = hmac.new(self._file_key, digestmod=hashlib.sha256)
        mac.update(_U64.pack(self.files, size))
        self.files += 1
        return mac

    @property
    def tls(self) -> bool:
        return isinstance(self.sock, ssl.SSLSocket)

    # ------------------------------------------------------------------ closing
    def close(self) -> None:
        """Say goodbye and close (idempotent; any thread)."""
        self.closed = True
        try:
            with self.lock:
                self.stream.close()
        except (OSError, PycosError):
            pass

    def abort(self) -> None:
        """Close at once, from any thread, without waiting for a writer: a thread blocked
        on this connection wakes with an error."""
        self.closed = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def _why(exc: BaseException) -> str:
    return (exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)) or \
        type(exc).__name__
