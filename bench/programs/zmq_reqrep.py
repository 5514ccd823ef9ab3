"""Round trips through pyzmq REQ/REP between two processes (a peer system of the latency bench).

``python zmq_reqrep.py`` is the client: it starts this same file with ``--role server`` as a
second process (a REP socket bound to a free port on 127.0.0.1 that answers each request with
the request itself), connects a REQ socket, warms up, then times ``--n`` sequential round
trips of a ``--size``-byte message (``send``, then ``recv`` of the reply), each one with
``time.perf_counter()``. It prints one JSON line: ``rtt_p50_us``, ``rtt_p99_us`` (nearest
rank) and ``round_trips_per_s`` (round trips over the whole timed span), the same keys as
``blocking_pingpong.py``.

pyzmq as shipped (its I/O thread per context, TCP_NODELAY which libzmq sets itself). Every
wait is bounded: both sockets have 60 s send and receive timeouts (a timeout raises
``zmq.Again``) and the timed loop stops after ``--seconds``. The server process is always
killed at the end. Imports only the standard library, ``zmq`` and ``_benchlib`` beside it.
"""

from __future__ import annotations

import argparse
import json
import sys

import zmq
from _benchlib import latency_us, pingpong_args, serving, timed_calls

TIMEOUT_MS = 60_000


def bounded_socket(ctx: zmq.Context, kind: int) -> zmq.Socket:
    """A socket of ``kind`` whose sends and receives give up after ``TIMEOUT_MS``."""
    sock = ctx.socket(kind)
    sock.setsockopt(zmq.RCVTIMEO, TIMEOUT_MS)
    sock.setsockopt(zmq.SNDTIMEO, TIMEOUT_MS)
    sock.setsockopt(zmq.LINGER, 0)
    return sock


# ---------------------------------------------------------------------- server
def serve() -> None:
    ctx = zmq.Context()
    rep = bounded_socket(ctx, zmq.REP)
    rep.bind("tcp://127.0.0.1:*")
    print("ready", rep.getsockopt_string(zmq.LAST_ENDPOINT), flush=True)
    try:
        while True:
            rep.send(rep.recv())
    except zmq.Again:
        pass  # nobody asked for a while: the client has gone
    finally:
        rep.close()
        ctx.term()


# ---------------------------------------------------------------------- client
def measure(endpoint: str, args: argparse.Namespace) -> dict[str, float]:
    message = bytes(i % 256 for i in range(args.size))
    ctx = zmq.Context()
    req = bounded_socket(ctx, zmq.REQ)
    req.connect(endpoint)

    def round_trip(_i: int = 0) -> None:
        req.send(message)
        if req.recv() != message:
            raise RuntimeError("reply differs from the request")

    try:
        for _ in range(args.warmup):
            round_trip()
        lat, elapsed = timed_calls(round_trip, args.n, args.seconds)
    finally:
        req.close()
        ctx.term()
    return {**latency_us(lat, "rtt"), "round_trips_per_s": len(lat) / elapsed,
            "round_trips": len(lat)}


def main() -> int:
    args = pingpong_args(__doc__)
    if args.role == "server":
        serve()
        return 0
    with serving(__file__) as endpoint:
        result = measure(endpoint, args)
    result.update(impl="pyzmq", version=zmq.__version__, libzmq=zmq.zmq_version(),
                  size=args.size)
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
