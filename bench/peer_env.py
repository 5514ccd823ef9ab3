"""Create (or reuse) the virtual environment holding the peer systems of the latency benchmark.

``python bench/peer_env.py`` makes ``bench/.venv-peers`` with the interpreter running it,
installs the pinned releases of pyzmq, Pyro5 and RPyC there from the package index with pip,
checks that each one imports in it with the pinned version and prints the environment's python.
An environment that already passes the check is reused. ``bench/bench_latency.py`` calls
``ensure_peer_env`` itself, so running this by hand only prepares ahead of time.

These packages are measured beside pycos; the package itself never depends on them.
Imports only the standard library (and ``reference_env`` beside it, whose helpers it shares).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))

from reference_env import env_main, env_python, isolated_env, make_env  # noqa: E402

DEFAULT_PATH = BENCH_DIR / ".venv-peers"

#: distribution name on the package index: (pinned version, module to import)
PEER_PACKAGES: dict[str, tuple[str, str]] = {
    "pyzmq": ("27.3.0", "zmq"),
    "Pyro5": ("5.17", "Pyro5"),
    "rpyc": ("6.0.2", "rpyc"),
}

_CHECK = """
import importlib, importlib.metadata, json, sys
found = {}
for dist, module in json.loads(sys.argv[1]).items():
    try:
        importlib.import_module(module)
        found[dist] = importlib.metadata.version(dist)
    except Exception as error:
        found[dist] = None
sys.stdout.write(json.dumps(found))
"""


def installed_versions(python: Path) -> dict[str, str | None]:
    """Version of each peer distribution that imports under ``python`` (None where it does
    not import); an empty dict when the interpreter is missing or fails."""
    if not python.exists():
        return {}
    modules = json.dumps({dist: module for dist, (_v, module) in PEER_PACKAGES.items()})
    proc = subprocess.run([str(python), "-E", "-s", "-c", _CHECK, modules], capture_output=True,
                          text=True, cwd=os.path.expanduser("~"), env=isolated_env(),
                          timeout=120)
    if proc.returncode != 0:
        return {}
    found: dict[str, str | None] = json.loads(proc.stdout)
    return found


def _pinned() -> dict[str, str]:
    return {dist: version for dist, (version, _m) in PEER_PACKAGES.items()}


def ensure_peer_env(path: Path = DEFAULT_PATH, python: str | None = None,
                    recreate: bool = False) -> Path:
    """Return the python of a virtual environment with the pinned peer packages, creating it
    if needed.

    Plain call. Needs access to the package index only when the environment must be built.

    Raises:
        RuntimeError: pip failed, or a package does not import with its pinned version
            afterwards.
    """
    exe = env_python(path)
    if not recreate and installed_versions(exe) == _pinned():
        return exe
    make_env(path, python, [f"{dist}=={version}" for dist, version in _pinned().items()])
    found = installed_versions(exe)
    if found != _pinned():
        raise RuntimeError(f"{exe} has {found!r}, expected {_pinned()!r}")
    return exe


if __name__ == "__main__":
    sys.exit(env_main(__doc__, DEFAULT_PATH, ensure_peer_env))
