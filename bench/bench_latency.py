"""Round trips, deliver and remote calls of pycos beside peer systems, in one run.

``python bench/bench_latency.py`` runs, alternating within each repetition (every run a fresh
subprocess, everything on 127.0.0.1):

* ``ours``: ``programs/remote_bench.py`` with this repository on ``PYTHONPATH``, with the sizes
  and the command line ``bench_remote.py`` gives it;
* ``today``: the same program with the package as committed at ``--baseline-rev`` (default
  the last commit before the latency work), unpacked with ``git archive`` into a temporary
  directory: the "not lower than today" bar measured in the same run;
* ``ref``: the same program on pycos 4.12.2 (``bench/.venv-ref``, see ``reference_env.py``),
  with ``bench_remote.py``'s reference sizes;
* ``pyro5``, ``zmq``, ``rpyc``: ``programs/pyro5_call.py``, ``zmq_reqrep.py`` and
  ``rpyc_call.py`` in ``bench/.venv-peers`` (see ``peer_env.py``);
* ``blocking``: ``programs/blocking_pingpong.py``, plain blocking sockets, the limit reference.

It prints one table of medians, then the ratios the latency targets name and whether each is
met, and writes every run, the medians, the ratios and the checks to
``bench/results/latency.json`` (``--quick``: ``latency_quick.json``).
Options: ``--reps N`` (default 3), ``--quick``, ``--timeout S`` (per run), ``--systems``,
``--baseline-rev REV`` (``none``: compare ``send`` with ``--send-baseline`` instead),
``--ref-python`` / ``--peer-python``, ``--output``, ``--fail-on-miss`` (exit status 2 when a
target is missed; 1 means a run failed). Imports only the standard library (and, beside it,
``_runner``, ``bench_remote``'s sizes and the environment helpers).
"""

from __future__ import annotations

import argparse
import io
import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
PROGRAMS = BENCH_DIR / "programs"
sys.path.insert(0, str(BENCH_DIR))

import _runner  # noqa: E402
from _runner import Plan, Target  # noqa: E402
from bench_remote import remote_sizes  # noqa: E402
from peer_env import ensure_peer_env  # noqa: E402
from reference_env import ensure_reference_env  # noqa: E402

#: The last commit before the latency work; its package is "today" for the send target.
BASELINE_REV = "6c768f3"
#: Remote send msgs/s of that package, median of ``bench_remote.py --reps 3`` (results/remote.json);
#: used only when the baseline is not run (``--baseline-rev none``).
RECORDED_SEND = 545_122.0

SYSTEMS = ("ours", "today", "ref", "pyro5", "zmq", "blocking", "rpyc")
LABELS = {"ours": "ours", "today": "today", "ref": "pycos 4.12.2", "pyro5": "Pyro5",
          "zmq": "pyzmq REQ/REP", "blocking": "blocking socket", "rpyc": "RPyC classic"}

# (row label, {system: key in that system's JSON line})
ROWS: list[tuple[str, dict[str, str]]] = [
    ("round trip p50, us", {s: "rtt_p50_us" for s in ("ours", "today", "ref", "pyro5", "zmq",
                                                      "blocking")}),
    ("round trip p99, us", {s: "rtt_p99_us" for s in ("ours", "today", "ref", "pyro5", "zmq",
                                                      "blocking")}),
    ("round trips/s", {"zmq": "round_trips_per_s", "blocking": "round_trips_per_s"}),
    ("deliver/s", {s: "deliver_per_s" for s in ("ours", "today", "ref")}),
    ("RCI (Pyro5: method) calls/s", {"ours": "rci_calls_per_s", "today": "rci_calls_per_s",
                                     "ref": "rci_calls_per_s", "pyro5": "calls_per_s"}),
    ("RCI hangs", {s: "rci_hangs" for s in ("ours", "today", "ref")}),
    ("RCI calls/s, 20 tasks", {s: "rci_calls_per_s_concurrent" for s in ("ours", "today", "ref")}),
    ("math.sqrt calls/s", {"pyro5": "sqrt_calls_per_s", "rpyc": "sqrt_calls_per_s"}),
    ("math.sqrt call p50, us", {"pyro5": "sqrt_rtt_p50_us", "rpyc": "sqrt_rtt_p50_us"}),
    ("math.sqrt calls/s, 16 threads", {"pyro5": "sqrt_calls_per_s_16",
                                       "rpyc": "sqrt_calls_per_s_16"}),
    ("send msgs/s", {s: "send_msgs_per_s" for s in ("ours", "today", "ref")}),
]


TARGETS = [
    Target("rtt_p50_vs_blocking", "round trip p50 <= 2.0x blocking socket", "rtt_p50_us",
           "blocking", "rtt_p50_us", 2.0, "<="),
    Target("rtt_p50_vs_zmq", "round trip p50 <= pyzmq REQ/REP", "rtt_p50_us", "zmq",
           "rtt_p50_us", 1.0, "<="),
    Target("deliver_vs_ref", "deliver/s >= 3x pycos 4.12.2", "deliver_per_s", "ref",
           "deliver_per_s", 3.0),
    Target("rci_vs_ref", "RCI calls/s >= 5x pycos 4.12.2", "rci_calls_per_s", "ref",
           "rci_calls_per_s", 5.0),
    Target("rci_vs_pyro5", "RCI calls/s >= 1.5x Pyro5 method calls/s", "rci_calls_per_s",
           "pyro5", "calls_per_s", 1.5),
    Target("send_vs_today", "send msgs/s >= today", "send_msgs_per_s", "today",
           "send_msgs_per_s", 1.0),
]


def unpack_package(rev: str, into: Path) -> Path:
    """Write the ``pycos`` package as committed at ``rev`` under ``into``; its directory.

    Reads the repository only (``git archive``); the index and the work tree are untouched.
    """
    proc = subprocess.run(["git", "-C", str(ROOT), "archive", "--format=tar", rev, "pycos"],
                          capture_output=True, timeout=120)
    if proc.returncode != 0:
        raise RuntimeError(f"git archive {rev} failed: {proc.stderr.decode()[-500:]}")
    with tarfile.open(fileobj=io.BytesIO(proc.stdout)) as tar:
        if hasattr(tarfile, "data_filter"):
            tar.extractall(into, filter="data")
        else:
            tar.extractall(into)
    return into / "pycos"


def make_plans(args: argparse.Namespace, scratch: Path) -> dict[str, Plan]:
    scale = 10 if args.quick else 1
    remote = PROGRAMS / "remote_bench.py"
    chosen = args.systems
    plans: dict[str, Plan] = {}
    if "ours" in chosen:
        plans["ours"] = Plan(sys.executable, remote, remote_sizes(scale, False, 0),
                             pythonpath=str(ROOT), isolated=False, pycos_from=ROOT / "pycos")
    if "today" in chosen:
        try:
            package = unpack_package(args.baseline_rev, scratch)
        except (RuntimeError, OSError, subprocess.SubprocessError, tarfile.TarError) as error:
            print(f"baseline not run ({error}); send is compared with {args.send_baseline:,.0f}"
                  " msgs/s", file=sys.stderr)
        else:
            plans["today"] = Plan(sys.executable, remote, remote_sizes(scale, False, 0),
                                  pythonpath=str(scratch), isolated=False, pycos_from=package)
    if "ref" in chosen:
        ref_python = args.ref_python or str(ensure_reference_env())
        plans["ref"] = Plan(ref_python, remote, remote_sizes(scale, True, args.ref_rci_timeout))
    if chosen & {"pyro5", "zmq", "rpyc"}:
        peer_python = args.peer_python or str(ensure_peer_env())
        if "pyro5" in chosen:
            plans["pyro5"] = Plan(peer_python, PROGRAMS / "pyro5_call.py",
                                  ["--n", str(5000 // scale), "--per-thread",
                                   str(1000 // scale)])
        if "zmq" in chosen:
            plans["zmq"] = Plan(peer_python, PROGRAMS / "zmq_reqrep.py",
                                ["--n", str(20_000 // scale)])
        if "rpyc" in chosen:
            plans["rpyc"] = Plan(peer_python, PROGRAMS / "rpyc_call.py",
                                 ["--n", str(5000 // scale), "--per-thread", str(500 // scale)])
    if "blocking" in chosen:
        plans["blocking"] = Plan(sys.executable, PROGRAMS / "blocking_pingpong.py",
                                 ["--n", str(20_000 // scale)])
    return {name: plans[name] for name in SYSTEMS if name in plans}


def fmt(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.0f}" if abs(value) >= 100 or float(value).is_integer() else f"{value:.1f}"


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    _runner.runner_options(p, SYSTEMS)
    p.add_argument("--baseline-rev", default=BASELINE_REV,
                   help="commit whose package is 'today' ('none': use --send-baseline)")
    p.add_argument("--send-baseline", type=float, default=RECORDED_SEND,
                   help="send msgs/s of 'today' when the baseline is not run")
    p.add_argument("--ref-python", help="an interpreter that has pycos 4.12.2")
    p.add_argument("--peer-python", help="an interpreter that has the peer packages")
    p.add_argument("--ref-rci-timeout", type=float, default=1.0)
    _runner.output_options(p)
    args = p.parse_args()
    _runner.check_systems(p, args, SYSTEMS, "latency",
                  drop=("today",) if args.baseline_rev.lower() == "none" else ())
    return args


def main() -> int:
    args = parse_args()
    reps = 1 if args.quick else args.reps
    load_start = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="pycos-baseline-") as scratch:
        plans = make_plans(args, Path(scratch))
        failures = _runner.run_alternating(plans, reps, args.timeout)
    medians = {name: _runner.medians_of(plan.runs) for name, plan in plans.items()}
    today_label = f"today ({args.baseline_rev})"
    labels = {n: today_label if n == "today" else LABELS[n] for n in plans}
    send_baseline = args.send_baseline
    ratios, met = _runner.check_targets(TARGETS, medians, {"today": send_baseline})
    _runner.print_metrics(labels, ROWS, medians, fmt)
    _runner.print_targets(TARGETS, ratios, met, "ours / other")
    _runner.write_record(args.output, _runner.run_record(
        plans, labels, TARGETS, medians, ratios, met, quick=args.quick, reps=reps,
        load_start=load_start, baseline_rev=args.baseline_rev if "today" in plans else None,
        send_baseline=None if "today" in plans else send_baseline))
    return _runner.exit_status(failures, args.fail_on_miss, met)


if __name__ == "__main__":
    sys.exit(main())
