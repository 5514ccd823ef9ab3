"""Helpers shared by the benchmark programs: arguments, resident memory, the result line, and
for the socket benchmarks percentiles, the descriptor limit and the helper processes.

Imports only the standard library (psutil when /proc is missing) and never ``pycos`` or
``asyncio``, so each program measures only the implementation it imports itself. Every program
prints exactly one JSON object on its last line of standard output; ``bench/run.py`` reads it.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
from typing import Any


def parse_args(description: str, **defaults: int) -> argparse.Namespace:
    """Parse ``--name N`` integer options, one per keyword in ``defaults``."""
    parser = argparse.ArgumentParser(description=description)
    for name, value in defaults.items():
        parser.add_argument("--" + name.replace("_", "-"), type=int, default=value,
                            help=f"(default {value})")
    args = parser.parse_args()
    for name in defaults:
        if getattr(args, name) <= 0:
            parser.error(f"--{name.replace('_', '-')} must be a positive integer")
    return args


def rss_bytes() -> int:
    """Resident set size of this process now, in bytes."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            pages = int(statm.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        import psutil  # only where /proc is missing

        return int(psutil.Process().memory_info().rss)


def settled_rss() -> int:
    """RSS after a full garbage collection (run twice so finalised cycles are freed too)."""
    gc.collect()
    gc.collect()
    return rss_bytes()


def implementation(module: Any) -> dict[str, str]:
    """Which implementation ran: ``pycos`` (with version and file) or ``asyncio``."""
    name = module.__name__
    if name == "asyncio":
        return {"impl": "asyncio", "version": sys.version.split()[0], "file": ""}
    return {"impl": name, "version": str(getattr(module, "__version__", "?")),
            "file": str(getattr(module, "__file__", ""))}


def emit(bench: str, module: Any, args: argparse.Namespace, **metrics: Any) -> None:
    """Print the result line: benchmark name, implementation, parameters and metrics."""
    record = {"bench": bench, **implementation(module),
              "python": sys.version.split()[0], "params": vars(args), "metrics": metrics}
    print(json.dumps(record, sort_keys=True), flush=True)


# ------------------------------------------------------------------ socket benchmarks
LOOPBACK = "127.0.0.1"


def percentile(ordered: list[float], q: float) -> float:
    """The ``q``-th percentile (0-100) of an ascending list (nearest rank)."""
    if not ordered:
        raise ValueError("percentile of no values")
    import math

    rank = max(1, min(len(ordered), math.ceil(q / 100.0 * len(ordered))))
    return ordered[rank - 1]


def raise_nofile(needed: int) -> int:
    """Raise this process's descriptor limit (RLIMIT_NOFILE) to at least ``needed``, up to
    the hard limit; the soft limit now in force.

    Raises:
        SystemExit: the hard limit is below ``needed`` (the message says by how much).
    """
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return needed if soft == resource.RLIM_INFINITY else soft
    if hard != resource.RLIM_INFINITY and hard < needed:
        raise SystemExit(f"RLIMIT_NOFILE hard limit is {hard}, this run needs {needed} "
                         "descriptors: raise it (ulimit -Hn) or use fewer connections")
    resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))
    return needed


def spawn_helper(script: str, *args: object) -> Any:
    """Start ``script`` (a standard-library helper in this directory) in a new process with
    this interpreter. Its input is a pipe (closing it tells the helper to finish), its output
    is discarded (only the measuring program writes the result line), its errors are
    inherited."""
    import subprocess

    here = os.path.dirname(os.path.abspath(__file__))
    cmd = [sys.executable, "-E", "-s", os.path.join(here, script), *map(str, args)]
    return subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)


def reap(proc: Any, timeout: float = 10.0) -> int:
    """Close the helper's input, wait (bounded) for it to exit, kill it if it does not;
    its exit status (negative: killed)."""
    import subprocess

    try:
        if proc.stdin is not None and not proc.stdin.closed:
            proc.stdin.close()
    except OSError:
        pass
    try:
        return int(proc.wait(timeout))
    except subprocess.TimeoutExpired:
        proc.kill()
        return int(proc.wait(timeout))


def await_result(task: Any, seconds: float) -> Any:
    """``task.value(seconds)`` for the main thread of a pycos program; a task that does not
    end in time makes the process exit with status 3 (so no wait is unbounded)."""
    result = task.value(seconds)
    if result is None:
        print(f"benchmark task did not finish within {seconds:g} s or failed", file=sys.stderr,
              flush=True)
        os._exit(3)
    return result


def stream_plan(methods: tuple[str, ...], rounds: int) -> list[str]:
    """Order of the timed streams: every method once per round, rounds one after another."""
    return [method for _ in range(rounds) for method in methods]


def stream_rates(size: int, timings: list[tuple[str, float]]) -> dict[str, float]:
    """``mb_per_s_<method>``: ``size`` bytes over the median of that method's times, in
    10**6 bytes per second."""
    import statistics

    by_method: dict[str, list[float]] = {}
    for method, seconds in timings:
        by_method.setdefault(method, []).append(seconds)
    return {f"mb_per_s_{m}": size / statistics.median(t) / 1e6 for m, t in by_method.items()}


def kernel_timeouts(sock: Any, seconds: float) -> None:
    """Make ``sock`` a plain blocking socket whose every send and receive the kernel bounds
    by ``seconds`` (SO_SNDTIMEO / SO_RCVTIMEO). Unlike ``settimeout``, which makes Python poll
    before each call, the calls stay single blocking system calls; one that times out raises
    ``BlockingIOError``."""
    import socket
    import struct

    sock.settimeout(None)
    whole = int(seconds)
    timeval = struct.pack("ll", whole, int((seconds - whole) * 1e6))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, timeval)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, timeval)
