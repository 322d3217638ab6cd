"""The suite's hypothesis profile: derandomized under `make test`, random under `make test-random`."""

from __future__ import annotations

import pytest
from hypothesis import settings

from hypothesis_profiles import RANDOM_SCALE, examples


def test_make_test_is_derandomized():
    if settings.get_current_profile_name() == "random":
        pytest.skip("make test-random: random examples on purpose")
    assert settings.get_current_profile_name() == "ci"
    s = settings.default
    assert s is not None and s.derandomize and s.database is None and s.deadline is None and s.print_blob
    assert examples(7) == 7


def test_random_profile_has_more_examples():
    if settings.get_current_profile_name() != "random":
        pytest.skip("only under --hypothesis-profile=random")
    s = settings.default
    assert s is not None and not s.derandomize and examples(7) == 7 * RANDOM_SCALE
