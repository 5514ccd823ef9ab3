"""Swarm file transfers between two nodes of this process: both directions, small files inline
and large ones as authenticated raw sections, resume, the regex on the client, exact paths,
folders that try to leave an export, files that change while they are sent, and the upload
rules of ``send_file``."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pycos.errors import AccessDenied
from pycos.net.node import Node
from pycos.swarm import Controller, Gateway, gwfiles
from pycos.swarm.localfiles import TEMP_PREFIX

SECRET = "swarm-files-secret"


@pytest.fixture
def setup(sched: Any, tmp_path: Path) -> Iterator[dict[str, Any]]:
    common = dict(host="127.0.0.1", discover_peers=False, udp_port=None, scheduler=sched,
                  secret=SECRET)
    a = Node(name="gw-node", dest_path=str(tmp_path / "dest"), max_file_size=8 << 20,
             **common)
    b = Node(name="ctl-node", **common)
    logs = tmp_path / "logs"
    make_tree(logs)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.log").write_text("secret")
    os.symlink(outside, logs / "link")
    os.symlink(outside / "secret.log", logs / "linked.log")
    gw = Gateway(node=a, exports={"logs": logs})
    gw.start()
    ctl = Controller(a.location, node=b, download_dir=str(tmp_path / "down"), timeout=10.0)
    yield {"gw": gw, "ctl": ctl, "logs": logs, "tmp": tmp_path, "dest": tmp_path / "dest"}
    ctl.close()
    gw.close()
    b.close()
    a.close()


def make_tree(root: Path) -> None:
    for d in range(3):
        sub = root / f"d{d}"
        sub.mkdir(parents=True)
        for i in range(40):
            path = sub / f"f{i}.log"
            path.write_bytes(os.urandom(100 + 1000 * i))
            os.chmod(path, 0o640 if i % 2 else 0o604)
            os.utime(path, ns=(1_600_000_000_000_000_000, 1_600_000_000_000_000_000 + i))
    (root / "big.bin").write_bytes(os.urandom(3 << 20))
    (root / "notes.txt").write_text("not a log")


def same_tree(a: Path, b: Path, pattern: str = "*") -> list[str]:
    names = sorted(p.relative_to(a).as_posix() for p in a.rglob(pattern)
                   if p.is_file() and not p.is_symlink())
    for name in names:
        x, y = a / name, b / name
        assert x.read_bytes() == y.read_bytes(), name
        sx, sy = os.stat(x), os.stat(y)
        assert sx.st_mtime_ns == sy.st_mtime_ns, name
        assert stat.S_IMODE(sx.st_mode) == stat.S_IMODE(sy.st_mode), name
    return names


def no_partial(root: Path) -> bool:
    return not [p for p in root.rglob("*") if p.name.startswith(TEMP_PREFIX)]


def test_download_over_a_swarm_then_resume(setup: dict[str, Any]) -> None:
    ctl, logs, down = setup["ctl"], setup["logs"], setup["tmp"] / "down"
    progress: list[tuple[int, int, int, int]] = []
    with ctl.get_swarm(3) as swarm:
        got = swarm.get_files("logs", progress=lambda *a: progress.append(a))
        assert got.failed == {}  # links are not listed (never followed)
        assert len(got) == 122 and got.same == 0
        names = same_tree(logs, down)
        assert len(names) == 122 and "linked.log" not in names and "link/secret.log" not in \
            names
        assert progress[-1][0] == progress[-1][1] == 122
        assert progress[-1][2] == progress[-1][3] == sum((logs / n).stat().st_size
                                                         for n in names)
        again = swarm.get_files("logs")
        assert len(again) == 122 and again.same == 122  # identical files are skipped
    assert no_partial(down)


def test_regex_on_the_client_and_exact_paths(setup: dict[str, Any]) -> None:
    ctl, tmp = setup["ctl"], setup["tmp"]
    with ctl.get_client() as client:
        got = client.get_files("logs/d1", regex=r"f1\d\.log", dest=str(tmp / "r"))
        assert sorted(Path(p).name for p in got) == [f"f1{i}.log" for i in range(10)]
        listed = client.list_files("logs", regex=r".+\.log")
        assert len(listed) == 120 and all(e[0].endswith(".log") for e in listed)
        exact = client.get_files("logs", paths=["d0/f3.log", "nosuch.log", "linked.log"],
                                 dest=str(tmp / "p"))
        assert [Path(p).name for p in exact] == ["f3.log"]
        assert set(exact.failed) == {"nosuch.log", "linked.log"}


@pytest.mark.parametrize("folder", ["logs/..", "logs/../outside", "/etc", "logs/link",
                                    "logs/d0/\0", "nosuch"])
def test_folders_leaving_an_export_are_refused(setup: dict[str, Any], folder: str) -> None:
    with setup["ctl"].get_client() as client:
        with pytest.raises(AccessDenied):
            client.get_files(folder)
        assert client.ping()[0] == "ping"  # the handler serves on


def test_a_file_changing_while_sent_is_discarded_and_the_rest_arrives(
        setup: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    logs, tmp = setup["logs"], setup["tmp"]
    original = gwfiles.send_section

    def grows(wire: Any, fd: int, size: int, mtime_ns: int, mac: Any) -> bool:
        with open(logs / "big.bin", "ab") as f:
            f.write(b"more")
        return original(wire, fd, size, mtime_ns, mac)

    monkeypatch.setattr(gwfiles, "send_section", grows)
    with setup["ctl"].get_client() as client:
        got = client.get_files("logs", regex=r"big\.bin|d0/.*", dest=str(tmp / "c"))
    assert list(got.failed) == ["big.bin"] and "changed" in got.failed["big.bin"]
    assert len(got) == 40 and not (tmp / "c" / "big.bin").exists()
    assert no_partial(tmp / "c")


def test_upload_over_a_swarm_with_the_send_file_rules(setup: dict[str, Any]) -> None:
    ctl, logs, dest = setup["ctl"], setup["logs"], setup["dest"]
    with ctl.get_swarm(2) as swarm:
        put = swarm.put_files(logs, dir="backup/today")
        assert len(put) == 122 and not put.failed
        same_tree(logs, dest / "backup" / "today")
        again = swarm.put_files(logs, dir="backup/today")
        assert again.same == 122
        (logs / "d0" / "f0.log").write_bytes(b"changed")
        third = swarm.put_files(logs, regex=r"d0/f0\.log", dir="backup/today")
        assert "exists" in third.failed["d0/f0.log"]  # not overwritten unless asked
        forced = swarm.put_files(logs, regex=r"d0/f0\.log", dir="backup/today",
                                 overwrite=True)
        assert len(forced) == 1
        assert (dest / "backup" / "today" / "d0" / "f0.log").read_bytes() == b"changed"
        with pytest.raises(ValueError):
            swarm.put_files(logs, dir="../escape")
    assert no_partial(dest)


def test_uploads_beyond_max_file_size_are_refused_before_data(setup: dict[str, Any]) -> None:
    tmp, dest = setup["tmp"], setup["dest"]
    src = tmp / "huge"
    src.mkdir()
    (src / "huge.bin").write_bytes(b"\0" * (9 << 20))
    (src / "small.txt").write_text("ok")
    with setup["ctl"].get_client() as client:
        put = client.put_files(src)
    assert put == ["small.txt"] and "max_file_size" in put.failed["huge.bin"]
    assert not (dest / "huge.bin").exists() and no_partial(dest)


import certs  # noqa: E402 - the session fixture of TLS files

tls_files = certs.tls_files


def test_streams_and_files_over_tls(sched: Any, tmp_path: Path, tls_files: Any) -> None:
    """A node with a certificate: every swarm connection is TLS, and large files take the
    copying path (no ``sendfile`` through TLS) with their digest still checked."""
    common = dict(host="127.0.0.1", discover_peers=False, udp_port=None, scheduler=sched,
                  secret=SECRET, certfile=tls_files.self_cert, keyfile=tls_files.self_key)
    a = Node(name="tls-gw", dest_path=str(tmp_path / "dest"), **common)
    b = Node(name="tls-ctl", **common)
    src = tmp_path / "src"
    src.mkdir()
    (src / "big.bin").write_bytes(os.urandom(3 << 20))
    (src / "small.txt").write_text("small")
    gw = Gateway(node=a, exports={"src": src})
    gw.add_subroutine("count", lambda n: ((i, bytes(1000)) for i in range(n)), "stream")
    gw.start()
    try:
        ctl = Controller(a.location, node=b, download_dir=str(tmp_path / "down"))
        with ctl.get_swarm(2) as swarm:
            assert swarm.clients[0].wire.tls
            assert swarm.clients[0].stream("count", 500).items == 500
            got = swarm.get_files("src")
            assert len(got) == 2 and not got.failed
            assert same_tree(src, tmp_path / "down") == ["big.bin", "small.txt"]
            put = swarm.put_files(src, dir="back")
            assert len(put) == 2
            same_tree(src, tmp_path / "dest" / "back")
    finally:
        gw.close()
        b.close()
        a.close()
