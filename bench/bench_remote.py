"""Remote tasks, deliver and RCI across two node processes, beside pycos 4.12.2.

``python bench/bench_remote.py`` runs ``programs/remote_bench.py`` (a client node that starts a
server node as a second process, both on 127.0.0.1) with this repository's pycos and with the
released pycos 4.12.2 (``bench/.venv-ref``, made by ``reference_env.py`` if needed), alternating
ours / reference for each repetition. It prints the medians, the ratios and the target checks,
and writes every run to ``bench/results/remote.json``.

The reference runs smaller sizes (it sends about 5,000 messages/s and many of its RCI results
never arrive, each costing the whole ``--ref-rci-timeout``, so each of its RCI measurements also
stops after 30 s); rates are per second either way.
Options: ``--reps N`` (default 3), ``--quick``, ``--ref-python PATH``, ``--fail-on-miss``.
Imports only the standard library (and ``reference_env`` and ``_runner`` beside it).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
PROGRAM = BENCH_DIR / "programs" / "remote_bench.py"
sys.path.insert(0, str(BENCH_DIR))

from _runner import Plan, run_plan, write_record  # noqa: E402
from reference_env import ensure_reference_env  # noqa: E402

# metric: (better is "higher" or "lower", target description, check(ours, ref) -> bool)
TARGETS: dict[str, tuple[str, str, Any]] = {
    "send_msgs_per_s": ("higher", ">= 100,000/s and >= 20x ref",
                        lambda o, r: o >= 100_000 and o >= 20 * r),
    "rtt_p50_us": ("lower", "<= 150 us", lambda o, r: o <= 150),
    "deliver_per_s": ("higher", ">= 3x ref", lambda o, r: o >= 3 * r),
    "rci_calls_per_s": ("higher", ">= 8x ref, 0 hangs", lambda o, r: o >= 8 * r),
    "rci_hangs": ("lower", "0 (in 10,000 calls)", lambda o, r: o == 0),
}
REPORTED = ["send_msgs_per_s", "rtt_p50_us", "rtt_p99_us", "deliver_per_s", "rci_calls_per_s",
            "rci_hangs", "rci_calls_per_s_concurrent", "rci_hangs_concurrent"]


def remote_sizes(scale: int, reference: bool, rci_timeout: float) -> list[str]:
    """``remote_bench.py`` arguments: the reference runs smaller sizes (see above); ``scale``
    divides them (10 with ``--quick``)."""
    if reference:
        return ["--sends", str(20_000 // scale), "--rtts", str(1000 // scale),
                "--delivers", str(1000 // scale), "--rcis", str(400 // scale),
                "--rci-timeout", str(rci_timeout), "--rci-seconds", "30"]
    return ["--sends", str(200_000 // scale), "--rtts", str(2000 // scale),
            "--delivers", str(2000 // scale), "--rcis", str(10_000 // scale)]


def run_once(python: str, ours: bool, sizes: list[str], timeout: float) -> dict[str, Any]:
    """One run of the program; its JSON result (checked to come from the right pycos)."""
    plan = Plan(python, PROGRAM, sizes, pythonpath=str(ROOT) if ours else None,
                isolated=not ours, pycos_from=ROOT / "pycos" if ours else None)
    return run_plan(plan, timeout)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--quick", action="store_true", help="small sizes, one repetition")
    p.add_argument("--ref-python", help="an interpreter that has pycos 4.12.2")
    p.add_argument("--ref-rci-timeout", type=float, default=1.0)
    p.add_argument("--timeout", type=float, default=900.0)
    p.add_argument("--output", type=Path, default=BENCH_DIR / "results" / "remote.json")
    p.add_argument("--fail-on-miss", action="store_true")
    args = p.parse_args()
    ref_python = args.ref_python or str(ensure_reference_env())
    reps = 1 if args.quick else args.reps
    scale = 10 if args.quick else 1
    ours_sizes = remote_sizes(scale, False, 0)
    ref_sizes = remote_sizes(scale, True, args.ref_rci_timeout)
    runs: dict[str, list[dict[str, Any]]] = {"ours": [], "ref": []}
    for rep in range(reps):
        for name, python, sizes in (("ours", sys.executable, ours_sizes),
                                    ("ref", ref_python, ref_sizes)):
            start = time.monotonic()
            runs[name].append(run_once(python, name == "ours", sizes, args.timeout))
            print(f"rep {rep + 1}/{reps} {name}: {time.monotonic() - start:.1f} s",
                  file=sys.stderr)
    medians = {name: {m: statistics.median(r[m] for r in rs) for m in REPORTED}
               for name, rs in runs.items()}
    checks = {}
    print("\n| metric | ours | pycos 4.12.2 | ours / ref | target | met |")
    print("|---|---|---|---|---|---|")
    for metric in REPORTED:
        ours, ref = medians["ours"][metric], medians["ref"][metric]
        ratio = f"{ours / ref:.2f}x" if ref else "-"
        target = TARGETS.get(metric)
        met = "" if target is None else ("yes" if target[2](ours, ref) else "NO")
        if target is not None:
            checks[metric] = met == "yes"
        print(f"| {metric} | {ours:,.1f} | {ref:,.1f} | {ratio} | "
              f"{target[1] if target else ''} | {met} |")
    write_record(args.output, {"python": sys.version.split()[0], "time": time.time(),
                               "runs": runs, "medians": medians, "targets_met": checks})
    return 2 if args.fail_on_miss and not all(checks.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
