"""Code shipping, scatter/gather and the console beside their peers (EXTRAS §5.7).

``python bench/bench_ship.py [--reps N]`` runs ``programs/ship_ours.py`` (this repository, on
``PYTHONPATH``) and ``programs/ship_peers.py`` (multiprocessing.Pool, Dask ``LocalCluster``,
ipyparallel, jupyter-client → ipykernel) in ``bench/.venv-ship``, alternating, each repetition a
fresh process; keeps the medians of each program's own medians, computes the ratios against
the targets and writes ``results/ship.json``. The peers' environment is built on first use
with pip from the package index (pinned versions below); it is never a dependency of pycos.
Everything stays on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import venv
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))

from _runner import medians_of, run_json, write_record  # noqa: E402

VENV = BENCH / ".venv-ship"
PINS = ["dask==2026.8.0", "distributed==2026.8.0", "ipyparallel==9.2.0", "ipykernel==7.4.0",
        "jupyter-client==8.10.0", "manhole==1.8.1"]


def peer_python() -> Path:
    exe = VENV / "bin" / "python"
    if not exe.exists():
        venv.create(VENV, with_pip=True)
    check = subprocess.run([str(exe), "-c", "import dask, distributed, ipyparallel, "
                            "ipykernel, jupyter_client"], capture_output=True)
    if check.returncode != 0:
        subprocess.run([str(exe), "-m", "pip", "install", "-q", *PINS], check=True)
    return exe


def run(argv: list[str], env: dict[str, str], timeout: float) -> dict[str, float]:
    return run_json(argv, env=env, cwd=BENCH / "programs", timeout=timeout)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=600)
    args = parser.parse_args()
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    peer_env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    peers_exe = peer_python()
    ours_runs, peer_runs = [], []
    for _ in range(args.reps):
        ours_runs.append(run([sys.executable, "ship_ours.py"], env, args.timeout))
        peer_runs.append(run([str(peers_exe), "ship_peers.py"], peer_env, args.timeout))

    ours, peers = medians_of(ours_runs), medians_of(peer_runs)
    ratios = {
        "c3_vs_dask": ours["c3_tiny_map_s"] / peers["c3_dask_s"],
        "c3_vs_ipyparallel": ours["c3_tiny_map_s"] / peers["c3_ipyparallel_s"],
        "c3_vs_pool4": ours["c3_tiny_map_s"] / peers["c3_pool4_s"],
        "c4_efficiency_vs_pool2": peers["c4_pool2_s"] / ours["c4_cpu_map_s"],
        "c1_run_vs_ipykernel": ours["c1_run_p50_ms"] / peers["c1_ipykernel_execute_p50_ms"],
        "c1_complete_vs_ipykernel": (ours["c1_complete_p50_ms"] /
                                     peers["c1_ipykernel_complete_p50_ms"]),
        "c2_later_calls_vs_rci": ours["c2_ship_calls_per_s_task"] / ours["c2_rci_calls_per_s"],
    }
    targets = {
        "c3_vs_dask": ratios["c3_vs_dask"] <= 0.2,
        "c3_vs_ipyparallel": ratios["c3_vs_ipyparallel"] <= 0.2,
        "c3_vs_pool4": ratios["c3_vs_pool4"] <= 2.0,
        "c4_efficiency_vs_pool2": ratios["c4_efficiency_vs_pool2"] >= 0.8,
        "c1_run_vs_ipykernel": ratios["c1_run_vs_ipykernel"] <= 1.0,
        "c1_complete_vs_ipykernel": ratios["c1_complete_vs_ipykernel"] <= 1.0,
        "c2_first_run_ms": ours["c2_first_run_ms"] <= 20.0,
        "c2_later_calls_vs_rci": ratios["c2_later_calls_vs_rci"] >= 0.9,
        "c5_execute_4_nodes_ms": ours["c5_execute_4_nodes_ms"] <= 5.0,
    }
    result = {"reps": args.reps, "ours": ours, "peers": peers, "ratios": ratios,
              "targets_met": targets, "runs": {"ours": ours_runs, "peers": peer_runs},
              "python": sys.version.split()[0], "cpus": os.cpu_count()}
    write_record(BENCH / "results" / "ship.json", result, announce=False, indent=2)
    for key, value in ratios.items():
        print(f"{key:28s} {value:10.4f}  {'met' if targets[key] else 'MISSED'}")
    for key in ("c2_first_run_ms", "c5_execute_4_nodes_ms"):
        print(f"{key:28s} {ours[key]:10.3f}  {'met' if targets[key] else 'MISSED'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
