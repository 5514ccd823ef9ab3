"""How fast K participants on one LAN find each other by broadcast discovery.

``python bench/bench_discovery.py`` (as root, Linux) builds a private LAN of network namespaces
(``tests/integration/netns.py``: a bridge namespace and host namespaces with ``10.200.1.<i>``),
starts K participant processes one after another inside it - all in one host namespace by
default, sharing the UDP port - and measures the time from the moment the last participant
starts (taken inside it, just before it opens its discovery port) until every participant has
seen every other one. Each run uses fresh processes; the table shows the median and the
spread of ``--reps`` runs for K = 4 and K = 8, and the results go to
``bench/results/discovery.json``. Target: median <= 50 ms.

Participants (``--mode``):

* ``discovery``: a bare ``pycos.net.discovery.Discovery`` on a private scheduler; "seen" means
  its ``on_peer`` was called for that peer.
* ``node``: a ``pycos.netpycos.Pycos(host=..., discover_peers=True)`` node; "seen" means the
  peer is Online (TCP connection made and authenticated), so this includes the handshake.
* ``both`` (default): one after the other.

Broadcasts happen only inside the namespaces this script creates, and they are deleted at the
end. Imports the standard library and, in participant processes, ``pycos``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import secrets
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
sys.path.insert(0, str(REPO / "tests" / "integration"))
UDP_PORT = 9705
SECRET = "bench-discovery"
TARGET_S = 0.050
START_TIMEOUT = 20.0
SEE_TIMEOUT = 10.0


# ---------------------------------------------------------------------- participant side
def _say(*words: object) -> None:
    sys.stdout.write(" ".join(str(w) for w in words) + "\n")
    sys.stdout.flush()


def _participant_discovery(name: str, addr: str) -> None:
    import pycos
    from pycos.net.discovery.discovery import Discovery

    sched = pycos.Pycos.private()

    def on_peer(host: str, tcp_port: int, incarnation: bytes, peer: str) -> None:
        _say("seen", peer, repr(time.time()))

    disc = Discovery(sched, secret=SECRET, name=name, incarnation=secrets.token_bytes(16),
                     tcp_port=7000, udp_port=UDP_PORT, bind_addrs=[addr], ext_host=None,
                     on_peer=on_peer)
    t0 = time.time()
    disc.start()
    disc.announce()
    _say("ready", repr(t0))
    sys.stdin.read()  # until the runner closes our input
    disc.close()
    sched.terminate()


def _participant_node(name: str, addr: str) -> None:
    import pycos
    import pycos.netpycos as netpycos

    t0 = time.time()
    node = netpycos.Pycos(host=addr, udp_port=UDP_PORT, discover_peers=True, secret=SECRET,
                          name=name)

    def watch(task: Any = None) -> Any:
        task.set_daemon()
        while True:
            msg = yield task.receive()
            if msg.status == msg.Online:
                _say("seen", msg.name, repr(time.time()))

    node.peer_status(pycos.Task(watch))
    _say("ready", repr(t0))
    sys.stdin.read()
    node.terminate()


# ---------------------------------------------------------------------- runner side
def _one_run(lan: Any, mode: str, k: int, hosts: int) -> float:
    from netns import Proc

    procs = []
    try:
        for i in range(k):
            host = 1 + i % hosts
            argv = lan.exec_argv(host, [sys.executable, __file__, "--participant", mode,
                                        f"p{i}", lan.ipv4(host)])
            proc = Proc(argv, f"p{i}")
            procs.append(proc)
            proc.wait_line("ready", START_TIMEOUT)
        last_start = float(procs[-1].wait_line("ready", 1).split()[1])
        done = 0.0
        for i, proc in enumerate(procs):
            want = {f"p{j}" for j in range(k) if j != i}
            proc.wait_for(lambda ls, w=want: w <= {x.split()[1] for x in ls
                                                   if x.startswith("seen")},
                          SEE_TIMEOUT, f"all of {sorted(want)}")
            first: dict[str, float] = {}
            for line in list(proc.lines):
                if line.startswith("seen"):
                    _, peer, t = line.split()
                    first.setdefault(peer, float(t))
            done = max(done, max(first[p] for p in want))
        return done - last_start
    finally:
        for proc in procs:
            proc.stop()


def _summary(samples: list[float]) -> dict[str, Any]:
    return {"median_s": statistics.median(samples), "min_s": min(samples),
            "max_s": max(samples), "runs_s": samples,
            "meets_target": statistics.median(samples) <= TARGET_S}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--participant", nargs=3, metavar=("MODE", "NAME", "ADDR"),
                    help=argparse.SUPPRESS)
    ap.add_argument("--mode", choices=("discovery", "node", "both"), default="both")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--hosts", type=int, default=1, help="host namespaces to spread over")
    ap.add_argument("--sizes", default="4,8", help="participant counts (default 4,8)")
    ap.add_argument("--out", default=str(BENCH_DIR / "results" / "discovery.json"))
    args = ap.parse_args()
    if args.participant:
        mode, name, addr = args.participant
        (_participant_node if mode == "node" else _participant_discovery)(name, addr)
        return 0

    from netns import Lan, netns_unavailable

    why = netns_unavailable()
    if why:
        print(f"cannot run: {why} (this benchmark needs root on Linux)", file=sys.stderr)
        return 1
    modes = ("discovery", "node") if args.mode == "both" else (args.mode,)
    sizes = [int(s) for s in args.sizes.split(",")]
    results: dict[str, Any] = {}
    with Lan(hosts=args.hosts, ipv6=False) as lan:
        for mode in modes:
            for k in sizes:
                samples = [_one_run(lan, mode, k, args.hosts) for _ in range(args.reps)]
                results[f"{mode}.k{k}"] = _summary(samples)
                s = results[f"{mode}.k{k}"]
                print(f"{mode:9} K={k:<2} median {s['median_s'] * 1000:7.1f} ms   "
                      f"min {s['min_s'] * 1000:6.1f}   max {s['max_s'] * 1000:6.1f}   "
                      f"{'ok' if s['meets_target'] else 'MISSES'} (target <= "
                      f"{TARGET_S * 1000:.0f} ms)", flush=True)
    record = {"date": datetime.datetime.now(datetime.UTC).isoformat(),
              "python": platform.python_version(), "machine": platform.machine(),
              "cpus": os.cpu_count(), "reps": args.reps, "hosts": args.hosts,
              "target_s": TARGET_S, "results": results}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(record, indent=2) + "\n")
    print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    threading.current_thread().name = "bench"
    sys.exit(main())
