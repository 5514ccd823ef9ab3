"""What the runners of the benchmarks beside peer systems share.

``run_json`` runs one program to its end and reads its result line (the last line of its output
that is a JSON object). A ``Plan`` says how one system runs (interpreter, program, arguments,
where its pycos comes from); ``run_plan`` runs it once in a fresh process with an isolated
environment and checks that it imported the pycos it was meant to, and ``run_alternating`` runs
every plan once per repetition, in turn, keeping each run or its error. Then ``medians_of``, the
``Target`` checks (``check_targets``), the tables (``print_metrics``, ``print_targets``), the
JSON record (``run_record``, ``write_record``) and the exit status (``exit_status``);
``runner_options`` and ``output_options`` add the command-line options those runners have in
common and ``check_systems`` checks them. Imports only the standard library and
``reference_env`` beside it.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
sys.path.insert(0, str(BENCH_DIR))

from reference_env import isolated_env  # noqa: E402

__all__ = ["Target", "check_targets", "run_json", "Plan", "run_plan", "run_alternating",
           "medians_of", "print_metrics", "print_targets", "run_record", "write_record",
           "exit_status", "runner_options", "output_options", "check_systems"]


@dataclass(frozen=True)
class Target:
    """A goal: ``ours[key]`` against ``other``'s ``other_key`` as a ratio, ours / other (or,
    with ``times``, where smaller is better, other / ours), compared with ``bound`` by ``op``
    (``>=`` or ``<=``)."""

    name: str
    text: str
    key: str
    other: str
    other_key: str
    bound: float
    op: str = ">="
    times: bool = False


def check_targets(targets: Iterable[Target], medians: dict[str, dict[str, float]],
                  fallback: dict[str, float] | None = None, zero_is_missing: bool = False
                  ) -> tuple[dict[str, float], dict[str, bool | None]]:
    """The ratio of every target that was measured, and whether each is met (None: not
    measured). ``fallback``: the value of a system's metric that did not run; with
    ``zero_is_missing`` a 0 of ours counts as not measured too."""
    ratios: dict[str, float] = {}
    met: dict[str, bool | None] = {}
    ours = medians.get("ours", {})
    for t in targets:
        mine, other = ours.get(t.key), medians.get(t.other, {}).get(t.other_key)
        if other is None and fallback:
            other = fallback.get(t.other)
        if mine is None or (zero_is_missing and not mine) or not other:
            met[t.name] = None
            continue
        ratio = other / mine if t.times else mine / other
        ratios[t.name] = ratio
        met[t.name] = ratio <= t.bound if t.op == "<=" else ratio >= t.bound
    return ratios, met


def run_json(argv: list[str], *, env: dict[str, str] | None = None, cwd: Any = None,
             timeout: float = 600.0) -> dict[str, Any]:
    """Run ``argv`` to its end (bounded by ``timeout``); the last line of its output that is
    a JSON object.

    Raises:
        RuntimeError: it exited with a status other than 0 or printed no such line (the
            message ends with the tail of what it printed).
        subprocess.TimeoutExpired: it ran longer than ``timeout``.
    """
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env,
                          cwd=cwd)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"{argv} failed ({proc.returncode}):\n{proc.stdout[-2000:]}\n"
                           f"{proc.stderr[-2000:]}")
    return dict(json.loads(lines[-1]))


@dataclass
class Plan:
    """How to run one system: interpreter, program arguments and where its code comes from
    (``pycos_from``: the package it must import; None: anything but this repository's)."""

    python: str
    program: Path
    args: list[str]
    pythonpath: str | None = None
    isolated: bool = True
    pycos_from: Path | None = None
    cwd: str | None = None
    runs: list[dict[str, Any]] = field(default_factory=list)

    def argv(self) -> list[str]:
        return [self.python, *(["-E", "-s"] if self.isolated else []), str(self.program),
                *self.args]


def run_plan(plan: Plan, timeout: float) -> dict[str, Any]:
    """One run of ``plan`` in a fresh process (in ``cwd``, else the ``pythonpath``, else the
    home directory); its JSON result line (a result naming the ``pycos`` it imported is checked
    to come from the package it was meant to)."""
    env = isolated_env()
    if plan.pythonpath is not None:
        env["PYTHONPATH"] = plan.pythonpath
    cwd = plan.cwd or plan.pythonpath or os.path.expanduser("~")
    result = run_json(plan.argv(), env=env, cwd=cwd, timeout=timeout)
    if "pycos" in result:
        used = Path(result["pycos"]).resolve()
        if plan.pycos_from is not None and used != plan.pycos_from.resolve():
            raise RuntimeError(f"run used {used}, expected {plan.pycos_from}")
        if plan.pycos_from is None and used == (ROOT / "pycos").resolve():
            raise RuntimeError("the reference run imported this repository's pycos")
    return result


def run_alternating(plans: dict[str, Plan], reps: int, timeout: float) -> int:
    """``reps`` repetitions, each running every plan once in turn; each run's result (or its
    error) goes to the plan's ``runs``. The number of failed runs."""
    failures = 0
    for rep in range(reps):
        for name, plan in plans.items():
            start = time.monotonic()
            try:
                plan.runs.append(run_plan(plan, timeout))
                status = "ok"
            except (RuntimeError, subprocess.TimeoutExpired, ValueError) as error:
                failures += 1
                plan.runs.append({"error": str(error)[-2000:]})
                status = f"FAILED: {str(error)[-300:]}"
            print(f"rep {rep + 1}/{reps} {name}: {time.monotonic() - start:.1f} s {status}",
                  file=sys.stderr, flush=True)
    return failures


def medians_of(runs: list[dict[str, Any]]) -> dict[str, float]:
    """Median of every numeric key over the runs that succeeded."""
    good = [r for r in runs if "error" not in r]
    keys = {k for r in good for k, v in r.items() if isinstance(v, int | float)
            and not isinstance(v, bool)}
    return {k: statistics.median(r[k] for r in good if k in r) for k in sorted(keys)}


def print_metrics(labels: dict[str, str], rows: list[tuple[str, dict[str, str]]],
                  medians: dict[str, dict[str, float]],
                  fmt: Callable[[float | None], str]) -> None:
    """The table of medians: a column per system (``labels``, in order), a row per metric
    that one of them reports (``rows``: label, {system: key in its result})."""
    names = list(labels)
    print("\n| metric | " + " | ".join(labels.values()) + " |")
    print("|---|" + "---|" * len(names))
    for label, keys in rows:
        if not any(n in keys for n in names):
            continue
        cells = [fmt(medians[n].get(keys[n])) if n in keys else "-" for n in names]
        print(f"| {label} | " + " | ".join(cells) + " |")


def print_targets(targets: Iterable[Any], ratios: dict[str, float],
                  met: dict[str, bool | None], ratio_header: str = "ratio") -> None:
    """The table of targets (each with a ``name`` and a ``text``): ratio and whether met."""
    print(f"\n| target | {ratio_header} | met |")
    print("|---|---|---|")
    for t in targets:
        ratio = ratios.get(t.name)
        shown = "-" if ratio is None else f"{ratio:.2f}x"
        verdict = {True: "yes", False: "NO", None: "not measured"}[met[t.name]]
        print(f"| {t.text} | {shown} | {verdict} |")


def run_record(plans: dict[str, Plan], labels: dict[str, str], targets: Iterable[Any],
               medians: dict[str, dict[str, float]], ratios: dict[str, float],
               met: dict[str, bool | None], *, quick: bool, reps: int,
               load_start: tuple[float, float, float], head: dict[str, Any] | None = None,
               **extra: Any) -> dict[str, Any]:
    """What a run writes: the machine and the load (``head`` right after the python version,
    ``extra`` after the load), each system's label and arguments, every run, the medians, the
    ratios and the targets."""
    return {
        "python": sys.version.split()[0], **(head or {}), "time": time.time(), "quick": quick,
        "reps": reps, "cpus": os.cpu_count(), "loadavg_start": load_start,
        "loadavg_end": os.getloadavg(), **extra,
        "systems": {n: {"label": labels[n], "argv": [Path(a).name if a.startswith("/") else a
                                                     for a in p.argv()[1:]]}
                    for n, p in plans.items()},
        "runs": {n: p.runs for n, p in plans.items()}, "medians": medians, "ratios": ratios,
        "targets": {t.name: t.text for t in targets}, "targets_met": met,
    }


def write_record(path: Path, record: dict[str, Any], announce: bool = True,
                 indent: int = 1) -> None:
    """Write ``record`` as JSON to ``path`` (its directory made if missing); ``announce``:
    say where on standard error."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=indent) + "\n")
    if announce:
        print(f"\nwritten to {path}", file=sys.stderr)


def exit_status(failures: int, fail_on_miss: bool, met: dict[str, bool | None]) -> int:
    """1 when a run failed; else 2 when ``fail_on_miss`` and a measured target was missed;
    else 0."""
    if failures:
        return 1
    return 2 if fail_on_miss and not all(m for m in met.values() if m is not None) else 0


def runner_options(p: argparse.ArgumentParser, systems: tuple[str, ...]) -> None:
    """``--reps``, ``--quick``, ``--timeout`` and ``--systems``."""
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--quick", action="store_true", help="small sizes, one repetition")
    p.add_argument("--timeout", type=float, default=600.0, help="seconds per run")
    p.add_argument("--systems", default=",".join(systems),
                   help=f"comma-separated subset of {','.join(systems)}")


def output_options(p: argparse.ArgumentParser) -> None:
    """``--output`` and ``--fail-on-miss``."""
    p.add_argument("--output", type=Path)
    p.add_argument("--fail-on-miss", action="store_true")


def check_systems(p: argparse.ArgumentParser, args: argparse.Namespace,
                  systems: tuple[str, ...], results: str,
                  drop: Iterable[str] = ()) -> None:
    """``args.systems`` as a set (less ``drop``), checked; ``args.output`` by default
    ``results/<results>.json`` (``--quick``: ``<results>_quick.json``)."""
    args.systems = {s.strip() for s in args.systems.split(",") if s.strip()} - set(drop)
    unknown = args.systems - set(systems)
    if unknown or args.reps < 1:
        p.error(f"unknown systems {sorted(unknown)}" if unknown else "--reps must be >= 1")
    if args.output is None:
        args.output = BENCH_DIR / "results" / (f"{results}_quick.json" if args.quick
                                               else f"{results}.json")
