"""Scatter/gather with shipped code: two worker processes and this client.

The workers are nodes that opted in to running shipped code (``ship.accept_code()``, which
needs a secret). This client ships *source*, never pickled code:

1. ``Cluster(code=[collatz])`` ships the minimal module of ``collatz`` to both workers and
   ``map`` spreads 10,000 calls over them in adaptive chunks;
2. ``cluster.execute(...)`` runs a line on every worker (``{Location: value}``);
3. DsageNg's "ship a function from a file as a string, call it on the servers": a file with a
   ``@ship.remote`` function is read as a string, shipped with ``send_module`` and called on
   each server; a job is submitted and waited for; ``scatter`` / ``gather`` move a list.

Everything is on 127.0.0.1 with explicit peers; nothing is broadcast. Run:
``python examples/scatter_gather.py`` (a few seconds).
"""

import argparse
import os
import secrets
import sys
import tempfile

from _nodes import location, say, start_role, stop_all

import pycos
import pycos.netpycos as netpycos
from pycos import ship

SECRET = os.environ.setdefault("PYCOS_EXAMPLE_SECRET", secrets.token_hex(16))

# The file DsageNg's notebook "grabs as a string and ships to the servers".
JOBS_FILE = '''\
import random
from pycos import ship

@ship.remote
def histogram(size, bins=5, seed=1):
    rng = random.Random(seed)
    counts = [0] * bins
    for _ in range(size):
        x = min(rng.random(), 0.999999)
        counts[int(x * bins)] += 1
    return counts
'''


@ship.remote
def collatz(n):
    steps = 0
    while n != 1:
        n, steps = (n // 2 if n % 2 == 0 else 3 * n + 1), steps + 1
    return steps


def worker(name):
    node = netpycos.Pycos(host="127.0.0.1", udp_port=0, discover_peers=False, secret=SECRET,
                          name=name)
    ship.accept_code()  # the explicit opt-in; refused on a node without a secret
    say(f"@ready {node.location.port}")
    sys.stdin.read()  # until the client closes our stdin
    node.terminate()


def main(task=None):
    cluster = ship.Cluster(code=[collatz])
    print("nodes:", (yield cluster.start(timeout=10)))
    steps = yield cluster.map(collatz, range(1, 10_001))
    print("longest:", max(range(10_000), key=steps.__getitem__) + 1)
    pids = yield cluster.execute("import os; os.getpid()")
    print("pids:", len(pids), "workers answered")

    path = os.path.join(tempfile.mkdtemp(), "jobs.py")
    with open(path, "w") as f:
        f.write(JOBS_FILE)
    with open(path) as f:
        source = f.read()  # the file as a string
    for loc in cluster.nodes:
        jobs = yield ship.send_module(loc, source, name="jobs")
        counts = yield jobs.histogram.run(1000, bins=4)
        print(f"histogram on {loc!r}: {sum(counts)} samples in {len(counts)} bins")

    job = cluster.submit(collatz, 27)
    print("job done at once?", job.done())
    print("collatz(27) =", (yield job.result(10)))
    print("scattered to", (yield cluster.scatter("part", list(range(10)))), "nodes")
    print("gathered:", (yield cluster.gather("part")))
    cluster.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--role", default="client")
    parser.add_argument("name", nargs="?")
    args = parser.parse_args()
    if args.role == "worker":
        worker(args.name)
        sys.exit(0)
    procs = [start_role("worker", f"worker-{i}") for i in (1, 2)]
    try:
        WORKERS = [location(f"127.0.0.1:{proc.control.get(timeout=20).split()[1]}")
                   for proc in procs]
        netpycos.Pycos(host="127.0.0.1", udp_port=0, secret=SECRET, discover_peers=False,
                       peers=WORKERS)
        pycos.Task(main).value()
    finally:
        stop_all(procs)
