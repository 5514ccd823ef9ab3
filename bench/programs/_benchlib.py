"""Helpers shared by the benchmark programs: arguments, resident memory, the result line.

Imports only the standard library (psutil when /proc is missing) and never ``pycos`` or
``asyncio``, so each program measures only the implementation it imports itself. Every program
prints exactly one JSON object on its last line of standard output; ``bench/run.py`` reads it.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
from typing import Any


def parse_args(description: str, **defaults: int) -> argparse.Namespace:
    """Parse ``--name N`` integer options, one per keyword in ``defaults``."""
    parser = argparse.ArgumentParser(description=description)
    for name, value in defaults.items():
        parser.add_argument("--" + name.replace("_", "-"), type=int, default=value,
                            help=f"(default {value})")
    args = parser.parse_args()
    for name in defaults:
        if getattr(args, name) <= 0:
            parser.error(f"--{name.replace('_', '-')} must be a positive integer")
    return args


def rss_bytes() -> int:
    """Resident set size of this process now, in bytes."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            pages = int(statm.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        import psutil  # only where /proc is missing

        return int(psutil.Process().memory_info().rss)


def settled_rss() -> int:
    """RSS after a full garbage collection (run twice so finalised cycles are freed too)."""
    gc.collect()
    gc.collect()
    return rss_bytes()


def implementation(module: Any) -> dict[str, str]:
    """Which implementation ran: ``pycos`` (with version and file) or ``asyncio``."""
    name = module.__name__
    if name == "asyncio":
        return {"impl": "asyncio", "version": sys.version.split()[0], "file": ""}
    return {"impl": name, "version": str(getattr(module, "__version__", "?")),
            "file": str(getattr(module, "__file__", ""))}


def emit(bench: str, module: Any, args: argparse.Namespace, **metrics: Any) -> None:
    """Print the result line: benchmark name, implementation, parameters and metrics."""
    record = {"bench": bench, **implementation(module),
              "python": sys.version.split()[0], "params": vars(args), "metrics": metrics}
    print(json.dumps(record, sort_keys=True), flush=True)
