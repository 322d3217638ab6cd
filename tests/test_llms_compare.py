"""Correlation statistics against scipy/numpy references, and the interval comparison's definitions."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from nil.errors import FormatError, NilValueError
from nil.llms import Interval, average_ranks, compare, correlate, pearson, position, read_interval, shape
from hypothesis_profiles import examples

finite = st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False).map(lambda v: round(v, 3))


@settings(max_examples=examples(60), deadline=None)
@given(st.lists(st.tuples(finite, finite), min_size=5, max_size=25))
def test_raw_statistics_match_scipy(pairs):
    x = np.array([p[0] for p in pairs])
    y = np.array([p[1] for p in pairs])
    np.testing.assert_allclose(average_ranks(x), stats.rankdata(x))
    c = correlate(x, y, permutations=200)
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        assert math.isnan(c.pearson)
        return
    ref = stats.pearsonr(x, y)
    assert c.pearson == pytest.approx(ref.statistic, abs=1e-9)
    rho = stats.spearmanr(x, y).statistic
    if math.isfinite(rho):
        assert c.spearman == pytest.approx(rho, abs=1e-9)
    else:  # undefined on both sides, never a number on one of them
        assert math.isnan(c.spearman)
    if abs(ref.statistic) < 0.999:
        ci = ref.confidence_interval()
        assert (c.ci_lo, c.ci_hi) == pytest.approx((ci.low, ci.high), abs=1e-9)


def test_partial_correlation_matches_the_precision_matrix_formula():
    rng = np.random.default_rng(3)
    z = rng.normal(size=30)
    x = z + rng.normal(size=30)
    y = 2 * z + 0.5 * x + rng.normal(size=30)
    p = np.linalg.inv(np.corrcoef(np.vstack([x, y, z])))
    expected = -p[0, 1] / math.sqrt(p[0, 0] * p[1, 1])
    c = correlate(x, y, covariates={"z": z}, permutations=200)
    assert c.pearson == pytest.approx(expected, abs=1e-12)
    # Fisher interval with n - 3 - 1 degrees of freedom for one covariate.
    h = 1.959963984540054 / math.sqrt(30 - 4)
    assert c.ci_lo == pytest.approx(math.tanh(math.atanh(expected) - h))


def test_within_family_is_correlation_of_group_centred_values():
    rng = np.random.default_rng(4)
    g = np.repeat(np.arange(4), 5)
    x = g * 10 + rng.normal(size=20)
    y = -g * 10 + x - g * 10 + rng.normal(size=20)
    xc = x - np.array([x[g == k].mean() for k in g])
    yc = y - np.array([y[g == k].mean() for k in g])
    c = correlate(x, y, groups=g, permutations=500)
    assert c.pearson == pytest.approx(np.corrcoef(xc, yc)[0, 1], abs=1e-12)
    assert c.strata == 4
    assert c.pearson > 0.4  # the pooled correlation is dominated by the group offsets
    assert correlate(x, y, permutations=500).pearson < c.pearson


def test_exact_permutation_p_matches_scipy():
    x = np.array([1.0, 2.5, 2.0, 4.0, 3.3, 7.0])
    y = np.array([0.2, 0.1, 0.9, 1.4, 0.8, 2.0])
    c = correlate(x, y)
    assert c.permutations == "exact"
    ref = stats.permutation_test(
        (x,), lambda a: abs(stats.pearsonr(a, y).statistic), permutation_type="pairings",
        n_resamples=np.inf, alternative="greater",
    )
    assert c.p_pearson == pytest.approx(ref.pvalue, abs=1e-12)


def test_monte_carlo_p_is_seeded_and_sensible():
    rng = np.random.default_rng(5)
    x = rng.normal(size=40)
    strong = correlate(x, x + 0.1 * rng.normal(size=40), permutations=2000, seed=1)
    assert strong.p_pearson == pytest.approx(1 / 2001)
    a = correlate(x, x[::-1], permutations=500, seed=7)
    b = correlate(x, x[::-1], permutations=500, seed=7)
    assert a == b


def test_permutation_p_is_calibrated_under_the_null():
    rng = np.random.default_rng(11)
    ps = [correlate(rng.normal(size=15), rng.normal(size=15), permutations=300, seed=i).p_pearson for i in range(300)]
    # Under independence p is uniform: about 5% below 0.05 (binomial sd 1.3%).
    assert 0.01 <= np.mean(np.array(ps) < 0.05) <= 0.10


def test_family_offsets_alone_are_not_a_within_family_effect():
    rng = np.random.default_rng(12)
    g = np.repeat(np.arange(5), 4)
    x = g + 0.1 * rng.normal(size=20)
    y = 3 * g + rng.normal(size=20)
    assert correlate(x, y, permutations=500).p_pearson < 0.01
    within = correlate(x, y, groups=g, permutations=2000, seed=3)
    assert within.p_pearson > 0.01 and within.ci_lo < 0 < within.ci_hi


def test_degenerate_inputs_give_nan_not_zero():
    assert math.isnan(pearson([1, 1, 1], [1, 2, 3]))
    c = correlate([1.0, 2.0], [3.0, 4.0])
    assert c.n == 2 and math.isnan(c.pearson) and math.isnan(c.p_pearson)
    c = correlate([0.0, 0.0, 0.0, 0.0], [1.0, 2.0, 3.0, 5.0])
    assert math.isnan(c.pearson) and math.isnan(c.spearman)


def test_position_and_distance():
    iv = Interval(0.01, 0.02)
    assert position(0.015, iv).where == "inside" and position(0.015, iv).distance == 0.0
    assert position(0.001, iv).where == "below" and position(0.001, iv).distance == pytest.approx(1.0)
    assert position(0.2, iv).where == "above" and position(0.2, iv).distance == pytest.approx(1.0)
    with pytest.raises(NilValueError):
        Interval(0.02, 0.01)


def test_interval_far_below_every_model_reproduces_the_log_ratio_association():
    # Above the interval the distance is log10 R - log10 hi: a shift of log10 R.
    far = compare("oll-raw", "base", Interval(1e-4, 2e-4), permutations=200)
    none = compare("oll-raw", "base", None, permutations=200)
    assert all(r.position == "above" for r in far.rows)
    for a, b in zip(far.associations, none.associations):
        assert a.n == b.n
        assert a.pearson == pytest.approx(b.pearson, abs=1e-12)


def test_interval_holding_every_model_admits_no_comparison():
    comp = compare("oll-raw", "base", Interval(1e-3, 1.0), permutations=200)
    assert all(r.distance == 0 for r in comp.rows)
    assert math.isnan(comp.associations[0].pearson)
    assert "no comparison is possible" in comp.verdict


def test_comparison_rows_come_from_the_registry():
    comp = compare("tiger-5shot-cot", "base", Interval(0.01, 0.02), permutations=200)
    names = {r.name for r in comp.rows}
    assert names == {"Meta-Llama-3.1-8B", "Meta-Llama-3-8B", "Mistral-7B-v0.1"}
    row = next(r for r in comp.rows if r.name == "Mistral-7B-v0.1")
    assert row.ratio == shape("Mistral-7B-v0.1").ratio and row.score == 30.86 and row.source == "TIGER"
    assert "too few" in comp.verdict


def test_chance_level_models_are_listed_but_left_out_unless_asked():
    comp = compare("oll-raw", "base", permutations=200)
    chance = [r for r in comp.rows if r.at_chance]
    assert chance and not any(r.used for r in chance)
    assert comp.excluded["at chance"] == len(chance)
    kept = compare("oll-raw", "base", include_chance=True, permutations=200)
    assert kept.associations[0].n == comp.associations[0].n + len(chance)


def test_read_interval(tmp_path):
    f = tmp_path / "iv.json"
    f.write_text(json.dumps({"interval": {"lo": 0.01, "hi": 0.03}, "frontier": {}}))
    assert read_interval(f) == Interval(0.01, 0.03, source=str(f))
    f.write_text(json.dumps({"bands": []}))
    with pytest.raises(FormatError, match=r"iv.json.*\"interval\""):
        read_interval(f)
    f.write_text(json.dumps({"interval": {"lo": None, "hi": None, "empty": True}, "smooth_interval": {"lo": 0.02, "hi": 0.04}}))
    with pytest.raises(FormatError, match="empty"):
        read_interval(f)
    assert read_interval(f, "smooth_interval").lo == 0.02
    f.write_text("{not json")
    with pytest.raises(FormatError, match="invalid JSON"):
        read_interval(f)


def test_raw_statistics_agree_with_the_rust_core_correlation():
    # nil_core::corr (the interval fits' correlations) computes the same raw Pearson and Spearman.
    from nil import _core

    core_corr = getattr(_core, "correlation", None)
    if core_corr is None:
        pytest.skip("this build of nil._core has no correlation binding")
    rng = np.random.default_rng(21)
    x = np.round(rng.normal(size=17), 1)
    y = x + rng.normal(size=17)
    mine = correlate(x, y, permutations=100)
    core = core_corr(x, y, 0, 0)
    assert mine.pearson == pytest.approx(core["pearson"], abs=1e-12)
    assert mine.spearman == pytest.approx(core["spearman"], abs=1e-12)
