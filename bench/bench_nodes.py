"""Benchmarks of the distributed node on 127.0.0.1: liveness, handshakes, round trips.

``python bench/bench_nodes.py`` runs one node in this process and peer nodes in child processes
(this same file with ``--serve``), all on 127.0.0.1 without discovery, and reports medians:

* ``kill9_to_offline_s``: a peer process is killed with SIGKILL while its connection is idle;
  time until a ``peer_status`` task here receives Offline (the kernel closes the socket, so the
  node sees the end of the stream);
* ``freeze_to_offline_s``: the peer is stopped with SIGSTOP instead (its socket stays open, as
  with a crashed host or a pulled cable): only missing heartbeats tell, with default settings;
* ``handshake_s`` / ``handshake_tls_s``: ``yield node.peer(loc)`` to a peer that is not yet
  connected: TCP connect (+ mutual TLS), HELLO / AUTH / AUTH_OK, node info and verdict;
  ``handshake_sans_io_us``: the protocol handshake alone, two in-memory ``Connection`` objects;
* ``rtt_main_us`` / ``rtt_service_us``: one ``ping`` request and its reply, sequentially, from a
  task on the main scheduler (user tasks: the request crosses to the service thread and the
  reply back) and from a task on the service scheduler itself (no thread crossings). Their
  difference is the cost of running network service on its own thread;
  ``pipelined_req_per_s``: 50 tasks on the main scheduler pinging concurrently.

Results are printed and written to ``bench/results/nodes.json``. ``--quick`` runs fewer
repetitions. Imports the standard library and pycos (``cryptography`` for the TLS case).
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR.parent))
SECRET = "bench secret"


# ---------------------------------------------------------------------- the peer process
def serve(args: argparse.Namespace) -> None:
    import pycos.netpycos as netpycos

    node = netpycos.Pycos(host="127.0.0.1", discover_peers=False, secret=SECRET,
                          certfile=args.certfile, keyfile=args.keyfile, cafile=args.cafile)
    print("ready", node.location.port, flush=True)
    sys.stdin.read()  # until the benchmark closes our stdin
    node.terminate()


class Peer:
    def __init__(self, *tls: str) -> None:
        argv = [sys.executable, __file__, "--serve", *tls]
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().split()
        if not line or line[0] != "ready":
            self.stop()
            raise RuntimeError("peer process did not start")
        from pycos.net.location import Location

        self.location = Location("127.0.0.1", int(line[1]))

    def signal(self, sig: int) -> None:
        os.kill(self.proc.pid, sig)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                stream.close()


# ---------------------------------------------------------------------- helpers
def run(fn: Any, *args: Any, timeout: float = 120.0) -> Any:
    import pycos

    task = pycos.Task(fn, *args)
    result = task.value(timeout=timeout)
    if task.is_alive():
        raise RuntimeError(f"{fn.__name__} did not finish")
    return result


def peer(node: Any, loc: Any) -> int:
    def go(task: Any = None) -> Any:
        return (yield node.peer(loc))

    return int(run(go))


def offline_after(node: Any, events: queue.Queue[Any], sig: int, reps: int) -> list[float]:
    from pycos.net.location import PeerStatus

    times = []
    for _ in range(reps):
        victim = Peer()
        try:
            assert peer(node, victim.location) == 0
            time.sleep(0.3)  # let the connection go idle
            while not events.empty():
                events.get()
            start = time.monotonic()
            victim.signal(sig)
            while True:
                t, msg = events.get(timeout=30)
                if msg.status == PeerStatus.Offline and msg.location == victim.location:
                    times.append(t - start)
                    break
        finally:
            if sig == signal.SIGSTOP:
                victim.signal(signal.SIGCONT)
            victim.stop()
    return times


def handshakes(node: Any, target: Peer, reps: int) -> list[float]:
    def go(task: Any = None) -> Any:
        times = []
        for _ in range(reps):
            start = time.perf_counter()
            status = yield node.peer(target.location)
            times.append(time.perf_counter() - start)
            assert status == 0, status
            yield node.close_peer(target.location)
            yield task.sleep(0.05)  # let the peer read the goodbye (not timed)
        return times

    return list(run(go))


def sans_io_handshake_us(reps: int) -> float:
    from pycos.proto import NEED_DATA, Connection, Established, Role

    def once() -> None:
        client = Connection(Role.CLIENT, secret=SECRET)
        server = Connection(Role.SERVER, secret=SECRET)
        to_server, to_client = client.initiate(), server.initiate()
        done = 0
        while done < 2:
            for conn, data in ((server, to_server), (client, to_client)):
                if data:
                    conn.receive_data(data)
            to_server = to_client = b""
            for conn in (client, server):
                while (ev := conn.next_event()) is not NEED_DATA:
                    done += isinstance(ev, Established)
            to_server, to_client = client.data_to_send(), server.data_to_send()

    once()
    start = time.perf_counter()
    for _ in range(reps):
        once()
    return (time.perf_counter() - start) / reps * 1e6


def round_trips(node: Any, loc: Any, n: int) -> dict[str, float]:
    from pycos.net.bridge import Pending

    def main_side(task: Any = None) -> Any:
        times = []
        for i in range(n):
            start = time.perf_counter()
            yield node._request(loc, "ping", i)
            times.append(time.perf_counter() - start)
        return times

    service = node._service
    done: queue.Queue[list[float]] = queue.Queue()

    def service_side(task: Any = None) -> Any:
        times = []
        for i in range(n):
            pending = Pending()
            start = time.perf_counter()
            service.request(loc, "ping", i, pending, None)
            yield pending
            times.append(time.perf_counter() - start)
        done.put(times)

    def pipelined(tasks: int, each: int) -> float:
        import pycos

        def one(task: Any = None) -> Any:
            for i in range(each):
                yield node._request(loc, "ping", i)

        def all_of(task: Any = None) -> Any:
            workers = [pycos.Task(one) for _ in range(tasks)]
            for worker in workers:
                yield worker.finish()

        start = time.perf_counter()
        run(all_of)
        return tasks * each / (time.perf_counter() - start)

    run(main_side)  # warm up
    main = run(main_side)
    service.call_soon(service.spawn, service_side)
    done.get(timeout=120)
    service.call_soon(service.spawn, service_side)
    svc = done.get(timeout=120)
    return {"rtt_main_us": statistics.median(main) * 1e6,
            "rtt_service_us": statistics.median(svc) * 1e6,
            "pipelined_req_per_s": pipelined(50, max(10, n // 25))}


def tls_files(directory: str) -> tuple[list[str], list[str]] | None:
    try:
        sys.path.insert(0, str(BENCH_DIR.parent / "tests" / "integration"))
        from conftest import _make_certs  # the test suite's certificate maker
    except ImportError:
        return None
    certs = _make_certs(Path(directory))
    return ([certs.node1_cert, certs.node1_key, certs.ca],
            ["--certfile", certs.node2_cert, "--keyfile", certs.node2_key, "--cafile", certs.ca])


# ---------------------------------------------------------------------- main
def measure(quick: bool) -> dict[str, Any]:
    import pycos
    from pycos.net.node import Pycos as Node

    reps = 3 if quick else 9
    node = Node(host="127.0.0.1", discover_peers=False, secret=SECRET, name="bench")
    events: queue.Queue[Any] = queue.Queue()

    def collect(task: Any = None) -> Any:
        task.set_daemon()
        while True:
            msg = yield task.receive()
            events.put((time.monotonic(), msg))

    node.peer_status(pycos.Task(collect))
    results: dict[str, Any] = {}
    try:
        kill = offline_after(node, events, signal.SIGKILL, reps)
        freeze = offline_after(node, events, signal.SIGSTOP, 3 if quick else 5)
        target = Peer()
        try:
            hs = handshakes(node, target, 10 if quick else 50)
            assert peer(node, target.location) == 0
            results.update(round_trips(node, target.location, 500 if quick else 5000))
        finally:
            target.stop()
        results.update({
            "kill9_to_offline_s": statistics.median(kill), "kill9_to_offline_max_s": max(kill),
            "freeze_to_offline_s": statistics.median(freeze),
            "freeze_to_offline_max_s": max(freeze),
            "handshake_s": statistics.median(hs),
            "handshake_sans_io_us": sans_io_handshake_us(200 if quick else 2000),
        })
    finally:
        node.terminate()
    with tempfile.TemporaryDirectory() as tmp:
        files = tls_files(tmp)
        if files is not None:
            ours, theirs = files
            node = Node(host="127.0.0.1", discover_peers=False, secret=SECRET, name="bench-tls",
                        certfile=ours[0], keyfile=ours[1], cafile=ours[2])
            target = Peer(*theirs)
            try:
                results["handshake_tls_s"] = statistics.median(
                    handshakes(node, target, 10 if quick else 50))
            finally:
                target.stop()
                node.terminate()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--certfile", help=argparse.SUPPRESS)
    parser.add_argument("--keyfile", help=argparse.SUPPRESS)
    parser.add_argument("--cafile", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args)
        return
    results = measure(args.quick)
    for key, value in results.items():
        print(f"{key:28s} {value:12.6g}")
    out = BENCH_DIR / "results" / ("nodes_quick.json" if args.quick else "nodes.json")
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"python": sys.version.split()[0], "time": time.time(),
                               "results": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
