"""AsyncFile and AsyncPipe (SPEC §2): pipes, sockets, disk files and subprocesses."""

from __future__ import annotations

import errno
import hashlib
import os
import socket
import subprocess
import sys

import pytest

import pycos
from pycos import ConcurrentWaitError
from pycos.asyncfile import AsyncFile, AsyncPipe

PY = sys.executable


def pipe_pair() -> tuple[AsyncFile, AsyncFile]:
    r, w = os.pipe()
    return AsyncFile(r), AsyncFile(w)


# ------------------------------------------------------------------------ pipes
def test_pipe_transfer_with_checksum(sched, run):
    reader, writer = pipe_pair()
    payload = os.urandom(4 << 20)

    def write(task=None):
        n = yield writer.write(payload, full=True)
        writer.close()
        return n

    def read(task=None):
        h = hashlib.sha256()
        while True:
            chunk = yield reader.read(65536)
            if not chunk:
                break
            assert len(chunk) <= 65536
            h.update(chunk)
        reader.close()
        return h.hexdigest()

    w = pycos.Task(write)
    assert run(read) == hashlib.sha256(payload).hexdigest()
    assert w.value(timeout=5) == len(payload)


def test_read_modes(sched, run):
    reader, writer = pipe_pair()

    def main(task=None):
        yield writer.write(b"0123456789")
        some = yield reader.read(4)
        full_task = pycos.Task(lambda task=None: (yield reader.read(10, full=True)))
        yield task.sleep(0.01)
        yield writer.write(b"abcdefgh")
        full = yield full_task.finish(timeout=5)
        yield writer.write(b"tail")
        writer.close()
        rest = yield reader.read()  # size 0: everything up to end of file
        eof = yield reader.read(10)
        reader.close()
        return some, full, rest, eof

    assert run(main) == (b"0123", b"456789abcd", b"efghtail", b"")


def test_readline(sched, run):
    reader, writer = pipe_pair()

    def main(task=None):
        yield writer.write(b"first line\nsecond\nthird is long\nno newline", full=True)
        writer.close()
        lines = [(yield reader.readline()), (yield reader.readline(size=3)),
                 (yield reader.readline()), (yield reader.read(5)),
                 (yield reader.readline(sizehint=1)), (yield reader.readline())]
        reader.close()
        return lines

    assert run(main) == [b"first line\n", b"sec", b"ond\n", b"third", b" is long\n",
                         b"no newline"]


def test_read_timeout_on_fake_clock(fake_sched, clock, run):
    reader, writer = pipe_pair()

    def main(task=None):
        start = clock.time()
        with pytest.raises(TimeoutError, match="timed out"):
            yield reader.read(10, timeout=4)
        yield writer.write(b"abc")
        partial = yield reader.read(10, full=True, timeout=6)
        line = None
        yield writer.write(b"no end")
        line = yield reader.readline(timeout=1)
        return clock.time() - start, partial, line

    assert run(main) == (pytest.approx(11), b"abc", b"no end")
    reader.close()
    writer.close()


def test_write_timeout_reports_partial_progress(fake_sched, clock, run):
    reader, writer = pipe_pair()

    def main(task=None):
        n = yield writer.write(b"x" * (4 << 20), full=True, timeout=3)
        with pytest.raises(TimeoutError):
            yield writer.write(b"y" * 100, full=True, timeout=2)  # the pipe is full
        return n, clock.time()

    n, now = run(main)
    assert 0 < n < 4 << 20 and now == pytest.approx(5)
    reader.close()
    writer.close()


def test_broken_pipe_is_raised(sched, run):
    reader, writer = pipe_pair()
    reader.close()

    def main(task=None):
        with pytest.raises(BrokenPipeError):
            yield writer.write(b"nobody listens")
        return True

    assert run(main)
    writer.close()


def test_close_wakes_a_waiting_reader(sched, run):
    reader, writer = pipe_pair()

    def waiting(task=None):
        try:
            yield reader.read(10)
        except OSError as exc:
            return exc.errno

    def main(task=None):
        t = pycos.Task(waiting)
        yield task.sleep(0.02)
        with pytest.raises(ConcurrentWaitError):
            yield reader.read(10)
        reader.close()
        return (yield t.finish(timeout=5))

    assert run(main) == errno.EBADF
    writer.close()
    with pytest.raises(OSError, match="closed"):
        reader.read(1)


def test_asyncfile_over_a_socket(sched, run):
    a, b = socket.socketpair()
    fa, fb = AsyncFile(a), AsyncFile(b)

    def main(task=None):
        yield fa.write(b"over a socket\n", full=True)
        return (yield fb.readline())

    assert run(main) == b"over a socket\n"
    fa.close()
    fb.close()
    assert a.fileno() == -1


def test_argument_checks():
    with pytest.raises(TypeError, match="file object"):
        AsyncFile("name.txt")
    with pytest.raises(ValueError, match="descriptor"):
        AsyncFile(-3)
    r, w = os.pipe()
    fw = AsyncFile(w)
    with pytest.raises(TypeError, match="bytes, not str"):
        fw.write("text")
    with pytest.raises(TypeError, match="number of seconds"):
        fw.write(b"x", timeout="soon")
    fw.close()
    os.close(r)


# --------------------------------------------------------------------- disk files
def test_disk_file_read_write_seek_tell(sched, run, tmp_path):
    path = tmp_path / "data.bin"

    def main(task=None):
        f = AsyncFile(open(path, "wb"))
        assert "disk" in repr(f)
        n = yield f.write(b"line one\nline two\n" + b"z" * 200_000, full=True)
        f.close()
        f = AsyncFile(open(path, "rb"))
        first = yield f.readline()
        pos = f.tell()
        second = yield f.readline()
        f.seek(pos)
        again = yield f.readline()
        f.seek(-10, os.SEEK_END)
        tail = yield f.read()
        f.seek(0)
        whole = yield f.read()
        f.close()
        return n, first, pos, second, again, tail, len(whole)

    assert run(main) == (200_018, b"line one\n", 9, b"line two\n", b"line two\n", b"z" * 10,
                         200_018)


def test_disk_file_allows_one_operation_at_a_time(sched, run, tmp_path):
    path = tmp_path / "big.bin"
    path.write_bytes(os.urandom(8 << 20))

    def main(task=None):
        f = AsyncFile(open(path, "rb"))
        first = pycos.Task(lambda task=None: (yield f.read()))
        yield task.sleep(0)  # let it start
        try:
            yield f.read(10)
            clash = False
        except ConcurrentWaitError:
            clash = True
        data = yield first.finish(timeout=10)
        f.close()
        return clash, len(data)

    clash, size = run(main)
    assert size == 8 << 20
    assert clash  # the first read is still on the worker thread


def test_char_device_that_cannot_be_polled(sched, run):
    def main(task=None):
        f = AsyncFile(open(os.devnull, "r+b"))
        n = yield f.write(b"discarded", full=True)
        data = yield f.read(10)
        f.close()
        return n, data

    assert run(main) == (9, b"")


# -------------------------------------------------------------------------- pipes
def test_communicate(sched, run):
    code = ("import sys; data = sys.stdin.buffer.read(); sys.stdout.buffer.write(data[::-1]);"
            "sys.stderr.write('done'); sys.exit(3)")

    def main(task=None):
        proc = subprocess.Popen([PY, "-c", code], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        pipe = AsyncPipe(proc)
        out, err = yield pipe.communicate(b"abc" * 100000)
        return out == b"cba" * 100000, err, pipe.returncode, pipe.poll()

    assert run(main, timeout=30) == (True, b"done", 3, 3)


def test_communicate_without_input_closes_stdin(sched, run):
    def main(task=None):
        proc = subprocess.Popen([PY, "-c", "import sys; print(len(sys.stdin.read()))"],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        out, err = yield AsyncPipe(proc).communicate()
        return out.strip(), err

    assert run(main, timeout=30) == (b"0", None)


@pytest.mark.parametrize("wrap", [AsyncFile, lambda f: f], ids=["asyncfile", "plain-file"])
def test_communicate_with_file_input(sched, run, tmp_path, wrap):
    path = tmp_path / "in.txt"
    path.write_bytes(b"from a file\n" * 1000)
    source = open(path, "rb")

    def main(task=None):
        proc = subprocess.Popen([PY, "-c", "import sys; print(sys.stdin.read().count('file'))"],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        out, _ = yield AsyncPipe(proc).communicate(wrap(source))
        return out.strip()

    assert run(main, timeout=30) == b"1000"
    assert source.closed


def test_line_by_line_and_stderr(sched, run):
    code = ("import sys\n"
            "for line in sys.stdin:\n"
            "    print(line.strip().upper(), flush=True)\n"
            "    print('err:' + line.strip(), file=sys.stderr, flush=True)\n")

    def main(task=None):
        proc = subprocess.Popen([PY, "-c", code], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        pipe = AsyncPipe(proc)
        replies = []
        for word in (b"alpha", b"beta"):
            yield pipe.write(word + b"\n", full=True)
            replies.append((yield pipe.readline(timeout=20)))
            replies.append((yield pipe.readline_stderr(timeout=20)))
        pipe.stdin.close()
        rest = yield pipe.read()
        rest_err = yield pipe.read_stderr()
        status = yield pipe.wait_exit(timeout=20)
        pipe.close()
        return replies, rest, rest_err, status

    assert run(main, timeout=30) == ([b"ALPHA\n", b"err:alpha\n", b"BETA\n", b"err:beta\n"],
                                     b"", b"", 0)


def test_chained_pipes(sched, run):
    def main(task=None):
        p1 = subprocess.Popen([PY, "-c", "import sys; sys.stdout.write(sys.stdin.read() * 3)"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        p2 = subprocess.Popen([PY, "-c", "import sys; print(len(sys.stdin.read()))"],
                              stdin=p1.stdout, stdout=subprocess.PIPE)
        p1.stdout.close()
        pipe = AsyncPipe(p1, p2)
        out, err = yield pipe.communicate(b"x" * 1000)
        return out.strip(), err, p1.returncode, p2.returncode

    assert run(main, timeout=30) == (b"3000", None, 0, 0)


def test_wait_exit_timeout_on_fake_clock(fake_sched, clock, run):
    proc = subprocess.Popen([PY, "-c", "import time; time.sleep(60)"])
    try:
        def main(task=None):
            pipe = AsyncPipe(proc)
            code = yield pipe.wait_exit(timeout=5)
            return code, clock.time()

        assert run(main) == (None, pytest.approx(5))
    finally:
        proc.kill()
        proc.wait()


def test_pipe_argument_checks(sched, run):
    with pytest.raises(TypeError, match="Popen"):
        AsyncPipe("ls")
    proc = subprocess.Popen([PY, "-c", "pass"], stdout=subprocess.PIPE)
    pipe = AsyncPipe(proc)
    with pytest.raises(ValueError, match="stdin=PIPE"):
        pipe.write(b"x")
    with pytest.raises(ValueError, match="stderr=PIPE"):
        pipe.read_stderr()
    assert pipe.pid == proc.pid

    def main(task=None):
        return (yield pipe.wait_exit(timeout=20))

    assert run(main, timeout=30) == 0
    pipe.close()
