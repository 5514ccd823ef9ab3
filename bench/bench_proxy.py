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
the standard library (and the environment helpers beside it).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import sysconfig
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
PROGRAMS = BENCH_DIR / "programs"
sys.path.insert(0, str(BENCH_DIR))

from peer_env import DEFAULT_PATH, ensure_peer_env  # noqa: E402
from reference_env import isolated_env  # noqa: E402

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


@dataclass(frozen=True)
class Target:
    """``ours[key] / other[other_key]`` (or its inverse for times) compared with ``bound``."""

    name: str
    text: str
    key: str
    other: str
    other_key: str
    bound: float
    times: bool = False  # smaller is better: the ratio is other / ours


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


@dataclass
class Plan:
    python: str
    program: Path
    args: list[str]
    pythonpath: str | None = None
    isolated: bool = True
    runs: list[dict[str, Any]] = field(default_factory=list)

    def argv(self) -> list[str]:
        return [self.python, *(["-E", "-s"] if self.isolated else []), str(self.program),
                *self.args]


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
                             pythonpath=str(ROOT), isolated=False)
    if "ours_pool" in chosen:
        plans["ours_pool"] = Plan(sys.executable, ours, [*calls, "--per-task",
                                                         "200" if quick else "1000",
                                                         "--big", "0", "--threads", "4"],
                                  pythonpath=str(ROOT), isolated=False)
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
    return {name: plans[name] for name in SYSTEMS if name in plans}


def run_once(plan: Plan, timeout: float) -> dict[str, Any]:
    """One run of ``plan`` in fresh processes; its JSON result line."""
    env = isolated_env()
    if plan.pythonpath is not None:
        env["PYTHONPATH"] = plan.pythonpath
    argv = plan.argv()
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env,
                          cwd=str(PROGRAMS))
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"{argv} failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(lines[-1])
    if "pycos" in result and Path(result["pycos"]).resolve() != (ROOT / "pycos").resolve():
        raise RuntimeError(f"run used {result['pycos']}, not this repository's pycos")
    return result


def medians_of(runs: list[dict[str, Any]]) -> dict[str, float]:
    good = [r for r in runs if "error" not in r]
    keys = {k for r in good for k, v in r.items() if isinstance(v, int | float)
            and not isinstance(v, bool)}
    return {k: statistics.median(r[k] for r in good if k in r) for k in sorted(keys)}


def check_targets(medians: dict[str, dict[str, float]]
                  ) -> tuple[dict[str, float], dict[str, bool | None]]:
    ratios: dict[str, float] = {}
    met: dict[str, bool | None] = {}
    ours = medians.get("ours", {})
    for t in TARGETS:
        mine, other = ours.get(t.key), medians.get(t.other, {}).get(t.other_key)
        if not mine or not other:
            met[t.name] = None
            continue
        ratio = other / mine if t.times else mine / other
        ratios[t.name] = ratio
        met[t.name] = ratio >= t.bound
    return ratios, met


def fmt(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"


def print_tables(plans: dict[str, Plan], medians: dict[str, dict[str, float]],
                 ratios: dict[str, float], met: dict[str, bool | None]) -> None:
    names = list(plans)
    print("\n| metric | " + " | ".join(LABELS[n] for n in names) + " |")
    print("|---|" + "---|" * len(names))
    for label, keys in ROWS:
        if not any(n in keys for n in names):
            continue
        cells = [fmt(medians[n].get(keys[n])) if n in keys else "-" for n in names]
        print(f"| {label} | " + " | ".join(cells) + " |")
    print("\n| target | ratio | met |")
    print("|---|---|---|")
    for t in TARGETS:
        ratio = ratios.get(t.name)
        verdict = {True: "yes", False: "NO", None: "not measured"}[met[t.name]]
        print(f"| {t.text} | {'-' if ratio is None else f'{ratio:.2f}x'} | {verdict} |")


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--quick", action="store_true", help="small sizes, one repetition")
    p.add_argument("--timeout", type=float, default=600.0, help="seconds per run")
    p.add_argument("--systems", default=",".join(SYSTEMS),
                   help=f"comma-separated subset of {','.join(SYSTEMS)}")
    p.add_argument("--peer-python", help="an interpreter that has the peer packages")
    p.add_argument("--output", type=Path)
    p.add_argument("--fail-on-miss", action="store_true")
    args = p.parse_args()
    args.systems = {s.strip() for s in args.systems.split(",") if s.strip()}
    unknown = args.systems - set(SYSTEMS)
    if unknown or args.reps < 1:
        p.error(f"unknown systems {sorted(unknown)}" if unknown else "--reps must be >= 1")
    if args.output is None:
        args.output = BENCH_DIR / "results" / ("proxy_quick.json" if args.quick
                                               else "proxy.json")
    return args


def main() -> int:
    args = parse_args()
    reps = 1 if args.quick else args.reps
    load_start = os.getloadavg()
    failures = 0
    plans = make_plans(args)
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
    ratios, met = check_targets(medians)
    print_tables(plans, medians, ratios, met)
    record = {
        "python": sys.version.split()[0], "platform": sysconfig.get_platform(),
        "time": time.time(), "quick": args.quick, "reps": reps, "cpus": os.cpu_count(),
        "loadavg_start": load_start, "loadavg_end": os.getloadavg(),
        "systems": {n: {"label": LABELS[n], "argv": [Path(a).name if a.startswith("/") else a
                                                     for a in p.argv()[1:]]}
                    for n, p in plans.items()},
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
