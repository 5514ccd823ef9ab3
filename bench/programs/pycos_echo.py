"""TCP echo on pycos: one server task, C client tasks, R round trips of S bytes each.

Runs unchanged on this repository's pycos and on pycos 4.12.2 (``AsyncSocket`` with ``accept``,
``connect``, ``recv``, ``recvall``, ``sendall``; ``Task``, ``finish``, ``value``). Everything
runs on one scheduler in one process over 127.0.0.1: a server task accepts C connections and
starts an echo task for each (``recv`` up to 1 KiB, ``sendall`` it back, until end of stream);
each client task connects, then does R round trips (``sendall`` S bytes, ``recvall`` S bytes),
timing each one. Reports round trips per second over the span from the first client's first
send to the last client's last reply, and the 50th / 99th percentile round-trip latency. A
smaller session runs first as a warm-up. All sockets use TCP_NODELAY, as asyncio's do.
"""

from __future__ import annotations

import socket
import sys
import time

from _benchlib import LOOPBACK, await_result, emit, parse_args, percentile

import pycos


def echo(conn, task=None):
    while True:
        data = yield conn.recv(1024)
        if not data:
            break
        yield conn.sendall(data)
    conn.close()


def serve(listener, count, task=None):
    handlers = []
    for _ in range(count):
        conn, _addr = yield listener.accept()
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        handlers.append(pycos.Task(echo, conn))
    for handler in handlers:
        yield handler.finish()


def client(port, rounds, size, stats, task=None):
    sock = pycos.AsyncSocket(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    yield sock.connect((LOOPBACK, port))
    msg = bytes(i % 251 for i in range(size))
    lat = []
    clock = time.perf_counter
    start = clock()
    for _ in range(rounds):
        t0 = clock()
        yield sock.sendall(msg)
        reply = yield sock.recvall(size)
        lat.append(clock() - t0)
        if len(reply) != size:
            raise AssertionError(f"short reply: {len(reply)} of {size} bytes")
    end = clock()
    if bytes(reply) != msg:
        raise AssertionError("echo differs from what was sent")
    sock.close()
    stats.append((start, end, lat))


def session(clients, rounds, size, task=None):
    listener = pycos.AsyncSocket(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
    listener.bind((LOOPBACK, 0))
    listener.listen(clients)
    port = listener.getsockname()[1]
    server = pycos.Task(serve, listener, clients)
    stats = []
    workers = [pycos.Task(client, port, rounds, size, stats) for _ in range(clients)]
    for worker in workers:
        yield worker.finish()
    yield server.finish()
    listener.close()
    if len(stats) != clients:
        raise AssertionError(f"{clients - len(stats)} client(s) failed")
    span = max(s[1] for s in stats) - min(s[0] for s in stats)
    lat = sorted(x for s in stats for x in s[2])
    return {"seconds": span, "round_trips_per_s": clients * rounds / span,
            "p50_us": percentile(lat, 50) * 1e6, "p99_us": percentile(lat, 99) * 1e6}


def driver(clients, rounds, size, warmup, task=None):
    yield session(min(clients, 10), warmup, size)
    result = yield session(clients, rounds, size)
    return result


def main() -> int:
    args = parse_args(__doc__.splitlines()[0], clients=50, rounds=1_000, size=64, warmup=200,
                      limit=120)
    result = await_result(pycos.Task(driver, args.clients, args.rounds, args.size, args.warmup),
                          args.limit)
    if not isinstance(result, dict):
        print(f"benchmark task failed: {result!r}", file=sys.stderr)
        return 1
    emit("echo", pycos, args, **result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
