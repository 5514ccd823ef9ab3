"""The peers of bench_ship.py, run in bench/.venv-ship (prints one JSON line; a peer that
cannot run gives null and its error).

C3: 10,000 calls of x*x: multiprocessing.Pool(4).map, Dask LocalCluster(4 workers, 1 thread
each) client.gather(client.map(...)), ipyparallel load_balanced_view().map_sync (4 engines);
C4: 2,000 calls of 1 ms CPU on Pool(2); C1: jupyter-client -> ipykernel execute("1+1") and
complete round trips. Pools and clusters are started before timing (like ours).
"""

import json
import multiprocessing
import statistics
import sys
import time
import traceback

N_TINY = 10_000
N_CPU = 2_000


def square(x):
    return x * x


def burn_1ms(x):
    end = time.perf_counter() + 0.001
    while time.perf_counter() < end:
        pass
    return x


def timed(fn, reps):
    times = []
    for _ in range(reps):
        began = time.perf_counter()
        fn()
        times.append(time.perf_counter() - began)
    return statistics.median(times)


def pool(out):
    with multiprocessing.Pool(4) as p:
        p.map(square, range(1000))
        out["c3_pool4_s"] = timed(lambda: p.map(square, range(N_TINY)), 5)
    with multiprocessing.Pool(2) as p:
        p.map(burn_1ms, range(10))
        out["c4_pool2_s"] = timed(lambda: p.map(burn_1ms, range(N_CPU)), 3)


def dask(out):
    from dask.distributed import Client, LocalCluster

    with LocalCluster(n_workers=4, threads_per_worker=1, processes=True,
                      dashboard_address=None, host="127.0.0.1") as cluster, \
            Client(cluster) as client:
        client.gather(client.map(square, range(100), pure=False))
        out["c3_dask_s"] = timed(
            lambda: client.gather(client.map(square, range(N_TINY), pure=False)), 3)


def ipp(out):
    import ipyparallel

    cluster = ipyparallel.Cluster(n=4, log_level=40)
    rc = cluster.start_and_connect_sync()
    try:
        rc.wait_for_engines(4, timeout=60)
        view = rc.load_balanced_view()
        view.map_sync(square, range(100))
        out["c3_ipyparallel_s"] = timed(lambda: view.map_sync(square, range(N_TINY)), 3)
    finally:
        cluster.stop_cluster_sync()


def kernel(out):
    from jupyter_client.manager import start_new_kernel

    km, kc = start_new_kernel(kernel_name="python3")
    try:
        for _ in range(50):
            kc.execute_interactive("1+1", timeout=10, output_hook=lambda m: None)
        runs, comps = [], []
        for _ in range(300):
            t0 = time.perf_counter()
            kc.execute_interactive("1+1", timeout=10, output_hook=lambda m: None)
            runs.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            kc.complete("import os; os.pa", reply=True, timeout=10)
            comps.append(time.perf_counter() - t0)
        out["c1_ipykernel_execute_p50_ms"] = statistics.median(runs) * 1e3
        out["c1_ipykernel_complete_p50_ms"] = statistics.median(comps) * 1e3
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def main():
    out = {"errors": {}}
    for name, fn in (("pool", pool), ("dask", dask), ("ipyparallel", ipp),
                     ("ipykernel", kernel)):
        try:
            fn(out)
        except Exception:  # noqa: BLE001 - recorded, the other peers still run
            out["errors"][name] = traceback.format_exc()[-800:]
    sys.stdout.write(json.dumps(out) + "\n")


if __name__ == "__main__":
    main()
