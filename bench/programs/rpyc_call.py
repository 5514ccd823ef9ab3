"""Remote module calls through RPyC classic between two processes (a peer system of the latency
bench).

``python rpyc_call.py`` is the client: it starts this same file with ``--role server`` as a
second process (``rpyc.utils.server.ThreadedServer`` with the classic service on a free port of
127.0.0.1, no registry), connects with ``rpyc.classic.connect``, warms up, then measures and
prints one JSON line:

* ``sqrt_rtt_p50_us`` / ``sqrt_rtt_p99_us`` / ``sqrt_calls_per_s``: ``--n`` sequential
  ``conn.modules.math.sqrt(2.0)`` calls, written out in full each time as a user would (the
  attribute lookup of ``sqrt`` on the remote module is part of the call), each timed with
  ``time.perf_counter()``;
* ``sqrt_calls_per_s_16``: ``--threads`` client threads (default 16), each with a connection
  of its own, make the same call ``--per-thread`` times at once; all calls over the span from
  the common start to the last thread's end.

RPyC as shipped (one server thread per connection, each request a single write). Every wait is
bounded: requests time out after 30 s (``sync_request_timeout``), threads are joined with a
timeout, the timed loops stop after ``--seconds``, and the server exits when its standard input
closes. The server process is always killed at the end. Imports only the standard library,
``rpyc`` and ``_benchlib``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import select
import subprocess
import sys
import threading
import time

import rpyc
from _benchlib import LOOPBACK, percentile
from rpyc.core.service import ClassicService
from rpyc.utils.registry import UDPRegistryClient
from rpyc.utils.server import ThreadedServer

TIMEOUT = 60.0


# ---------------------------------------------------------------------- server
def serve() -> None:
    # no registry; the registrar names loopback so that nothing could ever be broadcast
    server = ThreadedServer(ClassicService, hostname=LOOPBACK, port=0, auto_register=False,
                            registrar=UDPRegistryClient(ip=LOOPBACK))
    threading.Thread(target=server.start, daemon=True).start()
    deadline = time.monotonic() + 30
    while not server.active and time.monotonic() < deadline:
        time.sleep(0.01)
    print("ready", server.port, flush=True)
    sys.stdin.read()  # until the client closes the pipe (or is gone)
    os._exit(0)


# ---------------------------------------------------------------------- client
def start_server(*args: str) -> tuple[subprocess.Popen[str], str]:
    """Start this file as the server; the process and what it announced after ``ready``."""
    cmd = [sys.executable, "-E", "-s", os.path.abspath(__file__), "--role", "server", *args]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = ""
    if select.select([proc.stdout], [], [], 30)[0]:
        line = proc.stdout.readline()
    if not line.startswith("ready "):
        proc.kill()
        proc.wait(10)
        raise RuntimeError(f"server did not start (said {line!r})")
    return proc, line.split(None, 1)[1].strip()


def concurrent_calls(port: int, threads: int, per_thread: int, seconds: float) -> float:
    """``threads`` threads, a connection each, calling ``conn.modules.math.sqrt(2.0)``; total
    calls per second."""
    ready = threading.Barrier(threads + 1, timeout=TIMEOUT)
    counts = [0] * threads

    def caller(k: int) -> None:
        conn = rpyc.classic.connect(LOOPBACK, port)
        try:
            conn.modules.math.sqrt(2.0)
            ready.wait()
            stop = time.perf_counter() + seconds
            for _ in range(per_thread):
                if conn.modules.math.sqrt(2.0) != math.sqrt(2.0):
                    raise RuntimeError("wrong result")
                counts[k] += 1
                if time.perf_counter() > stop:
                    break
        finally:
            conn.close()

    workers = [threading.Thread(target=caller, args=(k,), daemon=True) for k in range(threads)]
    for w in workers:
        w.start()
    ready.wait()
    start = time.perf_counter()
    for w in workers:
        w.join(max(0.0, start + seconds + TIMEOUT - time.perf_counter()))
        if w.is_alive():
            raise RuntimeError("a calling thread did not finish")
    elapsed = time.perf_counter() - start
    if sum(counts) < threads:
        raise RuntimeError("concurrent calls failed")
    return sum(counts) / elapsed


def measure(port: int, args: argparse.Namespace) -> dict[str, float]:
    out: dict[str, float] = {}
    conn = rpyc.classic.connect(LOOPBACK, port)
    try:
        for _ in range(args.warmup):
            conn.modules.math.sqrt(2.0)
        lat = []
        start = time.perf_counter()
        stop = start + args.seconds
        for _ in range(args.n):
            t0 = time.perf_counter()
            value = conn.modules.math.sqrt(2.0)
            t1 = time.perf_counter()
            lat.append(t1 - t0)
            if value != math.sqrt(2.0):
                raise RuntimeError("wrong result")
            if t1 > stop:
                break
        elapsed = time.perf_counter() - start
    finally:
        conn.close()
    lat.sort()
    out.update(sqrt_rtt_p50_us=percentile(lat, 50) * 1e6,
               sqrt_rtt_p99_us=percentile(lat, 99) * 1e6,
               sqrt_calls_per_s=len(lat) / elapsed, calls=len(lat))
    out["sqrt_calls_per_s_16"] = concurrent_calls(port, args.threads, args.per_thread,
                                                  args.seconds)
    out["threads"] = args.threads
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--role", choices=("client", "server"), default="client")
    p.add_argument("--n", type=int, default=5_000, help="timed sequential calls")
    p.add_argument("--warmup", type=int, default=200)
    p.add_argument("--threads", type=int, default=16, help="concurrent callers")
    p.add_argument("--per-thread", type=int, default=500, help="calls of each caller")
    p.add_argument("--seconds", type=float, default=60.0, help="stop each timed loop after this")
    args = p.parse_args()
    if args.role == "server":
        serve()
        return 0
    server, port = start_server()
    try:
        result = measure(int(port), args)
    finally:
        server.kill()
        server.wait(10)
    result.update(impl="rpyc", version=rpyc.__version__)
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
