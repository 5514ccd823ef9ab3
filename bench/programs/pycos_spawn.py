"""Spawning on pycos: create N tasks that each yield once and end; reports tasks/s.

Runs unchanged on this repository's pycos and on pycos 4.12.2. A driver task creates all N tasks
(so creation happens on the scheduler thread), then waits for a message from the last one to end.
The time covers creating, running and ending every task.
"""

from __future__ import annotations

import sys
import time

from _benchlib import emit, parse_args

import pycos


def one(state, task=None):
    yield None
    state[0] -= 1
    if state[0] == 0:
        state[1].send("done")


def spawn(n, task):
    state = [n, task]
    start = time.perf_counter()
    for _ in range(n):
        pycos.Task(one, state)
    created = time.perf_counter()
    yield task.receive()
    end = time.perf_counter()
    return created - start, end - start


def driver(n, warmup, task=None):
    yield spawn(warmup, task)
    create, total = yield spawn(n, task)
    return {"seconds": total, "tasks_per_s": n / total, "create_only_per_s": n / create}


def main() -> int:
    args = parse_args(__doc__.splitlines()[0], n=100_000, warmup=2_000)
    result = pycos.Task(driver, args.n, args.warmup).value()
    if not isinstance(result, dict):
        print(f"benchmark task failed: {result!r}", file=sys.stderr)
        return 1
    emit("spawn", pycos, args, **result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
