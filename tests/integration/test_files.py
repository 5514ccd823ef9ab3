"""File transfer between real node processes on 127.0.0.1: ``send_file`` / ``del_file``.

The sender is the node of this process (``local_node``) or a node process; the receiver is a
node process with its ``dest_path`` under the test's ``tmp_path``. Lying senders are played by
the test itself with a raw protocol client (``LyingSender``). Every wait has a timeout.
"""

from __future__ import annotations

import hashlib
import os
import stat
import struct
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import RawClient, run_in, wait_for

from pycos.net.files.receive import TEMP_SUFFIX
from pycos.proto import Batch, Established, Refused
from pycos.proto import batch as wire
from pycos.proto.filedialog import Answer, AnswerCode, Offer, Trailer

SECRET = "file secret"
REFUSAL = "refused or aborted receiving"


# ---------------------------------------------------------------------- helpers
def make_file(path: Path, size: int, mode: int = 0o644, mtime_ns: int | None = None,
              seed: bytes = b"") -> Path:
    data = (hashlib.sha256(seed + path.name.encode()).digest() * (size // 32 + 1))[:size]
    path.write_bytes(data)
    path.chmod(mode)
    if mtime_ns is not None:
        os.utime(path, ns=(mtime_ns, mtime_ns))
    return path


def tree(root: Path) -> list[str]:
    """Every path under ``root``; a directory removed while being listed shows as "?" (the
    callers wait until the tree is what they expect)."""
    if not root.exists():
        return []
    try:
        return sorted(str(p.relative_to(root)) for p in root.rglob("*"))
    except FileNotFoundError:
        return ["?"]


def send(node: Any, loc: Any, path: Any, dir: Any = None, overwrite: bool = False,
         timeout: Any = None, progress: Any = None) -> Any:
    def go(task=None):
        return (yield node.send_file(loc, path, dir, overwrite, timeout, progress))
    return run_in(node, go, timeout=60)


def delete(node: Any, loc: Any, name: Any, dir: Any = None) -> Any:
    def go(task=None):
        return (yield node.del_file(loc, name, dir, 5))
    return run_in(node, go)


def refusals(proc: Any) -> int:
    return proc.log().count(REFUSAL)


@pytest.fixture
def pair(local_node: Any, node_procs: Any, tmp_path: Path) -> tuple[Any, Any, Path]:
    """(sending node here, receiving node process, its dest_path)."""
    node = local_node(secret=SECRET, dest_path=tmp_path / "local")
    dest = tmp_path / "dest"
    proc = node_procs("--secret", SECRET, "--dest-path", dest, "--max-file-size", 10_000_000,
                      "--file-idle", 1.0)
    return node, proc, dest


class LyingSender:
    """A sender that says and sends exactly what the test wants."""

    def __init__(self, port: int, secret: str = SECRET) -> None:
        self.client = RawClient(port, secret)
        assert isinstance(self.client.handshake(), Established)
        while True:  # the receiving link's node info comes first
            ev = self.client.next_event()
            if isinstance(ev, Batch):
                break

    def offer(self, name: Any = "f.bin", dir: Any = None, size: int = 100,
              raw_offer: bytes | None = None) -> Any:
        body = raw_offer if raw_offer is not None else Offer(
            name, dir, size, 10**18, 10**18, 0o644, False).encode()
        self.client.write(self.client.conn.send_batch(wire.stream("file", body)))
        return self.answer()

    def answer(self) -> Any:
        """("send" | "same" | "exists" | "refused" | "done", detail), or the protocol event."""
        ev = self.client.next_event()
        if not isinstance(ev, Batch):
            return ev
        answer = Answer.decode(ev.body)
        return (answer.code.name.lower(),
                answer.reason if answer.code is AnswerCode.REFUSED else answer.stat)

    def raw(self, data: bytes) -> None:
        self.client.sock.sendall(data)

    def trailer(self, size: int, digest: bytes = bytes(32)) -> None:
        self.client.write(self.client.conn.send_batch(Trailer(size, digest).encode()))

    def close(self) -> None:
        self.client.close()


# ---------------------------------------------------------------------- results
def test_return_codes_and_overwrite(pair: Any, tmp_path: Path) -> None:
    node, proc, dest = pair
    src = make_file(tmp_path / "a.bin", 300_000, mtime_ns=1_600_000_000_000_000_000)
    assert send(node, proc.location, src) == 0
    assert (dest / "a.bin").read_bytes() == src.read_bytes()
    assert send(node, proc.location, src) == 1  # same size, mode and mtime
    make_file(src, 200_000, mtime_ns=1_700_000_000_000_000_000, seed=b"new")
    st = send(node, proc.location, src)
    assert isinstance(st, os.stat_result)  # a different file is there; not overwritten
    assert (st.st_size, st.st_mtime_ns) == (300_000, 1_600_000_000_000_000_000)
    assert stat.S_ISREG(st.st_mode)
    assert (dest / "a.bin").stat().st_size == 300_000
    assert send(node, proc.location, src, overwrite=True) == 0
    assert (dest / "a.bin").read_bytes() == src.read_bytes()
    assert send(node, proc.location, tmp_path / "missing") == -1
    assert send(node, proc.location, tmp_path) == -1  # not a regular file
    empty = make_file(tmp_path / "empty", 0)
    assert send(node, proc.location, empty) == 0
    assert (dest / "empty").read_bytes() == b""
    assert [p for p in tree(dest) if p.endswith(TEMP_SUFFIX)] == []


def test_wrong_secret_is_refused_and_own_node_works(local_node: Any, node_procs: Any,
                                                     tmp_path: Path) -> None:
    node = local_node(secret=SECRET, dest_path=tmp_path / "local")
    dest = tmp_path / "dest"
    stranger = node_procs("--secret", "another secret", "--dest-path", dest)
    src = make_file(tmp_path / "s.bin", 1000)
    assert send(node, stranger.location, src) == -1  # the handshake fails: nothing is sent
    assert tree(dest) == []
    assert send(node, node.location, src, dir="self") == 0  # to this very node
    assert (tmp_path / "local" / "self" / "s.bin").read_bytes() == src.read_bytes()


def test_argument_errors_raise(pair: Any, tmp_path: Path) -> None:
    node, proc, _dest = pair
    with pytest.raises(TypeError, match="Location"):
        node.send_file("127.0.0.1", tmp_path / "x")
    with pytest.raises(TypeError, match="file path"):
        node.send_file(proc.location, 42)
    with pytest.raises(TypeError, match="relative path"):
        node.send_file(proc.location, "x", dir=3)
    with pytest.raises(ValueError):
        node.send_file(proc.location, "x", timeout=-1)
    with pytest.raises(TypeError, match="progress"):
        node.send_file(proc.location, "x", progress="bar")
    with pytest.raises(TypeError, match="Location"):
        node.del_file(None, "x")


def test_dir_mode_mtime_and_progress(pair: Any, tmp_path: Path) -> None:
    node, proc, dest = pair
    mtime = 1_234_567_890_123_456_789
    src = make_file(tmp_path / "m.bin", 5_000_000, mode=0o640, mtime_ns=mtime)
    seen: list[tuple[int, int]] = []
    assert send(node, proc.location, src, dir="x/y//z/", progress=lambda s, t: seen.append(
        (s, t))) == 0
    got = dest / "x" / "y" / "z" / "m.bin"
    st = got.stat()
    assert (stat.S_IMODE(st.st_mode), st.st_mtime_ns) == (0o640, mtime)
    assert got.read_bytes() == src.read_bytes()
    assert seen[0] == (0, 5_000_000) and seen[-1] == (5_000_000, 5_000_000)
    assert [s for s, _ in seen] == sorted(s for s, _ in seen)

    def broken(sent: int, total: int) -> None:
        raise RuntimeError("a progress callback that fails")

    assert send(node, proc.location, src, dir="again", progress=broken) == 0  # logged only
    suid = make_file(tmp_path / "suid", 10, mode=0o4755)
    assert send(node, proc.location, suid) == 0
    assert stat.S_IMODE((dest / "suid").stat().st_mode) == 0o755  # set-id bits are dropped


# ---------------------------------------------------------------------- the sandbox
ESCAPES = [
    ("/abs", "f"), ("..", "f"), ("a/../..", "f"), ("a/../../x", "f"), ("ok", ".."),
    ("ok", ""), ("ok", "a/b"), ("a\0b", "f"), ("ok", "f\0"), ("ok", "x" * 256),
    ("/".join(["d" * 200] * 21), "f"), ("link_out", "f"), ("link_out/deeper", "f"),
    ("link_sibling", "f"), ("ok", "link_file"), (None, "adir"),
]


def _prepare_sandbox(dest: Path, tmp_path: Path) -> Path:
    outside = tmp_path / "outside"
    outside.mkdir(exist_ok=True)
    dest.mkdir(mode=0o700, exist_ok=True)
    sibling = Path(str(dest) + "2")  # its name starts with dest_path's
    sibling.mkdir(exist_ok=True)
    for name, target in (("link_out", outside), ("link_sibling", sibling)):
        if not (dest / name).is_symlink():
            os.symlink(target, dest / name)
    (dest / "ok").mkdir(exist_ok=True)
    if not (dest / "ok" / "link_file").is_symlink():
        os.symlink(outside / "victim", dest / "ok" / "link_file")
    (dest / "adir").mkdir(exist_ok=True)
    return outside


def test_path_escapes_refused_by_the_receiver(pair: Any, tmp_path: Path) -> None:
    _node, proc, dest = pair
    outside = _prepare_sandbox(dest, tmp_path)
    before = tree(tmp_path)
    for i, (dir, name) in enumerate(ESCAPES):
        liar = LyingSender(proc.port)
        answer = liar.offer(name, dir)
        liar.close()
        assert answer[0] == "refused", (dir, name, answer)
        assert wait_for(lambda i=i: refusals(proc) == i + 1), (dir, name, proc.log())
    assert tree(tmp_path) == before  # nothing written anywhere
    assert tree(outside) == []


def test_path_escapes_through_send_file(pair: Any, tmp_path: Path) -> None:
    node, proc, dest = pair
    outside = _prepare_sandbox(dest, tmp_path)
    srcdir = tmp_path / "src"
    srcdir.mkdir()
    src = make_file(srcdir / "f", 1000)
    before = tree(dest)
    for dir in ("link_out", "link_sibling", "link_out/deeper"):  # the sender cannot know
        assert send(node, proc.location, src, dir=dir) == -1, dir
    for dir in ("/abs", "..", "a/../../x", "a\0b"):  # refused by both ends
        assert send(node, proc.location, src, dir=dir) == -1, dir
    assert send(node, proc.location, make_file(srcdir / "link_file", 10), dir="ok") == -1
    assert send(node, proc.location, make_file(srcdir / "adir", 10)) == -1
    assert tree(dest) == before
    assert tree(outside) == [] and tree(Path(str(dest) + "2")) == []
    assert wait_for(lambda: refusals(proc) == 5)  # the ones only the receiver could refuse


def test_max_file_size(pair: Any, tmp_path: Path) -> None:
    node, proc, dest = pair  # the receiver's max_file_size is 10,000,000
    assert send(node, proc.location, make_file(tmp_path / "big", 10_000_001)) == -1
    assert wait_for(lambda: refusals(proc) == 1)
    assert "max_file_size" in proc.log()
    assert send(node, proc.location, make_file(tmp_path / "fits", 10_000_000)) == 0
    liar = LyingSender(proc.port)  # refused on the announcement, before any data
    assert liar.offer("huge", size=2**40)[0] == "refused"
    liar.close()
    assert tree(dest) == ["fits"]


# ---------------------------------------------------------------------- lying senders
def test_lying_senders_are_aborted_and_leave_nothing(pair: Any, tmp_path: Path) -> None:
    _node, proc, dest = pair
    cases = 0

    def case(action: Any, expect_answer: bool = True) -> None:
        nonlocal cases
        liar = LyingSender(proc.port)
        assert liar.offer("lie.bin", "d", size=1000) == ("send", None)
        action(liar)
        if expect_answer:
            answer = liar.answer()  # a refusal, or the protocol's REFUSE after garbage
            assert (isinstance(answer, Refused) or isinstance(answer, tuple)
                    and answer[0] == "refused"), answer
        liar.close()
        cases += 1
        assert wait_for(lambda: refusals(proc) == cases), proc.log()
        assert wait_for(lambda: tree(dest) == [])  # no file, no temp, no directory "d"

    case(lambda liar: (liar.raw(b"x" * 500), liar.trailer(1000)))  # fewer bytes, then done
    case(lambda liar: liar.raw(b"x" * 10))  # stops sending: the idle limit ends it
    case(lambda liar: liar.raw(b"x" * 3000))  # more than announced
    case(lambda liar: liar.raw(b"x" * 1000 + b"garbage"))  # a bad trailer
    case(lambda liar: (liar.raw(b"x" * 10), liar.close()), expect_answer=False)  # hangs up
    log = proc.log()
    assert "nothing received for" in log and "closed the connection after 10" in log
    assert "protocol error" in log


def test_malformed_offer_and_unknown_stream(pair: Any) -> None:
    _node, proc, dest = pair
    liar = LyingSender(proc.port)
    good = Offer("f.bin", None, 100, 10**18, 10**18, 0o644, False).encode()
    answer = liar.offer(raw_offer=struct.pack(">Q", 2**64 - 5) + good[8:])
    assert answer[0] == "refused" and "malformed file offer" in answer[1]
    liar.close()
    liar = LyingSender(proc.port)
    liar.client.write(liar.client.conn.send_batch(wire.stream("nosuchkind", b"")))
    events = liar.client.read_until_closed()
    assert events, "the connection must be closed"
    liar.close()
    assert tree(dest) == []


# ---------------------------------------------------------------------- del_file
def test_del_file_prunes_and_follows_the_same_rules(pair: Any, tmp_path: Path) -> None:
    node, proc, dest = pair
    outside = _prepare_sandbox(dest, tmp_path)
    victim = outside / "victim"
    victim.write_text("keep me")
    src = make_file(tmp_path / "d.bin", 1000)
    assert send(node, proc.location, src, dir="p/q/r") == 0
    assert send(node, proc.location, src, dir="p/keep") == 0
    assert delete(node, proc.location, src, "p/q/r") == 0  # a path: its base name is used
    assert not (dest / "p" / "q").exists()  # emptied directories are removed
    assert (dest / "p" / "keep" / "d.bin").exists()
    assert delete(node, proc.location, "d.bin", "p/q/r") == -1  # gone already
    assert delete(node, proc.location, "d.bin", "p/keep") == 0
    assert not (dest / "p").exists() and dest.is_dir()  # dest_path itself stays
    for name, dir in (("victim", "link_out"), ("victim", ".."), ("link_file", "ok"),
                      ("adir", None), ("x", "/abs")):
        assert delete(node, proc.location, name, dir) == -1, (name, dir)

    def raw(payload, task=None):  # bypasses the sender's own checks
        return (yield node.request(proc.location, "_del_file", payload, 5))

    for payload in (("victim", "../outside"), ("../outside/victim", None),
                    ("victim", str(outside))):
        assert run_in(node, raw, payload) == -1, payload
    assert victim.read_text() == "keep me"
    assert (dest / "ok" / "link_file").is_symlink()


# ---------------------------------------------------------------------- more at once, TLS
def test_concurrent_transfers(pair: Any, tmp_path: Path) -> None:
    import pycos

    node, proc, dest = pair
    files = [make_file(tmp_path / f"c{i}.bin", 2_000_000 + i) for i in range(6)]
    tasks = [pycos.Task(lambda f, task=None: (yield node.send_file(proc.location, f, "many")),
                        f) for f in files]
    assert [t.value(timeout=30) for t in tasks] == [0] * 6
    for f in files:
        assert (dest / "many" / f.name).read_bytes() == f.read_bytes()


def test_tls_transfer(local_node: Any, node_procs: Any, node_certs: Any, tmp_path: Path) -> None:
    c = node_certs
    node = local_node(secret=SECRET, certfile=c.node1_cert, keyfile=c.node1_key, cafile=c.ca)
    dest = tmp_path / "dest"
    proc = node_procs("--secret", SECRET, "--certfile", c.node2_cert, "--keyfile", c.node2_key,
                      "--cafile", c.ca, "--dest-path", dest)
    src = make_file(tmp_path / "tls.bin", 6_000_000, mode=0o600, mtime_ns=10**18)
    assert send(node, proc.location, src, dir="t") == 0
    assert (dest / "t" / "tls.bin").read_bytes() == src.read_bytes()
    assert (dest / "t" / "tls.bin").stat().st_mtime_ns == 10**18
    assert send(node, proc.location, src, dir="t") == 1


# ---------------------------------------------------------------------- liveness
def test_transfer_not_stalled_by_a_busy_receiver(pair: Any, tmp_path: Path) -> None:
    node, proc, dest = pair
    src = make_file(tmp_path / "busy.bin", 9_000_000)
    assert send(node, proc.location, src, dir="warm") == 0
    assert proc.proc.stdin is not None
    proc.proc.stdin.write('["burn", 3]\n')  # a task there computes for 3 s without yielding
    proc.proc.stdin.flush()
    time.sleep(0.3)
    start = time.monotonic()
    assert send(node, proc.location, src) == 0
    took = time.monotonic() - start
    assert proc.replies.empty(), "the burn ended first: the test proves nothing"
    assert took < 2.0, took
    assert (dest / "busy.bin").read_bytes() == src.read_bytes()
    assert proc.replies.get(timeout=20) > 0
