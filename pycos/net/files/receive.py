"""The receiving end of a file transfer, on a thread of its own; and what both ends share.

Owns ``receive`` (given the connection by the node's link once the client asked for a
``"file"`` stream), the blocking frame I/O both ends use (``Frames``), the limits of transfers
and the bookkeeping of temporary files. The dialogue itself is ``pycos.proto.filedialog``; the
sending end is ``pycos.net.files.send``. Imports the standard library, ``pycos.errors``,
``pycos.proto`` and its own package.

Why a dedicated connection, and why threads:

* File bytes never go through the peer link: a large file would hold up every other message
  behind it, and framing, MACs and the link's buffers would copy each byte several times. A
  transfer instead opens its own connection to the receiver's node port, authenticates it with
  the node secret exactly as a peer link does (the same ``pycos.proto`` handshake, and TLS when
  the node uses it), sends its offer in an authenticated frame, and once the receiver has
  accepted, writes exactly the announced number of raw bytes — with ``os.sendfile`` straight
  from the page cache when the connection is not TLS — followed by an authenticated trailer
  frame. Flow control is TCP's own window: nothing waits for an answer per chunk.
* Each end runs on a thread with a blocking socket: the system calls release the interpreter
  lock, so a user task computing without yielding slows a transfer only slightly and the
  node's scheduler never waits for a disk. On Linux without TLS the receiver moves the bytes
  socket → pipe → file with ``os.splice``, so they never enter the process either; otherwise
  it reads them into one buffer of ``BUF_SIZE`` bytes (the TLS sender too). Memory per
  transfer does not depend on the file size.
* The raw bytes are authenticated like every frame: the trailer carries an HMAC-SHA256 of the
  content under a key derived from this connection's handshake, checked before the file is
  renamed into place (with or without TLS). The receiver therefore reads the bytes itself
  (no ``splice``) to hash them; the sender hashes them as they leave.
* The receiver sets its own limits: its own inactivity limit (``DEFAULT_IDLE``), at most
  ``MAX_INCOMING`` transfers at once and ``MAX_PER_SOURCE`` from one address, and the mode
  of a received file never gains set-uid, set-gid, sticky or what this process's umask removes.

Invariants: the receiver writes only to a new temporary file (``O_EXCL``, mode 0600) in the
target directory and renames it into place only when exactly the announced size arrived and the
trailer's digest matches; every way out of ``receive`` other than success removes it. Every
blocking call has a time limit. Each failure costs one log line at each end.
"""

from __future__ import annotations

import atexit
import errno
import hashlib
import hmac
import logging
import os
import secrets
import socket
import stat
import struct
import sys
import threading
from dataclasses import dataclass
from typing import Any

from ...errors import PycosError, RemoteProtocolError
from ...proto import (
    NEED_DATA,
    Batch,
    Bye,
    Connection,
    ConnectionClosed,
    Established,
    Heartbeat,
    Refused,
)
from ...proto.filedialog import KEY_LABEL, Answer, AnswerCode, Offer, Trailer
from .paths import PathRefused, make_dirs, prune_dirs, resolve, sandbox_root

__all__ = ["STREAM_KIND", "TransferError", "Frames", "stat_result", "receive", "incoming_slot",
           "set_timeo", "BUF_SIZE", "CHUNK", "DEFAULT_IDLE", "MAX_INCOMING", "MAX_PER_SOURCE",
           "MAX_OUTGOING", "OUTGOING", "TEMP_PREFIX", "TEMP_SUFFIX", "LINUX", "received_mode",
           "same_mtime", "open_temp"]

logger = logging.getLogger("pycos.net.files")

#: Kind of the stream a transfer asks the receiving link for, and of its dialogue frames.
STREAM_KIND = "file"
#: Receiver's buffer (and the TLS sender's): the memory one transfer uses.
BUF_SIZE = 1024 * 1024
#: Bytes per ``os.sendfile`` call (progress is reported between calls).
CHUNK = 8 * 1024 * 1024
#: Seconds without progress after which a transfer is abandoned (each end its own limit).
DEFAULT_IDLE = 30.0
#: Transfers received at once; more are refused (the connection is closed).
MAX_INCOMING = 64
#: Transfers received at once from one source address.
MAX_PER_SOURCE = 8
#: Transfers sent at once by this process; more wait for a turn.
MAX_OUTGOING = 8
TEMP_PREFIX, TEMP_SUFFIX = ".pycos-", ".part"
#: The coarsest file-system clock allowed for (FAT keeps even seconds).
MTIME_COARSEST_NS = 2_000_000_000
_FRAME_READ = 64 * 1024
LINUX = sys.platform.startswith("linux")
#: Held by each transfer being sent.
OUTGOING = threading.BoundedSemaphore(MAX_OUTGOING)


class TransferError(PycosError):
    """A transfer failed; the message says why (it goes into one log line)."""


# ---------------------------------------------------------------------- bookkeeping
class _Active:
    """Transfers in progress in this process: how many are received (in all and by source
    address), and their temp files (removed at interpreter exit, so not even a node stopped
    mid-transfer leaves one)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.incoming = 0
        self.by_source: dict[str, int] = {}
        self.temps: set[str] = set()

    def enter(self, source: str) -> str | None:
        with self.lock:
            if self.incoming >= MAX_INCOMING:
                return f"{MAX_INCOMING} transfers are in progress"
            if self.by_source.get(source, 0) >= MAX_PER_SOURCE:
                return f"{MAX_PER_SOURCE} transfers from {source} are in progress"
            self.incoming += 1
            self.by_source[source] = self.by_source.get(source, 0) + 1
            return None

    def leave(self, source: str) -> None:
        with self.lock:
            self.incoming -= 1
            left = self.by_source.get(source, 0) - 1
            if left > 0:
                self.by_source[source] = left
            else:
                self.by_source.pop(source, None)

    def remove_all(self) -> None:
        with self.lock:
            temps, self.temps = self.temps, set()
        for path in temps:
            _unlink(path)


_ACTIVE = _Active()
atexit.register(_ACTIVE.remove_all)


def incoming_slot(source: str) -> str | None:
    """Reserve a slot for a transfer from ``source`` (an address) to receive; None when
    reserved (``receive`` gives it back), else why not."""
    return _ACTIVE.enter(source)


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError as exc:
        logger.warning("cannot remove the partial file %r: %s", path, exc)


# ---------------------------------------------------------------------- frames on a socket
class Frames:
    """Blocking frame I/O over a socket with its ``pycos.proto.Connection``: each message of
    the dialogue is the body of one BATCH frame."""

    def __init__(self, sock: socket.socket, conn: Connection) -> None:
        self.sock = sock
        self.conn = conn

    def send(self, body: bytes) -> None:
        self.sock.sendall(self.conn.send_batch(body))

    def _event(self) -> Any:
        while True:
            try:
                event = self.conn.next_event()
            except RemoteProtocolError as exc:
                try:  # the REFUSE telling the other end why, best effort
                    self.sock.sendall(self.conn.data_to_send())
                except OSError:
                    pass
                raise TransferError(f"protocol error: {exc}") from None
            out = self.conn.data_to_send()
            if out:
                self.sock.sendall(out)
            if event is not NEED_DATA:
                return event
            data = self.sock.recv(_FRAME_READ)
            self.conn.receive_data(data)

    def handshake(self) -> None:
        self.sock.sendall(self.conn.initiate())
        while not isinstance(self._event_checked(), Established):
            pass

    def expect(self) -> bytes:
        """The body of the next BATCH frame."""
        while True:
            event = self._event_checked()
            if isinstance(event, Batch):
                return event.body
            if not isinstance(event, Heartbeat):
                raise TransferError(f"unexpected {type(event).__name__} message")

    def _event_checked(self) -> Any:
        event = self._event()
        if isinstance(event, Refused):
            raise TransferError(f"connection refused: {event.reason}")
        if isinstance(event, Bye | ConnectionClosed):
            raise TransferError("the other end closed the connection")
        return event


def set_timeo(sock: socket.socket, option: int, seconds: float) -> None:
    """Blocking socket whose ``option`` (SO_SNDTIMEO / SO_RCVTIMEO) is ``seconds``: the
    kernel then sleeps inside each call, without a poll per buffer (Linux)."""
    sock.settimeout(None)
    whole = int(seconds)
    sock.setsockopt(socket.SOL_SOCKET, option,
                    struct.pack("@ll", whole, int((seconds - whole) * 1e6)))


# ---------------------------------------------------------------------- the offer
def _umask() -> int:
    """This process's umask, read without changing it where the system tells (Linux)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return 0o022


def received_mode(offered: int) -> int:
    """The mode a received file gets: the sender's permission bits, never set-uid, set-gid
    or sticky, and never what this process's umask removes."""
    return offered & 0o777 & ~_umask()


def _stat_fields(st: os.stat_result) -> tuple[int, int, int, int, int]:
    return (st.st_mode, st.st_size, st.st_atime_ns, st.st_mtime_ns, st.st_ctime_ns)


def stat_result(fields: tuple[int, int, int, int, int]) -> os.stat_result:
    """An ``os.stat_result`` built from the fields a receiver reports of its existing file
    (mode, size, and times in ns; the other fields are 0)."""
    mode, size = fields[0], fields[1]
    ns = list(fields[2:5])
    secs = [n // 1_000_000_000 for n in ns]
    extra = {"st_atime": ns[0] / 1e9, "st_mtime": ns[1] / 1e9, "st_ctime": ns[2] / 1e9,
             "st_atime_ns": ns[0], "st_mtime_ns": ns[1], "st_ctime_ns": ns[2]}
    return os.stat_result((mode, 0, 0, 1, 0, 0, size, *secs), extra)


def same_mtime(kept_ns: int, offered_ns: int) -> bool:
    """True when a file's modification time ``kept_ns`` is ``offered_ns`` as this file system
    stores it: exactly, or truncated to its clock (a time with zeros at the end is taken to
    have been truncated to them, up to two seconds)."""
    if kept_ns == offered_ns:
        return True
    step = 10
    while step <= MTIME_COARSEST_NS and kept_ns % step == 0:
        if offered_ns - offered_ns % step == kept_ns:
            return True
        step *= 10 if step < 1_000_000_000 else 2
    return False


def _existing(target: str, offer: Offer) -> Answer | None:
    """The answer when ``target`` exists already: SAME or EXISTS(stat); None when it does
    not exist, or does and is to be overwritten."""
    try:
        st = os.lstat(target)
    except FileNotFoundError:
        return None
    if not stat.S_ISREG(st.st_mode):
        raise PathRefused(f"{offer.name!r} exists there and is not a regular file",
                          f"{target!r}")
    if (st.st_size == offer.size
            and stat.S_IMODE(st.st_mode) & 0o777 == received_mode(offer.mode)
            and same_mtime(st.st_mtime_ns, offer.mtime_ns)):
        return Answer(AnswerCode.SAME)
    return None if offer.overwrite else Answer(AnswerCode.EXISTS, _stat_fields(st))


# ---------------------------------------------------------------------- receiving
@dataclass
class _Incoming:
    """State of one transfer being received (on its thread)."""

    frames: Frames
    who: str
    source: str = ""
    idle: float = DEFAULT_IDLE
    offer: Offer | None = None
    mac: Any = None
    target: str = ""
    temp: str | None = None
    fd: int = -1
    received: int = 0
    root: str = ""
    real_dir: str = ""
    made: str | None = None  # the topmost directory this transfer created


def receive(node: Any, sock: socket.socket, conn: Connection, payload: bytes, who: str,
            source: str) -> None:
    """Receive one file (blocking; on the transfer's own thread). ``node`` gives
    ``dest_path``, ``max_file_size`` and the time limits; ``sock``/``conn`` are the connection
    the link handed over (after ``incoming_slot(source)`` reserved a slot), ``payload`` the
    peer's offer, ``who`` its address for messages."""
    job = _Incoming(Frames(sock, conn), who, source, node.config.file_idle)
    try:
        sock.settimeout(job.idle)
        try:
            job.offer = Offer.decode(payload)
        except RemoteProtocolError as exc:
            raise TransferError(str(exc)) from None
        job.mac = hmac.new(conn.derive_key(KEY_LABEL), digestmod=hashlib.sha256)
        answer = _accept(node, job)
        if answer is None:
            _receive_bytes(job)
            try:
                trailer = Trailer.decode(job.frames.expect())
            except RemoteProtocolError as exc:
                raise TransferError(str(exc)) from None
            if trailer.size != job.offer.size:
                raise TransferError(f"the trailer says {trailer.size} bytes, the offer said "
                                    f"{job.offer.size}")
            if not hmac.compare_digest(trailer.digest, job.mac.digest()):
                node.stats["file_integrity_failures"] = node.stats.get(
                    "file_integrity_failures", 0) + 1
                raise TransferError("the content does not match its digest (altered on the "
                                    "way); the file is discarded")
            answer = _finish(job)
            logger.debug("received %r (%d bytes) from %s", job.target, job.offer.size, who)
        job.frames.send(answer.encode())
    except (TransferError, PathRefused, OSError, ValueError, OverflowError) as exc:
        _fail(job, exc)
    except Exception:  # a bug: still one log line, and the partial file goes
        logger.exception("internal error receiving a file from %s", who)
    finally:
        _discard(job)
        sock.close()
        _ACTIVE.leave(source)


def _accept(node: Any, job: _Incoming) -> Answer | None:
    """Check the offer against the sandbox and what is there; None: data is to follow
    (the temp file is open and the sender was told to send)."""
    offer = job.offer
    assert offer is not None
    job.root = root = sandbox_root(node.dest_path, create=True)
    real_dir, job.target = resolve(root, offer.dir, offer.name)
    job.real_dir = real_dir
    limit = node.max_file_size
    if limit and offer.size > limit:
        raise PathRefused(f"{offer.name!r} is {offer.size} bytes; this node accepts at most "
                          f"{limit} (max_file_size)")
    answer = _existing(job.target, offer)
    if answer is not None:
        return answer
    job.made = make_dirs(root, real_dir)
    fs = os.statvfs(real_dir)
    if fs.f_bavail * fs.f_frsize < offer.size:
        raise TransferError(f"not enough free space for {offer.size} bytes")
    _open_temp(job, real_dir)
    job.frames.send(Answer(AnswerCode.SEND).encode())
    return None


def open_temp(real_dir: str) -> tuple[int, str] | None:
    """(fd, path) of a new temporary file of mode 0600 in ``real_dir`` (``O_EXCL``, never
    through a link, a random name between ``TEMP_PREFIX`` and ``TEMP_SUFFIX``); None when
    eight names were all taken."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(
        os, "O_CLOEXEC", 0)
    for _ in range(8):
        path = os.path.join(real_dir, f"{TEMP_PREFIX}{secrets.token_hex(8)}{TEMP_SUFFIX}")
        try:
            return os.open(path, flags, 0o600), path
        except FileExistsError:
            continue
    return None


def _open_temp(job: _Incoming, real_dir: str) -> None:
    opened = open_temp(real_dir)
    if opened is None:
        raise TransferError("cannot create a temporary file in the target directory")
    job.fd, job.temp = opened
    with _ACTIVE.lock:
        _ACTIVE.temps.add(job.temp)


def _receive_bytes(job: _Incoming) -> None:
    """Read exactly the announced size into the temp file (never more), hashing it."""
    _receive_copied(job)


def _received(job: _Incoming, n: int) -> None:
    assert job.offer is not None
    if not n:
        raise TransferError(f"the sender closed the connection after {job.received} of "
                            f"{job.offer.size} bytes")
    job.received += n


def _nothing_for(job: _Incoming) -> TransferError:
    assert job.offer is not None
    return TransferError(f"nothing received for {job.idle:.3g} s after {job.received} "
                         f"of {job.offer.size} bytes")


def _receive_copied(job: _Incoming) -> None:
    """``recv_into`` one buffer, hash it, ``write`` it."""
    assert job.offer is not None
    sock, fd, size = job.frames.sock, job.fd, job.offer.size
    buf = memoryview(bytearray(min(BUF_SIZE, max(size, 1))))
    update = job.mac.update
    while job.received < size:
        try:
            n = sock.recv_into(buf, min(len(buf), size - job.received))
        except (BlockingIOError, TimeoutError):
            raise _nothing_for(job) from None
        _received(job, n)
        view = buf[:n]
        update(view)
        while view:
            view = view[os.write(fd, view):]


def _finish(job: _Incoming) -> Answer:
    """Mode, times, close, and rename the temp file into place."""
    offer, temp = job.offer, job.temp
    assert offer is not None and temp is not None
    os.fchmod(job.fd, received_mode(offer.mode))
    if os.utime in os.supports_fd:
        os.utime(job.fd, ns=(offer.atime_ns, offer.mtime_ns))
    else:
        os.utime(temp, ns=(offer.atime_ns, offer.mtime_ns))
    fd, job.fd = job.fd, -1
    os.close(fd)
    done = Answer(AnswerCode.DONE)
    changed = Answer(AnswerCode.REFUSED, reason="the file changed meanwhile")
    if offer.overwrite:
        os.replace(temp, job.target)
        return done
    try:  # never replace a file that appeared meanwhile
        os.link(temp, job.target, follow_symlinks=False)
    except FileExistsError:
        answer = _existing(job.target, offer)
        return answer if answer is not None else changed
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV):
            raise
        if os.path.lexists(job.target):  # no hard links here: a last look, then rename
            return _existing(job.target, offer) or changed
        os.replace(temp, job.target)
        return done
    _unlink(temp)
    return done


def _fail(job: _Incoming, exc: BaseException) -> None:
    offer = job.offer
    what = repr(offer.name) if offer is not None else "a file"
    size = f" ({offer.size} bytes)" if offer is not None else ""
    local = f" ({exc.local})" if isinstance(exc, PathRefused) and exc.local else ""
    logger.warning("refused or aborted receiving %s%s from %s: %s%s", what, size, job.who, exc,
                   local)
    # The sender is told why, without this machine's paths.
    reason = str(exc) if isinstance(exc, TransferError | PathRefused) else (
        f"the receiver failed: {exc.strerror or type(exc).__name__}"
        if isinstance(exc, OSError) else str(exc))
    try:
        job.frames.send(Answer(AnswerCode.REFUSED, reason=reason).encode())
    except (OSError, TransferError, PycosError):
        pass  # the sender is gone or broke the protocol; it will see the connection close


def _discard(job: _Incoming) -> None:
    if job.fd >= 0:
        os.close(job.fd)
        job.fd = -1
    temp = job.temp
    if temp is not None:
        with _ACTIVE.lock:
            _ACTIVE.temps.discard(temp)
        if os.path.lexists(temp):
            _unlink(temp)
    if job.made is not None:  # directories made for a file that did not arrive (if empty)
        prune_dirs(job.root, job.real_dir, job.made)
