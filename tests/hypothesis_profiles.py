"""Hypothesis profiles of the test suite (loaded by conftest.py).

``ci`` (the default, what ``make test`` and ``.ci/run`` use): derandomized, so every run of the same
code tries the same examples and a failure reproduces on any machine; no deadline (a shared 2-core
machine makes timings meaningless); the failing example's blob is printed for ``@reproduce_failure``.

``random`` (``make test-random``: ``pytest -m hypothesis --hypothesis-profile=random``): fresh random
examples on every run, ``RANDOM_SCALE`` times as many per test, to search for new failures. A
failure it finds becomes a deterministic regression test (an ``@example``) before it is fixed.

Each test keeps its own example count (sized to its cost); ``examples(n)`` scales it by the profile.
"""

from __future__ import annotations

from hypothesis import settings

RANDOM_SCALE = 20

settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
settings.register_profile("random", derandomize=False, deadline=None, print_blob=True)
_SCALE = {"ci": 1, "random": RANDOM_SCALE}


def examples(n: int) -> int:
    """``n`` examples under the ``ci`` profile, ``RANDOM_SCALE``·n under ``random``."""
    return n * _SCALE.get(settings.get_current_profile_name(), 1)
