"""Run the benchmarks on this repository's pycos, the released pycos 4.12.2 and asyncio.

``python bench/run.py`` runs every program in ``bench/programs`` on the implementations of its
benchmark, alternating (ours, pycos 4.12.2, asyncio, ours, ...) for ``--reps`` repetitions, each
run in a fresh subprocess with a timeout. Two groups: ``local`` (scheduler and messages) and
``sockets`` (echo, stream, scale; the stream also runs a plain blocking-socket receiver as its
limit reference). It prints a table of medians with the ratio ours / pycos 4.12.2 and the
targets, and writes every run of a group to ``bench/results/<group>.json`` (``local.json``,
``sockets.json``). ``--quick`` is a short smoke run (small sizes, one repetition) written to
``bench/results/quick.json`` / ``sockets_quick.json``.

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
IMPLS = ("ours", "ref", "asyncio", "blocking")
IMPL_TITLES = {"ours": "ours", "ref": f"pycos {REFERENCE_VERSION}", "asyncio": "asyncio",
               "blocking": "blocking socket"}
FRAMEWORKS = ("ours", "ref", "asyncio")
#: Result file of each group: (full run, --quick run).
GROUP_FILES = {"local": ("local.json", "quick.json"),
               "sockets": ("sockets.json", "sockets_quick.json")}
MiB = 1 << 20


@dataclass(frozen=True)
class Bench:
    """One benchmark: its program name, the metrics it reports, its sizes, its group and the
    implementations it runs on (program ``<impl prefix>_<name>.py`` each)."""

    name: str
    metrics: tuple[str, ...]
    full: dict[str, int]
    quick: dict[str, int]
    group: str = "local"
    impls: tuple[str, ...] = FRAMEWORKS


BENCHES = (
    Bench("pingpong", ("round_trips_per_s",), {"n": 200_000}, {"n": 20_000, "warmup": 500}),
    Bench("oneway", ("msgs_per_s_yield_each", "msgs_per_s_burst"), {"n": 500_000},
          {"n": 50_000, "warmup": 1_000}),
    Bench("spawn", ("tasks_per_s",), {"n": 100_000}, {"n": 20_000, "warmup": 500}),
    Bench("live", ("rss_bytes_per_task",), {"n": 100_000}, {"n": 20_000, "warmup": 200}),
    Bench("echo", ("round_trips_per_s", "p50_us", "p99_us"),
          {"clients": 50, "rounds": 1_000, "size": 64},
          {"clients": 10, "rounds": 300, "size": 64, "warmup": 50}, group="sockets"),
    Bench("stream", ("mb_per_s", "mb_per_s_recv_into", "mb_per_s_recv", "mb_per_s_recvall"),
          {"size": 1024 * MiB, "bufsize": MiB, "rounds": 5},
          {"size": 64 * MiB, "bufsize": MiB, "rounds": 1, "warmup": 8 * MiB},
          group="sockets", impls=(*FRAMEWORKS, "blocking")),
    Bench("scale", ("rss_bytes_per_conn", "seconds", "conns_per_s", "accept_seconds"),
          {"conns": 10_000, "size": 32}, {"conns": 500, "size": 32, "warmup": 50},
          group="sockets"),
)
GROUPS = {group: [b.name for b in BENCHES if b.group == group] for group in GROUP_FILES}


@dataclass(frozen=True)
class Target:
    """A goal: ours / ``base`` at least ``value`` (kind "ratio"; base pycos 4.12.2 unless
    given), ours at most ``value`` (kind "max"), or ours measured at all (kind "served": every
    run of ours succeeded and reported the metric)."""

    bench: str
    metric: str
    kind: str
    value: float = 0.0
    base: str = "ref"

    def describe(self) -> str:
        if self.kind == "ratio":
            return f">= {self.value:g}x {self.base}"
        return f"<= {self.value:g}" if self.kind == "max" else "served, reported"

    def met(self, ours: float | None, ratio: float | None) -> bool | None:
        if self.kind == "ratio":
            return None if ratio is None else ratio >= self.value
        if self.kind == "served":
            return ours is not None
        return None if ours is None else ours <= self.value


TARGETS = (
    Target("pingpong", "round_trips_per_s", "ratio", 2.5),
    Target("oneway", "msgs_per_s_yield_each", "ratio", 5.0),
    Target("oneway", "msgs_per_s_burst", "ratio", 5.0),
    Target("spawn", "tasks_per_s", "ratio", 2.0),
    Target("live", "rss_bytes_per_task", "max", 800.0),
    Target("echo", "round_trips_per_s", "ratio", 1.7),
    Target("stream", "mb_per_s", "ratio", 0.95, base="blocking"),
    Target("scale", "rss_bytes_per_conn", "served"),
)


def command(impl: str, bench: Bench, params: dict[str, int],
            ref_python: Path) -> tuple[list[str], dict[str, str]]:
    """Command line and environment for one run."""
    prefix = impl if impl in ("asyncio", "blocking") else "pycos"
    prog = PROGRAMS / f"{prefix}_{bench.name}.py"
    args = [f"--{k.replace('_', '-')}={v}" for k, v in params.items()]
    env = isolated_env()
    if impl == "ours":
        env["PYTHONPATH"] = str(REPO_ROOT)
        return [sys.executable, "-s", str(prog), *args], env
    python = str(ref_python) if impl == "ref" else sys.executable
    return [python, "-E", "-s", str(prog), *args], env


def check_identity(impl: str, record: dict[str, Any]) -> str | None:
    """Why a result line does not come from ``impl``, or None when it does."""
    if impl in ("asyncio", "blocking"):
        return None if record.get("impl") == impl else f"not a result of {impl}"
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
    """Per metric and implementation of its benchmark: every value and their median (a
    metric an implementation does not report has no values)."""
    summary: dict[str, dict[str, dict[str, Any]]] = {}
    for bench in benches:
        for metric in bench.metrics:
            key = f"{bench.name}.{metric}"
            summary[key] = {}
            for impl in bench.impls:
                values = [r["metrics"][metric] for r in runs
                          if r["ok"] and r["bench"] == bench.name and r["impl"] == impl
                          and r["metrics"].get(metric) is not None]
                summary[key][impl] = {
                    "values": values,
                    "median": statistics.median(values) if values else None,
                }
    return summary


def median_of(summary: dict[str, Any], key: str, impl: str) -> float | None:
    return summary[key].get(impl, {}).get("median")


def ratio(summary: dict[str, Any], key: str, base: str = "ref") -> float | None:
    """Median of ours over the median of ``base`` for metric ``key``."""
    ours, ref = median_of(summary, key, "ours"), median_of(summary, key, base)
    return None if ours is None or not ref else ours / ref


def target_rows(summary: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for t in TARGETS:
        key = f"{t.bench}.{t.metric}"
        if key not in summary:
            continue
        ours, r = median_of(summary, key, "ours"), ratio(summary, key, t.base)
        rows.append({"metric": key, "target": t.describe(), "ours": ours, "base": t.base,
                     "ratio": r if t.kind == "ratio" else None, "met": t.met(ours, r)})
    return rows


def fmt(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.0f}" if value >= 100 else f"{value:.2f}"


def table(summary: dict[str, Any], impls: list[str]) -> str:
    """Markdown table of medians, ratios and targets. A target against another base than
    pycos 4.12.2 shows its own ratio in the target cell."""
    targets = {f"{t.bench}.{t.metric}": t for t in TARGETS}
    head = ["metric", *(IMPL_TITLES[i] for i in impls), "ours / ref", "target", "met"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for key in summary:
        r = ratio(summary, key)
        t = targets.get(key)
        met = None if t is None else t.met(median_of(summary, key, "ours"),
                                            ratio(summary, key, t.base))
        goal = "" if t is None else t.describe()
        if t is not None and t.kind == "ratio" and t.base != "ref":
            base_ratio = ratio(summary, key, t.base)
            goal += f" (is {'-' if base_ratio is None else f'{base_ratio:.2f}x'})"
        cells = [key, *(fmt(median_of(summary, key, i)) for i in impls),
                 "-" if r is None else f"{r:.2f}x", goal,
                 {True: "yes", False: "NO", None: "-"}[met] if t else ""]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def machine() -> dict[str, Any]:
    return {"platform": platform.platform(), "python": sys.version.split()[0],
            "cpu_count": os.cpu_count(), "loadavg": os.getloadavg()}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=None, help="repetitions (default 5; 1 quick)")
    parser.add_argument("--quick", action="store_true", help="short smoke run (< 30 s)")
    parser.add_argument("--timeout", type=float, default=None,
                        help="seconds allowed per run (default 180; 30 quick)")
    parser.add_argument("--only", default="",
                        help="comma-separated benchmark or group names (local, sockets)")
    parser.add_argument("--ref-python", type=Path, default=None,
                        help="interpreter that has pycos 4.12.2 (default: make bench/.venv-ref)")
    parser.add_argument("--output", type=Path, default=None,
                        help="write every group's runs to this one JSON file instead")
    parser.add_argument("--fail-on-miss", action="store_true",
                        help="exit with status 2 when a target is missed")
    args = parser.parse_args()
    args.reps = args.reps if args.reps is not None else (1 if args.quick else 5)
    args.timeout = args.timeout if args.timeout is not None else (30.0 if args.quick else 180.0)
    if args.reps <= 0 or args.timeout <= 0:
        parser.error("--reps and --timeout must be positive")
    names = {b.name for b in BENCHES}
    chosen: set[str] = set()
    for item in (n for n in args.only.split(",") if n):
        if item in GROUPS:
            chosen.update(GROUPS[item])
        elif item in names:
            chosen.add(item)
        else:
            parser.error(f"unknown benchmark {item!r}; choose from {sorted(names)} or a group "
                         f"{sorted(GROUPS)}")
    args.only = sorted(chosen or names)
    return args


def run_all(args: argparse.Namespace, benches: list[Bench],
            ref_python: Path) -> list[dict[str, Any]]:
    """Every run: per repetition, per benchmark, its implementations in turn."""
    runs: list[dict[str, Any]] = []
    for rep in range(args.reps):
        for bench in benches:
            params = bench.quick if args.quick else bench.full
            for impl in bench.impls:
                entry = run_once(impl, bench, params, ref_python, args.timeout)
                entry["rep"] = rep
                runs.append(entry)
                shown = entry.get("metrics") or entry.get("error")
                print(f"[{rep + 1}/{args.reps}] {bench.name:8} {IMPL_TITLES[impl]:15} "
                      f"{entry['wall_s']:6.2f}s {shown}", file=sys.stderr, flush=True)
    return runs


def report(args: argparse.Namespace, benches: list[Bench], runs: list[dict[str, Any]],
           ref_python: Path, start_machine: dict[str, Any], output: Path) -> dict[str, Any]:
    """Summarise ``runs`` of ``benches``, print the table and write the JSON to ``output``."""
    summary = summarise(runs, benches)
    targets = target_rows(summary)
    impls = [i for i in IMPLS if any(i in b.impls for b in benches)]
    print(table(summary, impls))
    result = {
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "command": [Path(sys.argv[0]).name, *sys.argv[1:]],
        "machine_start": start_machine, "machine_end": machine(),
        "reference": {"version": REFERENCE_VERSION, "python": str(ref_python)},
        "reps": args.reps, "quick": args.quick, "timeout_s": args.timeout,
        "params": {b.name: (b.quick if args.quick else b.full) for b in benches},
        "medians": {k: {i: v[i]["median"] for i in v} for k, v in summary.items()},
        "ratios_ours_over_ref": {k: ratio(summary, k) for k in summary},
        "targets": targets, "runs": runs,
    }
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=2) + "\n")
    tmp.replace(output)
    print(f"\nwrote {output}", file=sys.stderr)
    return result


def main() -> int:
    args = parse_args()
    ref_python = args.ref_python or ensure_reference_env()
    benches = [b for b in BENCHES if b.name in args.only]
    start_machine = machine()
    runs = run_all(args, benches, ref_python)
    if args.output is not None:
        parts = [(benches, args.output)]
    else:
        parts = []
        for group, files in GROUP_FILES.items():
            members = [b for b in benches if b.group == group]
            if members:
                parts.append((members, RESULTS / files[1 if args.quick else 0]))
    targets: list[dict[str, Any]] = []
    for members, output in parts:
        names = {b.name for b in members}
        result = report(args, members, [r for r in runs if r["bench"] in names], ref_python,
                        start_machine, output)
        targets.extend(result["targets"])
    failed = [r for r in runs if not r["ok"]]
    if failed:
        print(f"{len(failed)} run(s) failed", file=sys.stderr)
        return 1
    if args.fail_on_miss and any(row["met"] is False for row in targets):
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
