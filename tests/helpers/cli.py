"""mmdeb run as a user runs it, in a process of its own, and what a refusal must look like."""

import os
import subprocess
import sys
from pathlib import Path


def mmdeb(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mmdeb", *args],
        capture_output=True, text=True, cwd=cwd, env={**os.environ, **(env or {})},
    )


def assert_refused(result: subprocess.CompletedProcess, out: Path, *words: str) -> None:
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("mmdeb: error: ") and lines[0].count("Fix: ") == 1
    assert "Traceback" not in result.stdout + result.stderr
    for word in words:
        assert word in lines[0]
    leftovers = [p for p in out.rglob("*")] if out.exists() else []
    assert leftovers == [], leftovers
