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
target is missed; 1 means a run failed). Imports only the standard library (and the
environment helpers beside it).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
PROGRAMS = BENCH_DIR / "programs"
sys.path.insert(0, str(BENCH_DIR))

from peer_env import ensure_peer_env  # noqa: E402
from reference_env import ensure_reference_env, isolated_env  # noqa: E402

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


@dataclass(frozen=True)
class Target:
    """``ours[key] / other[other_key]`` compared with ``bound`` (``<=`` or ``>=``)."""

    name: str
    text: str
    key: str
    other: str
    other_key: str
    op: str
    bound: float


TARGETS = [
    Target("rtt_p50_vs_blocking", "round trip p50 <= 2.0x blocking socket", "rtt_p50_us",
           "blocking", "rtt_p50_us", "<=", 2.0),
    Target("rtt_p50_vs_zmq", "round trip p50 <= pyzmq REQ/REP", "rtt_p50_us", "zmq",
           "rtt_p50_us", "<=", 1.0),
    Target("deliver_vs_ref", "deliver/s >= 3x pycos 4.12.2", "deliver_per_s", "ref",
           "deliver_per_s", ">=", 3.0),
    Target("rci_vs_ref", "RCI calls/s >= 5x pycos 4.12.2", "rci_calls_per_s", "ref",
           "rci_calls_per_s", ">=", 5.0),
    Target("rci_vs_pyro5", "RCI calls/s >= 1.5x Pyro5 method calls/s", "rci_calls_per_s",
           "pyro5", "calls_per_s", ">=", 1.5),
    Target("send_vs_today", "send msgs/s >= today", "send_msgs_per_s", "today",
           "send_msgs_per_s", ">=", 1.0),
]


@dataclass
class Plan:
    """How to run one system: interpreter, program arguments and where its code comes from."""

    python: str
    program: Path
    args: list[str]
    pythonpath: str | None = None
    isolated: bool = True
    pycos_from: Path | None = None
    runs: list[dict[str, Any]] = field(default_factory=list)

    def argv(self) -> list[str]:
        return [self.python, *(["-E", "-s"] if self.isolated else []), str(self.program),
                *self.args]


def remote_sizes(scale: int, reference: bool, rci_timeout: float) -> list[str]:
    """``remote_bench.py`` arguments, the very ones ``bench_remote.py`` uses."""
    if reference:
        return ["--sends", str(20_000 // scale), "--rtts", str(1000 // scale),
                "--delivers", str(1000 // scale), "--rcis", str(400 // scale),
                "--rci-timeout", str(rci_timeout), "--rci-seconds", "30"]
    return ["--sends", str(200_000 // scale), "--rtts", str(2000 // scale),
            "--delivers", str(2000 // scale), "--rcis", str(10_000 // scale)]


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


def run_once(plan: Plan, timeout: float) -> dict[str, Any]:
    """One run of ``plan`` in a fresh process; its JSON result line (pycos runs are checked to
    have imported the package they were meant to)."""
    env = isolated_env()
    if plan.pythonpath is not None:
        env["PYTHONPATH"] = plan.pythonpath
    cwd = plan.pythonpath or os.path.expanduser("~")
    argv = plan.argv()
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env,
                          cwd=cwd)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"{argv} failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(lines[-1])
    if "pycos" in result:
        used = Path(result["pycos"]).resolve()
        if plan.pycos_from is not None and used != plan.pycos_from.resolve():
            raise RuntimeError(f"run used {used}, expected {plan.pycos_from}")
        if plan.pycos_from is None and used == (ROOT / "pycos").resolve():
            raise RuntimeError("the reference run imported this repository's pycos")
    return result


def medians_of(runs: list[dict[str, Any]]) -> dict[str, float]:
    """Median of every numeric key over the runs that succeeded."""
    good = [r for r in runs if "error" not in r]
    keys = {k for r in good for k, v in r.items() if isinstance(v, int | float)
            and not isinstance(v, bool)}
    return {k: statistics.median(r[k] for r in good if k in r) for k in sorted(keys)}


def check_targets(medians: dict[str, dict[str, float]],
                  send_baseline: float) -> tuple[dict[str, float], dict[str, bool | None]]:
    """Ratios ours / other for every target, and whether each is met (None: not measured)."""
    ratios: dict[str, float] = {}
    met: dict[str, bool | None] = {}
    ours = medians.get("ours", {})
    for t in TARGETS:
        other = medians.get(t.other, {}).get(t.other_key)
        if other is None and t.other == "today":
            other = send_baseline
        if t.key not in ours or not other:
            met[t.name] = None
            continue
        ratio = ours[t.key] / other
        ratios[t.name] = ratio
        met[t.name] = ratio <= t.bound if t.op == "<=" else ratio >= t.bound
    return ratios, met


def fmt(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.0f}" if abs(value) >= 100 or float(value).is_integer() else f"{value:.1f}"


def print_tables(plans: dict[str, Plan], medians: dict[str, dict[str, float]],
                 ratios: dict[str, float], met: dict[str, bool | None],
                 today_label: str) -> None:
    names = list(plans)
    labels = [today_label if n == "today" else LABELS[n] for n in names]
    print("\n| metric | " + " | ".join(labels) + " |")
    print("|---|" + "---|" * len(names))
    for label, keys in ROWS:
        if not any(n in keys for n in names):
            continue
        cells = [fmt(medians[n].get(keys[n])) if n in keys else "-" for n in names]
        print(f"| {label} | " + " | ".join(cells) + " |")
    print("\n| target | ours / other | met |")
    print("|---|---|---|")
    for t in TARGETS:
        ratio = ratios.get(t.name)
        shown = "-" if ratio is None else f"{ratio:.2f}x"
        verdict = {True: "yes", False: "NO", None: "not measured"}[met[t.name]]
        print(f"| {t.text} | {shown} | {verdict} |")


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--quick", action="store_true", help="small sizes, one repetition")
    p.add_argument("--timeout", type=float, default=600.0, help="seconds per run")
    p.add_argument("--systems", default=",".join(SYSTEMS),
                   help=f"comma-separated subset of {','.join(SYSTEMS)}")
    p.add_argument("--baseline-rev", default=BASELINE_REV,
                   help="commit whose package is 'today' ('none': use --send-baseline)")
    p.add_argument("--send-baseline", type=float, default=RECORDED_SEND,
                   help="send msgs/s of 'today' when the baseline is not run")
    p.add_argument("--ref-python", help="an interpreter that has pycos 4.12.2")
    p.add_argument("--peer-python", help="an interpreter that has the peer packages")
    p.add_argument("--ref-rci-timeout", type=float, default=1.0)
    p.add_argument("--output", type=Path)
    p.add_argument("--fail-on-miss", action="store_true")
    args = p.parse_args()
    args.systems = {s.strip() for s in args.systems.split(",") if s.strip()}
    if args.baseline_rev.lower() == "none":
        args.systems.discard("today")
    unknown = args.systems - set(SYSTEMS)
    if unknown or args.reps < 1:
        p.error(f"unknown systems {sorted(unknown)}" if unknown else "--reps must be >= 1")
    if args.output is None:
        args.output = BENCH_DIR / "results" / ("latency_quick.json" if args.quick
                                               else "latency.json")
    return args


def main() -> int:
    args = parse_args()
    reps = 1 if args.quick else args.reps
    load_start = os.getloadavg()
    failures = 0
    with tempfile.TemporaryDirectory(prefix="pycos-baseline-") as scratch:
        plans = make_plans(args, Path(scratch))
        for rep in range(reps):
            for name, plan in plans.items():
                start = time.monotonic()
                try:
                    plan.runs.append(run_once(plan, args.timeout))
                    status = "ok"
                except (RuntimeError, subprocess.TimeoutExpired, ValueError) as error:
                    failures += 1
                    plan.runs.append({"error": str(error)[-2000:]})
                    status = f"FAILED: {str(error)[-300:]}"
                print(f"rep {rep + 1}/{reps} {name}: {time.monotonic() - start:.1f} s {status}",
                      file=sys.stderr, flush=True)
    medians = {name: medians_of(plan.runs) for name, plan in plans.items()}
    today_label = f"today ({args.baseline_rev})"
    send_baseline = args.send_baseline
    ratios, met = check_targets(medians, send_baseline)
    print_tables(plans, medians, ratios, met, today_label)
    record = {
        "python": sys.version.split()[0], "time": time.time(), "quick": args.quick,
        "reps": reps, "cpus": os.cpu_count(), "loadavg_start": load_start,
        "loadavg_end": os.getloadavg(),
        "baseline_rev": args.baseline_rev if "today" in plans else None,
        "send_baseline": None if "today" in plans else send_baseline,
        "systems": {n: {"label": today_label if n == "today" else LABELS[n],
                        "argv": [Path(a).name if a.startswith("/") else a
                                 for a in p.argv()[1:]]} for n, p in plans.items()},
        "runs": {n: p.runs for n, p in plans.items()}, "medians": medians, "ratios": ratios,
        "targets": {t.name: t.text for t in TARGETS}, "targets_met": met,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(record, indent=1) + "\n")
    print(f"\nwritten to {args.output}", file=sys.stderr)
    if failures:
        return 1
    return 2 if args.fail_on_miss and not all(m for m in met.values() if m is not None) else 0


if __name__ == "__main__":
    sys.exit(main())
