"""Smoke test of the file-transfer example: it runs as its own process (two nodes on 127.0.0.1),
ends by itself within the time limit, exits with code 0, prints no traceback and prints these
lines in this order."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

EXPECTED = [
    "progress: 0%",
    "progress: 25%",
    "progress: 50%",
    "progress: 75%",
    "progress: 100%",
    "sent payload.bin (16 MiB) in",
    "checksums match",
    "sending it again: status 1 (the same file is already there)",
    "del_file: status 0; the incoming directory is gone",
]


def test_send_file_progress(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, str(EXAMPLES / "send_file_progress.py"),
                           "--size-mib", "16"], capture_output=True, text=True, timeout=60,
                          cwd=tmp_path)
    assert proc.returncode == 0, f"failed:\n{proc.stdout}\n{proc.stderr}"
    assert "Traceback" not in proc.stdout + proc.stderr, proc.stderr
    lines = proc.stdout.splitlines()
    at = 0
    for want in EXPECTED:
        found = [i for i, line in enumerate(lines[at:], at) if line.startswith(want)]
        assert found, f"missing {want!r} after line {at} in:\n{proc.stdout}"
        at = found[0] + 1
    sent = next(line for line in lines if line.startswith("sent payload.bin"))
    assert sent.endswith(": status 0"), sent
