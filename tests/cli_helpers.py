"""Helpers of the CLI tests: what a clean failure looks like to a user."""

from __future__ import annotations

import subprocess


def one_line_error(proc: subprocess.CompletedProcess[str], *words: str) -> str:
    """The CLI failed cleanly: exit 1 (not a signal), one line on stderr holding every word, no
    traceback. Returns the line."""
    assert proc.returncode == 1, (proc.returncode, proc.stdout, proc.stderr)
    lines = [line for line in proc.stderr.strip().splitlines() if line.strip()]
    assert "Traceback" not in proc.stderr and len(lines) == 1, proc.stderr
    for w in words:
        assert w in lines[0], (w, lines[0])
    return lines[0]
