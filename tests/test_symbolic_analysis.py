"""Analysis of decompositions: salient sets, explanation ratio, per-order profiles by sign, the
decay/spindle shape statistic and what two models share."""

from __future__ import annotations

import numpy as np
import pytest

from nil.errors import NilValueError, ShapeError
from nil.symbolic import (
    and_or,
    compare_groups,
    explanation_ratio,
    joint_and_or,
    order_profile,
    profile_shape,
    salient,
    sharing,
    summarize,
    transform,
)


def planted(n: int = 5) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Interactions with known salient terms: AND {0,1} = 2, AND {2} = −1, OR {1,3,4} = 0.5, plus
    tiny noise; and the values they make."""
    size = 1 << n
    a = np.full(size, 1e-4)
    o = np.zeros(size)
    a[0] = 0.3
    a[0b00011] = 2.0
    a[0b00100] = -1.0
    o[0b11010] = 0.5
    v = transform(a, "zeta") + transform(o, "or_inverse")
    return a, o, v


def test_salient_and_explanation_ratio() -> None:
    a, o, v = planted()
    sa, so, tau = salient(a, o)
    assert tau == pytest.approx(0.1)
    assert np.flatnonzero(sa).tolist() == [0b00011, 0b00100] and np.flatnonzero(so).tolist() == [0b11010]
    everything = np.ones_like(sa)
    assert explanation_ratio(v, a, o, everything, everything) == pytest.approx(1.0, abs=1e-12)
    r = float(explanation_ratio(v, a, o, sa, so))
    assert 0.99 < r < 1.0  # only the 1e-4 noise terms are left out
    nothing = np.zeros_like(sa)
    assert float(explanation_ratio(v, a, o, nothing, nothing)) < 0.5
    assert np.isnan(explanation_ratio(np.ones(4), np.zeros(4), np.zeros(4), sa[:4], so[:4]))
    with pytest.raises(NilValueError):
        salient(a, o, ratio=1.5)


def test_order_profile_splits_by_sign() -> None:
    a, o, _ = planted()
    prof = order_profile((a, o))
    assert prof.positive.tolist() == [0, 0, 2.0, 0.5, 0, 0]
    assert prof.negative.tolist() == [0, 1.0, 0, 0, 0, 0]
    assert prof.count_positive.tolist() == [0, 0, 1, 1, 0, 0]
    assert prof.and_strength.tolist() == [0, 1.0, 2.0, 0, 0, 0] and prof.or_strength[3] == 0.5
    two = order_profile((np.stack([a, a]), np.stack([o, o])))
    assert two.samples == 2 and two.positive[2] == 4.0


def test_shape_statistic() -> None:
    assert profile_shape([0, 5, 3, 1, 0.5, 0.2, 0.1, 0, 0]).kind == "decay"
    s = profile_shape([0, 1, 3, 5, 6, 4, 1, 0.5, 0])
    assert s.kind == "spindle" and s.peak_order == 4 and s.unimodal
    assert profile_shape([0, 5, 0, 5, 0, 5, 0, 0, 0]).kind == "other"
    assert profile_shape([0, 0, 0, 0]).kind == "none"
    # wiggles under 5 % of the peak do not break unimodality
    assert profile_shape([0, 1.0, 0.5, 0.52, 0.2, 0, 0, 0, 0]).unimodal
    assert profile_shape([0, 1, 2, 3, 4]).kind == "other"  # peak at the top order
    assert profile_shape([0, 1, 1, 2]).mean_order == pytest.approx((1 + 2 + 6) / 4)


def test_summary_of_a_decomposition() -> None:
    _, _, v = planted()
    d = and_or(v, qthres=0.0, max_iter=20_000, tol=1e-6)
    s = summarize(d, v)
    assert s["salient_mean"] == 3 and s["salient_and_mean"] == 2 and s["salient_or_mean"] == 1
    assert s["explanation_ratio"] > 0.99 and s["players"] == 5
    assert s["profile"]["positive"][2] == pytest.approx(2.0, rel=1e-3)


def test_sharing_between_two_models() -> None:
    _, _, v = planted()
    same = joint_and_or(np.stack([v, v]), qthres=0.0, max_iter=20_000, tol=1e-6)
    sh = sharing(same, k=3)
    assert sh.shared_mean == 3 and sh.only_first_mean == 0 and sh.shared_fraction == 1.0
    assert sh.transferability == 1.0 and sh.signed_overlap == pytest.approx(1.0, abs=1e-3)
    assert sh.unshared_shape.kind == "none"
    flipped = joint_and_or(np.stack([v, -v]), qthres=0.0, max_iter=20_000, tol=1e-6)
    assert sharing(flipped, k=3).signed_overlap == pytest.approx(-1.0, abs=1e-3)
    rng = np.random.default_rng(0)
    other = joint_and_or(np.stack([v, rng.normal(size=v.shape)]), max_iter=5000)
    sh2 = sharing(other, k=3)
    assert sh2.shared_mean < 3 and sh2.only_first_mean > 0
    assert set(sh2.to_dict()) >= {"transferability", "signed_overlap", "shared_shape", "unshared_profile"}
    with pytest.raises(ShapeError):
        sharing(and_or(v))
    groups = compare_groups({"train": and_or(v), "test": and_or(-v)})
    assert groups["train"]["shape"]["peak_order"] == groups["test"]["shape"]["peak_order"]
