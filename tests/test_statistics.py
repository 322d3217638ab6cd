"""interaction_stats, superposition_stats and the NFA functions against numpy references."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

import nil
import reference as ref
from hypothesis_profiles import examples


def psd(k: int, rank: int, rng: np.random.Generator) -> np.ndarray:
    x = rng.standard_normal((rank, k))
    return x.T @ x / rank


def nan_is_documented(got: nil.InteractionStats, key: str, m: np.ndarray) -> bool:
    """Whether statistic ``key`` of ``m`` is undefined (NaN) by docs/statistics.md: every ratio of a
    degenerate matrix (the flag is set), and weighted_mean_cos2 when its pair weight
    Σ_{i≠j} SᵢᵢSⱼⱼ is not positive (an indefinite input with a diagonal entry ≤ 0)."""
    if got.degenerate:
        return True
    d = np.diag((m + m.T) / 2)
    return key == "weighted_mean_cos2" and not (d.sum() ** 2 - np.sum(d**2)) > 0


def assert_agrees(got: nil.InteractionStats, key: str, want: float, m: np.ndarray, **tol: float) -> None:
    """nil's ``key`` equals the reference's; both NaN agree only where the NaN is documented
    (math.isclose(nan, nan) is False, and a NaN on either side alone is a disagreement)."""
    v = getattr(got, key)
    if math.isnan(want) or math.isnan(v):
        assert math.isnan(want) and math.isnan(v), (key, v, want)
        assert nan_is_documented(got, key, m), f"{key} is NaN where docs/statistics.md defines it"
        return
    assert math.isclose(v, want, **tol), (key, v, want)


@settings(max_examples=examples(50), deadline=None)
@given(k=st.integers(2, 40), rank=st.integers(1, 50), seed=st.integers(0, 2**31), asym=st.booleans())
@example(k=2, rank=1, seed=211, asym=True)  # the failure of issue 11 §4: wmc2 NaN on both sides
def test_exact_convention_matches_numpy(k, rank, seed, asym):
    rng = np.random.default_rng(seed)
    m = psd(k, rank, rng)
    if asym:
        m = m + 0.01 * rng.standard_normal((k, k))  # symmetrised first by both
    got = nil.interaction_stats(m)
    want = ref.stats_exact(m)
    for key, v in want.items():
        if key in ("effective_rank", "top_share") and asym:
            continue  # negative eigenvalues possible; clipped identically but compare PSD only
        assert_agrees(got, key, v, m, rel_tol=1e-9, abs_tol=1e-12)
    assert not got.degenerate
    assert math.isclose(got.null_rank_one, 1 - 3 / (k + 2))
    assert math.isclose(got.excess_over_rotation, got.aofe_ratio - got.null_rotation)


@settings(max_examples=examples(40), deadline=None)
@given(k=st.integers(1, 30), seed=st.integers(0, 2**31), scale=st.sampled_from([1e-8, 1.0, 1e6]))
def test_reference_conventions_reproduce_their_arithmetic(k, seed, scale):
    m = psd(k, 3, np.random.default_rng(seed)) * scale
    a = nil.interaction_stats(m, "reference-sweep", spectrum=False)
    want = ref.stats_reference_sweep(m)
    for key in ("frobenius", "aofe_ratio"):
        assert math.isclose(getattr(a, key), want[key], rel_tol=2e-5, abs_tol=1e-6), key
    b = nil.interaction_stats(m, "reference-scan", spectrum=False)
    for key, v in ref.stats_reference_scan(m).items():
        assert math.isclose(getattr(b, key), v, rel_tol=1e-9, abs_tol=1e-15), key


def test_degenerate_matrices_are_nan_and_flagged_not_zero_or_one():
    z = np.zeros((5, 5))
    s = nil.interaction_stats(z)
    assert s.degenerate and math.isnan(s.aofe_ratio) and math.isnan(s.weighted_mean_cos2)
    assert s.frobenius == 0.0 and s.aofe == 0.0  # energies still reported
    # The reference's convention A reports a vanished Jacobian as maximally coupled (its quirk).
    assert nil.interaction_stats(z, "reference-sweep").aofe_ratio == 1.0
    assert nil.interaction_stats(z, "reference-scan").aofe_ratio == 0.0
    nan = np.eye(3)
    nan[0, 2] = np.nan
    assert nil.interaction_stats(nan).degenerate
    one = nil.interaction_stats(np.array([[4.0]]))
    assert one.aofe_ratio == 0.0 and math.isnan(one.weighted_mean_cos2) and one.participation_ratio == 1.0


def test_bad_matrices_raise_shape_errors():
    with pytest.raises(nil.ShapeError, match="square"):
        nil.interaction_stats(np.zeros((2, 3)))
    with pytest.raises(nil.NilValueError, match="convention"):
        nil.interaction_stats(np.eye(2), "reference")


def test_spectrum_can_be_skipped():
    s = nil.interaction_stats(psd(6, 2, np.random.default_rng(0)), spectrum=False)
    assert not s.spectrum and math.isnan(s.effective_rank) and math.isfinite(s.participation_ratio)
    assert set(s.to_dict()) >= {"aofe", "aofe_ratio", "weighted_mean_cos2", "degenerate", "convention"}


def test_rank_one_gaussian_ratio_matches_its_null_on_average():
    # METHOD §2.2: for M = uuᵀ, u ~ N(0, I_k), E[ratio] = 1 − 3/(k+2).
    rng = np.random.default_rng(5)
    k = 16
    ratios = [nil.interaction_stats(np.outer(u, u), spectrum=False).aofe_ratio for u in rng.standard_normal((4000, k))]
    assert abs(np.mean(ratios) - (1 - 3 / (k + 2))) < 0.005


def test_rotation_null_matches_haar_rotations():
    rng = np.random.default_rng(6)
    k = 12
    spectrum = np.diag(np.linspace(1, 4, k) ** 2)
    ratios = []
    for _ in range(3000):
        q, r = np.linalg.qr(rng.standard_normal((k, k)))
        q = q * np.sign(np.diag(r))
        ratios.append(nil.interaction_stats(q @ spectrum @ q.T, spectrum=False).aofe_ratio)
    null = nil.interaction_stats(spectrum).null_rotation
    assert abs(np.mean(ratios) - null) < 0.01


@settings(max_examples=examples(30), deadline=None)
@given(v=st.integers(2, 120), d=st.integers(1, 24), seed=st.integers(0, 2**31), zero=st.booleans())
def test_superposition_matches_brute_force(v, d, seed, zero):
    w = np.random.default_rng(seed).standard_normal((v, d)).astype(np.float32)
    if zero:
        w[0] = 0
    if np.count_nonzero(np.linalg.norm(w, axis=1)) < 2:
        return
    got = nil.superposition_stats(w, thresholds=(0.5, 2.0))
    want = ref.superposition(w)
    assert math.isclose(got.mean_sq_overlap, want["mean_sq_overlap"], rel_tol=1e-7, abs_tol=1e-12)
    assert math.isclose(got.dimensionality.mean, want["dim_mean"], rel_tol=1e-8)
    assert math.isclose(got.dimensionality_sum, want["dim_sum"], rel_tol=1e-8)
    np.testing.assert_allclose(got.wtw_matrix, want["wtw"], rtol=1e-10, atol=1e-12)
    norms = np.linalg.norm(w.astype(np.float64), axis=1)
    assert got.fraction_represented[2.0] == np.mean(norms >= 2.0)
    assert got.zero_rows == int(zero)
    assert math.isclose(got.row_norms.median, float(np.median(norms)), rel_tol=1e-10)


def test_superposition_nulls_match_monte_carlo():
    rng = np.random.default_rng(7)
    v, d = 400, 32
    draws = [nil.superposition_stats(rng.standard_normal((v, d)) * 0.3, thresholds=(1.7,)) for _ in range(30)]
    s = draws[0]
    mean = lambda f: float(np.mean([f(x) for x in draws]))  # noqa: E731
    assert abs(mean(lambda x: x.mean_sq_overlap) / s.null_mean_sq_overlap - 1) < 0.02
    assert abs(mean(lambda x: x.wtw.aofe_ratio) / s.null_wtw_aofe_ratio - 1) < 0.03
    assert abs(mean(lambda x: x.wtw.weighted_mean_cos2) / s.null_wtw_weighted_mean_cos2 - 1) < 0.05
    assert abs(mean(lambda x: x.wtw.participation_ratio) / s.null_wtw_participation_ratio - 1) < 0.02
    assert abs(mean(lambda x: x.dimensionality.mean) / s.null_dimensionality_mean - 1) < 0.03
    assert abs(mean(lambda x: x.row_norms.mean) / s.null_row_norm_mean - 1) < 0.01
    assert abs(mean(lambda x: x.fraction_represented[1.7]) - s.null_fraction_represented[1.7]) < 0.03


def test_superposition_accepts_half_precision_and_rejects_bad_input():
    import ml_dtypes

    w = np.random.default_rng(8).standard_normal((50, 8))
    a = nil.superposition_stats(w.astype(ml_dtypes.bfloat16))
    b = nil.superposition_stats(w.astype(ml_dtypes.bfloat16).astype(np.float64))
    assert a.mean_sq_overlap == pytest.approx(b.mean_sq_overlap, rel=1e-12)
    with pytest.raises(nil.NilValueError, match="NaN"):
        nil.superposition_stats(np.full((3, 2), np.nan))
    with pytest.raises(nil.ShapeError):
        nil.superposition_stats(np.zeros((0, 4)))


@settings(max_examples=examples(30), deadline=None)
@given(k=st.integers(2, 16), seed=st.integers(0, 2**31), gamma=st.floats(0.25, 1.75))
def test_nfa_correlation_matches_numpy(k, seed, gamma):
    rng = np.random.default_rng(seed)
    g = psd(k, k + 2, rng)
    a = psd(k, k + 2, rng)
    got = nil.nfa_correlation(a, g, power=gamma)
    with np.errstate(invalid="ignore", divide="ignore"):
        want = ref.nfa(a, g, gamma)
    for key, v in want.items():
        if math.isnan(v):  # k = 2: the two off-diagonal entries are equal, zero variance
            assert math.isnan(getattr(got, key)), key
        else:
            assert math.isclose(getattr(got, key), v, rel_tol=1e-7, abs_tol=1e-9), key


@settings(max_examples=examples(20), deadline=None)
@given(k=st.integers(3, 16), seed=st.integers(0, 2**31), gamma=st.floats(0.2, 1.8), c=st.floats(0.1, 10))
def test_fit_nfa_power_recovers_gamma(k, seed, gamma, c):
    g = psd(k, k + 3, np.random.default_rng(seed))
    a = c * ref.matrix_power(g, gamma)
    fit = nil.fit_nfa_power(a, g)
    assert abs(fit.gamma - gamma) < 1e-3
    assert abs(fit.spectral_gamma - gamma) < 1e-6
    assert fit.best.pearson_all > 0.999999


def test_nfa_bad_input():
    with pytest.raises(nil.ShapeError):
        nil.nfa_correlation(np.eye(3), np.eye(4))
    with pytest.raises(nil.NilValueError, match="criterion"):
        nil.fit_nfa_power(np.eye(3), np.eye(3), criterion="r2")  # type: ignore[arg-type]
