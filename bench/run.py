"""Run the local benchmarks on this repository's pycos, the released pycos 4.12.2 and asyncio.

``python bench/run.py`` runs every program in ``bench/programs`` on the three implementations,
alternating (ours, pycos 4.12.2, asyncio, ours, ...) for ``--reps`` repetitions, each run in a
fresh subprocess with a timeout. It prints a table of medians with the ratio ours / pycos 4.12.2
and the targets, and writes every run to ``bench/results/local.json``. ``--quick`` is a short
smoke run (small sizes, one repetition) written to ``bench/results/quick.json``.

Ours runs with this interpreter and the repository on PYTHONPATH; pycos 4.12.2 runs in the
virtual environment made by ``reference_env.py``; asyncio runs with this interpreter. Every result
line names the pycos it imported, and a run that imported the wrong one counts as failed.
Imports only the standard library.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reference_env import REFERENCE_VERSION, ensure_reference_env, isolated_env

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
PROGRAMS = BENCH_DIR / "programs"
RESULTS = BENCH_DIR / "results"
IMPLS = ("ours", "ref", "asyncio")
IMPL_TITLES = {"ours": "ours", "ref": f"pycos {REFERENCE_VERSION}", "asyncio": "asyncio"}


@dataclass(frozen=True)
class Bench:
    """One benchmark: its program name, the metrics it reports and its sizes."""

    name: str
    metrics: tuple[str, ...]
    full: dict[str, int]
    quick: dict[str, int]


BENCHES = (
    Bench("pingpong", ("round_trips_per_s",), {"n": 200_000}, {"n": 20_000, "warmup": 500}),
    Bench("oneway", ("msgs_per_s_yield_each", "msgs_per_s_burst"), {"n": 500_000},
          {"n": 50_000, "warmup": 1_000}),
    Bench("spawn", ("tasks_per_s",), {"n": 100_000}, {"n": 20_000, "warmup": 500}),
    Bench("live", ("rss_bytes_per_task",), {"n": 100_000}, {"n": 20_000, "warmup": 200}),
)


@dataclass(frozen=True)
class Target:
    """A goal: ours / pycos 4.12.2 at least ``value`` (kind "ratio"), or ours at most
    ``value`` (kind "max")."""

    bench: str
    metric: str
    kind: str
    value: float

    def describe(self) -> str:
        return f">= {self.value:g}x ref" if self.kind == "ratio" else f"<= {self.value:g}"

    def met(self, ours: float | None, ratio: float | None) -> bool | None:
        if self.kind == "ratio":
            return None if ratio is None else ratio >= self.value
        return None if ours is None else ours <= self.value


TARGETS = (
    Target("pingpong", "round_trips_per_s", "ratio", 2.5),
    Target("oneway", "msgs_per_s_yield_each", "ratio", 5.0),
    Target("oneway", "msgs_per_s_burst", "ratio", 5.0),
    Target("spawn", "tasks_per_s", "ratio", 2.0),
    Target("live", "rss_bytes_per_task", "max", 800.0),
)


def command(impl: str, bench: Bench, params: dict[str, int],
            ref_python: Path) -> tuple[list[str], dict[str, str]]:
    """Command line and environment for one run."""
    prog = PROGRAMS / f"{'asyncio' if impl == 'asyncio' else 'pycos'}_{bench.name}.py"
    args = [f"--{k.replace('_', '-')}={v}" for k, v in params.items()]
    env = isolated_env()
    if impl == "ours":
        env["PYTHONPATH"] = str(REPO_ROOT)
        return [sys.executable, "-s", str(prog), *args], env
    python = str(ref_python) if impl == "ref" else sys.executable
    return [python, "-E", "-s", str(prog), *args], env


def check_identity(impl: str, record: dict[str, Any]) -> str | None:
    """Why a result line does not come from ``impl``, or None when it does."""
    if impl == "asyncio":
        return None if record.get("impl") == "asyncio" else "not an asyncio result"
    version, where = record.get("version"), Path(record.get("file") or "/").resolve()
    ours_file = where.parent == REPO_ROOT / "pycos"
    if impl == "ours" and not ours_file:
        return f"imported pycos {version} from {where}, not this repository"
    if impl == "ref" and (ours_file or version != REFERENCE_VERSION):
        return f"imported pycos {version} from {where}, not the release {REFERENCE_VERSION}"
    return None


def run_once(impl: str, bench: Bench, params: dict[str, int], ref_python: Path,
             timeout: float) -> dict[str, Any]:
    """Run one program in a fresh subprocess; the record of that run."""
    cmd, env = command(impl, bench, params, ref_python)
    start = time.perf_counter()
    entry: dict[str, Any] = {"bench": bench.name, "impl": impl, "ok": False}
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env,
                              cwd=str(PROGRAMS))
    except subprocess.TimeoutExpired:
        entry["error"] = f"timed out after {timeout:g} s"
        return entry
    finally:
        entry["wall_s"] = round(time.perf_counter() - start, 3)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        entry["error"] = f"exit code {proc.returncode}: " + " | ".join(tail)
        return entry
    record = json.loads(lines[-1])
    problem = check_identity(impl, record)
    if problem is not None:
        entry["error"] = problem
        return entry
    entry.update(ok=True, version=record["version"], metrics=record["metrics"])
    return entry


def summarise(runs: list[dict[str, Any]],
              benches: list[Bench]) -> dict[str, dict[str, dict[str, Any]]]:
    """Per metric and implementation: every value and their median."""
    summary: dict[str, dict[str, dict[str, Any]]] = {}
    for bench in benches:
        for metric in bench.metrics:
            key = f"{bench.name}.{metric}"
            summary[key] = {}
            for impl in IMPLS:
                values = [r["metrics"][metric] for r in runs
                          if r["ok"] and r["bench"] == bench.name and r["impl"] == impl]
                summary[key][impl] = {
                    "values": values,
                    "median": statistics.median(values) if values else None,
                }
    return summary


def ratio(summary: dict[str, Any], key: str) -> float | None:
    ours, ref = summary[key]["ours"]["median"], summary[key]["ref"]["median"]
    return None if ours is None or not ref else ours / ref


def target_rows(summary: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for t in TARGETS:
        key = f"{t.bench}.{t.metric}"
        if key not in summary:
            continue
        ours, r = summary[key]["ours"]["median"], ratio(summary, key)
        rows.append({"metric": key, "target": t.describe(), "ours": ours, "ratio": r,
                     "met": t.met(ours, r)})
    return rows


def fmt(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.0f}" if value >= 100 else f"{value:.2f}"


def table(summary: dict[str, Any]) -> str:
    """Markdown table of medians, ratios and targets."""
    targets = {f"{t.bench}.{t.metric}": t for t in TARGETS}
    head = ["metric", *(IMPL_TITLES[i] for i in IMPLS), "ours / ref", "target", "met"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for key, by_impl in summary.items():
        r = ratio(summary, key)
        t = targets.get(key)
        met = None if t is None else t.met(by_impl["ours"]["median"], r)
        cells = [key, *(fmt(by_impl[i]["median"]) for i in IMPLS),
                 "-" if r is None else f"{r:.2f}x", t.describe() if t else "",
                 {True: "yes", False: "NO", None: "-"}[met] if t else ""]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def machine() -> dict[str, Any]:
    return {"platform": platform.platform(), "python": sys.version.split()[0],
            "cpu_count": os.cpu_count(), "loadavg": os.getloadavg()}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=None, help="repetitions (default 5; 1 quick)")
    parser.add_argument("--quick", action="store_true", help="short smoke run (< 20 s)")
    parser.add_argument("--timeout", type=float, default=None,
                        help="seconds allowed per run (default 180; 30 quick)")
    parser.add_argument("--only", default="", help="comma-separated benchmark names")
    parser.add_argument("--ref-python", type=Path, default=None,
                        help="interpreter that has pycos 4.12.2 (default: make bench/.venv-ref)")
    parser.add_argument("--output", type=Path, default=None, help="where to write the JSON")
    parser.add_argument("--fail-on-miss", action="store_true",
                        help="exit with status 2 when a target is missed")
    args = parser.parse_args()
    args.reps = args.reps if args.reps is not None else (1 if args.quick else 5)
    args.timeout = args.timeout if args.timeout is not None else (30.0 if args.quick else 180.0)
    if args.reps <= 0 or args.timeout <= 0:
        parser.error("--reps and --timeout must be positive")
    names = {b.name for b in BENCHES}
    args.only = [n for n in args.only.split(",") if n] or sorted(names)
    unknown = set(args.only) - names
    if unknown:
        parser.error(f"unknown benchmark(s) {sorted(unknown)}; choose from {sorted(names)}")
    if args.output is None:
        args.output = RESULTS / ("quick.json" if args.quick else "local.json")
    return args


def main() -> int:
    args = parse_args()
    ref_python = args.ref_python or ensure_reference_env()
    benches = [b for b in BENCHES if b.name in args.only]
    start_machine = machine()
    runs: list[dict[str, Any]] = []
    for rep in range(args.reps):
        for bench in benches:
            params = bench.quick if args.quick else bench.full
            for impl in IMPLS:
                entry = run_once(impl, bench, params, ref_python, args.timeout)
                entry["rep"] = rep
                runs.append(entry)
                shown = entry.get("metrics") or entry.get("error")
                print(f"[{rep + 1}/{args.reps}] {bench.name:8} {IMPL_TITLES[impl]:13} "
                      f"{entry['wall_s']:6.2f}s {shown}", file=sys.stderr, flush=True)
    summary = summarise(runs, benches)
    targets = target_rows(summary)
    print(table(summary))
    result = {
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "command": [Path(sys.argv[0]).name, *sys.argv[1:]],
        "machine_start": start_machine, "machine_end": machine(),
        "reference": {"version": REFERENCE_VERSION, "python": str(ref_python)},
        "reps": args.reps, "quick": args.quick, "timeout_s": args.timeout,
        "params": {b.name: (b.quick if args.quick else b.full) for b in benches},
        "medians": {k: {i: v[i]["median"] for i in IMPLS} for k, v in summary.items()},
        "ratios_ours_over_ref": {k: ratio(summary, k) for k in summary},
        "targets": targets, "runs": runs,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.output.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=2) + "\n")
    tmp.replace(args.output)
    print(f"\nwrote {args.output}", file=sys.stderr)
    failed = [r for r in runs if not r["ok"]]
    if failed:
        print(f"{len(failed)} run(s) failed", file=sys.stderr)
        return 1
    if args.fail_on_miss and any(row["met"] is False for row in targets):
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
