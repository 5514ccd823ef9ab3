"""Benchmark of ``pycos.swarm`` (EXTRAS §4.7) beside its peers, on 127.0.0.1.

``python bench/bench_swarm.py`` makes the data sets in a temporary directory, starts the
gateways (``programs/swarm_gateway.py``, with a secret and without) and the peers, and runs,
alternating the systems within every repetition and keeping medians:

* files (W1–W3): 2,000 files of 1–64 KiB (log-uniform, about 30 MB, 20 directories) and
  2,000 × 4 KiB, downloaded with ``swarm(4).get_files`` and ``swarm(1)`` (connections
  included) beside ``rsync -a rsync://127.0.0.1:PORT/mod/ dst/`` from an rsync daemon
  (Debian's ``rsync``; its process start included), and once a sequential ``send_file`` loop
  (one connection and handshake per file);
* W4: 4 × 256 MiB with ``swarm(4)`` against the ``socket.sendfile`` limit reference
  (``programs/plain_send_file.py``, one 256 MiB file; MB/s);
* streams: S1 1 GiB as 64 KiB items against the blocking-socket reference
  (``programs/blocking_stream.py``); S2 1,000,000 × 100-byte items against grpcio
  server-streaming (``programs/grpc_stream.py``, sync server, in ``bench/.venv-swarm-peers``,
  200,000 messages, its rate compared); S3 gateway RSS growth under a 1 ms/item consumer with
  an endless producer, and grpcio's in the same scenario; S4 from a callback returning False
  to the remote generator's ``finally``; S5 ``batch()`` calls/s beside Pyro5 and RPyC
  (``programs/pyro5_call.py``, ``rpyc_call.py`` in ``bench/.venv-peers``, the P1 rate).

Every ratio is ours against a peer measured in the same run. Results (every run, medians,
ratios, targets) go to ``bench/results/swarm.json``. Options: ``--reps`` (default 3),
``--quick`` (small sizes, one repetition), ``--s3-seconds`` (default 60), ``--output``.
The peers are never dependencies of pycos: grpcio is installed into its own virtual
environment on first use, rsync comes from apt (``apt-get install rsync``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import venv
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
PROGRAMS = BENCH / "programs"
GRPC_VENV = BENCH / ".venv-swarm-peers"
PEERS_VENV = BENCH / ".venv-peers"
GRPC_PIN = "grpcio==1.85.1"
SECRET = "bench-swarm-secret"
ENV = dict(os.environ, PYTHONPATH=str(REPO), PYTHONUNBUFFERED="1")
sys.path.insert(0, str(BENCH))

import _runner  # noqa: E402


# ---------------------------------------------------------------------- environments
def grpc_python() -> Path | None:
    python = GRPC_VENV / "bin" / "python"
    ok = python.exists() and subprocess.run(
        [str(python), "-c", "import grpc; assert grpc.__version__ == '1.85.1'"],
        capture_output=True, timeout=60).returncode == 0
    if not ok:
        venv.create(GRPC_VENV, with_pip=True, clear=True)
        proc = subprocess.run([str(python), "-m", "pip", "install", "-q", GRPC_PIN],
                              capture_output=True, text=True, timeout=900)
        if proc.returncode != 0:
            print(f"grpcio could not be installed: {proc.stderr[-500:]}", flush=True)
            return None
    return python


def peers_python() -> Path | None:
    python = PEERS_VENV / "bin" / "python"
    if python.exists():
        return python
    proc = subprocess.run([sys.executable, str(BENCH / "peer_env.py")], capture_output=True,
                          text=True, timeout=900)
    return python if proc.returncode == 0 and python.exists() else None


# ---------------------------------------------------------------------- data
def make_files(root: Path, sizes: list[int], dirs: int = 20) -> int:
    rnd = random.Random(2)
    total = 0
    for i, size in enumerate(sizes):
        sub = root / f"dir{i % dirs:02d}"
        sub.mkdir(parents=True, exist_ok=True)
        (sub / f"file{i:04d}.log").write_bytes(rnd.randbytes(size))
        total += size
    return total


def make_data(work: Path, quick: bool) -> dict[str, Any]:
    rnd = random.Random(1)
    n = 400 if quick else 2000
    logu = [int(math.exp(rnd.uniform(math.log(1024), math.log(64 * 1024)))) for _ in range(n)]
    data = {"w1": work / "w1", "w1b": work / "w1b", "w4": work / "w4"}
    sizes = {"w1": make_files(data["w1"], logu), "w1b": make_files(data["w1b"], [4096] * n)}
    data["w4"].mkdir()
    big = (32 if quick else 256) << 20
    block = os.urandom(16 << 20)
    for i in range(4):
        with open(data["w4"] / f"big{i}.bin", "wb") as f:
            for off in range(0, big, len(block)):
                f.write(block[: min(len(block), big - off)])
    os.sync()
    return {"dirs": data, "bytes": sizes, "files": n, "big": big}


# ---------------------------------------------------------------------- processes
class Server:
    """A server process that prints ``ready PORT PID`` and stops when stdin closes."""

    def __init__(self, argv: list[str], env: dict[str, str] | None = None) -> None:
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, text=True, env=env or ENV)
        line = ""
        deadline = time.monotonic() + 60
        while not line.startswith("ready") and time.monotonic() < deadline:
            line = self.proc.stdout.readline()  # type: ignore[union-attr]
            if not line and self.proc.poll() is not None:
                break
        if not line.startswith("ready"):
            self.stop()
            raise RuntimeError(f"{argv} did not start")
        _, port, pid = line.split()
        self.port, self.pid = int(port), int(pid)

    def rss(self) -> int:
        with open(f"/proc/{self.pid}/statm", "rb") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    def stop(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def run_json(argv: list[str], timeout: float = 600, env: dict[str, str] | None = None,
             cwd: Path | None = None) -> dict[str, Any]:
    return _runner.run_json(argv, env=env or ENV, cwd=cwd, timeout=timeout)


def client(kind: str, port: int, *args: Any, secret: str = SECRET) -> dict[str, Any]:
    record = run_json([sys.executable, str(PROGRAMS / "swarm_client.py"), kind, str(port),
                       secret, *map(str, args)])
    if REPO not in Path(record["file"]).resolve().parents:
        raise RuntimeError(f"ours imported pycos from {record['file']}, not {REPO}")
    return record


def timed(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, check=True, capture_output=True, timeout=600)
    return time.perf_counter() - start


def rsync_daemon(work: Path, modules: dict[str, Path]) -> Server | None:
    exe = shutil.which("rsync")
    if exe is None:
        print("rsync is not installed (apt-get install rsync): W1 has no peer", flush=True)
        return None
    conf = work / "rsyncd.conf"
    lines = ["use chroot = false", "read only = true", f"pid file = {work}/rsyncd.pid"]
    for name, path in modules.items():
        lines += [f"[{name}]", f"path = {path}"]
    conf.write_text("\n".join(lines) + "\n")
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([exe, "--daemon", "--no-detach", f"--config={conf}",
                             f"--port={port}", "--address=127.0.0.1"],
                            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    for _ in range(200):
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.02)
    server = Server.__new__(Server)
    server.proc, server.port, server.pid = proc, port, proc.pid
    return server


# ---------------------------------------------------------------------- measurements
def fresh(work: Path) -> Path:
    return Path(tempfile.mkdtemp(prefix="dst-", dir=work))


def files_round(work: Path, gw: Server, rsyncd: Server | None, name: str, rep: int,
                runs: dict[str, list[float]]) -> None:
    systems = ["swarm4", "swarm1", "rsync"] if rsyncd else ["swarm4", "swarm1"]
    order = systems[rep % len(systems):] + systems[:rep % len(systems)]
    for system in order:
        dst = fresh(work)
        try:
            if system == "rsync":
                assert rsyncd is not None
                seconds = timed(["rsync", "-a", f"rsync://127.0.0.1:{rsyncd.port}/{name}/",
                                 f"{dst}/"])
            else:
                seconds = client("files", gw.port, 4 if system == "swarm4" else 1, name,
                                 dst)["seconds"]
            runs.setdefault(f"{name}.{system}", []).append(seconds)
            print(f"  {name} {system:7s} {seconds:7.3f} s", flush=True)
        finally:
            shutil.rmtree(dst, ignore_errors=True)


def w4_round(work: Path, gw: Server, data: dict[str, Any], runs: dict[str, list[float]],
             rep: int) -> None:
    """Ours: 4 files over swarm(4). The reference: ``plain_send_file.py`` with one of them
    (``sendfile``, as ``bench_files.py``), and with all four one after the other
    (``sendfile_4``: the same bytes written to the same disk, whose write-back throttles a
    gigabyte where it does not throttle 256 MiB)."""
    systems = ["ours", "sendfile", "sendfile_4"]
    for system in systems[rep % 3:] + systems[:rep % 3]:
        dst = fresh(work)
        try:
            if system == "ours":
                seconds = client("files", gw.port, 4, "w4", dst)["seconds"]
                rate = 4 * data["big"] / seconds / 1e6
            else:
                count = 1 if system == "sendfile" else 4
                seconds = 0.0
                for i in range(count):
                    r = run_json([sys.executable, str(PROGRAMS / "plain_send_file.py"),
                                  str(data["dirs"]["w4"] / f"big{i}.bin"), str(dst)])
                    seconds += data["big"] / (r["mb_per_s"] * 1e6)
                rate = count * data["big"] / seconds / 1e6
            runs.setdefault(f"w4.{system}", []).append(rate)
            print(f"  w4 {system:10s} {rate:8.1f} MB/s", flush=True)
        finally:
            shutil.rmtree(dst, ignore_errors=True)
        os.sync()  # each starts with the disk's write-back done


def rss_growth(server: Server, consumer: list[str], seconds: float,
               env: dict[str, str] | None = None) -> dict[str, Any]:
    """Start ``consumer``, sample the server's RSS after 2 s and at the end."""
    samples: list[tuple[float, int]] = []
    proc = subprocess.Popen(consumer, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            text=True, env=env or ENV)
    start = time.monotonic()
    while proc.poll() is None and time.monotonic() - start < seconds + 60:
        samples.append((time.monotonic() - start, server.rss()))
        time.sleep(0.5)
    out, _ = proc.communicate(timeout=30)
    record = json.loads(out.strip().splitlines()[-1])
    base = next((rss for t, rss in samples if t >= 2.0), samples[0][1])
    record.update(rss_start=base, rss_end=samples[-1][1], rss_max=max(r for _, r in samples),
                  growth=samples[-1][1] - base, growth_max=max(r for _, r in samples) - base)
    return record


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--s3-seconds", type=float, default=60.0)
    parser.add_argument("--output", type=Path, default=BENCH / "results" / "swarm.json")
    args = parser.parse_args()
    if args.quick:
        args.reps, args.s3_seconds = 1, 5.0
    work = Path(tempfile.mkdtemp(prefix="pycos-bench-swarm-"))
    runs: dict[str, list[float]] = {}
    extra: dict[str, Any] = {"loadavg_start": os.getloadavg()}
    servers: list[Server] = []
    try:
        data = make_data(work, args.quick)
        d = data["dirs"]
        markers = work / "markers"
        markers.mkdir()
        gw = Server([sys.executable, str(PROGRAMS / "swarm_gateway.py"), "--secret", SECRET,
                     "--dest", str(work / "gw-dest"), "--marker-dir", str(markers),
                     *[f"--export={k}={v}" for k, v in d.items()]])
        servers.append(gw)
        plain = Server([sys.executable, str(PROGRAMS / "swarm_gateway.py"), "--dest",
                        str(work / "gw-dest2")])
        servers.append(plain)
        rsyncd = rsync_daemon(work, {"w1": d["w1"], "w1b": d["w1b"]})
        if rsyncd:
            servers.append(rsyncd)
        gpy = grpc_python()
        grpc_server = Server([str(gpy), str(PROGRAMS / "grpc_stream.py"), "--role", "server"],
                             env=dict(os.environ)) if gpy else None
        if grpc_server:
            servers.append(grpc_server)

        print("warm-up", flush=True)
        files_round(work, gw, rsyncd, "w1", 0, {})
        for rep in range(args.reps):
            print(f"repetition {rep + 1}/{args.reps}", flush=True)
            for name in ("w1", "w1b"):
                files_round(work, gw, rsyncd, name, rep, runs)
            w4_round(work, gw, data, runs, rep)
            n1, n2 = (2048, 100_000) if args.quick else (16384, 1_000_000)
            for label, port, secret in (("s1.ours", gw.port, SECRET),
                                        ("s1.ours_no_secret", plain.port, "")):
                r = client("stream", port, n1, 65536, 64, secret=secret)
                runs.setdefault(label, []).append(r["mb_per_s"])
                print(f"  {label} {r['mb_per_s']:8.1f} MB/s", flush=True)
            ref = run_json([sys.executable, str(PROGRAMS / "blocking_stream.py"), "--size",
                            str(n1 * 65536), "--rounds", "1"], cwd=PROGRAMS)
            runs.setdefault("s1.blocking", []).append(ref["metrics"]["mb_per_s"])
            print(f"  s1.blocking {ref['metrics']['mb_per_s']:8.1f} MB/s", flush=True)
            for label, port, secret in (("s2.ours", gw.port, SECRET),
                                        ("s2.ours_no_secret", plain.port, "")):
                r = client("stream", port, n2, 100, 4096, secret=secret)
                runs.setdefault(label, []).append(r["items_per_s"])
                print(f"  {label} {r['items_per_s']:10.0f} items/s", flush=True)
                r = client("stream", port, n2, 100, 64, secret=secret)
                runs.setdefault(label + "_window64", []).append(r["items_per_s"])
                print(f"  {label}_window64 {r['items_per_s']:10.0f} items/s", flush=True)
            if grpc_server and gpy:
                r = run_json([str(gpy), str(PROGRAMS / "grpc_stream.py"), "--role", "client",
                              "--port", str(grpc_server.port), "--n",
                              str(max(n2 // 5, 20_000))], env=dict(os.environ))
                runs.setdefault("s2.grpc", []).append(r["items_per_s"])
                print(f"  s2.grpc {r['items_per_s']:10.0f} items/s", flush=True)
            r = client("abort", gw.port, 20, markers)
            runs.setdefault("s4.ours_ms", []).append(r["median_s"] * 1000)
            print(f"  s4 abort->finally {r['median_s'] * 1000:.2f} ms (max "
                  f"{r['max_s'] * 1000:.2f})", flush=True)
            r = client("batch", gw.port, 5000)
            runs.setdefault("s5.ours", []).append(r["calls_per_s"])
            print(f"  s5 batch {r['calls_per_s']:8.0f} calls/s", flush=True)
            ppy = peers_python()
            if ppy:
                for peer in ("pyro5", "rpyc"):
                    r = run_json([str(ppy), "-E", "-s", str(PROGRAMS / f"{peer}_call.py"),
                                  "--n", "5000", "--per-thread", "100"], env=dict(os.environ),
                                 cwd=PROGRAMS)
                    rate = r["sqrt_calls_per_s"]  # a trivial remote function, as noop()
                    runs.setdefault(f"s5.{peer}", []).append(rate)
                    print(f"  s5 {peer} {rate:8.0f} calls/s", flush=True)
        print("W2: the send_file loop", flush=True)
        for _ in range(1 if args.quick else 2):
            r = client("sendfile", gw.port, d["w1"])
            runs.setdefault("w1.sendfile_loop", []).append(r["seconds"])
            print(f"  w1 sendfile loop {r['seconds']:.2f} s", flush=True)
        print(f"S3: {args.s3_seconds:.0f} s under a 1 ms/item consumer", flush=True)
        s3 = {"ours": rss_growth(gw, [sys.executable, str(PROGRAMS / "swarm_client.py"), "slow",
                                      str(gw.port), SECRET, str(args.s3_seconds), "65536"],
                                 args.s3_seconds)}
        if grpc_server and gpy:
            s3["grpc"] = rss_growth(grpc_server, [str(gpy), str(PROGRAMS / "grpc_stream.py"),
                                                  "--role", "slow", "--port",
                                                  str(grpc_server.port), "--seconds",
                                                  str(args.s3_seconds), "--size", "65536"],
                                    args.s3_seconds, env=dict(os.environ))
        for name, rec in s3.items():
            print(f"  s3 {name}: RSS growth {rec['growth'] / 2**20:.1f} MiB (max "
                  f"{rec['growth_max'] / 2**20:.1f}), {rec['items']} items", flush=True)
        extra["s3"] = s3
        extra["data"] = {"files": data["files"], "bytes": data["bytes"], "big": data["big"]}
    finally:
        for server in servers:
            server.stop()
        shutil.rmtree(work, ignore_errors=True)
    extra["loadavg_end"] = os.getloadavg()
    write(args, runs, extra)
    return 0


def write(args: argparse.Namespace, runs: dict[str, list[float]], extra: dict[str, Any]
          ) -> None:
    med = {k: statistics.median(v) for k, v in runs.items()}
    checks: dict[str, Any] = {}

    def check(name: str, value: float | None, target: str, met: bool | None) -> None:
        checks[name] = {"value": value, "target": target, "met": met}

    def ratio(a: str, b: str) -> float | None:
        return med[a] / med[b] if a in med and b in med else None

    w1 = ratio("w1.swarm4", "w1.rsync")
    check("W1 swarm(4) / rsync daemon (time)", w1, "<= 1.0 (stretch 0.7)",
          None if w1 is None else w1 <= 1.0)
    w1b = ratio("w1b.swarm4", "w1b.rsync")
    check("W1b 2,000 x 4 KiB: swarm(4) / rsync daemon (time)", w1b, "reported", None)
    w2 = ratio("w1.swarm4", "w1.sendfile_loop")
    check("W2 swarm(4) / send_file loop (time)", w2, "<= 0.1", None if w2 is None else w2 <= 0.1)
    w3 = ratio("w1.swarm4", "w1.swarm1")
    check("W3 swarm(4) / swarm(1) (time)", w3, "<= 0.7", None if w3 is None else w3 <= 0.7)
    w4 = ratio("w4.ours", "w4.sendfile")
    check("W4 4 x 256 MiB swarm(4) / socket.sendfile of 256 MiB (MB/s)", w4, ">= 0.9",
          None if w4 is None else w4 >= 0.9)
    w4s = ratio("w4.ours", "w4.sendfile_4")
    check("W4 same bytes: swarm(4) / socket.sendfile of the 4 files in turn (MB/s)", w4s,
          ">= 0.9", None if w4s is None else w4s >= 0.9)
    s1 = ratio("s1.ours", "s1.blocking")
    check("S1 64 KiB items / blocking socket (MB/s)", s1, ">= 0.8",
          None if s1 is None else s1 >= 0.8)
    s1n = ratio("s1.ours_no_secret", "s1.blocking")
    check("S1 without a secret (no MACs) / blocking socket", s1n, "reported", None)
    s2 = med.get("s2.ours")
    check("S2 100-byte items/s (window 4096)", s2, ">= 300,000", None if s2 is None else
          s2 >= 300_000)
    s2g = ratio("s2.ours", "s2.grpc")
    check("S2 / grpcio server-streaming", s2g, ">= 3", None if s2g is None else s2g >= 3)
    s3 = extra.get("s3", {}).get("ours")
    growth = s3["growth"] / 2**20 if s3 else None
    check("S3 gateway RSS growth, MiB", growth, "<= 16", None if growth is None else
          growth <= 16)
    s4 = med.get("s4.ours_ms")
    check("S4 abort -> remote finally, ms", s4, "<= 50", None if s4 is None else s4 <= 50)
    s5 = ratio("s5.ours", "s5.rpyc")
    s5p = ratio("s5.ours", "s5.pyro5")
    check("S5 batch calls/s / RPyC", s5, ">= 1.2 (P1)", None if s5 is None else s5 >= 1.2)
    check("S5 batch calls/s / Pyro5", s5p, ">= 0.8 (P1)", None if s5p is None else s5p >= 0.8)
    result = {"when": time.strftime("%Y-%m-%d %H:%M:%S"), "python": sys.version.split()[0],
              "cpus": os.cpu_count(), "reps": args.reps, "quick": args.quick,
              "medians": med, "checks": checks, "runs": runs, **extra}
    _runner.write_record(args.output, result, announce=False)
    print(json.dumps(checks, indent=1))


if __name__ == "__main__":
    threading.stack_size(0)
    sys.exit(main())
