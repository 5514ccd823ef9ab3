"""RPyC 6 classic ``obtain`` of ``np.ones(N)``: the by-value copy RPyC users make of arrays.

``python rpyc_obtain.py --site DIR`` is the client: ``DIR`` (the ``site-packages`` of
``bench/.venv-peers``) is put first on ``sys.path`` so that this interpreter, which has numpy,
imports the pinned RPyC from there. It starts this same file with ``--role server`` (RPyC's
``ThreadedServer`` with the classic service on a free port of 127.0.0.1, no registry), connects
with ``rpyc.classic.connect``, then ``--reps`` times (after one warm-up) runs
``rpyc.classic.obtain(conn.modules.numpy.ones(N))``: the array is pickled on the server and
the pickle comes back by value. Prints one JSON line: ``big_s`` (median seconds) and
``big_bytes``. Requests time out after ``TIMEOUT`` seconds; the server exits when its standard
input closes and is killed at the end. Imports the standard library, numpy, ``rpyc`` and
``_benchlib``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

TIMEOUT = 300.0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--role", choices=("client", "server"), default="client")
    p.add_argument("--site", required=True, help="site-packages holding rpyc")
    p.add_argument("--big", type=int, default=2**25, help="float64 elements")
    p.add_argument("--reps", type=int, default=3)
    args = p.parse_args()
    sys.path.insert(0, args.site)
    import numpy as np
    import rpyc
    from _benchlib import LOOPBACK, serve_rpyc_classic, serving

    if args.role == "server":
        serve_rpyc_classic()
    with serving(__file__, "--site", args.site, isolated=False) as port:
        conn = rpyc.classic.connect(LOOPBACK, int(port))
        conn._config["sync_request_timeout"] = TIMEOUT

        def fetch() -> float:
            start = time.perf_counter()
            arr = rpyc.classic.obtain(conn.modules.numpy.ones(args.big))
            elapsed = time.perf_counter() - start
            if not isinstance(arr, np.ndarray) or arr.shape != (args.big,):
                raise RuntimeError("wrong array")
            return elapsed

        fetch()
        big_s = statistics.median(fetch() for _ in range(args.reps))
        conn.close()
    print(json.dumps({"big_s": big_s, "big_bytes": args.big * 8, "impl": "rpyc",
                      "version": rpyc.__version__}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
