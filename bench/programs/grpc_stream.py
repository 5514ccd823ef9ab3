"""grpcio server-streaming, the peer of the stream benchmarks (S2, S3) of ``bench_swarm.py``.

Runs in ``bench/.venv-swarm-peers`` (grpcio 1.85.1; never a dependency of pycos). A sync
Python server with a generic handler (no IDL: the messages are raw bytes, no serialization)
and ``unary_stream`` method ``/bench.Items/Stream``: the request is 8 bytes, the number of
messages (0: endless) and 4 bytes, their size.

* ``--role server``: prints ``ready PORT PID`` and serves until its standard input closes;
* ``--role client --n N --size S``: one stream of N messages (a 10,000-message warm-up first);
  prints items/s;
* ``--role slow --seconds T --size S``: an endless stream read with a 1 ms sleep per message
  for T seconds (the driver samples the server's RSS meanwhile).
"""

from __future__ import annotations

import argparse
import json
import os
import struct
import sys
import time
from concurrent import futures

import grpc

METHOD = "/bench.Items/Stream"


def serve() -> None:
    def stream(request: bytes, context: object):
        n, size = struct.unpack(">QI", request)
        payload = os.urandom(size)
        i = 0
        while n == 0 or i < n:
            yield payload
            i += 1

    handler = grpc.method_handlers_generic_handler("bench.Items", {
        "Stream": grpc.unary_stream_rpc_method_handler(stream)})
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    sys.stdout.write(f"ready {port} {os.getpid()}\n")
    sys.stdout.flush()
    sys.stdin.read()
    server.stop(0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--role", choices=["server", "client", "slow"], required=True)
    p.add_argument("--port", type=int)
    p.add_argument("--n", type=int, default=200_000)
    p.add_argument("--size", type=int, default=100)
    p.add_argument("--seconds", type=float, default=60.0)
    args = p.parse_args()
    if args.role == "server":
        serve()
        return
    channel = grpc.insecure_channel(f"127.0.0.1:{args.port}")
    call = channel.unary_stream(METHOD)
    if args.role == "client":
        for _ in call(struct.pack(">QI", 10_000, args.size)):
            pass
        start = time.perf_counter()
        count = sum(1 for _ in call(struct.pack(">QI", args.n, args.size)))
        seconds = time.perf_counter() - start
        assert count == args.n
        result = {"items_per_s": args.n / seconds, "seconds": seconds}
    else:
        deadline = time.monotonic() + args.seconds
        responses = call(struct.pack(">QI", 0, args.size))
        count = 0
        for _ in responses:
            count += 1
            time.sleep(0.001)
            if time.monotonic() >= deadline:
                responses.cancel()
                break
        result = {"items": count}
    result["grpc"] = grpc.__version__
    sys.stdout.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
