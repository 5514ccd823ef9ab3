"""Processes for the swarm integration tests: a gateway (and a controller) in a process of its
own on 127.0.0.1, started by the tests and always killed by them.

Run as ``python tests/integration/test_swarm_procs.py gateway [options]``: a ``Gateway`` with
test subroutines prints ``ready PORT PID`` and then answers commands read from stdin, one JSON
list per line, with ``reply <json>`` lines: ``["stats"]`` (the gateway's counters),
``["close"]``. ``--slow-write S`` makes every file write of an upload sleep S seconds per MiB
(so a test can kill the other side in the middle of a transfer). Run as ``... controller PORT
SECRET KIND ARGS`` it is a controller that uploads or downloads with a swarm and prints
``started`` first. The tests of this module check the plumbing itself.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from procs import ChildProc

HERE = Path(__file__).resolve()
START_TIMEOUT = 20.0


# ---------------------------------------------------------------------- the child programs
def _subroutines(gw: Any, marker_dir: str | None) -> None:
    def items(n: int, size: int = 100) -> Any:
        payload = bytes(size)
        for i in range(n):
            yield i, payload

    def endless(size: int = 100, tag: str = "endless") -> Any:
        payload = os.urandom(size)
        try:
            i = 0
            while True:
                yield i, payload
                i += 1
        finally:
            if marker_dir:
                Path(marker_dir, f"{tag}.closed").write_text(str(time.time()))

    def rss() -> int:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    gw.add_subroutine("items", items)
    gw.add_subroutine("endless", endless)
    gw.add_subroutine("rss", rss)
    gw.add_subroutine("echo", lambda *a, **k: (a, k))


def gateway_main(argv: list[str]) -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--secret", required=True)
    p.add_argument("--dest", required=True)
    p.add_argument("--export", action="append", default=[], help="NAME=PATH")
    p.add_argument("--pool", type=int, default=5)
    p.add_argument("--credit-timeout", type=float, default=60.0)
    p.add_argument("--idle-timeout", type=float, default=600.0)
    p.add_argument("--marker-dir")
    p.add_argument("--slow-write", type=float, default=0.0)
    args = p.parse_args(argv)
    import pycos.netpycos as netpycos
    from pycos.swarm import Gateway, localfiles

    if args.slow_write:
        original = localfiles.Incoming.write

        def slow(self: Any, data: Any) -> None:
            time.sleep(args.slow_write * len(data) / (1 << 20))
            original(self, data)

        localfiles.Incoming.write = slow  # type: ignore[method-assign]
    netpycos.Pycos(host="127.0.0.1", secret=args.secret, discover_peers=False, udp_port=0,
                   dest_path=args.dest)
    exports = dict(item.split("=", 1) for item in args.export)
    gw = Gateway(exports=exports, pool_size=args.pool, credit_timeout=args.credit_timeout,
                 idle_timeout=args.idle_timeout, max_window=65536, max_window_bytes=1 << 30)
    _subroutines(gw, args.marker_dir)
    gw.start()
    out = threading.Lock()

    def say(kind: str, value: Any) -> None:
        with out:
            sys.stdout.write(f"{kind} {json.dumps(value)}\n")
            sys.stdout.flush()

    say("ready", [gw.port, os.getpid()])
    for line in sys.stdin:
        cmd = json.loads(line)
        if cmd[0] == "stats":
            say("reply", gw.stats())
        elif cmd[0] == "close":
            gw.close()
            say("reply", True)
            return


def controller_main(argv: list[str]) -> None:
    port, secret, kind, folder, target = argv[0], argv[1], argv[2], argv[3], argv[4]
    import pycos.netpycos as netpycos
    from pycos.swarm import Controller

    netpycos.Pycos(host="127.0.0.1", secret=secret, discover_peers=False, udp_port=0)
    ctl = Controller(f"127.0.0.1:{port}", download_dir=target)
    swarm = ctl.get_swarm(4)
    sys.stdout.write("started\n")
    sys.stdout.flush()
    if kind == "put":
        done = swarm.put_files(folder, dir="uploads")
    else:
        done = swarm.get_files(folder)
    sys.stdout.write(f"done {len(done)}\n")
    sys.stdout.flush()


# ---------------------------------------------------------------------- the tests' side
class GatewayProc(ChildProc):
    """A gateway process (``ready`` waited for, with a bound); ``stop()`` always kills it."""

    def __init__(self, tmp: Path, secret: str, *options: str) -> None:
        self.dest = tmp / "gw-dest"
        super().__init__([sys.executable, str(HERE), "gateway", "--secret", secret, "--dest",
                          str(self.dest), *options], tmp / f"gateway-{time.monotonic_ns()}.log",
                         env=dict(os.environ, PYTHONUNBUFFERED="1"), bufsize=1)
        self.read_lines()
        line = self.line_within(START_TIMEOUT) or ""
        if not line.startswith("ready "):
            self.stop()
            raise RuntimeError(f"the gateway did not start: {line!r}\n{self.log()}")
        self.port, self.pid = json.loads(line.split(" ", 1)[1])

    def call(self, *cmd: Any, timeout: float = 10.0) -> Any:
        self.send(*cmd)
        line = self.line_within(timeout) or ""
        assert line.startswith("reply "), f"{line!r}\n{self.log()}"
        return json.loads(line.split(" ", 1)[1])

    def stats(self) -> dict[str, int]:
        return dict(self.call("stats"))

    def kill(self) -> None:
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)


def start_controller(port: int, secret: str, kind: str, folder: Path, target: Path
                     ) -> subprocess.Popen[str]:
    """A controller process uploading (``put``) or downloading (``get``) with a swarm of 4."""
    proc = subprocess.Popen([sys.executable, str(HERE), "controller", str(port), secret, kind,
                             str(folder), str(target)], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True, bufsize=1)
    return proc


def wait_until(predicate: Any, timeout: float, step: float = 0.01) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(step)
    return True


def test_the_gateway_process_starts_serves_stats_and_closes(tmp_path: Path) -> None:
    gw = GatewayProc(tmp_path, "plumbing-secret")
    try:
        assert gw.port > 0 and gw.stats()["pool_size"] == 5
        assert gw.call("close") is True
        assert gw.proc.wait(timeout=10) == 0
    finally:
        gw.stop()


def test_a_gateway_without_a_secret_refuses_to_start(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, str(HERE), "gateway", "--secret", "", "--dest",
                           str(tmp_path)], capture_output=True, text=True, timeout=30,
                          stdin=subprocess.DEVNULL)
    assert proc.returncode != 0 and "AccessDenied" in proc.stderr and "no secret" in \
        proc.stderr


if __name__ == "__main__":
    if sys.argv[1] == "gateway":
        gateway_main(sys.argv[2:])
    elif sys.argv[1] == "controller":
        controller_main(sys.argv[2:])
    else:
        pytest.exit(f"unknown role {sys.argv[1]!r}")
