"""The sending end of a file transfer, run on a thread of its own.

Owns ``SendJob`` and ``send``: open and ``fstat`` the file (so what is announced is what is
sent), connect to the receiving node's port, authenticate, offer the file as a ``"file"``
stream, and after the receiver's go-ahead write exactly the announced size — zero-copy with
``os.sendfile`` when the connection is not TLS — then the trailer, and read the final answer.
The dialogue and the reasons for it are described in ``pycos.net._filestream``. Imports the
standard library, ``pycos.errors``, ``pycos.proto`` and its own package.

Invariants: every blocking call has a time limit (``handshake_timeout`` until the offer is made,
then the transfer's inactivity limit); the file is never read whole into memory; at most
``MAX_OUTGOING`` transfers send at once in a process; each failure is one log line.
"""

from __future__ import annotations

import logging
import os
import socket
import ssl
import stat
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..errors import PycosError
from ..proto import Connection, Role
from ._filestream import (
    BUF_SIZE,
    CHUNK,
    LINUX,
    OUTGOING,
    STREAM_KIND,
    Frames,
    Offer,
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
                  stat.S_IMODE(st.st_mode) & 0o777, job.overwrite, job.idle)
    sock = _connect(job)
    try:
        frames = Frames(sock, Connection(Role.CLIENT, secret=job.config.secret,
                                          max_frame_size=job.config.max_frame_size))
        frames.handshake()
        frames.expect("_info")  # the receiving link has written all of its own frames
        frames.send((STREAM_KIND, offer.to_wire()), kind="_stream")
        sock.settimeout(job.idle)
        verdict = _verdict(frames.expect())
        if verdict != "send":
            return verdict
        _send_bytes(job, sock, fd, offer.size)
        frames.send(("sent", offer.size))
        result = _verdict(frames.expect())
        if result != 0:
            raise TransferError(f"unexpected answer {result!r}")
        return 0
    finally:
        sock.close()


def _verdict(answer: Any) -> Any:
    if not (isinstance(answer, tuple) and len(answer) == 2):
        raise TransferError(f"malformed answer {answer!r}")
    what, value = answer
    if what == "send":
        return "send"
    if what == "same":
        return 1
    if what == "exists":
        return stat_result(value)
    if what == "done" and value == 0:
        return 0
    if what == "refused":
        raise TransferError(f"the receiver refused it: {value}")
    raise TransferError(f"malformed answer {answer!r}")


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


def _send_bytes(job: SendJob, sock: socket.socket, fd: int, size: int) -> None:
    job.report(0, size)
    if isinstance(sock, ssl.SSLSocket) or not hasattr(os, "sendfile"):
        _send_copied(job, sock, fd, size)
        return
    if LINUX:
        set_timeo(sock, socket.SO_SNDTIMEO, job.idle)
    try:
        _send_zero_copy(job, sock, fd, size)
    finally:
        sock.settimeout(job.idle)  # the answer that follows is waited for with a limit too


def _send_zero_copy(job: SendJob, sock: socket.socket, fd: int, size: int) -> None:
    sent = 0
    while sent < size:
        if job.cancelled():
            raise TransferError("abandoned: the waiting task stopped waiting")
        try:
            n = os.sendfile(sock.fileno(), fd, sent, min(CHUNK, size - sent))
        except (BlockingIOError, TimeoutError):
            raise TransferError(f"the receiver took nothing for {job.idle:.3g} s") from None
        if not n:
            raise TransferError(f"the file shrank to {sent} bytes while being sent")
        sent += n
        job.report(sent, size)


def _send_copied(job: SendJob, sock: socket.socket, fd: int, size: int) -> None:
    """Read and send through a buffer (TLS, or no ``os.sendfile``)."""
    buf = memoryview(bytearray(min(BUF_SIZE, max(size, 1))))
    sent = 0
    while sent < size:
        if job.cancelled():
            raise TransferError("abandoned: the waiting task stopped waiting")
        want = buf[:min(len(buf), size - sent)]
        n = os.preadv(fd, [want], sent) if hasattr(os, "preadv") else _pread_into(fd, want, sent)
        if not n:
            raise TransferError(f"the file shrank to {sent} bytes while being sent")
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
