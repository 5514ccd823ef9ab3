"""The sandbox rules of file transfer (``pycos.net.files.paths``) and the offer check."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pycos.net.files.paths import (
    MAX_DEPTH,
    NAME_MAX,
    PathRefused,
    check_name,
    is_within,
    make_dirs,
    prune_dirs,
    resolve,
    sandbox_root,
    split_dir,
    wire_dir,
)
from pycos.net.files.receive import received_mode, stat_result


def tree(root: Path) -> list[str]:
    """Every path under ``root``, relative, sorted (what a refusal must leave unchanged)."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


@pytest.fixture
def sandbox(tmp_path: Path) -> tuple[str, Path]:
    dest = tmp_path / "dest"
    root = sandbox_root(str(dest), create=True)
    return root, tmp_path


# ---------------------------------------------------------------------- names and dirs
@pytest.mark.parametrize("name", ["a.txt", "with space", "ünïcode", "x" * NAME_MAX, ".hidden",
                                  "back\\slash" if os.sep == "/" else "plain"])
def test_good_names(name: str) -> None:
    assert check_name(name) == name


@pytest.mark.parametrize("name, why", [
    ("", "empty"), (".", "not a name"), ("..", "not a name"), ("a/b", "separator"),
    ("a\0b", "NUL"), ("x" * (NAME_MAX + 1), "bytes long"), ("é" * 128, "bytes long"),
    ("\ud800", "cannot be encoded"), (b"bytes", "must be a str"), (None, "must be a str"),
])
def test_bad_names(name: object, why: str) -> None:
    with pytest.raises(PathRefused, match=why):
        check_name(name)


@pytest.mark.parametrize("dir, parts", [
    (None, []), ("", []), ("a", ["a"]), ("a/b/c", ["a", "b", "c"]), ("a//b/./c/", ["a", "b", "c"]),
    (".", []), ("/".join(["d"] * MAX_DEPTH), ["d"] * MAX_DEPTH),
])
def test_good_dirs(dir: str | None, parts: list[str]) -> None:
    assert split_dir(dir) == parts


@pytest.mark.parametrize("dir, why", [
    ("/etc", "absolute"), ("//server/share", "absolute"), ("..", "'..'"), ("a/../b", "'..'"),
    ("a/../../x", "'..'"), ("a\0b", "NUL"), ("a/" + "x" * (NAME_MAX + 1), "bytes long"),
    ("/".join(["d"] * (MAX_DEPTH + 1)), "levels deep"), (3, "must be a str"),
])
def test_bad_dirs(dir: object, why: str) -> None:
    with pytest.raises(PathRefused, match=why):
        split_dir(dir)


def test_wire_dir_uses_slashes_and_checks_types() -> None:
    assert wire_dir(None) is None
    assert wire_dir("") is None
    assert wire_dir(Path("a") / "b") == "a/b"
    with pytest.raises(TypeError, match="relative path"):
        wire_dir(42)  # type: ignore[arg-type]


def test_is_within_is_not_a_string_prefix() -> None:
    assert is_within("/x/dest", "/x/dest")
    assert is_within("/x/dest", "/x/dest/a/b")
    assert not is_within("/x/dest", "/x/dest2")
    assert not is_within("/x/dest", "/x/dest2/a")
    assert not is_within("/x/dest", "/x")
    assert not is_within("/x/dest", "relative")


# ---------------------------------------------------------------------- resolving
def test_resolve_inside(sandbox: tuple[str, Path]) -> None:
    root, _ = sandbox
    real_dir, target = resolve(root, "a/b", "f.txt")
    assert real_dir == os.path.join(root, "a", "b")
    assert target == os.path.join(root, "a", "b", "f.txt")
    assert tree(Path(root)) == []  # resolving creates nothing
    make_dirs(root, real_dir)
    assert os.path.isdir(real_dir)


def test_symlink_inside_the_tree_is_followed(sandbox: tuple[str, Path]) -> None:
    root, _ = sandbox
    os.makedirs(os.path.join(root, "real"))
    os.symlink(os.path.join(root, "real"), os.path.join(root, "alias"))
    real_dir, target = resolve(root, "alias/sub", "f")
    assert real_dir == os.path.join(root, "real", "sub")


@pytest.mark.parametrize("link_to", ["outside", "dest2", "dest_sibling/x"])
def test_symlink_out_of_the_tree_is_refused(sandbox: tuple[str, Path], link_to: str) -> None:
    root, tmp = sandbox
    out = tmp / link_to
    out.mkdir(parents=True)
    os.symlink(out, os.path.join(root, "link"))
    before = tree(tmp)
    for dir in ("link", "link/deeper", "./link/"):
        with pytest.raises(PathRefused, match="leads outside dest_path"):
            resolve(root, dir, "f")
    assert tree(tmp) == before


def test_relative_symlink_climbing_out_is_refused(sandbox: tuple[str, Path]) -> None:
    root, _ = sandbox
    os.symlink("../..", os.path.join(root, "up"))
    with pytest.raises(PathRefused, match="leads outside dest_path"):
        resolve(root, "up", "f")


def test_target_that_is_a_symlink_or_directory_is_refused(sandbox: tuple[str, Path]) -> None:
    root, tmp = sandbox
    (tmp / "secret").write_text("x")
    os.symlink(tmp / "secret", os.path.join(root, "f"))
    with pytest.raises(PathRefused, match="symbolic link"):
        resolve(root, None, "f")
    os.makedirs(os.path.join(root, "d"))
    with pytest.raises(PathRefused, match="is a directory"):
        resolve(root, None, "d")


def test_dir_through_a_file_is_refused(sandbox: tuple[str, Path]) -> None:
    root, _ = sandbox
    Path(root, "file").write_text("x")
    with pytest.raises(PathRefused, match="not a directory"):
        resolve(root, "file", "f")


def test_overlong_full_path_is_refused(sandbox: tuple[str, Path]) -> None:
    root, _ = sandbox
    dir = "/".join(["d" * 200] * 21)  # every component is fine; the whole is > 4096 bytes
    with pytest.raises(PathRefused, match="longer than"):
        resolve(root, dir, "f")


def test_make_dirs_reports_what_it_made_and_prune_stops_there(sandbox: tuple[str, Path]) -> None:
    root, _ = sandbox
    os.makedirs(os.path.join(root, "old", "empty"))
    real_dir, _target = resolve(root, "old/new/newer", "f")
    assert make_dirs(root, real_dir) == os.path.join(root, "old", "new")
    assert make_dirs(root, real_dir) is None  # nothing left to make
    prune_dirs(root, real_dir, os.path.join(root, "old", "new"))
    assert tree(Path(root)) == ["old", os.path.join("old", "empty")]  # "old" predates it


def test_sandbox_root_checks(tmp_path: Path) -> None:
    missing = tmp_path / "missing"
    with pytest.raises(PathRefused, match="does not exist"):
        sandbox_root(str(missing), create=False)
    root = sandbox_root(str(missing), create=True)
    assert os.stat(root).st_mode & 0o777 == 0o700
    (tmp_path / "plain").write_text("x")
    with pytest.raises(PathRefused, match="not a directory"):
        sandbox_root(str(tmp_path / "plain"), create=False)
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    with pytest.raises(PathRefused, match="every user"):
        sandbox_root(str(shared), create=False)


def test_prune_dirs_stops_at_root_and_at_non_empty(sandbox: tuple[str, Path]) -> None:
    root, _ = sandbox
    os.makedirs(os.path.join(root, "a", "b", "c"))
    Path(root, "a", "keep").write_text("x")
    prune_dirs(root, os.path.join(root, "a", "b", "c"))
    assert tree(Path(root)) == ["a", os.path.join("a", "keep")]
    os.unlink(os.path.join(root, "a", "keep"))
    prune_dirs(root, os.path.join(root, "a"))
    assert os.path.isdir(root) and tree(Path(root)) == []


# ---------------------------------------------------------------------- offers and modes
def test_received_mode_drops_special_bits_and_follows_the_umask() -> None:
    old = os.umask(0o027)
    try:
        assert received_mode(0o4755) == 0o750  # set-uid and the umask's bits gone
        assert received_mode(0o7777) == 0o750
        assert received_mode(0o600) == 0o600
    finally:
        os.umask(old)


def test_stat_result_from_fields() -> None:
    st = stat_result((0o100644, 7, 1_500_000_000, 2_500_000_000, 3_000_000_000))
    assert (st.st_size, st.st_mode, st.st_mtime, st.st_mtime_ns, st[8]) == (
        7, 0o100644, 2.5, 2_500_000_000, 2)


def test_same_mtime_is_exact_on_fine_clocks_and_truncated_on_coarse_ones() -> None:
    """``send_file`` answers "same file" only when the kept time *is* the offered one: a file
    rewritten within the same second at the same size is sent again."""
    from pycos.net.files.receive import same_mtime

    t = 1_700_000_000_123_456_789
    assert same_mtime(t, t)
    assert not same_mtime(t, t + 1) and not same_mtime(t, t + 400_000_000)
    assert same_mtime(1_700_000_000_123_456_000, t)  # a clock in microseconds
    assert same_mtime(1_700_000_000_000_000_000, t)  # a clock in seconds
    assert not same_mtime(1_700_000_000_000_000_000, t + 2_000_000_000)
