"""Every example in README.md and docs/*.md runs as written, so the docs cannot rot.

A fenced block tagged ``python`` runs in a fresh interpreter; a block tagged ``sh``/``bash`` (or
untagged) whose commands start with ``nil``, ``python``, ``pip``, ``make``, ... runs in bash with
``nil`` meaning ``python -m nil`` of this checkout. The blocks of one file run in order in one
temporary directory, as a reader types them into one shell: a shell block may use the files an
earlier block of the same file wrote, a Python block never uses another block's variables.
A block that cannot run here carries ``<!-- not-run: REASON -->`` on the line before it; those
are counted and listed, and must stay few. Blocks tagged ``text``, ``json`` etc. are not code."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
PYTHON_TAGS = {"python", "py"}
SHELL_TAGS = {"", "sh", "bash", "shell", "console"}
COMMANDS = {"nil", "python", "python3", "pip", "make", "maturin", "nice", "torchrun", "bash", "cargo"}
NOT_RUN = re.compile(r"<!--\s*not-run:\s*(.+?)\s*-->")
MAX_NOT_RUN = 17  # GPU benchmarks, installs, long sweeps; raising this needs a reason in the docs


@dataclass
class Block:
    path: Path
    line: int  # 1-based line of the opening fence
    tag: str
    code: str
    not_run: str | None

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(REPO)}:{self.line}"

    @property
    def kind(self) -> str | None:
        if self.tag in PYTHON_TAGS:
            return "python"
        if self.tag in SHELL_TAGS:
            for line in self.code.splitlines():
                words = line.split()
                while words and re.match(r"^[A-Z_][A-Z0-9_]*=", words[0]):  # VAR=value command
                    words = words[1:]
                if words and not words[0].startswith("#") and words[0] in COMMANDS:
                    return "shell"
        return None


def blocks(path: Path) -> list[Block]:
    out: list[Block] = []
    lines = path.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        m = re.match(r"^```(\w*)\s*$", lines[i])
        if not m:
            i += 1
            continue
        start, tag = i, m.group(1).lower()
        j = i + 1
        while j < len(lines) and not lines[j].startswith("```"):
            j += 1
        prev = next((lines[k] for k in range(start - 1, -1, -1) if lines[k].strip()), "")
        mark = NOT_RUN.search(prev)
        out.append(Block(path, start + 1, tag, "\n".join(lines[start + 1 : j]) + "\n", mark.group(1) if mark else None))
        i = j + 1
    return out


ALL = [b for p in DOCS for b in blocks(p)]


def _env(tmp: Path) -> dict[str, str]:
    bin_dir = tmp / ".bin"
    bin_dir.mkdir(exist_ok=True)
    nil = bin_dir / "nil"
    nil.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m nil "$@"\n')
    nil.chmod(0o755)
    for name in ("python", "python3"):
        link = bin_dir / name
        if not link.exists():
            link.symlink_to(sys.executable)
    env = dict(os.environ)
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = str(REPO / "python") + os.pathsep + env.get("PYTHONPATH", "")
    env["MPLBACKEND"] = "Agg"
    env["COLUMNS"] = "100"
    return env


def test_not_run_markers_are_few_and_say_why():
    skipped = [b for b in ALL if b.not_run is not None]
    listing = "\n".join(f"  {b.where}: {b.not_run}" for b in skipped)
    print(f"{len(skipped)} blocks marked not-run:\n{listing}")
    assert len(skipped) <= MAX_NOT_RUN, listing
    for b in skipped:
        assert b.kind is not None, f"{b.where}: a not-run marker before a block that is not code"
        assert len(b.not_run) >= 8, f"{b.where}: say why the block cannot run"
    # every marker sits right before a block (none is left behind when a block moves)
    marks = sum(len(NOT_RUN.findall(p.read_text(encoding="utf-8"))) for p in DOCS)
    assert marks == len(skipped)


def test_code_blocks_are_tagged():
    """An untagged block that holds Python is tagged ``python`` (so that it runs)."""
    for b in ALL:
        if b.tag == "" and re.search(r"^(import |from \S+ import )", b.code, re.M):
            pytest.fail(f"{b.where}: Python in an untagged block; tag it python")


@pytest.mark.parametrize("doc", [p for p in DOCS if any(b.kind and b.not_run is None for b in blocks(p))], ids=lambda p: p.name)
def test_examples_run(doc, tmp_path):
    env = _env(tmp_path)
    ran = 0
    for n, b in enumerate(blocks(doc)):
        if b.kind is None or b.not_run is not None:
            continue
        if b.kind == "python":
            script = tmp_path / f".snippet_{n}.py"
            script.write_text(b.code, encoding="utf-8")
            cmd = [sys.executable, str(script)]
        else:
            cmd = ["bash", "-euo", "pipefail", "-c", b.code]
        proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, f"{b.where} exited {proc.returncode}:\n{b.code}\n--- stdout\n{proc.stdout[-3000:]}\n--- stderr\n{proc.stderr[-3000:]}"
        ran += 1
    assert ran > 0


def test_relative_links_resolve():
    """Every relative link of README.md and docs/*.md names a file a user has (no design notes
    outside the repository)."""
    for p in DOCS:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", p.read_text(encoding="utf-8")):
            if re.match(r"^[a-z]+://", target):
                continue
            assert (p.parent / target).exists(), f"{p.relative_to(REPO)}: link to {target}, which does not exist"
        assert "shared/design" not in p.read_text(encoding="utf-8"), p
