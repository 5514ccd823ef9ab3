"""Memory of live tasks on pycos: N tasks each blocked in ``receive``; reports RSS bytes/task.

Runs unchanged on this repository's pycos and on pycos 4.12.2. RSS is read after a full garbage
collection before the tasks exist (the list that holds them is allocated beforehand) and again once
every one of them is parked in ``receive``; the difference divided by N is what one waiting task
costs: its Task object, generator frame and the scheduler's bookkeeping. Then all are released.
"""

from __future__ import annotations

import sys
import time

from _benchlib import emit, parse_args, settled_rss

import pycos


def live(state, task=None):
    state[0] += 1
    yield task.receive()
    state[0] -= 1
    if state[0] == 0:
        state[1].send("done")


def populate(n, slots, task):
    state = [0, task]
    for i in range(n):
        slots[i] = pycos.Task(live, state)
    while state[0] < n:  # each task counts itself just before parking in receive
        yield task.sleep(0.01)
    return state


def release(n, slots, task):
    for i in range(n):
        slots[i].send(None)
        slots[i] = None
    yield task.receive()


def driver(n, warmup, task=None):
    small = [None] * warmup
    yield populate(warmup, small, task)
    yield release(warmup, small, task)
    slots = [None] * n
    before = settled_rss()
    start = time.perf_counter()
    yield populate(n, slots, task)
    elapsed = time.perf_counter() - start
    after = settled_rss()
    yield release(n, slots, task)
    return {"rss_before": before, "rss_after": after, "seconds_to_park": elapsed,
            "rss_bytes_per_task": (after - before) / n}


def main() -> int:
    args = parse_args(__doc__.splitlines()[0], n=100_000, warmup=1_000)
    result = pycos.Task(driver, args.n, args.warmup).value()
    if not isinstance(result, dict):
        print(f"benchmark task failed: {result!r}", file=sys.stderr)
        return 1
    emit("live", pycos, args, **result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
