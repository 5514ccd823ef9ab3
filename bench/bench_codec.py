"""The payload codec beside plain ``pickle``, on the message shapes the benchmarks send.

``python bench/bench_codec.py`` times, in this process, for each shape:

* ``decode``: ``pycos.proto.codec.decode(data)`` (checked, data-only) against
  ``pickle.loads(data)`` of the *very same bytes* (the codec's output is a pickle: plain
  ``pickle.loads`` builds the same value without the checks), and against ``pickle.loads`` of
  ``pickle.dumps(value, 5)`` (what pycos 4.12 sent);
* ``encode``: ``codec.encode(value)`` against ``pickle.dumps(value, 5)``.

Shapes: a small tuple, a small dict, a reference to a task (encoded by a running node on
127.0.0.1, no traffic), 1 MiB of bytes and a numpy array (80 KB of float64; skipped without
numpy). Each measurement is the best of ``--reps`` rounds of ``timeit`` autorange, in
operations per second; the runner prints the table, the ratios and the target check (decode
>= 0.8 x ``pickle.loads`` of the same bytes, every shape) and writes every round to
``bench/results/codec.json``. Imports the standard library and this repository's pycos.
"""

from __future__ import annotations

import argparse
import json
import pickle
import platform
import socket
import statistics
import sys
import timeit
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR.parent))

import pycos  # noqa: E402
import pycos.netpycos as netpycos  # noqa: E402
from pycos.proto.codec import decode, encode  # noqa: E402

TARGET = 0.8


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def shapes() -> dict[str, Any]:
    """name -> value, as the benchmarks send them."""
    out: dict[str, Any] = {
        "tuple3": ("hello", 12345, 2.5),
        "dict": {"op": "update", "args": [1, 2, 3], "n": 3.5, "who": "worker-7"},
        "bytes_1MiB": bytes(range(256)) * 4096,
    }

    def idle(task: Any = None) -> Any:
        yield task.sleep(3600)

    task = pycos.Task(idle)
    out["taskref"] = (task, 17)
    try:
        import numpy
    except ImportError:
        return out
    out["ndarray_80KB"] = numpy.arange(10000, dtype=numpy.float64)
    return out


def rate(fn: Any, reps: int) -> list[float]:
    """Operations per second of ``fn()``, one figure per round."""
    timer = timeit.Timer(fn)
    number, _ = timer.autorange()
    return [number / t for t in timer.repeat(repeat=reps, number=number)]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--reps", type=int, default=7)
    p.add_argument("--output", type=Path, default=BENCH_DIR / "results" / "codec.json")
    args = p.parse_args()
    node = netpycos.Pycos(host="127.0.0.1", udp_port=_free_udp_port(), discover_peers=False,
                          name="bench-codec")
    rows = []
    try:
        for name, value in shapes().items():
            ours = encode(value)
            native = pickle.dumps(value, 5) if name != "taskref" else ours
            runs = {
                "decode": rate(lambda d=ours: decode(d), args.reps),
                "pickle.loads(same bytes)": rate(lambda d=ours: pickle.loads(d), args.reps),
                "pickle.loads(pickle.dumps)": rate(lambda d=native: pickle.loads(d), args.reps),
                "encode": rate(lambda v=value: encode(v), args.reps),
                "pickle.dumps": (rate(lambda v=value: pickle.dumps(v, 5), args.reps)
                                 if name != "taskref" else []),
            }
            best = {k: max(v) if v else None for k, v in runs.items()}
            rows.append({"shape": name, "bytes": len(ours), "runs": runs, "best": best,
                         "median": {k: statistics.median(v) if v else None
                                    for k, v in runs.items()}})
    finally:
        node.terminate()
    print(f"{'shape':14} {'bytes':>8} {'decode/s':>12} {'pickle.loads/s':>15} {'ratio':>6} "
          f"{'encode/s':>12} {'pickle.dumps/s':>15} {'ratio':>6}")
    met = True
    for row in rows:
        b = row["best"]
        dec = b["decode"] / b["pickle.loads(same bytes)"]
        met &= dec >= TARGET
        enc = (f"{b['encode'] / b['pickle.dumps']:6.2f}" if b["pickle.dumps"] else "     -")
        dumps = f"{b['pickle.dumps']:15,.0f}" if b["pickle.dumps"] else f"{'-':>15}"
        print(f"{row['shape']:14} {row['bytes']:8,} {b['decode']:12,.0f} "
              f"{b['pickle.loads(same bytes)']:15,.0f} {dec:6.2f} {b['encode']:12,.0f} "
              f"{dumps} {enc}")
    print(f"target: decode >= {TARGET} x pickle.loads of the same bytes on every shape: "
          f"{'met' if met else 'MISSED'}")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps({
        "python": platform.python_version(), "machine": platform.machine(),
        "target_decode_ratio": TARGET, "met": met, "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
