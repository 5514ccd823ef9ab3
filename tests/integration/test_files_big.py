"""File transfer under stress, between real node processes on 127.0.0.1: a 1 GiB transfer
(checksum, memory of both processes), a receiver that stops reading, a sender killed with
SIGKILL mid-transfer. Each leaves no file and no temporary file behind when it fails.
"""

from __future__ import annotations

import hashlib
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

from conftest import wait_for
from test_files import SECRET, make_file, refusals, send, tree

from pycos.net.files.receive import TEMP_SUFFIX


def test_stopped_receiver_times_out_and_leaves_nothing(local_node: Any, node_procs: Any,
                                                       tmp_path: Path) -> None:
    node = local_node(secret=SECRET, handshake_timeout=1.0)
    dest = tmp_path / "dest"
    proc = node_procs("--secret", SECRET, "--dest-path", dest)
    src = tmp_path / "sparse.bin"
    with open(src, "wb") as f:
        f.truncate(3 * 2**30)
    result: list[Any] = []
    t = threading.Thread(target=lambda: result.append(send(node, proc.location, src, "s/t",
                                                           timeout=1.0)))
    t.start()
    try:
        assert wait_for(lambda: any(p.endswith(TEMP_SUFFIX) for p in tree(dest)), 10)
        proc.kill(signal.SIGSTOP)  # the receiver stops reading mid-transfer
        start = time.monotonic()
        t.join(15)
        assert result == [-1]
        assert time.monotonic() - start < 8
    finally:
        proc.kill(signal.SIGCONT)
    assert wait_for(lambda: tree(dest) == [], 10), tree(dest)


def test_sender_killed_mid_transfer_leaves_nothing(node_procs: Any, tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    receiver = node_procs("--secret", SECRET, "--dest-path", dest)
    sender = node_procs("--secret", SECRET, "--dest-path", tmp_path / "unused")
    src = tmp_path / "sparse.bin"
    with open(src, "wb") as f:
        f.truncate(3 * 2**30)
    assert sender.proc.stdin is not None
    sender.proc.stdin.write(f'["send_file", "127.0.0.1", {receiver.port}, "{src}", "k/l"]\n')
    sender.proc.stdin.flush()
    assert wait_for(lambda: any(p.endswith(TEMP_SUFFIX) for p in tree(dest)), 10)
    sender.kill(signal.SIGKILL)
    assert wait_for(lambda: tree(dest) == [], 10), tree(dest)
    assert wait_for(lambda: refusals(receiver) == 1)


# ---------------------------------------------------------------------- 1 GiB
def _rss_peak(pids: list[int], stop: threading.Event, peaks: dict[int, int]) -> None:
    import psutil

    procs = [psutil.Process(pid) for pid in pids]
    while not stop.is_set():
        for p in procs:
            peaks[p.pid] = max(peaks.get(p.pid, 0), p.memory_info().rss)
        stop.wait(0.005)


def test_one_gib_checksum_and_bounded_memory(node_procs: Any, tmp_path: Path) -> None:
    import psutil

    dest = tmp_path / "dest"
    receiver = node_procs("--secret", SECRET, "--dest-path", dest)
    sender = node_procs("--secret", SECRET, "--dest-path", tmp_path / "unused")
    src, digest, block = tmp_path / "gib.bin", hashlib.sha256(), bytearray(os.urandom(64 << 20))
    with open(src, "wb") as f:
        for i in range(16):  # 1 GiB of random data, every 64 MiB block different
            block[:8] = i.to_bytes(8, "little")
            f.write(block)
            digest.update(block)
    del block
    warm = make_file(tmp_path / "warm.bin", 16 << 20)
    assert sender.call("send_file", "127.0.0.1", receiver.port, str(warm)) == 0
    pids = [sender.pid, receiver.pid]
    base = {pid: psutil.Process(pid).memory_info().rss for pid in pids}
    peaks: dict[int, int] = {}
    stop = threading.Event()
    sampler = threading.Thread(target=_rss_peak, args=(pids, stop, peaks))
    sampler.start()
    start = time.monotonic()
    try:
        assert sender.call("send_file", "127.0.0.1", receiver.port, str(src), timeout=60) == 0
    finally:
        stop.set()
        sampler.join(5)
    took = time.monotonic() - start
    growth = {pid: peaks[pid] - base[pid] for pid in pids}
    assert max(growth.values()) < 64 << 20, (growth, took)
    got = hashlib.sha256()
    with open(dest / "gib.bin", "rb") as f:
        while chunk := f.read(16 << 20):
            got.update(chunk)
    assert got.hexdigest() == digest.hexdigest()
    assert (dest / "gib.bin").stat().st_mtime_ns == src.stat().st_mtime_ns


def test_abandoned_send_stops_and_the_receiver_cleans_up(local_node: Any, node_procs: Any,
                                                         tmp_path: Path) -> None:
    import pycos

    node = local_node(secret=SECRET)
    dest = tmp_path / "dest"
    proc = node_procs("--secret", SECRET, "--dest-path", dest)
    src = tmp_path / "sparse.bin"
    with open(src, "wb") as f:
        f.truncate(8 * 2**30)  # long enough that it cannot finish before the terminate
    task = pycos.Task(lambda task=None: (yield node.send_file(proc.location, src, "gone")))
    assert wait_for(lambda: any(p.endswith(TEMP_SUFFIX) for p in tree(dest)), 10)
    task.terminate()  # the transfer's thread notices within one chunk and hangs up
    assert wait_for(lambda: tree(dest) == [], 10), tree(dest)
    assert wait_for(lambda: refusals(proc) == 1)
