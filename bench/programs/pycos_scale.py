"""Scale on pycos: N concurrent connections held on one scheduler; reports time and RSS/conn.

Runs unchanged on this repository's pycos and on pycos 4.12.2. A server task accepts N
connections made by ``_scale_clients.py`` (a separate process, so each process needs only about
N descriptors; 127.0.0.1) and starts a task per connection that sends a one-byte greeting
(which paces the client, see ``_scale_clients.py``), echoes one S-byte message (``recvall`` +
``sendall``) and then waits in ``recv`` until the client closes. The clients open all N
connections first, then exchange on every one of them while all are open.

Reported: ``seconds`` from starting the client process until the N-th exchange is done (the
client's own connecting and its blocking calls are included), ``conns_per_s`` (N over that)
and ``accept_seconds`` (until the N-th connection was accepted); RSS of this
process (after a full garbage collection) before the clients start and while all N connections
are open with their tasks waiting in ``recv``; ``rss_bytes_per_conn`` is the difference over
N: the accepted socket, its ``AsyncSocket``, the task and the scheduler's and poller's
bookkeeping. A cycle with ``--warmup`` connections runs first and is not counted. The
descriptor limit is raised to what N needs (the run fails with a message if the hard limit is
too low).
"""

from __future__ import annotations

import socket
import sys
import time

from _benchlib import (
    LOOPBACK,
    await_result,
    emit,
    parse_args,
    raise_nofile,
    reap,
    settled_rss,
    spawn_helper,
)

import pycos

EXCHANGED, OPEN, DRIVER, COUNT = 0, 1, 2, 3


def handler(conn, size, state, task=None):
    yield conn.sendall(b"+")  # the greeting that paces the client's connecting
    data = yield conn.recvall(size)
    if len(data) != size:
        raise AssertionError(f"short message: {len(data)} of {size} bytes")
    yield conn.sendall(data)
    state[EXCHANGED] += 1
    if state[EXCHANGED] == state[COUNT]:
        state[DRIVER].send("exchanged")
    yield conn.recv(64)  # end of stream once the client lets go
    conn.close()
    state[OPEN] -= 1
    if not state[OPEN]:
        state[DRIVER].send("closed")


def serve(listener, count, size, state, task=None):
    for _ in range(count):
        conn, _addr = yield listener.accept()
        state[OPEN] += 1
        pycos.Task(handler, conn, size, state)
    return time.perf_counter()


def wait_until(state, index, goal, proc, deadline, task):
    """Wait (bounded) until ``state[index] == goal``; fail early if the clients exit."""
    while state[index] != goal:
        yield task.receive(0.2)
        if state[index] == goal:
            break
        if proc.poll() not in (None, 0) or time.perf_counter() > deadline:
            raise AssertionError(f"gave up with {state[EXCHANGED]} exchanged, {state[OPEN]} "
                                 f"open; client process status {proc.poll()}")


def cycle(listener, port, count, size, limit, task):
    state = [0, 0, task, count]
    deadline = time.perf_counter() + limit
    server = pycos.Task(serve, listener, count, size, state)
    start = time.perf_counter()
    proc = spawn_helper("_scale_clients.py", port, count, size)
    try:
        yield wait_until(state, EXCHANGED, count, proc, deadline, task)
        elapsed = time.perf_counter() - start
        held = settled_rss()
    except BaseException:
        proc.kill()
        raise
    finally:
        status = reap(proc)  # the clients close every connection
    if status != 0:
        raise AssertionError(f"the client process exited with status {status}")
    yield wait_until(state, OPEN, 0, proc, deadline, task)
    accepted = yield server.finish()
    return elapsed, accepted - start, held


def driver(count, size, warmup, limit, task=None):
    listener = pycos.AsyncSocket(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
    listener.bind((LOOPBACK, 0))
    listener.listen(4096)
    port = listener.getsockname()[1]
    yield cycle(listener, port, warmup, size, limit, task)
    before = settled_rss()
    elapsed, accepting, held = yield cycle(listener, port, count, size, limit, task)
    listener.close()
    return {"seconds": elapsed, "conns_per_s": count / elapsed, "accept_seconds": accepting,
            "rss_before": before,
            "rss_held": held, "rss_bytes_per_conn": (held - before) / count}


def main() -> int:
    args = parse_args(__doc__.splitlines()[0], conns=10_000, size=32, warmup=200, limit=120)
    nofile = raise_nofile(args.conns + 64)
    task = pycos.Task(driver, args.conns, args.size, args.warmup, args.limit)
    result = await_result(task, args.limit + 30)
    if not isinstance(result, dict):
        print(f"benchmark task failed: {result!r}", file=sys.stderr)
        return 1
    emit("scale", pycos, args, nofile_limit=nofile, **result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
