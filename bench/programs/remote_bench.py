"""Remote tasks and RCI between two node processes on 127.0.0.1 (one program for both pycos).

``python remote_bench.py`` is the client: it starts this same file with ``--role server`` as a
second process, connects to it and measures, printing one JSON line:

* ``send_msgs_per_s``: ``sink.send(i)`` to a task on the server, yielding every 100 messages,
  until the sink confirms the last one (``send_received`` says how many arrived);
* ``rtt_p50_us`` / ``rtt_p99_us``: one task sends ``(task, i)`` to the server's echo task and
  waits for the answer, one round trip at a time;
* ``deliver_per_s``: sequential ``yield echo.deliver(i)``;
* ``rci_calls_per_s``: sequential ``rtask = yield rci(i)`` then ``yield rtask(timeout)``;
  ``rci_hangs`` counts the calls whose result did not come within the timeout (or was wrong),
  out of ``rci_calls`` (a measurement stops early after ``--rci-seconds``);
* ``rci_calls_per_s_concurrent`` / ``rci_hangs_concurrent``: the same by 20 tasks at once.

It uses only API that this pycos and pycos 4.12.2 share (``pycos.netpycos.Pycos``, ``peer``,
``Task.register`` / ``locate``, ``send``, ``deliver``, ``RPS``), so the very same file runs on
both. Sizes come from the command line; the runner (``bench/bench_remote.py``) gives the
reference smaller ones where it is slow.
"""

import argparse
import json
import os
import socket
import subprocess
import sys
import time

import pycos
import pycos.netpycos as netpycos


def free_port(kind=socket.SOCK_STREAM):
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------------- server
def echo(task=None):
    task.set_daemon()
    while True:
        msg = yield task.receive()
        if isinstance(msg, tuple):
            msg[0].send(msg[1])


def sink(task=None):
    task.set_daemon()
    count = 0
    while True:
        msg = yield task.receive()
        if isinstance(msg, tuple):
            msg[0].send(count)
            count = 0
        else:
            count += 1


def double(x, task=None):
    return 2 * x
    yield


def serve(args):
    netpycos.Pycos(host="127.0.0.1", tcp_port=args.port, udp_port=free_port(socket.SOCK_DGRAM),
                   discover_peers=False, name="bench-server")
    pycos.Task(echo).register("echo")
    pycos.Task(sink).register("sink")
    netpycos.RPS(double).register()
    print("ready", flush=True)
    sys.stdin.read()


# ---------------------------------------------------------------------- client
def measure(node, loc, args, task=None):
    out = {}
    yield node.peer(loc)
    echo_t = yield pycos.Task.locate("echo", loc, timeout=10)
    sink_t = yield pycos.Task.locate("sink", loc, timeout=10)
    rps = yield netpycos.RPS.locate("double", loc, timeout=10)
    if echo_t is None or sink_t is None or rps is None:
        raise RuntimeError("server's tasks not found")
    # warm up
    for i in range(50):
        echo_t.send((task, i))
        yield task.receive()

    start = time.perf_counter()
    for i in range(args.sends):
        sink_t.send(i)
        if i % 100 == 99:
            yield task.sleep(0)
    sink_t.send((task, "done"))
    received = yield task.receive()
    out["send_msgs_per_s"] = args.sends / (time.perf_counter() - start)
    out["send_received"] = received

    lat = []
    for i in range(args.rtts):
        t0 = time.perf_counter()
        echo_t.send((task, i))
        yield task.receive()
        lat.append(time.perf_counter() - t0)
    lat.sort()
    out["rtt_p50_us"] = lat[len(lat) // 2] * 1e6
    out["rtt_p99_us"] = lat[int(len(lat) * 0.99)] * 1e6

    start = time.perf_counter()
    ok = 0
    for i in range(args.delivers):
        ok += (yield echo_t.deliver(i)) == 1
    out["deliver_per_s"] = args.delivers / (time.perf_counter() - start)
    out["deliver_ok"] = ok

    start = time.perf_counter()
    hangs = calls = 0
    for i in range(args.rcis):
        rtask = yield rps(i)
        value = None if rtask is None else (yield rtask(args.rci_timeout))
        hangs += value != 2 * i
        calls += 1
        if time.perf_counter() - start > args.rci_seconds:
            break
    out["rci_calls_per_s"] = calls / (time.perf_counter() - start)
    out["rci_hangs"] = hangs
    out["rci_calls"] = calls

    def worker(base, n, result, task=None):
        for i in range(base, base + n):
            rtask = yield rps(i)
            value = None if rtask is None else (yield rtask(args.rci_timeout))
            result[0] += value != 2 * i
            result[1] += 1
            if time.perf_counter() - start > args.rci_seconds:
                break

    result = [0, 0]
    each = max(1, args.rcis // 4 // 20)
    start = time.perf_counter()
    workers = [pycos.Task(worker, k * each, each, result) for k in range(20)]
    for w in workers:
        yield w.finish()
    out["rci_calls_per_s_concurrent"] = result[1] / (time.perf_counter() - start)
    out["rci_hangs_concurrent"] = result[0]
    out["rci_calls_concurrent"] = result[1]
    return out


def client(args):
    port = free_port()
    server = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--role", "server",
                               "--port", str(port)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        deadline = time.monotonic() + 30
        while server.stdout.readline().strip() != "ready":
            if time.monotonic() > deadline or server.poll() is not None:
                raise RuntimeError("server did not start")
        node = netpycos.Pycos(host="127.0.0.1", udp_port=free_port(socket.SOCK_DGRAM),
                              discover_peers=False, name="bench-client")
        loc = netpycos.Location("127.0.0.1", port)
        result = pycos.Task(measure, node, loc, args).value(timeout=args.timeout)
        if not isinstance(result, dict):
            raise RuntimeError(f"measurement failed: {result!r}")
        result["pycos"] = os.path.dirname(pycos.__file__)
        result["version"] = pycos.__version__
        print(json.dumps(result), flush=True)
    finally:
        server.stdin.close()
        server.kill()
        server.wait(timeout=10)
    os._exit(0)  # pycos 4.12 may keep non-daemon threads of its own alive


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--role", default="client")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--sends", type=int, default=200000)
    p.add_argument("--rtts", type=int, default=2000)
    p.add_argument("--delivers", type=int, default=2000)
    p.add_argument("--rcis", type=int, default=10000)
    p.add_argument("--rci-timeout", type=float, default=5.0)
    p.add_argument("--rci-seconds", type=float, default=120.0,
                   help="stop each RCI measurement after this long (rates stay per second)")
    p.add_argument("--timeout", type=float, default=600.0)
    args = p.parse_args()
    if args.role == "server":
        serve(args)
    else:
        client(args)


if __name__ == "__main__":
    main()
