"""Shared fixtures: run the CLI as a user would (a subprocess), temporary capture directories;
the hypothesis profile (tests/hypothesis_profiles.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import settings

import hypothesis_profiles  # noqa: F401  (registers the ci and random profiles)

# ``make test`` runs derandomized; ``--hypothesis-profile=random`` (``make test-random``) overrides this.
settings.load_profile("ci")

REPO = Path(__file__).resolve().parents[1]


def _has_cuda() -> bool:
    try:
        import torch

        return bool(torch.cuda.is_available())
    except Exception:
        return False


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skips tests marked ``gpu`` cleanly when CUDA is absent."""
    if _has_cuda():
        return
    skip = pytest.mark.skip(reason="needs CUDA")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def one_torch_thread():
    """Tiny models run fastest on one torch thread on a shared 2-core machine; restored afterwards."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture
def run_cli():
    """Runs ``python -m nil ARGS`` in a subprocess with this checkout's package first on the path."""

    def run(*args: str, check: bool = False, cwd: str | os.PathLike[str] | None = None, timeout: float = 600):
        env = dict(os.environ)
        env["PYTHONPATH"] = str(REPO / "python") + os.pathsep + env.get("PYTHONPATH", "")
        proc = subprocess.run(
            [sys.executable, "-m", "nil", *args],
            capture_output=True,
            text=True,
            env=env,
            cwd=cwd,
            timeout=timeout,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"nil {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
        return proc

    return run
