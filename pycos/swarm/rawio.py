"""The raw section of a large file: sent zero-copy, hashed beside, received into a file.

Owns ``send_section`` (exactly the announced size of an open file: ``os.sendfile`` from the
page cache when the connection is not TLS, each chunk hashed from a map of the file by a second
thread meanwhile — hashing releases the interpreter lock — else read, hash and ``sendall``
through one buffer) and ``receive_section`` (``recv_into`` one buffer, hash, write). A file that
shrinks while it is sent is padded to its announced size and reported changed, as is one whose
size or mtime differs afterwards: its receiver discards it. Memory per transfer does not depend
on the file's size. Imports the standard library, ``pycos.net.files.receive`` (``set_timeo``)
and the package's modules.
"""

from __future__ import annotations

import mmap
import os
import socket
import threading
from collections import deque
from typing import Any

from ..net.files.receive import set_timeo
from .errors import GatewayClosed, Stalled, TransferError
from .wire import Wire

__all__ = ["send_section", "receive_section", "BUF_SIZE", "CHUNK"]

BUF_SIZE = 1024 * 1024
#: Bytes per ``os.sendfile`` call.
CHUNK = 8 * 1024 * 1024


def send_section(wire: Wire, fd: int, size: int, mtime_ns: int, mac: Any) -> bool:
    """Write ``size`` bytes of ``fd`` (the caller holds ``wire.lock``); returns False when
    the file changed meanwhile (its bytes were still sent in full: padded if it shrank).

    Raises:
        GatewayClosed: the connection failed or stalled (``Stalled``).
    """
    if wire.tls or not hasattr(os, "sendfile") or size < BUF_SIZE:
        sent = _send_copied(wire, fd, size, mac)
    else:
        sent = _send_zero_copy(wire, fd, size, mac)
    if sent < size:
        _pad(wire, size - sent, mac)
        return False
    st = os.fstat(fd)
    return st.st_size == size and st.st_mtime_ns == mtime_ns


def _pad(wire: Wire, n: int, mac: Any) -> None:
    zeros = bytes(min(n, BUF_SIZE))
    while n > 0:
        part = zeros[:min(n, len(zeros))]
        mac.update(part)
        wire.send_raw(part)
        n -= len(part)


def _send_copied(wire: Wire, fd: int, size: int, mac: Any) -> int:
    buf = memoryview(bytearray(min(BUF_SIZE, max(size, 1))))
    sent = 0
    while sent < size:
        n = os.preadv(fd, [buf[:min(len(buf), size - sent)]], sent)
        if not n:
            break
        mac.update(buf[:n])
        wire.send_raw(buf[:n])
        sent += n
    return sent


def _hash_range(mac: Any, fd: int, start: int, n: int) -> None:
    base = start - start % mmap.ALLOCATIONGRANULARITY
    with mmap.mmap(fd, start + n - base, prot=mmap.PROT_READ, offset=base) as mapped:
        view = memoryview(mapped)
        try:
            mac.update(view[start - base:])
        finally:
            view.release()


def _send_zero_copy(wire: Wire, fd: int, size: int, mac: Any) -> int:
    todo: deque[tuple[int, int]] = deque()
    ready = threading.Semaphore(0)
    failure: list[BaseException] = []

    def hasher() -> None:
        while True:
            ready.acquire()
            start, n = todo.popleft()
            if n < 0:
                return
            if failure:
                continue
            try:
                _hash_range(mac, fd, start, n)
            except (OSError, ValueError) as exc:
                failure.append(exc)

    thread = threading.Thread(target=hasher, name="pycos-swarm-hash", daemon=True)
    thread.start()
    sock = wire.sock
    sent = 0
    set_timeo(sock, socket.SO_SNDTIMEO, wire.timeout)
    try:
        while sent < size:
            try:
                n = os.sendfile(sock.fileno(), fd, sent, min(CHUNK, size - sent))
            except (BlockingIOError, TimeoutError):
                wire.closed = True
                raise Stalled(f"{wire.peer} took nothing for {wire.timeout:.3g} s") from None
            except OSError as exc:
                wire.closed = True
                raise GatewayClosed(f"connection with {wire.peer} lost: {exc}") from None
            if not n:
                break
            todo.append((sent, n))
            ready.release()
            sent += n
    finally:
        todo.append((0, -1))
        ready.release()
        thread.join()
        sock.settimeout(wire.timeout)
    if failure:
        raise TransferError(f"cannot read the file to hash it: {failure[0]}")
    return sent


def receive_section(wire: Wire, size: int, mac: Any, sink: Any) -> None:
    """Read exactly ``size`` raw bytes, hashing them and passing each buffer to ``sink``
    (``Incoming.write``, or None to discard them).

    Raises:
        GatewayClosed: the connection closed or stalled (``Stalled``) before the end.
    """
    buf = memoryview(bytearray(min(BUF_SIZE, max(size, 1))))
    left = size
    update = mac.update
    while left > 0:
        view = buf[:min(len(buf), left)]
        n = wire.recv_raw_into(view)
        if n < len(view):
            raise GatewayClosed(f"{wire.peer} closed the connection inside a file "
                                f"({size - left + n} of {size} bytes)")
        update(view)
        if sink is not None:
            sink(view)
        left -= n
