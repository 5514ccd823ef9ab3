"""Helpers shared by the benchmark programs: arguments, resident memory, the result line, and
for the socket benchmarks percentiles, the descriptor limit and the helper processes; for the
programs that compare with peer systems, the server process a client starts from its own file
(``serving``), timed sequential and concurrent calls, the RPyC classic server, and the child
processes of the publish/subscribe programs.

Imports only the standard library (psutil when /proc is missing; RPyC only in
``serve_rpyc_classic``) and never ``pycos`` or ``asyncio``, so each program measures only the
implementation it imports itself. Every program prints exactly one JSON object on its last line
of standard output; ``bench/run.py`` reads it.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, NoReturn


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


# ------------------------------------------------------------------ beside the peer systems
def pingpong_args(doc: str) -> argparse.Namespace:
    """The command line of the round-trip programs (blocking sockets, pyzmq REQ/REP): ``--role``,
    ``--n``, ``--warmup``, ``--size`` and ``--seconds``; ``doc``'s first line describes it."""
    p = argparse.ArgumentParser(description=doc.splitlines()[0])
    p.add_argument("--role", choices=("client", "server"), default="client")
    p.add_argument("--n", type=int, default=20_000, help="timed round trips")
    p.add_argument("--warmup", type=int, default=1_000)
    p.add_argument("--size", type=int, default=32, help="message bytes")
    p.add_argument("--seconds", type=float, default=60.0, help="stop the timed loop after this")
    return p.parse_args()


def call_args(doc: str, per_thread: int) -> argparse.Namespace:
    """The command line of the remote-call programs (Pyro5, RPyC): ``--role``, ``--n``,
    ``--warmup``, ``--threads``, ``--per-thread`` (default ``per_thread``) and ``--seconds``;
    ``doc``'s first line describes it."""
    p = argparse.ArgumentParser(description=doc.splitlines()[0])
    p.add_argument("--role", choices=("client", "server"), default="client")
    p.add_argument("--n", type=int, default=5_000, help="timed sequential calls")
    p.add_argument("--warmup", type=int, default=200)
    p.add_argument("--threads", type=int, default=16, help="concurrent callers")
    p.add_argument("--per-thread", type=int, default=per_thread, help="calls of each caller")
    p.add_argument("--seconds", type=float, default=60.0, help="stop each timed loop after this")
    return p.parse_args()


def readline(proc: Any, timeout: float = 60) -> str:
    """The next line ``proc`` writes on its standard output, stripped.

    Raises:
        TimeoutError: it wrote nothing within ``timeout`` seconds.
    """
    import select

    assert proc.stdout is not None
    if select.select([proc.stdout], [], [], timeout)[0]:
        return str(proc.stdout.readline().strip())
    raise TimeoutError("child said nothing")


def kill_all(procs: list[Any]) -> None:
    """Kill every process still running and reap them all (bounded)."""
    for p in procs:
        if p.poll() is None:
            p.kill()
        p.wait(10)


@contextlib.contextmanager
def serving(script: str, *args: str, isolated: bool = True) -> Iterator[str]:
    """Run ``script --role server ARGS`` (this interpreter; ``isolated``: with ``-E -s``) for
    the body of the ``with``, which gets what the server printed after ``ready``; the server is
    killed at the end.

    Raises:
        RuntimeError: the server did not say ``ready`` within 30 s (it is killed).
    """
    import select
    import subprocess

    cmd = [sys.executable, *(["-E", "-s"] if isolated else []), os.path.abspath(script),
           "--role", "server", *args]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = ""
        if select.select([proc.stdout], [], [], 30)[0]:
            line = proc.stdout.readline()
        if not line.startswith("ready "):
            raise RuntimeError(f"server did not start (said {line!r})")
        yield line.split(None, 1)[1].strip()
    finally:
        proc.kill()
        proc.wait(10)


_ANY = object()


def timed_calls(call: Callable[[int], Any], n: int, seconds: float,
                expect: Any = _ANY) -> tuple[list[float], float]:
    """Run ``call(i)`` up to ``n`` times, each timed with ``time.perf_counter()``, stopping
    after ``seconds``; the sorted latencies (seconds) and the whole span. With ``expect``, a
    call whose value differs (checked outside the timing) raises RuntimeError."""
    lat = []
    start = time.perf_counter()
    stop = start + seconds
    for i in range(n):
        t0 = time.perf_counter()
        value = call(i)
        t1 = time.perf_counter()
        lat.append(t1 - t0)
        if expect is not _ANY and value != expect:
            raise RuntimeError("wrong result")
        if t1 > stop:
            break
    elapsed = time.perf_counter() - start
    lat.sort()
    return lat, elapsed


def latency_us(ordered: list[float], prefix: str) -> dict[str, float]:
    """``<prefix>_p50_us`` and ``<prefix>_p99_us`` of ascending latencies in seconds."""
    return {f"{prefix}_p50_us": percentile(ordered, 50) * 1e6,
            f"{prefix}_p99_us": percentile(ordered, 99) * 1e6}


def concurrent_calls(connect: Callable[[], Any], call: Callable[[Any], Any], expect: Any,
                     threads: int, per_thread: int, seconds: float, timeout: float) -> float:
    """``threads`` threads, each with a connection of its own (``with connect() as conn``),
    make one warm-up ``call(conn)``, then all at once up to ``per_thread`` more (each must give
    ``expect``; at most ``seconds``); total calls per second from the common start to the last
    thread's end.

    Raises:
        RuntimeError: a wrong result, a thread still calling ``timeout`` seconds late, or no
            thread that called at all.
    """
    ready = threading.Barrier(threads + 1, timeout=timeout)
    counts = [0] * threads

    def caller(k: int) -> None:
        with connect() as conn:
            call(conn)
            ready.wait()
            stop = time.perf_counter() + seconds
            for _ in range(per_thread):
                if call(conn) != expect:
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
        w.join(max(0.0, start + seconds + timeout - time.perf_counter()))
        if w.is_alive():
            raise RuntimeError("a calling thread did not finish")
    elapsed = time.perf_counter() - start
    if sum(counts) < threads:
        raise RuntimeError("concurrent calls failed")
    return sum(counts) / elapsed


def serve_rpyc_classic(host: str = LOOPBACK) -> NoReturn:
    """The server of the RPyC programs: RPyC's ``ThreadedServer`` with the classic service on
    a free port of ``host``, no registry; says ``ready PORT`` and exits when its standard input
    closes."""
    from rpyc.core.service import ClassicService
    from rpyc.utils.registry import UDPRegistryClient
    from rpyc.utils.server import ThreadedServer

    # no registry; the registrar names loopback so that nothing could ever be broadcast
    server = ThreadedServer(ClassicService, hostname=host, port=0, auto_register=False,
                            registrar=UDPRegistryClient(ip=host))
    threading.Thread(target=server.start, daemon=True).start()
    deadline = time.monotonic() + 30
    while not server.active and time.monotonic() < deadline:
        time.sleep(0.01)
    print("ready", server.port, flush=True)
    sys.stdin.read()  # until the client closes the pipe (or is gone)
    os._exit(0)


def fanout_record(subs: int, n: int, results: list[dict[str, Any]],
                  publish_s: float) -> dict[str, Any]:
    """The result of a fan-out run from what each subscriber reported (``count`` and the
    ``seconds`` from its first to its last message): deliveries over the longest span."""
    total = sum(r["count"] for r in results)
    span = max(r["seconds"] for r in results)
    return {"subs": subs, "n": n, "delivered": total, "msgs_per_s": total / span,
            "publish_s": publish_s}
