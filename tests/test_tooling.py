"""The project's own quality gates, run by the test command: ruff, mypy and the Sphinx build."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _run(*cmd: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout)


@pytest.mark.timeout(300)
def test_ruff_lint() -> None:
    paths = [p for p in ("pycos", "asyncoro", "tests", "examples", "bench") if (ROOT / p).exists()]
    result = _run(sys.executable, "-m", "ruff", "check", *paths)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.timeout(600)
def test_mypy() -> None:
    """Type-checks ``pycos`` (strict on ``pycos.core`` and ``pycos.proto``; see pyproject)."""
    result = _run(sys.executable, "-m", "mypy", timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.timeout(600)
def test_sphinx_docs_build_without_warnings(tmp_path: Path) -> None:
    result = _run(sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html",
                  "doc", str(tmp_path / "html"), timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "html" / "index.html").exists()


def test_ci_runs_the_readme_test_command() -> None:
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    command = 'python -m pip install -e ".[test,docs]" && python -m pytest'
    assert command in readme and command in ci
    assert shutil.which("bash")
