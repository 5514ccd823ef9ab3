"""Remote module calls of ``pycos.proxy`` beside RPyC 6 classic and Pyro5, in one run.

``python bench/bench_proxy.py`` runs, alternating within each repetition (every run a fresh
pair of processes, everything on 127.0.0.1):

* ``ours``: ``programs/pycos_proxy.py`` with this repository on ``PYTHONPATH``, the service
  running calls inline (``threads=0``, the setting for trivial calls such as ``math.sqrt``);
* ``ours_pool``: the same with the default pool of 4 threads (no large value);
* ``rpyc``: ``programs/rpyc_call.py`` (``conn.modules.math.sqrt(2.0)``) and ``pyro5``:
  ``programs/pyro5_call.py`` (an ``@expose`` method calling ``math.sqrt``), in
  ``bench/.venv-peers`` (see ``peer_env.py``);
* ``pickle5``: ``programs/pickle5_socket.py``, ``np.ones(2**25)`` (256 MiB) as pickle protocol 5
  over a plain socket, the floor for large values;
* ``rpyc_obtain``: ``programs/rpyc_obtain.py``, ``rpyc.classic.obtain`` of the same array
  (this interpreter, which has numpy, importing RPyC from ``bench/.venv-peers``).

It prints a table of medians, the ratios of EXTRAS §2.6 / issue 13 and whether each is met, and
writes every run, the medians, the ratios and the checks to ``bench/results/proxy.json``
(``--quick``: ``proxy_quick.json``, small sizes, one repetition). Options: ``--reps N``
(default 3), ``--timeout S`` (per run), ``--systems``, ``--peer-python``, ``--output``,
``--fail-on-miss`` (exit status 2 when a target is missed; 1 means a run failed). Imports only
the standard library (and ``_runner`` and the environment helpers beside it).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
PROGRAMS = BENCH_DIR / "programs"
sys.path.insert(0, str(BENCH_DIR))

import _runner  # noqa: E402
from _runner import Plan, Target  # noqa: E402
from peer_env import DEFAULT_PATH, ensure_peer_env  # noqa: E402

SYSTEMS = ("ours", "ours_pool", "rpyc", "pyro5", "pickle5", "rpyc_obtain")
LABELS = {"ours": "ours (threads=0)", "ours_pool": "ours (threads=4)", "rpyc": "RPyC classic",
          "pyro5": "Pyro5", "pickle5": "pickle 5 + socket", "rpyc_obtain": "RPyC obtain"}
ROWS: list[tuple[str, dict[str, str]]] = [
    ("math.sqrt calls/s, plain code", {s: "sqrt_calls_per_s" for s in ("ours", "ours_pool",
                                                                       "rpyc", "pyro5")}),
    ("math.sqrt call p50, us", {s: "sqrt_rtt_p50_us" for s in ("ours", "ours_pool", "rpyc",
                                                               "pyro5")}),
    ("math.sqrt calls/s, one task", {s: "task_sqrt_calls_per_s" for s in ("ours",
                                                                          "ours_pool")}),
    ("calls/s, 16 tasks (peers: 16 threads)", {"ours": "sqrt_calls_per_s_16",
                                               "ours_pool": "sqrt_calls_per_s_16",
                                               "rpyc": "sqrt_calls_per_s_16",
                                               "pyro5": "sqrt_calls_per_s_16"}),
    ("calls/s, 16 threads", {s: "sqrt_calls_per_s_16_threads" for s in ("ours", "ours_pool")}),
    ("256 MiB by value, s (plain)", {s: "big_s" for s in ("ours", "pickle5", "rpyc_obtain")}),
    ("256 MiB by value, s (task)", {"ours": "big_task_s"}),
]


TARGETS = [
    Target("seq_vs_rpyc", "sequential calls/s >= 1.2x RPyC", "sqrt_calls_per_s", "rpyc",
           "sqrt_calls_per_s", 1.2),
    Target("seq_vs_pyro5", "sequential calls/s >= 1.0x Pyro5", "sqrt_calls_per_s", "pyro5",
           "sqrt_calls_per_s", 1.0),
    Target("conc_vs_pyro5", "16 concurrent tasks >= 3x Pyro5 with 16 threads",
           "sqrt_calls_per_s_16", "pyro5", "sqrt_calls_per_s_16", 3.0),
    Target("big_vs_pickle5", "256 MiB by value >= 0.5x pickle-5-over-socket", "big_s",
           "pickle5", "big_s", 0.5, times=True),
    Target("big_vs_rpyc", "256 MiB by value >= 5x RPyC obtain", "big_s", "rpyc_obtain",
           "big_s", 5.0, times=True),
]


def peer_site(python: str) -> str:
    """The ``site-packages`` of the peer environment whose interpreter is ``python``."""
    out = subprocess.run([python, "-E", "-s", "-c",
                          "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                         capture_output=True, text=True, timeout=60, check=True)
    return out.stdout.strip()


def make_plans(args: argparse.Namespace) -> dict[str, Plan]:
    quick = args.quick
    big = str(2**23 if quick else 2**25)
    calls = ["--n", "1000" if quick else "5000"]
    chosen = args.systems
    plans: dict[str, Plan] = {}
    ours = PROGRAMS / "pycos_proxy.py"
    if "ours" in chosen:
        plans["ours"] = Plan(sys.executable, ours, [*calls, "--per-task",
                                                    "200" if quick else "1000",
                                                    "--big", big, "--threads", "0"],
                             pythonpath=str(ROOT), isolated=False, pycos_from=ROOT / "pycos")
    if "ours_pool" in chosen:
        plans["ours_pool"] = Plan(sys.executable, ours, [*calls, "--per-task",
                                                         "200" if quick else "1000",
                                                         "--big", "0", "--threads", "4"],
                                  pythonpath=str(ROOT), isolated=False,
                                  pycos_from=ROOT / "pycos")
    if chosen & {"rpyc", "pyro5", "rpyc_obtain"}:
        peer_python = args.peer_python or str(ensure_peer_env(DEFAULT_PATH))
        if "rpyc" in chosen:
            plans["rpyc"] = Plan(peer_python, PROGRAMS / "rpyc_call.py",
                                 [*calls, "--per-thread", "100" if quick else "500"])
        if "pyro5" in chosen:
            plans["pyro5"] = Plan(peer_python, PROGRAMS / "pyro5_call.py",
                                  [*calls, "--per-thread", "200" if quick else "1000"])
        if "rpyc_obtain" in chosen:
            plans["rpyc_obtain"] = Plan(sys.executable, PROGRAMS / "rpyc_obtain.py",
                                        ["--site", peer_site(peer_python), "--big", big,
                                         "--reps", "1" if quick else "3"])
    if "pickle5" in chosen:
        plans["pickle5"] = Plan(sys.executable, PROGRAMS / "pickle5_socket.py",
                                ["--big", big, "--reps", "1" if quick else "3"])
    for plan in plans.values():
        plan.cwd = str(PROGRAMS)
    return {name: plans[name] for name in SYSTEMS if name in plans}


def fmt(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    _runner.runner_options(p, SYSTEMS)
    p.add_argument("--peer-python", help="an interpreter that has the peer packages")
    _runner.output_options(p)
    args = p.parse_args()
    _runner.check_systems(p, args, SYSTEMS, "proxy")
    return args


def main() -> int:
    args = parse_args()
    reps = 1 if args.quick else args.reps
    load_start = os.getloadavg()
    plans = make_plans(args)
    failures = _runner.run_alternating(plans, reps, args.timeout)
    medians = {name: _runner.medians_of(plan.runs) for name, plan in plans.items()}
    ratios, met = _runner.check_targets(TARGETS, medians, zero_is_missing=True)
    labels = {n: LABELS[n] for n in plans}
    _runner.print_metrics(labels, ROWS, medians, fmt)
    _runner.print_targets(TARGETS, ratios, met)
    _runner.write_record(args.output, _runner.run_record(
        plans, labels, TARGETS, medians, ratios, met, quick=args.quick, reps=reps,
        load_start=load_start, head={"platform": sysconfig.get_platform()}))
    return _runner.exit_status(failures, args.fail_on_miss, met)


if __name__ == "__main__":
    sys.exit(main())
