"""One-way messages on asyncio: one sender, one receiver on an ``asyncio.Queue``; messages/s.

The asyncio counterpart of ``pycos_oneway.py``. ``put`` on an unbounded queue never suspends, so:

* ``yield_each``: ``put_nowait(i)`` then ``await asyncio.sleep(0)`` (give way) for every message;
* ``burst``: ``--burst`` ``put_nowait`` calls, then one ``await asyncio.sleep(0)``.
"""

from __future__ import annotations

import asyncio
import sys
import time

from _benchlib import emit, parse_args


async def receiver(n, queue, ready):
    ready.set_result(None)
    last = None
    for _ in range(n):
        last = await queue.get()
    return last


async def run_yield_each(n):
    queue, ready = asyncio.Queue(), asyncio.get_running_loop().create_future()
    rcv = asyncio.create_task(receiver(n, queue, ready))
    await ready
    start = time.perf_counter()
    for i in range(n):
        queue.put_nowait(i)
        await asyncio.sleep(0)
    last = await rcv
    elapsed = time.perf_counter() - start
    if last != n - 1:
        raise AssertionError(f"yield_each: last message {last!r}, expected {n - 1}")
    return elapsed


async def run_burst(n, burst):
    queue, ready = asyncio.Queue(), asyncio.get_running_loop().create_future()
    rcv = asyncio.create_task(receiver(n, queue, ready))
    await ready
    start = time.perf_counter()
    i = 0
    while i < n:
        stop = min(n, i + burst)
        while i < stop:
            queue.put_nowait(i)
            i += 1
        await asyncio.sleep(0)
    last = await rcv
    elapsed = time.perf_counter() - start
    if last != n - 1:
        raise AssertionError(f"burst: last message {last!r}, expected {n - 1}")
    return elapsed


async def driver(n, burst, warmup):
    await run_yield_each(warmup)
    await run_burst(warmup, burst)
    each = await run_yield_each(n)
    bursts = await run_burst(n, burst)
    return {"seconds_yield_each": each, "msgs_per_s_yield_each": n / each,
            "seconds_burst": bursts, "msgs_per_s_burst": n / bursts}


def main() -> int:
    args = parse_args(__doc__.splitlines()[0], n=500_000, burst=1_000, warmup=5_000)
    result = asyncio.run(driver(args.n, args.burst, args.warmup))
    emit("oneway", asyncio, args, **result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
