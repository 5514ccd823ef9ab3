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
import sys
import threading

import Pyro5
import Pyro5.api
from _benchlib import LOOPBACK, call_args, concurrent_calls, latency_us, serving, timed_calls

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
def proxy(uri: str) -> Pyro5.api.Proxy:
    """A connected proxy owned by the calling thread."""
    bench = Pyro5.api.Proxy(uri)
    bench._pyroTimeout = TIMEOUT
    bench._pyroBind()
    return bench


def concurrent_sqrt(uri: str, threads: int, per_thread: int, seconds: float) -> float:
    """``threads`` threads, a proxy each, calling ``sqrt(2.0)``; total calls per second."""
    return concurrent_calls(lambda: proxy(uri), lambda bench: bench.sqrt(2.0), math.sqrt(2.0),
                            threads, per_thread, seconds, TIMEOUT)


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
        out.update(latency_us(lat, "rtt"), calls_per_s=len(lat) / elapsed, calls=len(lat))

        lat, elapsed = timed_calls(lambda _i: bench.sqrt(2.0), args.n, args.seconds)
        out.update(latency_us(lat, "sqrt_rtt"), sqrt_calls_per_s=len(lat) / elapsed)
    out["sqrt_calls_per_s_16"] = concurrent_sqrt(uri, args.threads, args.per_thread,
                                                 args.seconds)
    out["threads"] = args.threads
    return out


def main() -> int:
    args = call_args(__doc__, 1_000)
    if args.role == "server":
        serve()
        return 0
    with serving(__file__) as uri:
        result = measure(uri, args)
    result.update(impl="Pyro5", version=Pyro5.__version__,
                  serializer=Pyro5.config.SERIALIZER)
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
