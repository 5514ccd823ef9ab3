"""Asynchronous files and pipes: ``pycos.asyncfile.AsyncFile`` and ``AsyncPipe``.

Owns I/O on descriptors other than sockets used as sockets: pipes, terminals, sockets read as
byte streams, and regular disk files. Pollable descriptors are made non-blocking and use the
same readiness machinery as ``AsyncSocket`` (``pycos._iowait``): try the call, wait only if it
would block. Descriptors the OS cannot poll (regular files, block devices, some character
devices) are read and written on a worker thread (``pycos._offload``), one operation at a time
per file. ``AsyncPipe`` drives the standard streams of ``subprocess.Popen`` processes (one, or a
chain from ``first`` to ``last``). The API follows pycos 4.12 (names and argument order).

Invariants: an ``AsyncFile`` owns its descriptor (``close`` closes it); bytes read ahead by
``readline`` stay in the file's buffer and are returned first by the next read; closing wakes
waiting tasks with ``OSError``. Imports the standard library, ``pycos.core`` and the other L3
modules.
"""

from __future__ import annotations

import os
import selectors
import stat
import subprocess
from collections.abc import Generator
from typing import Any

from ._iowait import WANT_READ, WANT_WRITE, Op, Pollable, closed_error, on_scheduler
from ._offload import ThreadCall
from .core import lowlevel
from .core.poller import READ, WRITE, ConcurrentWaitError
from .core.scheduler import _check_timeout
from .core.task import Task
from .core.traps import Trap, WaitIO

__all__ = ["AsyncFile", "AsyncPipe"]

_CHUNK = 64 * 1024


class _Read(Op):
    """``read(size, full)``; ``size <= 0`` reads to end of file."""

    __slots__ = ("size", "full")
    size: int
    full: bool

    def attempt(self) -> Any:
        owner = self.owner
        buf = owner._buf
        size = self.size
        if size > 0 and (len(buf) >= size or (buf and not self.full)):
            return owner._take(size)
        while True:
            want = size - len(buf) if size > 0 else _CHUNK
            try:
                chunk = os.read(owner._fd, want)
            except BlockingIOError:
                return WANT_READ
            if not chunk:
                return owner._take(len(buf))
            buf += chunk
            self.moved = True
            if size > 0 and (not self.full or len(buf) >= size):
                return owner._take(size)

    def expired(self) -> Any:
        if self.owner._buf:
            return self.owner._take(len(self.owner._buf))
        raise TimeoutError("timed out")


class _ReadLine(Op):
    """``readline(size, sizehint)``: up to and including the next newline."""

    __slots__ = ("size", "sizehint", "scanned")
    size: int
    sizehint: int
    scanned: int

    def attempt(self) -> Any:
        owner = self.owner
        buf = owner._buf
        size = self.size
        while True:
            end = min(size, len(buf)) if size > 0 else len(buf)
            pos = buf.find(b"\n", self.scanned, end)
            if pos >= 0:
                return owner._take(pos + 1)
            if size > 0 and len(buf) >= size:
                return owner._take(size)
            self.scanned = end
            try:
                chunk = os.read(owner._fd, max(self.sizehint, _CHUNK))
            except BlockingIOError:
                return WANT_READ
            if not chunk:
                return owner._take(len(buf))
            buf += chunk
            self.moved = True

    def expired(self) -> Any:
        if self.owner._buf:
            return self.owner._take(len(self.owner._buf))
        raise TimeoutError("timed out")


class _Write(Op):
    """``write(buf, full)``: the number of bytes written."""

    __slots__ = ("view", "full", "written")
    direction = WRITE
    view: Any
    full: bool
    written: int

    def attempt(self) -> Any:
        fd = self.owner._fd
        view = self.view
        while True:
            try:
                k = os.write(fd, view)
            except BlockingIOError:
                return WANT_WRITE
            if k:
                self.moved = True
            self.written += k
            view = self.view = view[k:]
            if not self.full or not view:
                return self.written

    def expired(self) -> Any:
        if self.written:
            return self.written
        raise TimeoutError("timed out")

    def release(self) -> None:
        self.view = None
        self.busy = False


class _DiskCall(Trap):
    """Runs an op of a file the OS cannot poll on a worker thread, one at a time per file."""

    __slots__ = ("op",)

    def __init__(self, op: Op) -> None:
        self.op = op

    def _apply(self, sched: Any, task: Any) -> Any:
        owner = self.op.owner
        if owner._disk_busy:
            raise ConcurrentWaitError(f"another task is already using {owner!r}")
        owner._disk_busy = True
        return ThreadCall(self._run, on_done=owner._disk_done)._apply(sched, task)

    def _run(self) -> Any:
        op = self.op
        try:
            return op.attempt()
        finally:
            op.release()


def _pollable(fd: int, mode: int) -> bool:
    if stat.S_ISREG(mode) or stat.S_ISBLK(mode) or stat.S_ISDIR(mode):
        return False
    if stat.S_ISCHR(mode):  # terminals poll; /dev/null and friends do not
        with selectors.DefaultSelector() as probe:
            try:
                probe.register(fd, selectors.EVENT_READ)
            except PermissionError:
                return False
    return True


class AsyncFile(Pollable):
    """A file, pipe or stream socket descriptor for tasks.

    Args:
        fd: a file object with ``fileno()`` (``open(...)``, a ``Popen`` stream, a socket or
            ``AsyncSocket``) or a descriptor number. The AsyncFile owns it from now on:
            ``close`` closes it. Pipes and sockets are switched to non-blocking mode.

    Data is always bytes. Regular files are served by a worker thread (``timeout`` does not
    apply to them: they never wait for a peer).
    """

    __slots__ = ("_file", "_disk", "_buf", "_disk_busy", "_close_pending", "__weakref__")

    def __init__(self, fd: Any) -> None:
        if isinstance(fd, bool) or not (isinstance(fd, int) or hasattr(fd, "fileno")):
            raise TypeError(f"AsyncFile needs a file object or a descriptor number, got {fd!r}")
        fileno = fd if isinstance(fd, int) else fd.fileno()
        if not isinstance(fileno, int) or fileno < 0:
            raise ValueError(f"invalid file descriptor {fileno!r}")
        if isinstance(fd, Pollable):
            fd._release_poller()  # an AsyncSocket read before: this object reads it now
        self._init_pollable(fileno)
        self._file = fd
        self._buf = bytearray()
        self._disk_busy = False
        self._close_pending = False
        self._disk = not _pollable(fileno, os.fstat(fileno).st_mode)
        if not self._disk:
            os.set_blocking(fileno, False)

    def __repr__(self) -> str:
        return f"<AsyncFile fd={self._fd}{' (disk)' if self._disk else ''}>"

    def __enter__(self) -> AsyncFile:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def fileno(self) -> int:
        """Plain call: the descriptor (-1 once closed)."""
        return self._fd

    def _take(self, n: int) -> bytes:
        buf = self._buf
        if n >= len(buf):
            data = bytes(buf)
            buf.clear()
        else:
            data = bytes(buf[:n])
            del buf[:n]
        return data

    def _start(self, op: Op, timeout: float | None) -> Any:
        if self._fd < 0:
            raise OSError(9, f"{self!r} is closed")
        _check_timeout(timeout, "timeout")
        op.timeout = timeout
        op.busy = True
        if self._disk:
            return _DiskCall(op)
        return op

    def read(self, size: int = 0, full: bool = False, timeout: float | None = None) -> Any:
        """Use with yield: read bytes.

        Args:
            size: at most this many bytes; ``<= 0`` reads everything up to end of file.
            full: with ``size > 0``, wait for exactly ``size`` bytes (fewer only at end of file
                or timeout); otherwise return as soon as some bytes are there.
            timeout: seconds to wait; on expiry the bytes read so far are returned, or
                ``socket.timeout`` (``TimeoutError``) is raised when there are none.

        Returns ``b''`` at end of file.
        """
        if not isinstance(size, int) or isinstance(size, bool):
            raise TypeError(f"size must be an int, got {size!r}")
        op = _Read(self)
        op.size, op.full = size, bool(full)
        return self._start(op, timeout)

    def readline(self, size: int = 0, sizehint: int = 100, timeout: float | None = None) -> Any:
        """Use with yield: one line including its ``b'\\n'`` (the last line may lack it;
        ``b''`` at end of file). ``size > 0`` caps the length; ``sizehint`` is the expected
        line length (a read-size hint); ``timeout`` as for ``read``."""
        if not isinstance(size, int) or not isinstance(sizehint, int):
            raise TypeError("size and sizehint must be ints")
        op = _ReadLine(self)
        op.size, op.sizehint, op.scanned = size, sizehint, 0
        return self._start(op, timeout)

    def write(self, buf: Any, full: bool = False, timeout: float | None = None) -> Any:
        """Use with yield: write bytes; the number written.

        With ``full`` wait until all of ``buf`` is written, otherwise return after the first
        successful write. On timeout the number written so far is returned, or
        ``socket.timeout`` raised when nothing was written.
        """
        if isinstance(buf, str):
            raise TypeError("AsyncFile.write needs bytes, not str (encode it first)")
        view = memoryview(buf)
        if view.ndim != 1 or view.itemsize != 1:
            view = view.cast("B")
        op = _Write(self)
        op.view, op.full, op.written = view, bool(full), 0
        return self._start(op, timeout)

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        """Plain call: move the file position (disk files); the new position."""
        if self._disk_busy:
            raise RuntimeError(f"{self!r}: an operation is in progress")
        if whence == os.SEEK_CUR:
            offset -= len(self._buf)
        self._buf.clear()
        return os.lseek(self._fd, offset, whence)

    def tell(self) -> int:
        """Plain call: the file position as seen by the reader (disk files)."""
        return os.lseek(self._fd, 0, os.SEEK_CUR) - len(self._buf)

    def close(self) -> None:
        """Plain call: close the descriptor; waiting tasks get ``OSError`` (EBADF). A disk
        operation in progress finishes first."""
        if self._fd < 0:
            return
        if self._disk_busy:
            self._close_pending = True
            return
        sched = self._sched
        if sched is not None and lowlevel.alive(sched):
            if not lowlevel.in_thread(sched):
                on_scheduler(sched, self.close)
                return
            self._close_waits(lambda: closed_error("file"), sched)
        fd, self._fd = self._fd, -1
        self._buf = bytearray()
        if isinstance(self._file, int):
            os.close(fd)
        else:
            self._file.close()

    def _disk_done(self) -> None:
        self._disk_busy = False
        if self._close_pending:
            self._close_pending = False
            self.close()


def _wait_exit(proc: subprocess.Popen[Any], timeout: float | None) -> Generator[Any, Any, Any]:
    """Sub-call: wait (without blocking the scheduler) until ``proc`` ends; its return code,
    or None on timeout."""
    if proc.poll() is not None:
        return proc.returncode
    try:
        pidfd = os.pidfd_open(proc.pid)
    except (AttributeError, OSError):
        pidfd = -1
    try:
        if pidfd >= 0:
            yield WaitIO(pidfd, READ, timeout)
            return proc.wait()
        return (yield ThreadCall(proc.wait, timeout))
    except (TimeoutError, subprocess.TimeoutExpired):
        return None
    finally:
        if pidfd >= 0:
            os.close(pidfd)


def _drain(afile: AsyncFile) -> Generator[Any, Any, tuple[bool, Any]]:
    try:
        data = yield afile.read(0)
        return True, data
    except Exception as exc:  # handed back to communicate()
        return False, exc
    finally:
        afile.close()


def _as_async(obj: Any) -> AsyncFile | None:
    """An AsyncFile over a file object that has a real descriptor, else None."""
    try:
        obj.fileno()
    except (AttributeError, OSError, ValueError):
        return None
    return AsyncFile(obj)


def _feed(afile: AsyncFile, data: Any) -> Generator[Any, Any, tuple[bool, Any]]:
    try:
        if isinstance(data, str):
            data = data.encode()
        if isinstance(data, (bytes, bytearray, memoryview)):
            yield afile.write(data, full=True)
        else:
            source = data if isinstance(data, AsyncFile) else _as_async(data)
            if source is not None:
                data = source
            while True:
                chunk = (yield source.read(_CHUNK)) if source else data.read(_CHUNK)
                if not chunk:
                    break
                yield afile.write(chunk.encode() if isinstance(chunk, str) else chunk,
                                  full=True)
            data.close()  # as pycos: the input file is consumed and closed
        return True, None
    except BrokenPipeError:
        return True, None  # the process stopped reading: like subprocess, not an error
    except Exception as exc:
        return False, exc
    finally:
        afile.close()


class AsyncPipe:
    """Asynchronous streams of ``subprocess.Popen`` processes.

    Args:
        first: a ``Popen``; its stdin (if ``stdin=PIPE``) is written by ``write``.
        last: the last ``Popen`` of a chain started from ``first`` (default ``first``); its
            stdout / stderr (if PIPE) are read by ``read`` / ``read_stderr``.

    Other attributes (``pid``, ``returncode``, ``kill`` …) are those of ``last``.
    """

    def __init__(self, first: subprocess.Popen[Any],
                 last: subprocess.Popen[Any] | None = None) -> None:
        if last is None:
            last = first
        if not isinstance(first, subprocess.Popen) or not isinstance(last, subprocess.Popen):
            raise TypeError("AsyncPipe needs subprocess.Popen objects, got "
                            f"{first!r}, {last!r}")
        self.first: subprocess.Popen[Any] | None = first
        self.last: subprocess.Popen[Any] | None = last
        self.stdin = AsyncFile(first.stdin) if first.stdin else None
        self.stdout = AsyncFile(last.stdout) if last.stdout else None
        self.stderr = AsyncFile(last.stderr) if last.stderr else None

    def __getattr__(self, name: str) -> Any:
        proc = self.__dict__.get("last") or self.__dict__.get("first")
        if proc is None:
            raise AttributeError(name)
        return getattr(proc, name)

    def __enter__(self) -> AsyncPipe:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    @staticmethod
    def _need(stream: AsyncFile | None, what: str) -> AsyncFile:
        if stream is None:
            raise ValueError(f"the pipe has no {what} (start the process with {what}=PIPE)")
        return stream

    def write(self, buf: Any, full: bool = False, timeout: float | None = None) -> Any:
        """Use with yield: write to the first process's stdin (see ``AsyncFile.write``)."""
        return self._need(self.stdin, "stdin").write(buf, full=full, timeout=timeout)

    def read(self, size: int = 0, timeout: float | None = None) -> Any:
        """Use with yield: read the last process's stdout (see ``AsyncFile.read``)."""
        return self._need(self.stdout, "stdout").read(size=size, timeout=timeout)

    def readline(self, size: int = 0, sizehint: int = 100, timeout: float | None = None) -> Any:
        """Use with yield: one line of the last process's stdout."""
        return self._need(self.stdout, "stdout").readline(size, sizehint, timeout)

    def read_stderr(self, size: int = 0, timeout: float | None = None) -> Any:
        """Use with yield: read the last process's stderr."""
        return self._need(self.stderr, "stderr").read(size=size, timeout=timeout)

    def readline_stderr(self, size: int = 0, sizehint: int = 100,
                        timeout: float | None = None) -> Any:
        """Use with yield: one line of the last process's stderr."""
        return self._need(self.stderr, "stderr").readline(size, sizehint, timeout)

    def wait_exit(self, timeout: float | None = None) -> Generator[Any, Any, Any]:
        """Use with yield: wait until the last process ends (without blocking other tasks);
        its return code, or None if ``timeout`` passed first."""
        proc = self.last or self.first
        if proc is None:
            raise ValueError("the pipe is closed")
        return _wait_exit(proc, timeout)

    def communicate(self, input: Any = None) -> Generator[Any, Any, tuple[Any, Any]]:
        """Use with yield: ``stdout, stderr = yield pipe.communicate(input)``.

        Writes ``input`` to stdin and closes stdin (also without input, so the process sees
        end of file); reads stdout and stderr to their end concurrently; waits for the
        processes to exit. ``input`` is bytes, str, or a file object / ``AsyncFile`` that is
        read to its end and closed. A stream that is not piped gives None.
        """
        workers: list[Task | None] = []
        try:
            if self.stdin is not None:
                workers.append(Task(_feed, self.stdin, b"" if input is None else input))
            for stream in (self.stdout, self.stderr):
                workers.append(Task(_drain, stream) if stream is not None else None)
            results: list[tuple[bool, Any]] = []
            for worker in workers:
                results.append((True, None) if worker is None else (yield worker.finish()))
            for ok, value in results:
                if not ok:
                    raise value
            for proc in {id(p): p for p in (self.last, self.first) if p is not None}.values():
                yield _wait_exit(proc, None)
            return results[-2][1], results[-1][1]
        finally:
            for worker in workers:
                if worker is not None and worker.is_alive():
                    worker.terminate()

    def poll(self) -> int | None:
        """Plain call: return code of the last process, or None while it runs."""
        proc = self.last or self.first
        return proc.poll() if proc is not None else None

    def close(self) -> None:
        """Plain call: close the pipe's streams (the processes are not stopped)."""
        for stream in (self.stdin, self.stdout, self.stderr):
            if stream is not None:
                stream.close()
        self.first = self.last = None
