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
import contextlib
import json
import math
import sys

import rpyc
from _benchlib import (
    LOOPBACK,
    call_args,
    concurrent_calls,
    latency_us,
    serve_rpyc_classic,
    serving,
    timed_calls,
)

TIMEOUT = 60.0


# ---------------------------------------------------------------------- client
def concurrent_sqrt(port: int, threads: int, per_thread: int, seconds: float) -> float:
    """``threads`` threads, a connection each, calling ``conn.modules.math.sqrt(2.0)``; total
    calls per second."""
    return concurrent_calls(lambda: contextlib.closing(rpyc.classic.connect(LOOPBACK, port)),
                            lambda conn: conn.modules.math.sqrt(2.0), math.sqrt(2.0), threads,
                            per_thread, seconds, TIMEOUT)


def measure(port: int, args: argparse.Namespace) -> dict[str, float]:
    out: dict[str, float] = {}
    conn = rpyc.classic.connect(LOOPBACK, port)
    try:
        for _ in range(args.warmup):
            conn.modules.math.sqrt(2.0)
        lat, elapsed = timed_calls(lambda _i: conn.modules.math.sqrt(2.0), args.n,
                                   args.seconds, expect=math.sqrt(2.0))
    finally:
        conn.close()
    out.update(latency_us(lat, "sqrt_rtt"), sqrt_calls_per_s=len(lat) / elapsed,
               calls=len(lat))
    out["sqrt_calls_per_s_16"] = concurrent_sqrt(port, args.threads, args.per_thread,
                                                 args.seconds)
    out["threads"] = args.threads
    return out


def main() -> int:
    args = call_args(__doc__, 500)
    if args.role == "server":
        serve_rpyc_classic()
        return 0
    with serving(__file__) as port:
        result = measure(int(port), args)
    result.update(impl="rpyc", version=rpyc.__version__)
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
