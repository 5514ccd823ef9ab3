"""Remote method calls through Pyro5 between two processes (a peer system of the latency bench).

``python pyro5_call.py`` is the client: it starts this same file with ``--role server`` as a
second process (a Pyro5 daemon on a free port of 127.0.0.1 with one ``@expose``\\ d object),
connects a proxy, warms up, then measures and prints one JSON line:

* ``rtt_p50_us`` / ``rtt_p99_us`` / ``calls_per_s``: ``--n`` sequential calls of a trivial
  method (``echo(i)`` returns ``i``), each timed with ``time.perf_counter()``;
* ``sqrt_rtt_p50_us`` / ``sqrt_calls_per_s``: ``--n`` sequential ``sqrt(2.0)`` calls, a method
  that returns ``math.sqrt(x)``;
* ``sqrt_calls_per_s_16``: ``--threads`` client threads (default 16), each with a proxy of its
  own, call ``sqrt(2.0)`` ``--per-thread`` times at once; all calls over the span from the
  common start to the last thread's end.

Pyro5 as shipped (serpent serializer, thread-pool server), except TCP_NODELAY on both sides
(``SOCK_NODELAY``), as every other program of the benchmark has it. Every wait is bounded:
proxies time out after 60 s, threads are joined with a timeout, the timed loops stop after
``--seconds``, and the server exits when its standard input closes. The server process is
always killed at the end. Imports only the standard library, ``Pyro5`` and ``_benchlib``.
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
from collections.abc import Callable

import Pyro5
import Pyro5.api
from _benchlib import LOOPBACK, percentile

TIMEOUT = 60.0
Pyro5.config.SOCK_NODELAY = True


# ---------------------------------------------------------------------- server
@Pyro5.api.expose
class Bench:
    """The served object."""

    def echo(self, x: object) -> object:
        return x

    def sqrt(self, x: float) -> float:
        return math.sqrt(x)


def serve() -> None:
    daemon = Pyro5.api.Daemon(host=LOOPBACK, port=0)
    uri = daemon.register(Bench, "bench")
    threading.Thread(target=daemon.requestLoop, daemon=True).start()
    print("ready", uri, flush=True)
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


def proxy(uri: str) -> Pyro5.api.Proxy:
    """A connected proxy owned by the calling thread."""
    bench = Pyro5.api.Proxy(uri)
    bench._pyroTimeout = TIMEOUT
    bench._pyroBind()
    return bench


def timed_calls(call: Callable[[int], object], n: int, seconds: float) -> tuple[list[float],
                                                                                 float]:
    """Run ``call(i)`` up to ``n`` times (at most ``seconds``); sorted latencies, span."""
    lat = []
    start = time.perf_counter()
    stop = start + seconds
    for i in range(n):
        t0 = time.perf_counter()
        call(i)
        t1 = time.perf_counter()
        lat.append(t1 - t0)
        if t1 > stop:
            break
    elapsed = time.perf_counter() - start
    lat.sort()
    return lat, elapsed


def concurrent_calls(uri: str, threads: int, per_thread: int, seconds: float) -> float:
    """``threads`` threads, a proxy each, calling ``sqrt(2.0)``; total calls per second."""
    ready = threading.Barrier(threads + 1, timeout=TIMEOUT)
    counts = [0] * threads

    def caller(k: int) -> None:
        with proxy(uri) as bench:
            bench.sqrt(2.0)
            ready.wait()
            stop = time.perf_counter() + seconds
            for _ in range(per_thread):
                if bench.sqrt(2.0) != math.sqrt(2.0):
                    raise RuntimeError("wrong result")
                counts[k] += 1
                if time.perf_counter() > stop:
                    break

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


def measure(uri: str, args: argparse.Namespace) -> dict[str, float]:
    out: dict[str, float] = {}
    with proxy(uri) as bench:
        for i in range(args.warmup):
            bench.echo(i)
            bench.sqrt(2.0)

        def echo(i: int) -> None:
            if bench.echo(i) != i:
                raise RuntimeError("wrong result")

        lat, elapsed = timed_calls(echo, args.n, args.seconds)
        out.update(rtt_p50_us=percentile(lat, 50) * 1e6, rtt_p99_us=percentile(lat, 99) * 1e6,
                   calls_per_s=len(lat) / elapsed, calls=len(lat))

        lat, elapsed = timed_calls(lambda _i: bench.sqrt(2.0), args.n, args.seconds)
        out.update(sqrt_rtt_p50_us=percentile(lat, 50) * 1e6,
                   sqrt_rtt_p99_us=percentile(lat, 99) * 1e6, sqrt_calls_per_s=len(lat) / elapsed)
    out["sqrt_calls_per_s_16"] = concurrent_calls(uri, args.threads, args.per_thread,
                                                  args.seconds)
    out["threads"] = args.threads
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--role", choices=("client", "server"), default="client")
    p.add_argument("--n", type=int, default=5_000, help="timed sequential calls")
    p.add_argument("--warmup", type=int, default=200)
    p.add_argument("--threads", type=int, default=16, help="concurrent callers")
    p.add_argument("--per-thread", type=int, default=1_000, help="calls of each caller")
    p.add_argument("--seconds", type=float, default=60.0, help="stop each timed loop after this")
    args = p.parse_args()
    if args.role == "server":
        serve()
        return 0
    server, uri = start_server()
    try:
        result = measure(uri, args)
    finally:
        server.kill()
        server.wait(10)
    result.update(impl="Pyro5", version=Pyro5.__version__,
                  serializer=Pyro5.config.SERIALIZER)
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
