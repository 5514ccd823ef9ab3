"""Ping-pong on pycos: two tasks bounce one message back and forth; reports round trips/s.

Runs unchanged on this repository's pycos and on the released pycos 4.12.2 (it uses only
``Task``, ``send``, ``receive``, ``finish`` and ``value``). The driver sends a number, the ponger
sends it back; one round trip is two sends and two receives, each receive blocking.
"""

from __future__ import annotations

import sys
import time

from _benchlib import emit, parse_args

import pycos


def ponger(peer, task=None):
    while True:
        msg = yield task.receive()
        if msg is None:
            return
        peer.send(msg)


def driver(n, warmup, task=None):
    pong = pycos.Task(ponger, task)
    for i in range(warmup):
        pong.send(i)
        yield task.receive()
    reply = None
    start = time.perf_counter()
    for i in range(n):
        pong.send(i)
        reply = yield task.receive()
    elapsed = time.perf_counter() - start
    pong.send(None)
    yield pong.finish()
    if reply != n - 1:
        raise AssertionError(f"last reply {reply!r}, expected {n - 1}")
    return {"seconds": elapsed, "round_trips_per_s": n / elapsed}


def main() -> int:
    args = parse_args(__doc__.splitlines()[0], n=200_000, warmup=2_000)
    result = pycos.Task(driver, args.n, args.warmup).value()
    if not isinstance(result, dict):
        print(f"benchmark task failed: {result!r}", file=sys.stderr)
        return 1
    emit("pingpong", pycos, args, **result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
