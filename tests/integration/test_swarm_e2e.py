"""Swarms between real processes on 127.0.0.1: the seed's Tutorial 1, 2,000 files down and up,
kill -9 of either side in the middle of a transfer, and a slow consumer's memory bound."""

from __future__ import annotations

import math
import os
import random
import secrets
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from test_swarm_procs import GatewayProc, start_controller, wait_until

from pycos.swarm import Controller, GatewayClosed, localfiles
from pycos.swarm.localfiles import TEMP_PREFIX

ROOT = Path(__file__).resolve().parents[2]


def partials(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.name.startswith(TEMP_PREFIX)]


@pytest.fixture
def secret() -> str:
    return secrets.token_hex(12)


@pytest.fixture
def procs() -> Iterator[list[Any]]:
    made: list[Any] = []
    yield made
    for proc in made:
        if isinstance(proc, GatewayProc):
            proc.stop()
            continue
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()


def test_tutorial_1_conditional_backup_end_to_end(tmp_path: Path) -> None:
    env = dict(os.environ, PYCOS_EXAMPLE_SECRET=secrets.token_hex(8))
    proc = subprocess.run([sys.executable, str(ROOT / "examples" / "swarm_backup.py"),
                           "--threshold", "0"], capture_output=True, text=True, timeout=60,
                          cwd=tmp_path, env=env)
    out = proc.stdout
    assert proc.returncode == 0, out + proc.stderr
    assert "Traceback" not in out + proc.stderr
    for line in ["controller: ping -> 'Hello there..'", "controller: mount usage: ",
                 "controller: stream aborted after 501 items",
                 "controller: 36 files backed up, identical: True",
                 "controller: 36 files deleted", "gateway: request 123: usage",
                 "gateway: 36 files deleted", "gateway: closed by the controller",
                 "controller: the gateway exited with 0"]:
        assert any(x.startswith(line) for x in out.splitlines()), f"{line!r} not in:\n{out}"
    assert "StreamResult" not in out  # eos_callback=print was not called: an abort
    assert not list(tmp_path.iterdir())


def make_tree(root: Path, files: int = 2000, dirs: int = 20, seed: int = 2) -> None:
    rnd = random.Random(seed)
    for i in range(files):
        sub = root / f"dir{i % dirs:02d}"
        sub.mkdir(parents=True, exist_ok=True)
        size = int(math.exp(rnd.uniform(math.log(1024), math.log(16 * 1024))))
        path = sub / f"file{i:04d}.log"
        path.write_bytes(rnd.randbytes(size))
        os.chmod(path, rnd.choice([0o600, 0o640, 0o644, 0o755]))
        os.utime(path, ns=(1_700_000_000_000_000_000, 1_700_000_000_000_000_000 + i * 1001))
    for name in ("big1.bin", "big2.bin"):
        (root / name).write_bytes(os.urandom(3 << 20))


def assert_same_tree(a: Path, b: Path) -> int:
    names = sorted(p.relative_to(a).as_posix() for p in a.rglob("*") if p.is_file())
    assert names == sorted(p.relative_to(b).as_posix() for p in b.rglob("*") if p.is_file())
    for name in names:
        x, y = a / name, b / name
        assert x.read_bytes() == y.read_bytes(), name
        sx, sy = x.stat(), y.stat()
        assert (sx.st_mtime_ns, stat.S_IMODE(sx.st_mode)) == (sy.st_mtime_ns,
                                                             stat.S_IMODE(sy.st_mode)), name
    return len(names)


def test_2000_files_down_and_up_byte_for_byte_with_modes_and_mtimes(
        tmp_path: Path, secret: str, procs: list[Any], local_node: Any) -> None:
    os.umask(0o022)
    src = tmp_path / "src"
    make_tree(src)
    gw = GatewayProc(tmp_path, secret, "--export", f"data={src}")
    procs.append(gw)
    node = local_node(secret=secret)
    ctl = Controller(f"127.0.0.1:{gw.port}", node=node, download_dir=str(tmp_path / "down"))
    with ctl.get_swarm(4) as swarm:
        got = swarm.get_files("data")
        assert len(got) == 2002 and not got.failed
        assert assert_same_tree(src, tmp_path / "down") == 2002
        put = swarm.put_files(tmp_path / "down", dir="up")
        assert len(put) == 2002 and not put.failed
    assert assert_same_tree(src, gw.dest / "up") == 2002
    assert gw.stats()["pool_in_use"] == 0


def test_kill_9_of_the_controller_mid_upload(tmp_path: Path, secret: str,
                                             procs: list[Any]) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for i in range(4):
        (src / f"part{i}.bin").write_bytes(os.urandom(8 << 20))
    gw = GatewayProc(tmp_path, secret, "--slow-write", "0.05")  # 0.4 s per file to write
    procs.append(gw)
    ctl = start_controller(gw.port, secret, "put", src, tmp_path / "unused")
    procs.append(ctl)
    assert wait_until(lambda: bool(gw.dest.exists() and partials(gw.dest)), 20), gw.log()
    ctl.kill()  # SIGKILL, mid-transfer
    ctl.wait(timeout=10)
    killed = time.monotonic()
    assert wait_until(lambda: gw.stats()["pool_in_use"] == 0, 1.0, 0.02), gw.stats()
    assert time.monotonic() - killed <= 1.0
    assert wait_until(lambda: not partials(gw.dest), 1.0), partials(gw.dest)
    assert not list((gw.dest / "uploads").glob("*.bin")) or all(
        p.stat().st_size == 8 << 20 for p in (gw.dest / "uploads").glob("*.bin"))


def test_kill_9_of_the_gateway_mid_download(tmp_path: Path, secret: str, procs: list[Any],
                                            local_node: Any,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for i in range(4):
        (src / f"part{i}.bin").write_bytes(os.urandom(8 << 20))
    gw = GatewayProc(tmp_path, secret, "--export", f"data={src}")
    procs.append(gw)
    original = localfiles.Incoming.write

    def slow(self: Any, data: Any) -> None:
        time.sleep(0.05 * len(data) / (1 << 20))
        original(self, data)

    monkeypatch.setattr(localfiles.Incoming, "write", slow)
    down = tmp_path / "down"
    ctl = Controller(f"127.0.0.1:{gw.port}", node=local_node(secret=secret),
                     download_dir=str(down), timeout=10)
    swarm = ctl.get_swarm(4)
    outcome: list[Any] = []

    def download() -> None:
        try:
            outcome.append(swarm.get_files("data"))
        except Exception as exc:  # noqa: BLE001 - checked below
            outcome.append(exc)

    worker = threading.Thread(target=download)
    worker.start()
    assert wait_until(lambda: bool(down.exists() and partials(down)), 20)
    gw.kill()
    worker.join(20)
    assert not worker.is_alive() and outcome
    result = outcome[0]
    assert isinstance(result, GatewayClosed) or len(result.failed) >= 1, result
    assert not partials(down), partials(down)
    for p in down.glob("*.bin"):  # whatever arrived whole is whole
        assert p.read_bytes() == (src / p.name).read_bytes()
    swarm.close()


def test_a_slow_consumer_keeps_the_gateway_memory_bounded(
        tmp_path: Path, secret: str, procs: list[Any], local_node: Any) -> None:
    marker = tmp_path / "markers"
    marker.mkdir()
    gw = GatewayProc(tmp_path, secret, "--marker-dir", str(marker))
    procs.append(gw)
    child = psutil.Process(gw.pid)
    ctl = Controller(f"127.0.0.1:{gw.port}", node=local_node(secret=secret))
    samples: list[int] = []
    started = time.monotonic()

    def slow(ident: int, value: bytes) -> bool:
        time.sleep(0.001)
        if ident == 300:
            samples.append(child.memory_info().rss)
        elapsed = time.monotonic() - started
        if elapsed > 3.5:
            samples.append(child.memory_info().rss)
            return False
        return True

    with ctl.get_client() as client:
        result = client.stream("endless", 64 * 1024, "slow", callback=slow, window=64)
    assert result.ended == "abort"
    growth = samples[-1] - samples[0]
    assert growth <= 16 << 20, f"the gateway grew by {growth / 2**20:.1f} MiB"
    # a 1 ms consumer takes at most ~1,000 items a second: the producer was held back
    assert result.items < 4000
    assert wait_until(lambda: (marker / "slow.closed").exists(), 2.0)
