"""Benchmark of ``send_file``: ours, pycos 4.12.2, and the ``socket.sendfile`` limit.

``python bench/bench_files.py`` writes one file of random bytes (256 MiB by default) into a
temporary directory and moves it between two processes on 127.0.0.1 four ways, alternating
them in every repetition:

* ``ours``: ``programs/pycos_send_file.py`` with this repository's pycos (two nodes; one
  ``yield node.send_file(loc, file)``, timed from the call until it returns);
* ``pycos-4.12.2``: the very same program run by the interpreter of ``bench/.venv-ref``
  (``bench/reference_env.py`` creates it);
* ``socket.sendfile``: ``programs/plain_send_file.py``, a bare ``socket.sendfile`` to a receiver
  that writes the bytes into a file (the limit reference: no authentication, no temporary file,
  no checks);
* ``sendfile+hmac``: the same with ``--hmac``, the limit *with integrity*: HMAC-SHA256 of the
  content computed by the sender (on a second thread) and checked by the receiver, as
  ``send_file`` authenticates a file's bytes (SPEC §3.3a).

Each run is a fresh process pair and writes into a fresh directory (removed afterwards); one
uncounted round warms the page cache and the interpreters' caches first. The medians, the
ratios and every run go to ``bench/results/files.json``. Target: ours >= 0.9 x the
``socket.sendfile`` reference (0.7 x for a transfer with integrity, issue 9); the ratio to
``sendfile+hmac`` says how much of the gap the two hash passes explain. Options:
``--size-mib``, ``--reps``, ``--ref-python``, ``--quick`` (32 MiB, 3 repetitions),
``--output``. Imports only the standard library.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
PROGRAMS = BENCH_DIR / "programs"
sys.path.insert(0, str(BENCH_DIR))

from reference_env import ensure_reference_env, isolated_env  # noqa: E402

TARGET = 0.9
IMPLS = ("ours", "pycos-4.12.2", "socket.sendfile", "sendfile+hmac")


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_source(directory: Path, size: int) -> Path:
    path = directory / "payload.bin"
    block = bytearray(os.urandom(min(size, 16 << 20)))
    with open(path, "wb") as f:
        written = 0
        while written < size:
            block[:8] = written.to_bytes(8, "little")  # every block differs
            n = min(len(block), size - written)
            f.write(block[:n])
            written += n
        f.flush()
        os.fsync(f.fileno())  # its write-back would otherwise compete with the first runs
    return path


def command(impl: str, src: Path, dest: Path, ref_python: str) -> tuple[list[str], dict[str, str]]:
    if impl in ("socket.sendfile", "sendfile+hmac"):
        mac = ["--hmac"] if impl == "sendfile+hmac" else []
        return [sys.executable, str(PROGRAMS / "plain_send_file.py"), str(src), str(dest),
                *mac], dict(os.environ)
    argv = [str(PROGRAMS / "pycos_send_file.py"), str(src), str(dest), "--udp-port",
            str(free_udp_port())]
    if impl == "ours":
        env = dict(os.environ, PYTHONPATH=str(REPO))
        return [sys.executable, *argv], env
    return [ref_python, "-E", "-s", *argv], isolated_env()


def run_one(impl: str, src: Path, workdir: Path, ref_python: str, timeout: float) -> dict[str, Any]:
    dest = Path(tempfile.mkdtemp(prefix="dest-", dir=workdir))
    try:
        argv, env = command(impl, src, dest, ref_python)
        proc = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=str(PROGRAMS),
                              timeout=timeout)
        if proc.returncode != 0:
            raise RuntimeError(f"{impl} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
        record = json.loads(proc.stdout.strip().splitlines()[-1])
    finally:
        shutil.rmtree(dest, ignore_errors=True)
    where = Path(record.get("file") or ".").resolve()
    if impl == "ours" and REPO not in where.parents:
        raise RuntimeError(f"'ours' imported pycos from {where}, not from {REPO}")
    if impl == "pycos-4.12.2" and (REPO / "pycos") in where.parents:
        raise RuntimeError("the reference interpreter imported this repository's pycos")
    return record


def summarize(runs: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    med = {impl: statistics.median(r["mb_per_s"] for r in rs) for impl, rs in runs.items()}
    ratio = med["ours"] / med["socket.sendfile"]
    return {
        "median_mb_per_s": med,
        "ours_vs_sendfile": ratio,
        "ours_vs_pycos_4_12_2": med["ours"] / med["pycos-4.12.2"],
        "pycos_4_12_2_vs_sendfile": med["pycos-4.12.2"] / med["socket.sendfile"],
        "ours_vs_sendfile_hmac": med["ours"] / med["sendfile+hmac"],
        "sendfile_hmac_vs_sendfile": med["sendfile+hmac"] / med["socket.sendfile"],
        "target": f"ours >= {TARGET} x socket.sendfile",
        "met": ratio >= TARGET,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=256)
    parser.add_argument("--reps", type=int, default=11)
    parser.add_argument("--ref-python", help="an interpreter with pycos 4.12.2 installed")
    parser.add_argument("--quick", action="store_true", help="32 MiB, 3 repetitions")
    parser.add_argument("--timeout", type=float, default=180.0, help="per run, seconds")
    parser.add_argument("--output", type=Path, default=BENCH_DIR / "results" / "files.json")
    args = parser.parse_args()
    if args.quick:
        args.size_mib, args.reps = 32, 3
    ref_python = args.ref_python or str(ensure_reference_env())
    workdir = Path(tempfile.mkdtemp(prefix="pycos-bench-files-"))
    runs: dict[str, list[dict[str, Any]]] = {impl: [] for impl in IMPLS}
    try:
        src = make_source(workdir, args.size_mib << 20)
        for impl in IMPLS:  # one warm-up round, not counted
            run_one(impl, src, workdir, ref_python, args.timeout)
        for rep in range(args.reps):
            order = IMPLS[rep % len(IMPLS):] + IMPLS[:rep % len(IMPLS)]  # each first in turn
            for impl in order:
                record = run_one(impl, src, workdir, ref_python, args.timeout)
                runs[impl].append(record)
                print(f"rep {rep + 1}/{args.reps} {impl:16s} {record['mb_per_s']:9.1f} MB/s",
                      flush=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    summary = summarize(runs)
    print()
    print(f"{'implementation':18s} {'median MB/s':>12s}")
    for impl in IMPLS:
        print(f"{impl:18s} {summary['median_mb_per_s'][impl]:12.1f}")
    print(f"ours / socket.sendfile = {summary['ours_vs_sendfile']:.2f}x "
          f"(target >= {TARGET}x: {'met' if summary['met'] else 'NOT met'}); "
          f"ours / pycos 4.12.2 = {summary['ours_vs_pycos_4_12_2']:.2f}x; "
          f"pycos 4.12.2 / socket.sendfile = {summary['pycos_4_12_2_vs_sendfile']:.2f}x")
    print(f"with integrity: ours / sendfile+hmac = {summary['ours_vs_sendfile_hmac']:.2f}x; "
          f"sendfile+hmac / socket.sendfile = {summary['sendfile_hmac_vs_sendfile']:.2f}x "
          "(two HMAC-SHA256 passes, one per end)")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps({
        "when": time.strftime("%Y-%m-%d %H:%M:%S"), "python": sys.version.split()[0],
        "size_bytes": args.size_mib << 20, "reps": args.reps, "summary": summary,
        "runs": runs}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
