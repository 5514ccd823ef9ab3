"""Profile one benchmark program with cProfile and print where the time goes.

``python bench/profile_program.py pycos_pingpong [--n 100000]`` runs
``bench/programs/pycos_pingpong.py`` in this process with the profiler switched on inside the
scheduler thread (pycos runs tasks in its own thread, which a profiler started in the main thread
would not see). Arguments after the
program name go to the program. The pycos imported is whichever this interpreter finds: run it
with ``PYTHONPATH=.`` from the repository root for ours, or with ``bench/.venv-ref/bin/python``
for pycos 4.12.2. asyncio programs are profiled in the main thread. Imports only the standard
library (and, for pycos programs, ``pycos``).
"""

from __future__ import annotations

import argparse
import cProfile
import importlib.util
import pstats
import sys
from pathlib import Path

PROGRAMS = Path(__file__).resolve().parent / "programs"


def load(name: str):
    """Import ``bench/programs/<name>.py`` as a module (its ``main`` is not run)."""
    path = PROGRAMS / f"{name.removesuffix('.py')}.py"
    if not path.exists():
        choices = sorted(p.stem for p in PROGRAMS.glob("*_*.py") if not p.stem.startswith("_"))
        raise SystemExit(f"no program {path.name}; choose from {choices}")
    sys.path.insert(0, str(PROGRAMS))
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def profile_pycos(module, prof: cProfile.Profile) -> int:
    """Switch the profiler on and off from tasks, i.e. in the scheduler thread."""
    import pycos

    def switch(on, task=None):
        if on:
            prof.enable()
        else:
            prof.disable()
        yield None

    pycos.Task(switch, True).value()
    status = module.main()
    pycos.Task(switch, False).value()
    return status


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("program", help="e.g. pycos_pingpong, pycos_oneway, asyncio_spawn")
    parser.add_argument("--sort", default="tottime", help="pstats sort key (default tottime)")
    parser.add_argument("--top", type=int, default=25, help="rows to print (default 25)")
    parser.add_argument("--save", type=Path, help="also write the raw stats to this file")
    args, rest = parser.parse_known_args()
    module = load(args.program)
    sys.argv = [f"{args.program}.py", *rest]
    prof = cProfile.Profile()
    if args.program.startswith("asyncio"):
        status = prof.runcall(module.main)
    else:
        status = profile_pycos(module, prof)
    if args.save:
        prof.dump_stats(str(args.save))
    stats = pstats.Stats(prof, stream=sys.stdout)
    stats.strip_dirs().sort_stats(args.sort).print_stats(args.top)
    return status


if __name__ == "__main__":
    sys.exit(main())
