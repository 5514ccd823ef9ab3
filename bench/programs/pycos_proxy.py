"""Remote module calls through ``pycos.proxy`` between two processes (``bench_proxy.py``).

``python pycos_proxy.py`` is the client: it starts this same file with ``--role server`` as a
second process (a node on a free port of 127.0.0.1 serving ``math`` and ``numpy`` with a
``ModuleService`` of ``--threads`` threads), connects, warms up, then measures and prints one
JSON line:

* ``sqrt_rtt_p50_us`` / ``sqrt_calls_per_s``: ``--n`` sequential ``m.sqrt(2.0)`` calls from
  plain code, written out in full each time as a user would (the attribute lookup of ``sqrt``
  on the proxy is part of the call), each timed with ``time.perf_counter()``;
* ``task_sqrt_calls_per_s``: the same from one task (``yield m.sqrt(2.0)``);
* ``sqrt_calls_per_s_16``: 16 tasks calling at once over one proxy, ``--per-task`` calls each;
  all calls over the span from the common start to the last task's end;
* ``sqrt_calls_per_s_16_threads``: the same from 16 plain threads;
* ``big_s`` / ``big_task_s``: the median time of ``--big-reps`` calls ``np.ones(--big)`` (a
  float64 array: 256 MiB by default) received by value, from plain code and from a task, after
  one warm-up call each.

Every wait is bounded (the timed loops stop after ``--seconds``; tasks and threads are joined
with a timeout); the server exits when its standard input closes and is killed at the end.
Imports the standard library, ``pycos`` and ``_benchlib``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import threading
import time
from typing import Any

from _benchlib import LOOPBACK, latency_us, serving, timed_calls

import pycos
import pycos.netpycos as netpycos
from pycos.proxy import ModuleService, proxy

SECRET = "bench proxy"
TIMEOUT = 120.0


def serve(threads: int) -> None:
    node = netpycos.Pycos(host=LOOPBACK, udp_port=0, discover_peers=False, secret=SECRET,
                          name="mathsrv")
    ModuleService(available=["math", "numpy"], threads=threads).register()
    print("ready", node.location.port, flush=True)
    sys.stdin.read()
    os._exit(0)


def sequential(m: Any, n: int, seconds: float) -> tuple[list[float], float]:
    return timed_calls(lambda _i: m.sqrt(2.0), n, seconds, expect=math.sqrt(2.0))


def task_sequential(m: Any, n: int) -> float:
    def body(task: Any = None) -> Any:
        start = time.perf_counter()
        for _ in range(n):
            if (yield m.sqrt(2.0)) != math.sqrt(2.0):
                raise RuntimeError("wrong result")
        return n / (time.perf_counter() - start)

    return float(pycos.Task(body).value(timeout=TIMEOUT))


def tasks_at_once(m: Any, count: int, per_task: int) -> float:
    def one(task: Any = None) -> Any:
        for _ in range(per_task):
            if (yield m.sqrt(2.0)) != math.sqrt(2.0):
                raise RuntimeError("wrong result")

    def body(task: Any = None) -> Any:
        start = time.perf_counter()
        tasks = [pycos.Task(one) for _ in range(count)]
        for t in tasks:
            yield t.finish()
        return count * per_task / (time.perf_counter() - start)

    return float(pycos.Task(body).value(timeout=TIMEOUT))


def threads_at_once(m: Any, count: int, per_thread: int) -> float:
    ready = threading.Barrier(count + 1, timeout=TIMEOUT)
    done = [0] * count

    def caller(k: int) -> None:
        m.sqrt(2.0)
        ready.wait()
        for _ in range(per_thread):
            if m.sqrt(2.0) != math.sqrt(2.0):
                raise RuntimeError("wrong result")
            done[k] += 1

    workers = [threading.Thread(target=caller, args=(k,), daemon=True) for k in range(count)]
    for w in workers:
        w.start()
    ready.wait()
    start = time.perf_counter()
    for w in workers:
        w.join(TIMEOUT)
        if w.is_alive():
            raise RuntimeError("a calling thread did not finish")
    elapsed = time.perf_counter() - start
    if sum(done) != count * per_thread:
        raise RuntimeError("concurrent calls failed")
    return sum(done) / elapsed


def big_values(np: Any, size: int, reps: int) -> tuple[float, float]:
    def fetch() -> float:
        t0 = time.perf_counter()
        arr = np.ones(size)
        elapsed = time.perf_counter() - t0
        if arr.shape != (size,) or float(arr[-1]) != 1.0:
            raise RuntimeError("wrong array")
        return elapsed

    def fetch_task(task: Any = None) -> Any:
        t0 = time.perf_counter()
        arr = yield np.ones(size)
        elapsed = time.perf_counter() - t0
        if arr.shape != (size,) or float(arr[0]) != 1.0:
            raise RuntimeError("wrong array")
        return elapsed

    fetch()
    plain = statistics.median(fetch() for _ in range(reps))
    pycos.Task(fetch_task).value(timeout=TIMEOUT)
    in_task = statistics.median(pycos.Task(fetch_task).value(timeout=TIMEOUT)
                                for _ in range(reps))
    return plain, in_task


def measure(port: int, args: argparse.Namespace) -> dict[str, Any]:
    netpycos.Pycos(host=LOOPBACK, udp_port=0, discover_peers=False, secret=SECRET,
                   name="client")
    loc = netpycos.Location(LOOPBACK, port)
    m = proxy("math", location=loc, timeout=10)
    np = proxy("numpy", location=loc, timeout=10)
    for _ in range(args.warmup):
        m.sqrt(2.0)
    out: dict[str, Any] = {}
    lat, elapsed = sequential(m, args.n, args.seconds)
    out.update(latency_us(lat, "sqrt_rtt"), sqrt_calls_per_s=len(lat) / elapsed,
               calls=len(lat))
    out["task_sqrt_calls_per_s"] = task_sequential(m, args.n)
    tasks_at_once(m, 16, max(10, args.per_task // 10))  # warm-up
    out["sqrt_calls_per_s_16"] = tasks_at_once(m, 16, args.per_task)
    out["sqrt_calls_per_s_16_threads"] = threads_at_once(m, 16, args.per_task // 2)
    if args.big:
        out["big_s"], out["big_task_s"] = big_values(np, args.big, args.big_reps)
        out["big_bytes"] = args.big * 8
    out["threads"] = args.threads
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--role", choices=("client", "server"), default="client")
    p.add_argument("--threads", type=int, default=0, help="the service's pool (0: inline)")
    p.add_argument("--n", type=int, default=5000, help="timed sequential calls")
    p.add_argument("--warmup", type=int, default=300)
    p.add_argument("--per-task", type=int, default=1000, help="calls of each of 16 tasks")
    p.add_argument("--big", type=int, default=2**25, help="float64 elements (0: skip)")
    p.add_argument("--big-reps", type=int, default=3)
    p.add_argument("--seconds", type=float, default=60.0, help="stop each timed loop after this")
    args = p.parse_args()
    if args.role == "server":
        serve(args.threads)
        return 0
    with serving(__file__, "--threads", str(args.threads), isolated=False) as port:
        result = measure(int(port), args)
    result.update(impl="pycos", version=pycos.__version__, pycos=os.path.dirname(pycos.__file__))
    print(json.dumps(result), flush=True)
    pycos.Pycos.instance().terminate()
    return 0


if __name__ == "__main__":
    sys.exit(main())
