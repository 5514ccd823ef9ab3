"""The pure parts of ``pycos.swarm``: the reorder buffer, the swarm scheduler, export path
resolution and listings, subroutine kind inference, the byte converters, ``safe_print``, and
where received files land."""

from __future__ import annotations

import io
import os
import random
import stat
import threading
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pycos.errors import AccessDenied
from pycos.net.files.paths import PathRefused
from pycos.swarm import _protocol as P
from pycos.swarm import backend2, codec
from pycos.swarm.exports import Exports, open_dir, open_file, walk
from pycos.swarm.kinds import Kind, Subroutines, infer_kind
from pycos.swarm.localfiles import EXISTS, SAME, SEND, TEMP_PREFIX, Landing
from pycos.swarm.reorder import ReorderBuffer
from pycos.swarm.schedule import BATCH_FILES, Plan, make_units


# ---------------------------------------------------------------------- reorder
def test_reorder_releases_in_order_and_waits_for_a_gap() -> None:
    buf = ReorderBuffer(capacity=8, gap_time=1.0)
    assert buf.push(1, "b", 0.0) == []
    assert buf.push(2, "c", 0.1) == []
    assert buf.deadline() == 1.0
    assert buf.push(0, "a", 0.2) == [(0, "a"), (1, "b"), (2, "c")]
    assert buf.deadline() is None
    assert buf.push(5, "f", 0.3) == []
    assert buf.expire(1.0) == []
    assert buf.expire(1.3) == [(5, "f")] and buf.skipped == 2  # idents 3 and 4 never came
    assert buf.push(3, "d", 1.4) == [(3, "d")] and buf.late == 1  # too late: out at once


def test_reorder_capacity_bounds_what_is_held() -> None:
    buf = ReorderBuffer(capacity=3, gap_time=100.0)
    out = []
    for ident in (10, 11, 12):
        out += buf.push(ident, ident, 0.0)
    assert out == [] and len(buf) == 3  # waiting for idents 0..9
    out += buf.push(20, 20, 0.0)  # a fourth: the smallest goes out, its gap is skipped
    assert [i for i, _ in out] == [10, 11, 12] and len(buf) == 1 and buf.skipped == 10
    assert [i for i, _ in buf.flush()] == [20]


def test_reorder_from_another_start_and_flush() -> None:
    buf = ReorderBuffer(start=1)
    assert buf.push(1, "x", 0.0) == [(1, "x")]
    assert buf.push(3, "z", 0.0) == []
    assert buf.flush() == [(3, "z")]


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 300), st.integers(1, 64), st.randoms(use_true_random=False))
def test_random_permutations_within_the_window_come_out_sorted(n: int, window: int,
                                                              rnd: random.Random) -> None:
    """Items displaced by less than the window (as k handlers' merged streams are) come
    out in ident order with nothing held back at the end."""
    order = list(range(n))
    for start in range(0, n, window):  # shuffle within consecutive windows
        block = order[start:start + window]
        rnd.shuffle(block)
        order[start:start + window] = block
    buf = ReorderBuffer(capacity=1024, gap_time=10.0)
    out = []
    for ident in order:
        out += [i for i, _v in buf.push(ident, ident, 0.0)]
    out += [i for i, _v in buf.flush()]
    assert out == list(range(n))
    assert buf.late == 0 and buf.skipped == 0


# ---------------------------------------------------------------------- schedule
def test_units_largest_first_small_files_batched() -> None:
    files = [(f"s{i}", 1000 + i) for i in range(130)] + [("big", 10 << 20), ("mid", 100_000)]
    units = make_units(files)
    assert [u.paths for u in units[:2]] == [["big"], ["mid"]]
    assert units[0].big and not units[2].big
    small = [u for u in units if not u.big]
    assert [len(u.files) for u in small] == [BATCH_FILES, BATCH_FILES, 2]
    assert small[0].files[0] == ("s129", 1129)  # largest small files first
    assert [u.nbytes for u in units] == sorted((u.nbytes for u in units), reverse=True)


def test_plan_deals_largest_first_and_idle_workers_steal() -> None:
    units = make_units([(f"f{i}", size) for i, size in enumerate(
        [900_000, 800_000, 700_000, 600_000, 500_000, 400_000])])
    plan = Plan(units, 2)
    assert plan.take(0).nbytes == 900_000  # type: ignore[union-attr]
    assert plan.take(1).nbytes == 800_000  # type: ignore[union-attr]
    took = []
    while (unit := plan.take(1)) is not None:  # worker 0 stalls: 1 empties its queue and steals
        took.append(unit.nbytes)
    assert plan.stolen >= 1 and plan.take(0) is None
    assert sorted(took + [900_000, 800_000]) == sorted(u.nbytes for u in units)


def test_plan_is_shared_safely_by_threads() -> None:
    units = make_units([(f"f{i}", 70_000 + i) for i in range(500)])
    plan = Plan(units, 4)
    taken: list[list[str]] = [[] for _ in range(4)]

    def work(w: int) -> None:
        while (unit := plan.take(w)) is not None:
            taken[w] += unit.paths

    threads = [threading.Thread(target=work, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    every = sorted(p for t in taken for p in t)
    assert every == sorted(f"f{i}" for i in range(500))


# ---------------------------------------------------------------------- exports
@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "logs"
    (root / "a" / "b").mkdir(parents=True)
    (root / "top.log").write_text("top")
    (root / "a" / "one.log").write_text("one")
    (root / "a" / "b" / "two.txt").write_text("two")
    outside = tmp_path / "secret"
    outside.mkdir()
    (outside / "key").write_text("k")
    os.symlink(outside, root / "escape")
    os.symlink(outside / "key", root / "a" / "key.log")
    os.mkfifo(root / "fifo")
    return root


@pytest.mark.parametrize("folder", ["logs/../secret", "logs/..", "/etc", "logs/a/\0x",
                                    "logs/escape", "nosuch", "logs/a/../../secret", "",
                                    "../logs", "logs/escape/key"])
def test_folders_that_leave_an_export_are_refused(tree: Path, folder: str) -> None:
    exports = Exports({"logs": tree})
    with pytest.raises(AccessDenied):
        root, parts = exports.locate(folder)
        os.close(open_dir(root, parts))


def test_export_names_and_seed_style_paths(tree: Path) -> None:
    exports = Exports([str(tree)])  # exported under its own path, as a seed names a folder
    root, parts = exports.locate(str(tree) + "/a/b")
    assert (root, parts) == (os.path.realpath(tree), ["a", "b"])
    named = Exports({"D:\\logs": tree})
    assert named.locate("D:\\logs\\a")[1] == ["a"]
    with pytest.raises(ValueError, match="not a directory"):
        Exports({"x": tree / "top.log"})


def test_listings_never_follow_links_and_skip_special_files(tree: Path) -> None:
    fd = open_dir(str(tree), [])
    try:
        entries, truncated = walk(fd)
    finally:
        os.close(fd)
    assert not truncated
    assert sorted(e[0] for e in entries) == ["a/b/two.txt", "a/one.log", "top.log"]
    path, size, _mtime, mode = next(e for e in entries if e[0] == "top.log")
    assert size == 3 and mode == stat.S_IMODE(os.stat(tree / "top.log").st_mode)


def test_listings_are_capped(tmp_path: Path) -> None:
    for i in range(50):
        (tmp_path / f"f{i}").write_bytes(b"")
    fd = open_dir(str(tmp_path), [])
    try:
        entries, truncated = walk(fd, limit=20)
    finally:
        os.close(fd)
    assert truncated and len(entries) == 20


@pytest.mark.parametrize("relpath", ["a/key.log", "escape/key", "../secret/key", "/etc/passwd",
                                     "fifo", "a", "a/b/../../top.log", "a\0b"])
def test_files_are_opened_only_inside_without_links(tree: Path, relpath: str) -> None:
    fd = open_dir(str(tree), [])
    try:
        with pytest.raises((AccessDenied, OSError)):
            os.close(open_file(fd, relpath))
        ok = open_file(fd, "a/b/two.txt")
        assert os.read(ok, 10) == b"two"
        os.close(ok)
    finally:
        os.close(fd)


# ---------------------------------------------------------------------- kinds
def test_kind_inference() -> None:
    def gen(n: int) -> Any:
        yield 0, b""

    def batch(request_id: int, **kw: Any) -> bytes:
        return b""

    def sink(x: int, buffer: bytes = b"") -> int:
        return 0

    class Callable_:
        def __call__(self) -> Any:
            yield 1

    assert infer_kind(gen) is Kind.STREAM
    assert infer_kind(batch) is Kind.BATCH
    assert infer_kind(sink) is Kind.SINK
    assert infer_kind(Callable_()) is Kind.STREAM
    assert infer_kind(len) is Kind.BATCH

    async def coro() -> None:
        pass

    with pytest.raises(TypeError, match="async"):
        infer_kind(coro)
    with pytest.raises(TypeError):
        infer_kind(42)  # type: ignore[arg-type]


def test_subroutines_table_says_which_call_to_use() -> None:
    table = Subroutines()
    table.add("g", lambda: iter(()), Kind.STREAM)
    from pycos.swarm.errors import SubroutineNotFound

    with pytest.raises(SubroutineNotFound, match="use stream"):
        table.get("g", Kind.BATCH)
    with pytest.raises(SubroutineNotFound, match="no subroutine"):
        table.get("nosuch", Kind.BATCH)
    with pytest.raises(ValueError):
        table.add("", len)


# ---------------------------------------------------------------------- codec
def test_byte_converters_round_trip() -> None:
    assert codec.bytes_to_str(codec.str_to_bytes("héllo")) == "héllo"
    for n in (0, 1, -1, 2**63 - 1, -2**63, 2**100, -(2**100)):
        assert codec.bytes_to_int(codec.int_to_bytes(n)) == n
    assert len(codec.int_to_bytes(5)) == 8

    class Reading:
        def __init__(self, sensor: str = "", value: float = 0.0) -> None:
            self.sensor, self.value = sensor, value

    data = codec.obj_to_json_bytes(Reading("speed", 1.5))
    back = codec.json_bytes_to_obj(data, Reading)
    assert (back.sensor, back.value) == ("speed", 1.5)
    assert codec.json_bytes_to_obj(codec.obj_to_json_bytes({"a": [1]})) == {"a": [1]}
    assert backend2.int_to_bytes is codec.int_to_bytes
    with pytest.raises(TypeError):
        codec.int_to_bytes(True)


def test_safe_print_writes_whole_lines_from_threads() -> None:
    out = io.StringIO()

    def say(i: int) -> None:
        for _ in range(200):
            codec.safe_print("thread", i, "line", file=out)

    threads = [threading.Thread(target=say, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    lines = out.getvalue().splitlines()
    assert len(lines) == 800 and all(line.startswith("thread ") and line.endswith(" line")
                                     for line in lines)


# ---------------------------------------------------------------------- landing
def test_landing_sandbox_resume_and_cleanup(tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    landing = Landing(str(dest), "in")
    meta = P.FileMeta("d/x.bin", 3, 1_700_000_000_123_456_789, 0o4755)
    assert landing.check(meta) == SEND
    incoming = landing.begin(meta)
    incoming.write(b"abc")
    target = incoming.finish()
    assert Path(target).read_bytes() == b"abc"
    st_ = os.stat(target)
    assert st_.st_mtime_ns == meta.mtime_ns and not st_.st_mode & (stat.S_ISUID | 0o002)
    assert landing.check(meta) == SAME  # resume: the same file is there
    changed = P.FileMeta("d/x.bin", 4, meta.mtime_ns, 0o644)
    assert landing.check(changed) == EXISTS
    for bad in ("../x", "/etc/x", "d/../../x", "a\0b"):
        with pytest.raises(PathRefused):
            landing.check(P.FileMeta(bad, 1, 0, 0o644))
    half = landing.begin(P.FileMeta("new/dir/y", 10, 0, 0o644))
    half.write(b"12345")
    half.discard()
    assert not (dest / "in" / "new").exists()  # directories made for it went too
    assert not [p for p in dest.rglob("*") if p.name.startswith(TEMP_PREFIX)]
    with pytest.raises(PathRefused):
        Landing(str(dest), "../up")
