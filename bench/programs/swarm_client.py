"""The controller side of ``bench/bench_swarm.py``: one measurement, one JSON line.

``python swarm_client.py KIND PORT SECRET ARGS...`` connects to the gateway of
``swarm_gateway.py`` on 127.0.0.1 and measures (times from ``time.perf_counter()``, the
interpreter's start not counted):

* ``files K FOLDER DEST``: ``get_swarm(K)`` then ``get_files(FOLDER)`` into DEST (seconds,
  connections included);
* ``put K SRC``: ``get_swarm(K)`` then ``put_files(SRC)``;
* ``stream N SIZE WINDOW``: one ``stream`` of N items of SIZE bytes (a 10,000-item warm-up
  first; items/s and MB/s);
* ``slow SECONDS SIZE``: an endless stream read by a callback that sleeps 1 ms per item, for
  SECONDS (the driver samples the gateway's RSS meanwhile);
* ``abort TRIALS MARKERS``: streams aborted by a callback returning False; the time from that
  return until the gateway's generator's ``finally`` ran (its wall clock, in MARKERS/tag);
* ``batch N``: N ``batch("noop")`` calls in a row (calls/s);
* ``sendfile FOLDER``: ``send_file`` of every file of FOLDER to the gateway's node, one after
  the other (each its own connection and handshake), the sequential loop of W2.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time


def emit(**values: object) -> None:
    import pycos

    values.setdefault("file", pycos.__file__)
    sys.stdout.write(json.dumps(values) + "\n")
    sys.stdout.flush()


def main() -> None:
    kind, port, secret, *rest = sys.argv[1:]
    import pycos
    import pycos.netpycos as netpycos
    from pycos.swarm import Controller

    node = netpycos.Pycos(host="127.0.0.1", secret=secret, discover_peers=False, udp_port=0)
    ctl = Controller(f"127.0.0.1:{port}", timeout=120)
    if kind == "files":
        k, folder, dest = int(rest[0]), rest[1], rest[2]
        start = time.perf_counter()
        with ctl.get_swarm(k) as swarm:
            got = swarm.get_files(folder, dest=dest)
        seconds = time.perf_counter() - start
        assert not got.failed, got.failed
        emit(seconds=seconds, files=len(got))
    elif kind == "put":
        k, src = int(rest[0]), rest[1]
        start = time.perf_counter()
        with ctl.get_swarm(k) as swarm:
            done = swarm.put_files(src, dir=f"up-{time.monotonic_ns()}")
        emit(seconds=time.perf_counter() - start, files=len(done))
    elif kind == "stream":
        n, size, window = int(rest[0]), int(rest[1]), int(rest[2])
        with ctl.get_client() as client:
            client.stream("items", 10_000, size, window=(window, 1 << 30))
            count = [0]

            def take(ident: int, value: bytes) -> None:
                count[0] += 1

            start = time.perf_counter()
            result = client.stream("items", n, size, callback=take, window=(window, 1 << 30))
            seconds = time.perf_counter() - start
        assert result.ended == "end" and count[0] == n, (result, count)
        emit(seconds=seconds, items_per_s=n / seconds, mb_per_s=n * size / seconds / 1e6)
    elif kind == "slow":
        seconds, size = float(rest[0]), int(rest[1])
        deadline = time.monotonic() + seconds

        def slow(ident: int, value: bytes) -> bool:
            time.sleep(0.001)
            return time.monotonic() < deadline

        with ctl.get_client() as client:
            result = client.stream("endless", size, "slow", callback=slow)
        emit(items=result.items, seconds=seconds)
    elif kind == "abort":
        trials, markers = int(rest[0]), rest[1]
        delays = []
        with ctl.get_client() as client:
            for trial in range(trials):
                tag = f"abort-{trial}-{time.monotonic_ns()}"
                marker = os.path.join(markers, tag)
                when = [0.0]

                def stop(ident: int, value: bytes) -> bool:
                    if ident < 200:
                        return True
                    when[0] = time.time()
                    return False

                client.stream("endless", 100, tag, callback=stop)
                for _ in range(2000):
                    if os.path.exists(marker):
                        break
                    time.sleep(0.0005)
                with open(marker) as f:
                    delays.append(float(f.read()) - when[0])
        emit(median_s=statistics.median(delays), max_s=max(delays), trials=trials)
    elif kind == "batch":
        n = int(rest[0])
        with ctl.get_client() as client:
            for _ in range(200):
                client.batch("noop")
            start = time.perf_counter()
            for _ in range(n):
                client.batch("noop")
            seconds = time.perf_counter() - start
        emit(calls_per_s=n / seconds)
    elif kind == "sendfile":
        folder = rest[0]
        loc = netpycos.Location("127.0.0.1", int(port))
        paths = sorted(os.path.join(d, f) for d, _s, fs in os.walk(folder) for f in fs)

        def loop(task=None):
            assert (yield node.peer(loc)) == 0
            start = time.perf_counter()
            for path in paths:
                rel = os.path.relpath(os.path.dirname(path), folder)
                result = yield node.send_file(loc, path, dir=f"loop/{rel}", overwrite=True,
                                              timeout=60)
                assert result in (0, 1), (path, result)
            return time.perf_counter() - start

        seconds = pycos.Task(loop).value()
        emit(seconds=seconds, files=len(paths))
    else:
        raise SystemExit(f"unknown measurement {kind!r}")


if __name__ == "__main__":
    main()
