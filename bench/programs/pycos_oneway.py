"""One-way messages on pycos: one sender, one receiver; reports messages/s for two senders.

* ``yield_each``: the sender does ``yield receiver.send(i)`` for every message, so it gives way to
  the receiver (and any other ready task) after each send.
* ``burst``: the sender sends ``--burst`` messages without yielding, then yields once; the
  receiver finds them queued.

Runs unchanged on this repository's pycos and on pycos 4.12.2. The clock starts when the receiver
is already waiting and stops when the driver learns (``finish``) that it took the last message.
"""

from __future__ import annotations

import sys
import time

from _benchlib import emit, parse_args

import pycos


def receiver(n, driver_task, task=None):
    driver_task.send("ready")
    last = None
    for _ in range(n):
        last = yield task.receive()
    return last


def run_yield_each(n, task):
    rcv = pycos.Task(receiver, n, task)
    yield task.receive()
    start = time.perf_counter()
    for i in range(n):
        yield rcv.send(i)
    last = yield rcv.finish()
    elapsed = time.perf_counter() - start
    if last != n - 1:
        raise AssertionError(f"yield_each: last message {last!r}, expected {n - 1}")
    return elapsed


def run_burst(n, burst, task):
    rcv = pycos.Task(receiver, n, task)
    yield task.receive()
    start = time.perf_counter()
    i = 0
    while i < n:
        stop = min(n, i + burst)
        while i < stop:
            rcv.send(i)
            i += 1
        yield None
    last = yield rcv.finish()
    elapsed = time.perf_counter() - start
    if last != n - 1:
        raise AssertionError(f"burst: last message {last!r}, expected {n - 1}")
    return elapsed


def driver(n, burst, warmup, task=None):
    yield run_yield_each(warmup, task)
    yield run_burst(warmup, burst, task)
    each = yield run_yield_each(n, task)
    bursts = yield run_burst(n, burst, task)
    return {"seconds_yield_each": each, "msgs_per_s_yield_each": n / each,
            "seconds_burst": bursts, "msgs_per_s_burst": n / bursts}


def main() -> int:
    args = parse_args(__doc__.splitlines()[0], n=500_000, burst=1_000, warmup=5_000)
    result = pycos.Task(driver, args.n, args.burst, args.warmup).value()
    if not isinstance(result, dict):
        print(f"benchmark task failed: {result!r}", file=sys.stderr)
        return 1
    emit("oneway", pycos, args, **result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
