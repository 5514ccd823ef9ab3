"""Both ends of one file transfer over its own connection, run on their own threads.

Owns the file-transfer dialogue (see ``doc/files.rst``): ``send`` (the sending side, called on a
thread by ``pycos.net.files``) and ``receive`` (the receiving side, given the connection by the
node's link once the client asked for a ``"file"`` stream). Imports the standard library,
``pycos.errors``, ``pycos.proto`` and its own package.

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
* Without TLS, the raw bytes are authenticated only by the connection they arrive on (its
  handshake proved the sender knows the secret); the frames around them carry MACs, so a peer
  sending more or fewer bytes than it announced is detected. Use TLS when the network between
  nodes is not trusted.

Invariants: the receiver writes only to a new temporary file (``O_EXCL``, mode 0600) in the
target directory and renames it into place only when exactly the announced size arrived and the
trailer confirms it; every way out of ``receive`` other than success removes it. Every blocking
call has a time limit. Each failure costs one log line at each end.
"""

from __future__ import annotations

import atexit
import errno
import logging
import os
import secrets
import socket
import ssl
import stat
import struct
import sys
import threading
from dataclasses import dataclass
from typing import Any

from ..errors import PycosError, RemoteProtocolError
from ..proto import (
    NEED_DATA,
    Bye,
    Connection,
    ConnectionClosed,
    Established,
    Heartbeat,
    Oneway,
    Refused,
)
from ._filepaths import PathRefused, make_dirs, prune_dirs, resolve, sandbox_root

__all__ = ["STREAM_KIND", "TransferError", "Offer", "Frames", "parse_offer", "stat_result",
           "receive", "incoming_slot", "set_timeo", "BUF_SIZE", "CHUNK", "DEFAULT_IDLE",
           "MAX_IDLE", "MAX_INCOMING", "MAX_OUTGOING", "OUTGOING", "TEMP_PREFIX", "TEMP_SUFFIX",
           "LINUX"]

logger = logging.getLogger("pycos.net.files")

#: Kind of the stream a transfer asks the receiving link for, and of its dialogue frames.
STREAM_KIND = "file"
#: Receiver's buffer (and the TLS sender's): the memory one transfer uses.
BUF_SIZE = 1024 * 1024
#: Bytes per ``os.sendfile`` call (progress is reported between calls).
CHUNK = 8 * 1024 * 1024
#: Seconds without progress after which a transfer is abandoned, unless the sender says.
DEFAULT_IDLE = 30.0
#: Bounds on the inactivity limit a sender may ask of the receiver.
MIN_IDLE, MAX_IDLE = 0.05, 300.0
#: Transfers received at once; more are refused (the connection is closed).
MAX_INCOMING = 64
#: Transfers sent at once by this process; more wait for a turn.
MAX_OUTGOING = 8
TEMP_PREFIX, TEMP_SUFFIX = ".pycos-", ".part"
#: Two mtimes within this many nanoseconds are the same (coarse file-system clocks).
MTIME_SLACK_NS = 1_000_000_000
_FRAME_READ = 64 * 1024
_MAX_INT64 = 2**63 - 1
LINUX = sys.platform.startswith("linux")
#: Held by each transfer being sent.
OUTGOING = threading.BoundedSemaphore(MAX_OUTGOING)


class TransferError(PycosError):
    """A transfer failed; the message says why (it goes into one log line)."""


# ---------------------------------------------------------------------- bookkeeping
class _Active:
    """Transfers in progress in this process: how many are received, and their temp files
    (removed at interpreter exit, so not even a node stopped mid-transfer leaves one)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.incoming = 0
        self.temps: set[str] = set()

    def enter(self) -> bool:
        with self.lock:
            if self.incoming >= MAX_INCOMING:
                return False
            self.incoming += 1
            return True

    def leave(self) -> None:
        with self.lock:
            self.incoming -= 1

    def remove_all(self) -> None:
        with self.lock:
            temps, self.temps = self.temps, set()
        for path in temps:
            _unlink(path)


_ACTIVE = _Active()
atexit.register(_ACTIVE.remove_all)


def incoming_slot() -> bool:
    """Reserve a slot for a transfer to receive (False: too many at once already). The
    slot is given back by ``receive``."""
    return _ACTIVE.enter()


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError as exc:
        logger.warning("cannot remove the partial file %r: %s", path, exc)


# ---------------------------------------------------------------------- frames on a socket
class Frames:
    """Blocking frame I/O over a socket with its ``pycos.proto.Connection``."""

    def __init__(self, sock: socket.socket, conn: Connection) -> None:
        self.sock = sock
        self.conn = conn

    def send(self, payload: Any, kind: str = STREAM_KIND) -> None:
        self.sock.sendall(self.conn.send(Oneway(kind, payload)))

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
            self.conn.receive_data(self.sock.recv(_FRAME_READ))

    def handshake(self) -> None:
        self.sock.sendall(self.conn.initiate())
        while not isinstance(self._event_checked(), Established):
            pass

    def expect(self, kind: str = STREAM_KIND) -> Any:
        """The payload of the next one-way message of ``kind``."""
        while True:
            event = self._event_checked()
            if isinstance(event, Oneway) and event.kind == kind:
                return event.payload
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
@dataclass(frozen=True, slots=True)
class Offer:
    """What the sender announces: name, directory, size, times, mode and options."""

    name: str
    dir: str | None
    size: int
    mtime_ns: int
    atime_ns: int
    mode: int
    overwrite: bool
    idle: float

    def to_wire(self) -> dict[str, Any]:
        return {"name": self.name, "dir": self.dir, "size": self.size,
                "mtime_ns": self.mtime_ns, "atime_ns": self.atime_ns, "mode": self.mode,
                "overwrite": self.overwrite, "idle": self.idle}


def _int(payload: dict[str, Any], key: str, low: int, high: int) -> int:
    value = payload.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise TransferError(f"malformed offer: {key} must be an int in {low}..{high}, "
                            f"got {value!r}")
    return value


def parse_offer(payload: Any) -> Offer:
    """Check a peer's offer (shape and ranges; the path rules come later).

    Raises:
        TransferError: the offer is malformed.
    """
    if not isinstance(payload, dict):
        raise TransferError(f"malformed offer: {type(payload).__name__} instead of a dict")
    name, dir, overwrite, idle = (payload.get(k) for k in ("name", "dir", "overwrite", "idle"))
    if not isinstance(name, str) or not (dir is None or isinstance(dir, str)):
        raise TransferError("malformed offer: name must be a str and dir a str or None")
    if not isinstance(overwrite, bool):
        raise TransferError("malformed offer: overwrite must be a bool")
    if idle is None:
        idle = DEFAULT_IDLE
    if isinstance(idle, bool) or not isinstance(idle, int | float) or not idle > 0:
        raise TransferError(f"malformed offer: idle must be a positive number, got {idle!r}")
    return Offer(name, dir, _int(payload, "size", 0, _MAX_INT64),
                 _int(payload, "mtime_ns", -_MAX_INT64, _MAX_INT64),
                 _int(payload, "atime_ns", -_MAX_INT64, _MAX_INT64),
                 _int(payload, "mode", 0, 0o7777) & 0o777, overwrite,
                 min(max(float(idle), MIN_IDLE), MAX_IDLE))


def _stat_fields(st: os.stat_result) -> dict[str, int]:
    return {"mode": st.st_mode, "size": st.st_size, "atime_ns": st.st_atime_ns,
            "mtime_ns": st.st_mtime_ns, "ctime_ns": st.st_ctime_ns}


def stat_result(fields: Any) -> os.stat_result:
    """An ``os.stat_result`` built from the fields a receiver reports of its existing file
    (mode, size and times; the other fields are 0).

    Raises:
        TransferError: the fields are malformed.
    """
    try:
        mode, size = int(fields["mode"]), int(fields["size"])
        ns = [int(fields[k]) for k in ("atime_ns", "mtime_ns", "ctime_ns")]
    except (TypeError, KeyError, ValueError):
        raise TransferError(f"malformed description of the existing file: {fields!r}") from None
    secs = [n // 1_000_000_000 for n in ns]
    extra = {"st_atime": ns[0] / 1e9, "st_mtime": ns[1] / 1e9, "st_ctime": ns[2] / 1e9,
             "st_atime_ns": ns[0], "st_mtime_ns": ns[1], "st_ctime_ns": ns[2]}
    return os.stat_result((mode, 0, 0, 1, 0, 0, size, *secs), extra)


def _existing(target: str, offer: Offer) -> tuple[str, Any] | None:
    """The answer when ``target`` exists already: ("same", None) or ("exists", fields);
    None when it does not exist, or does and is to be overwritten."""
    try:
        st = os.lstat(target)
    except FileNotFoundError:
        return None
    if not stat.S_ISREG(st.st_mode):
        raise PathRefused(f"{offer.name!r} exists there and is not a regular file",
                          f"{target!r}")
    if (st.st_size == offer.size and stat.S_IMODE(st.st_mode) & 0o777 == offer.mode
            and abs(st.st_mtime_ns - offer.mtime_ns) <= MTIME_SLACK_NS):
        return ("same", None)
    return None if offer.overwrite else ("exists", _stat_fields(st))


# ---------------------------------------------------------------------- receiving
@dataclass
class _Incoming:
    """State of one transfer being received (on its thread)."""

    frames: Frames
    who: str
    offer: Offer | None = None
    target: str = ""
    temp: str | None = None
    fd: int = -1
    received: int = 0
    root: str = ""
    real_dir: str = ""
    made: str | None = None  # the topmost directory this transfer created


def receive(config: Any, sock: socket.socket, conn: Connection, payload: Any,
            who: str) -> None:
    """Receive one file (blocking; on the transfer's own thread). ``config`` is the node's
    ``NodeConfig``; ``sock``/``conn`` the connection the link handed over (after
    ``incoming_slot`` returned True), ``payload`` the peer's offer, ``who`` its address."""
    job = _Incoming(Frames(sock, conn), who)
    try:
        sock.settimeout(config.handshake_timeout)
        job.offer = parse_offer(payload)
        sock.settimeout(job.offer.idle)
        answer = _accept(config, job)
        if answer is None:
            _receive_bytes(job)
            trailer = job.frames.expect()
            if trailer != ("sent", job.offer.size):
                raise TransferError(f"unexpected trailer {trailer!r}")
            answer = _finish(job)
            logger.debug("received %r (%d bytes) from %s", job.target, job.offer.size, who)
        job.frames.send(answer)
    except (TransferError, PathRefused, OSError, ValueError, OverflowError) as exc:
        _fail(job, exc)
    except Exception:  # a bug: still one log line, and the partial file goes
        logger.exception("internal error receiving a file from %s", who)
    finally:
        _discard(job)
        sock.close()
        _ACTIVE.leave()


def _accept(config: Any, job: _Incoming) -> tuple[str, Any] | None:
    """Check the offer against the sandbox and what is there; None: data is to follow
    (the temp file is open and the sender was told to send)."""
    offer = job.offer
    assert offer is not None
    job.root = root = sandbox_root(config.dest_path, create=True)
    real_dir, job.target = resolve(root, offer.dir, offer.name)
    job.real_dir = real_dir
    limit = config.max_file_size
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
    job.frames.send(("send", None))
    return None


def _open_temp(job: _Incoming, real_dir: str) -> None:
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(
        os, "O_CLOEXEC", 0)
    for _ in range(8):
        path = os.path.join(real_dir, f"{TEMP_PREFIX}{secrets.token_hex(8)}{TEMP_SUFFIX}")
        try:
            job.fd = os.open(path, flags, 0o600)
        except FileExistsError:
            continue
        job.temp = path
        with _ACTIVE.lock:
            _ACTIVE.temps.add(path)
        return
    raise TransferError("cannot create a temporary file in the target directory")


def _receive_bytes(job: _Incoming) -> None:
    """Read exactly the announced size into the temp file (never more)."""
    assert job.offer is not None
    sock, idle = job.frames.sock, job.offer.idle
    plain = not isinstance(sock, ssl.SSLSocket)
    if not (plain and LINUX):
        _receive_copied(job)
        return
    set_timeo(sock, socket.SO_RCVTIMEO, idle)
    try:
        if hasattr(os, "splice"):
            _receive_spliced(job)
        else:
            _receive_copied(job)
    finally:
        sock.settimeout(idle)


def _received(job: _Incoming, n: int) -> None:
    assert job.offer is not None
    if not n:
        raise TransferError(f"the sender closed the connection after {job.received} of "
                            f"{job.offer.size} bytes")
    job.received += n


def _nothing_for(job: _Incoming) -> TransferError:
    assert job.offer is not None
    return TransferError(f"nothing received for {job.offer.idle:.3g} s after {job.received} "
                         f"of {job.offer.size} bytes")


def _receive_copied(job: _Incoming) -> None:
    """``recv_into`` one buffer, then ``write`` (TLS, or no ``os.splice``)."""
    assert job.offer is not None
    sock, fd, size = job.frames.sock, job.fd, job.offer.size
    buf = memoryview(bytearray(min(BUF_SIZE, max(size, 1))))
    while job.received < size:
        try:
            n = sock.recv_into(buf, min(len(buf), size - job.received))
        except (BlockingIOError, TimeoutError):
            raise _nothing_for(job) from None
        _received(job, n)
        view = buf[:n]
        while view:
            view = view[os.write(fd, view):]


def _receive_spliced(job: _Incoming) -> None:
    """Socket to pipe to file with ``os.splice``: the bytes never enter this process (Linux,
    plain TCP; the blocking socket's SO_RCVTIMEO is the time limit)."""
    import fcntl  # POSIX only, like this path

    assert job.offer is not None
    sock, fd, size = job.frames.sock.fileno(), job.fd, job.offer.size
    r, w = os.pipe()
    try:
        try:
            pipe_size = fcntl.fcntl(w, fcntl.F_SETPIPE_SZ, BUF_SIZE)
        except OSError:  # above the system's pipe-max-size: keep the default
            pipe_size = fcntl.fcntl(w, fcntl.F_GETPIPE_SZ)
        while job.received < size:
            try:
                n = os.splice(sock, w, min(pipe_size, size - job.received))
            except BlockingIOError:
                raise _nothing_for(job) from None
            _received(job, n)
            while n:  # the pipe is emptied every time, so the next splice never waits on it
                moved = os.splice(r, fd, n)
                if not moved:
                    raise TransferError("the temporary file took no data")
                n -= moved
    finally:
        os.close(r)
        os.close(w)


def _finish(job: _Incoming) -> tuple[str, Any]:
    """Mode, times, close, and rename the temp file into place."""
    offer, temp = job.offer, job.temp
    assert offer is not None and temp is not None
    os.fchmod(job.fd, offer.mode)
    if os.utime in os.supports_fd:
        os.utime(job.fd, ns=(offer.atime_ns, offer.mtime_ns))
    else:
        os.utime(temp, ns=(offer.atime_ns, offer.mtime_ns))
    fd, job.fd = job.fd, -1
    os.close(fd)
    if offer.overwrite:
        os.replace(temp, job.target)
        return ("done", 0)
    try:  # never replace a file that appeared meanwhile
        os.link(temp, job.target, follow_symlinks=False)
    except FileExistsError:
        answer = _existing(job.target, offer)
        return answer if answer is not None else ("refused", "the file changed meanwhile")
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV):
            raise
        if os.path.lexists(job.target):  # no hard links here: a last look, then rename
            return _existing(job.target, offer) or ("refused", "the file changed meanwhile")
        os.replace(temp, job.target)
        return ("done", 0)
    _unlink(temp)
    return ("done", 0)


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
        job.frames.send(("refused", reason))
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
