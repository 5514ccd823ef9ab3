"""pycos.ship and pycos.console measured (bench_ship.py runs it; prints one JSON line).

C3: 10,000 calls of f(x) = x*x over 4 worker node processes (Cluster.map), start to gathered
list; C4: calls of 1 ms of CPU over 2 workers; C2: the first ship.run (ship, compile, call)
and the rate of later calls beside plain RCI calls; C5: Cluster.execute on 4 nodes; C1:
console run("1+1") and complete round trips over a Unix socket. Everything on 127.0.0.1.
"""

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import pycos
import pycos.netpycos as netpycos
from pycos import ship
from pycos.console import ConsoleServer, connect

SECRET = "bench-ship"
N_TINY = 10_000
N_CPU = 2_000


def square(x):
    return x * x


def burn_1ms(x):
    import time as t

    end = t.perf_counter() + 0.001
    while t.perf_counter() < end:
        pass
    return x


def worker():
    node = netpycos.Pycos(host="127.0.0.1", udp_port=0, discover_peers=False, secret=SECRET)
    ship.accept_code()

    def rci_square(x, task=None):
        return x * x
        yield

    netpycos.RCI(rci_square).register()
    sys.stdout.write(f"ready {node.location.port}\n")
    sys.stdout.flush()
    sys.stdin.read()
    node.terminate()


def start_workers(n):
    procs = [subprocess.Popen([sys.executable, __file__, "worker"], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True) for _ in range(n)]
    locs = [netpycos.Location("127.0.0.1", int(p.stdout.readline().split()[1])) for p in procs]
    return procs, locs


def timed(fn, reps=3):
    times = []
    for _ in range(reps):
        began = time.perf_counter()
        fn()
        times.append(time.perf_counter() - began)
    return statistics.median(times)


def main():
    import logging

    logging.getLogger("pycos").setLevel(logging.ERROR)
    procs, locs = start_workers(4)
    out = {}
    try:
        netpycos.Pycos(host="127.0.0.1", udp_port=0, discover_peers=False, secret=SECRET)
        first_began = time.perf_counter()
        assert ship.run(locs[0], square, 3) == 9
        out["c2_first_run_ms"] = (time.perf_counter() - first_began) * 1e3
        n = 2000
        began = time.perf_counter()
        for i in range(n):
            ship.run(locs[0], square, i)
        plain_ship = n / (time.perf_counter() - began)

        def task_loop(task=None):
            rci = yield netpycos.RCI.locate("rci_square", locs[0], 5)
            t0 = time.perf_counter()
            for i in range(n):
                rt = yield rci(i)
                yield rt.finish()
            rci_rate = n / (time.perf_counter() - t0)
            t0 = time.perf_counter()
            for i in range(n):
                yield ship.run(locs[0], square, i)
            ship_rate = n / (time.perf_counter() - t0)
            return rci_rate, ship_rate

        rci_rate, ship_rate = pycos.Task(task_loop).value()
        out.update(c2_rci_calls_per_s=rci_rate, c2_ship_calls_per_s_task=ship_rate,
                   c2_ship_calls_per_s_plain=plain_ship)
        cluster = ship.Cluster(locs, code=[square, burn_1ms])
        assert cluster.start() == 4
        cluster.map(square, range(1000))
        out["c3_tiny_map_s"] = timed(lambda: cluster.map(square, range(N_TINY)), 5)
        cluster.execute("1")
        out["c5_execute_4_nodes_ms"] = timed(lambda: cluster.execute("1 + 1"), 20) * 1e3
        two = ship.Cluster(locs[:2], code=[burn_1ms])
        two.start()
        out["c4_cpu_map_s"] = timed(lambda: two.map(burn_1ms, range(N_CPU)), 3)
        out["c4_serial_s"] = N_CPU * 0.001
    finally:
        for p in procs:
            p.stdin.close()
            p.wait(10)
    path = os.path.join(tempfile.mkdtemp(), "c", "console.sock")
    server = ConsoleServer(unix_path=path).start()
    with connect("unix:" + path) as con:
        for _ in range(100):
            con.run("1+1")
        runs, comps = [], []
        for _ in range(500):
            t0 = time.perf_counter()
            con.run("1+1")
            runs.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            con.complete("pycos.Ta")
            comps.append(time.perf_counter() - t0)
        out["c1_run_p50_ms"] = statistics.median(runs) * 1e3
        out["c1_complete_p50_ms"] = statistics.median(comps) * 1e3
    server.stop()
    sys.stdout.write(json.dumps(out) + "\n")


if __name__ == "__main__":
    if sys.argv[1:] == ["worker"]:
        worker()
    else:
        main()
