"""Create (or reuse) the virtual environment holding the released pycos 4.12.2.

``python bench/reference_env.py`` makes ``bench/.venv-ref`` with the interpreter running it,
installs ``pycos==4.12.2`` there from the package index with pip, checks that importing ``pycos``
in it gives that version (not this repository's package) and prints the environment's python.
An environment that already passes the check is reused. ``bench/run.py`` calls
``ensure_reference_env`` itself, so running this by hand only prepares ahead of time.
The other environment scripts share its helpers: ``env_python``, ``isolated_env``, ``make_env``
(a fresh environment with pinned requirements) and ``env_main`` (their command line).
Imports only the standard library.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import venv
from collections.abc import Callable
from pathlib import Path

REFERENCE_VERSION = "4.12.2"
BENCH_DIR = Path(__file__).resolve().parent
DEFAULT_PATH = BENCH_DIR / ".venv-ref"


def env_python(path: Path) -> Path:
    """The python executable inside the virtual environment at ``path``."""
    if os.name == "nt":
        return path / "Scripts" / "python.exe"
    return path / "bin" / "python"


def isolated_env() -> dict[str, str]:
    """Environment for the reference interpreter: no PYTHONPATH or other PYTHON* settings that
    could make it import this repository's pycos."""
    return {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}


def make_env(path: Path, python: str | None, requirements: list[str]) -> Path:
    """Create the virtual environment at ``path`` anew (with ``python``, default the
    interpreter running this) and install ``requirements`` there with pip; its python.

    Raises:
        RuntimeError: pip failed.
    """
    exe = env_python(path)
    base = python or sys.executable
    print(f"creating {path} with {base} and {' '.join(requirements)}", file=sys.stderr)
    if python is None:
        venv.EnvBuilder(with_pip=True, clear=True, symlinks=os.name != "nt").create(path)
    else:
        subprocess.run([base, "-m", "venv", "--clear", str(path)], check=True)
    pip = [str(exe), "-E", "-s", "-m", "pip", "install", "--disable-pip-version-check",
           "--no-input", *requirements]
    proc = subprocess.run(pip, env=isolated_env(), cwd=str(path))
    if proc.returncode != 0:
        raise RuntimeError(f"'{' '.join(pip)}' failed with exit code {proc.returncode}")
    return exe


def env_main(doc: str, default_path: Path, ensure: Callable[[Path, str | None, bool], Path]
             ) -> int:
    """The command line of an environment script: ``--path``, ``--python``, ``--recreate``;
    prints the environment's python (0), or the error (1)."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--path", type=Path, default=default_path,
                        help=f"where to create the environment (default bench/"
                             f"{default_path.name})")
    parser.add_argument("--python", help="base interpreter (default: the one running this)")
    parser.add_argument("--recreate", action="store_true", help="rebuild even if it exists")
    args = parser.parse_args()
    try:
        exe = ensure(args.path.resolve(), args.python, args.recreate)
    except (RuntimeError, OSError, subprocess.SubprocessError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(exe)
    return 0


def installed_version(python: Path) -> str | None:
    """Version of ``pycos`` importable by ``python`` (run outside the repository), or None."""
    if not python.exists():
        return None
    code = "import pycos, sys; sys.stdout.write(pycos.__version__ + '\\n' + pycos.__file__)"
    proc = subprocess.run([str(python), "-E", "-s", "-c", code], capture_output=True, text=True,
                          cwd=os.path.expanduser("~"), env=isolated_env(), timeout=60)
    if proc.returncode != 0:
        return None
    version, _, location = proc.stdout.partition("\n")
    if Path(location).resolve().parent == BENCH_DIR.parent / "pycos":
        return None  # this repository's package, not the release
    return version.strip()


def ensure_reference_env(path: Path = DEFAULT_PATH, python: str | None = None,
                         recreate: bool = False) -> Path:
    """Return the python of a virtual environment with pycos 4.12.2, creating it if needed.

    Plain call. Needs access to the package index only when the environment must be built.

    Raises:
        RuntimeError: pip failed, or the environment does not import pycos 4.12.2 afterwards.
    """
    exe = env_python(path)
    if not recreate and installed_version(exe) == REFERENCE_VERSION:
        return exe
    make_env(path, python, [f"pycos=={REFERENCE_VERSION}"])
    found = installed_version(exe)
    if found != REFERENCE_VERSION:
        raise RuntimeError(f"{exe} imports pycos {found!r}, expected {REFERENCE_VERSION}")
    return exe


if __name__ == "__main__":
    sys.exit(env_main(__doc__, DEFAULT_PATH, ensure_reference_env))
