"""The sending end of a file transfer, run on a thread of its own.

Owns ``SendJob`` and ``send``: open and ``fstat`` the file (so what is announced is what is
sent), connect to the receiving node's port, authenticate, offer the file as a ``"file"``
stream, and after the receiver's go-ahead write exactly the announced size — zero-copy with
``os.sendfile`` when the connection is not TLS, the content hashed from the page cache beside
it — then the trailer with the digest, and read the final answer. The dialogue is
``pycos.proto.filedialog``; the receiving end and the reasons are in ``receive``. Imports the
standard library, ``pycos.errors``, ``pycos.proto`` and its own package.

Invariants: every blocking call has a time limit (``handshake_timeout`` until the offer is made,
then the transfer's inactivity limit); the file is never read whole into memory; at most
``MAX_OUTGOING`` transfers send at once in a process; each failure is one log line.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import mmap
import os
import socket
import ssl
import stat
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ...errors import PycosError, RemoteProtocolError
from ...proto import Connection, Role
from ...proto import batch as wire
from ...proto.filedialog import KEY_LABEL, Answer, AnswerCode, Offer, Trailer
from .receive import (
    BUF_SIZE,
    CHUNK,
    LINUX,
    OUTGOING,
    STREAM_KIND,
    Frames,
    TransferError,
    set_timeo,
    stat_result,
)

__all__ = ["SendJob", "send"]

logger = logging.getLogger("pycos.net.files")


@dataclass
class SendJob:
    """One transfer to send: where, what, and how to report (see ``pycos.net.files``)."""

    config: Any
    sockaddr: tuple[Any, ...]
    family: int
    path: str
    name: str
    dir: str | None
    overwrite: bool
    idle: float
    report: Callable[[int, int], None]
    cancelled: Callable[[], bool]


def send(job: SendJob) -> Any:
    """Send one file (blocking; on its own thread): 0, 1, an ``os.stat_result`` or -1."""
    with OUTGOING:
        try:
            fd = os.open(job.path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        except OSError as exc:
            logger.warning("send_file: cannot read %r: %s", job.path, exc.strerror or exc)
            return -1
        try:
            return _send_fd(job, fd)
        except (TransferError, OSError, PycosError) as exc:
            logger.warning("send_file: sending %r to %s failed: %s", job.path,
                           _fmt(job.sockaddr), exc)
            return -1
        finally:
            os.close(fd)


def _send_fd(job: SendJob, fd: int) -> Any:
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        raise TransferError("not a regular file")
    offer = Offer(job.name, job.dir, st.st_size, st.st_mtime_ns, st.st_atime_ns,
                  stat.S_IMODE(st.st_mode) & 0o777, job.overwrite)
    sock = _connect(job)
    try:
        conn = Connection(Role.CLIENT, secret=job.config.secret,
                          max_frame_size=job.config.max_frame_size)
        frames = Frames(sock, conn)
        frames.handshake()
        frames.expect()  # the receiving node's info: it has written all of its own frames
        sock.sendall(conn.send_batch(wire.stream(STREAM_KIND, offer.encode())))
        sock.settimeout(job.idle)
        answer = _answer(frames.expect())
        if answer.code is AnswerCode.SAME:
            return 1
        if answer.code is AnswerCode.EXISTS:
            assert answer.stat is not None
            return stat_result(answer.stat)
        if answer.code is not AnswerCode.SEND:
            raise TransferError(f"unexpected answer {answer.code.name}")
        mac = hmac.new(conn.derive_key(KEY_LABEL), digestmod=hashlib.sha256)
        _send_bytes(job, sock, fd, offer.size, mac)
        frames.send(Trailer(offer.size, mac.digest()).encode())
        answer = _answer(frames.expect())
        if answer.code is not AnswerCode.DONE:
            raise TransferError(f"unexpected answer {answer.code.name}")
        return 0
    finally:
        sock.close()


def _answer(body: bytes) -> Answer:
    try:
        answer = Answer.decode(body)
    except RemoteProtocolError as exc:
        raise TransferError(str(exc)) from None
    if answer.code is AnswerCode.REFUSED:
        raise TransferError(f"the receiver refused it: {answer.reason}")
    return answer


def _connect(job: SendJob) -> socket.socket:
    config = job.config
    sock = socket.socket(job.family, socket.SOCK_STREAM)
    try:
        sock.settimeout(config.handshake_timeout)
        sock.connect(job.sockaddr)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        ctx = config.client_ctx
        if ctx is not None:
            host = job.sockaddr[0] if ctx.check_hostname else None
            sock = ctx.wrap_socket(sock, server_hostname=host)
    except BaseException:
        sock.close()
        raise
    return sock


def _send_bytes(job: SendJob, sock: socket.socket, fd: int, size: int, mac: Any) -> None:
    job.report(0, size)
    if isinstance(sock, ssl.SSLSocket) or not hasattr(os, "sendfile") or size == 0:
        _send_copied(job, sock, fd, size, mac)
        return
    if LINUX:
        set_timeo(sock, socket.SO_SNDTIMEO, job.idle)
    try:
        _send_zero_copy(job, sock, fd, size, mac)
    finally:
        sock.settimeout(job.idle)  # the answer that follows is waited for with a limit too


def _send_zero_copy(job: SendJob, sock: socket.socket, fd: int, size: int, mac: Any) -> None:
    """``os.sendfile`` chunk by chunk; each chunk is hashed from a map of that part of the file
    by a second thread while the next one is sent (hashing releases the interpreter lock), so
    the digest costs little time and memory. The digest is of the bytes read from the file: if
    it changes while being sent, the receiver's digest differs and it refuses the file."""
    hashed = threading.Semaphore(0)
    todo: list[tuple[int, int]] = []
    lock = threading.Lock()
    failure: list[BaseException] = []

    def hash_chunks() -> None:
        while True:
            hashed.acquire()
            with lock:
                item = todo.pop(0)
            if item[1] < 0:
                return
            try:
                _hash_range(mac, fd, item[0], item[1])
            except BaseException as exc:  # noqa: BLE001 - reported by the sender
                failure.append(exc)
                return

    hasher = threading.Thread(target=hash_chunks, name="pycos-file-hash", daemon=True)
    hasher.start()
    sent = 0
    try:
        while sent < size:
            if job.cancelled():
                raise TransferError("abandoned: the waiting task stopped waiting")
            try:
                n = os.sendfile(sock.fileno(), fd, sent, min(CHUNK, size - sent))
            except (BlockingIOError, TimeoutError):
                raise TransferError(f"the receiver took nothing for {job.idle:.3g} s") from None
            if not n:
                raise TransferError(f"the file shrank to {sent} bytes while being sent")
            with lock:
                todo.append((sent, n))
            hashed.release()
            sent += n
            job.report(sent, size)
    finally:
        with lock:
            todo.append((0, -1))
        hashed.release()
        hasher.join()
    if failure:
        raise TransferError(f"cannot read the file to hash it: {failure[0]}")


def _hash_range(mac: Any, fd: int, start: int, n: int) -> None:
    """Hash ``n`` bytes of the file at ``start`` through a map of just that range."""
    base = start - start % mmap.ALLOCATIONGRANULARITY
    with mmap.mmap(fd, start + n - base, prot=mmap.PROT_READ, offset=base) as mapped:
        view = memoryview(mapped)
        try:
            mac.update(view[start - base:])
        finally:
            view.release()


def _send_copied(job: SendJob, sock: socket.socket, fd: int, size: int, mac: Any) -> None:
    """Read, hash and send through a buffer (TLS, or no ``os.sendfile``)."""
    buf = memoryview(bytearray(min(BUF_SIZE, max(size, 1))))
    sent = 0
    while sent < size:
        if job.cancelled():
            raise TransferError("abandoned: the waiting task stopped waiting")
        want = buf[:min(len(buf), size - sent)]
        n = os.preadv(fd, [want], sent) if hasattr(os, "preadv") else _pread_into(fd, want, sent)
        if not n:
            raise TransferError(f"the file shrank to {sent} bytes while being sent")
        mac.update(buf[:n])
        try:
            sock.sendall(buf[:n])
        except TimeoutError:
            raise TransferError(f"the receiver took nothing for {job.idle:.3g} s") from None
        sent += n
        if sent == size or sent // CHUNK != (sent - n) // CHUNK:
            job.report(sent, size)


def _pread_into(fd: int, view: memoryview, offset: int) -> int:
    data = os.pread(fd, len(view), offset)
    view[:len(data)] = data
    return len(data)


def _fmt(sockaddr: tuple[Any, ...]) -> str:
    host, port = sockaddr[0], sockaddr[1]
    return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
