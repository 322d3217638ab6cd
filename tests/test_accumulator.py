"""AgopAccumulator against numpy: every dtype and memory layout, merge, files, bad input."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import nil
from reference import agop
from hypothesis_profiles import examples

DTYPES = [np.float64, np.float32, np.float16, ml_dtypes.bfloat16]


def layouts(x: np.ndarray) -> list[np.ndarray]:
    """The same rows in several memory layouts: C, Fortran, strided slice, reversed."""
    big = np.zeros((x.shape[0] * 2, x.shape[1] * 3), dtype=x.dtype)
    big[::2, ::3] = x
    return [x, np.asfortranarray(x), big[::2, ::3], x[::-1][::-1], np.ascontiguousarray(x[:, ::-1])[:, ::-1]]


@settings(max_examples=examples(40), deadline=None)
@given(
    n=st.integers(1, 300),
    d=st.integers(1, 40),
    dtype=st.sampled_from(DTYPES),
    precision=st.sampled_from(["exact", "fast"]),
    seed=st.integers(0, 2**31),
)
def test_matches_numpy_for_every_dtype_and_layout(n, d, dtype, precision, seed):
    x = np.random.default_rng(seed).standard_normal((n, d)).astype(dtype)
    expected = agop(x.astype(np.float64))
    scale = np.abs(expected).max()
    for view in layouts(x):
        acc = nil.AgopAccumulator(d, precision=precision)
        acc.update(view)
        got = acc.matrix()
        assert acc.count == n
        assert np.array_equal(got, got.T)
        tol = 1e-12 if precision == "exact" else 1e-5
        np.testing.assert_allclose(got, expected, rtol=0, atol=tol * scale)


def test_exact_precision_agrees_with_float64_to_1e10_on_many_rows():
    # METHOD R3: agreement with a float64 numpy computation to relative 1e-10.
    x = np.random.default_rng(1).standard_normal((70_000, 24)).astype(np.float32)
    acc = nil.AgopAccumulator(24, precision="exact")
    for chunk in np.array_split(x, 7):
        acc.update(chunk)
    ref = agop(x)
    assert np.max(np.abs(acc.matrix() - ref)) / np.max(np.abs(ref)) < 1e-10


def test_fast_error_does_not_grow_with_rows():
    x = np.random.default_rng(2).standard_normal((200_000, 8)).astype(np.float32)
    acc = nil.AgopAccumulator(8, precision="fast")
    acc.update(x)
    ref = agop(x)
    assert np.max(np.abs(acc.matrix() - ref)) / np.max(np.abs(ref)) < 2e-6


@settings(max_examples=examples(25), deadline=None)
@given(sizes=st.lists(st.integers(0, 50), min_size=1, max_size=5), seed=st.integers(0, 2**31))
def test_merge_is_associative_and_equals_one_update(sizes, seed):
    rng = np.random.default_rng(seed)
    parts = [rng.standard_normal((s, 5)).astype(np.float32) for s in sizes]
    whole = nil.AgopAccumulator(5, precision="exact")
    whole.update(np.concatenate(parts))
    accs = []
    for p in parts:
        a = nil.AgopAccumulator(5, precision="exact")
        a.update(p)
        accs.append(a)
    left = accs[0].copy()
    for a in accs[1:]:
        left.merge(a)
    right = accs[-1].copy()
    for a in reversed(accs[:-1]):
        right.merge(a)
    assert left.count == right.count == whole.count == sum(sizes)
    if whole.count:
        np.testing.assert_allclose(left.sum(), whole.sum(), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(right.sum(), whole.sum(), rtol=1e-12, atol=1e-12)


def test_uint16_words_need_a_dtype_and_decode_like_ml_dtypes():
    x = np.random.default_rng(3).standard_normal((10, 4)).astype(ml_dtypes.bfloat16)
    acc = nil.AgopAccumulator(4, precision="exact")
    with pytest.raises(nil.DTypeError, match="dtype='float16' or dtype='bfloat16'"):
        acc.update(x.view(np.uint16))
    acc.update(x.view(np.uint16), dtype="bfloat16")
    np.testing.assert_allclose(acc.matrix(), agop(x.astype(np.float64)), rtol=1e-13)


def test_torch_tensors_are_accepted():
    torch = pytest.importorskip("torch")
    t = torch.randn(12, 6, dtype=torch.bfloat16)
    acc = nil.AgopAccumulator(6, precision="exact")
    acc.update(t)
    np.testing.assert_allclose(acc.matrix(), agop(t.float().numpy()), rtol=1e-13)


def test_nonfinite_raises_by_default_and_leaves_state_unchanged():
    x = np.ones((2000, 3), np.float32)
    x[1500, 2] = np.inf
    acc = nil.AgopAccumulator(3)
    acc.update(np.ones((4, 3), np.float32))
    before = acc.sum()
    with pytest.raises(nil.NonFiniteError, match="row 1500"):
        acc.update(x)
    assert acc.count == 4
    np.testing.assert_array_equal(acc.sum(), before)
    acc.update(x, nonfinite="skip")
    assert (acc.count, acc.nonfinite) == (4 + 1999, 1)
    skipper = nil.AgopAccumulator(3, nonfinite="skip")
    x[7, 0] = np.nan
    skipper.update(x)
    assert skipper.nonfinite == 2


def test_edge_cases():
    acc = nil.AgopAccumulator(3)
    assert np.isnan(acc.matrix()).all()  # nothing accumulated: NaN, never 0
    acc.update(np.zeros((0, 3), np.float32))
    assert acc.count == 0
    one = nil.AgopAccumulator(1)
    one.update(np.array([[2.0]], np.float32))
    assert one.matrix()[0, 0] == 4.0
    with pytest.raises(nil.ShapeError, match="expected 3, found 4"):
        acc.update(np.zeros((2, 4), np.float32))
    with pytest.raises(nil.ShapeError, match="2-D"):
        acc.update(np.zeros(3, np.float32))
    with pytest.raises(nil.DTypeError, match="int64"):
        acc.update(np.zeros((2, 3), np.int64))
    with pytest.raises(nil.ShapeError, match="merge"):
        acc.merge(nil.AgopAccumulator(2))
    with pytest.raises(nil.NilValueError):
        nil.AgopAccumulator(0)
    with pytest.raises(nil.NilValueError, match="precision"):
        nil.AgopAccumulator(2, precision="sloppy")
    with pytest.raises(nil.NilValueError, match="nonfinite"):
        acc.update(np.zeros((1, 3), np.float32), nonfinite="ignore")


def test_merge_with_itself_doubles():
    acc = nil.AgopAccumulator(2, precision="exact")
    acc.update(np.array([[1.0, 2.0]], np.float32))
    acc.merge(acc)
    assert acc.count == 2
    np.testing.assert_array_equal(acc.sum(), 2 * np.array([[1.0, 2.0], [2.0, 4.0]]))


def test_save_load_round_trip_and_multi_layer_files(tmp_path):
    rng = np.random.default_rng(4)
    a = nil.AgopAccumulator(5)
    a.update(rng.standard_normal((30, 5)).astype(np.float32))
    path = tmp_path / "agop.safetensors"
    a.save(path)
    b = nil.AgopAccumulator.load(path)
    assert b.count == a.count
    np.testing.assert_array_equal(b.sum(), a.sum())
    c = nil.AgopAccumulator(3)
    c.update(np.ones((2, 3), np.float32), nonfinite="skip")
    nil.save_accumulators(tmp_path / "layers.safetensors", {"blocks.0": a, "blocks.1": c})
    loaded = nil.load_accumulators(tmp_path / "layers.safetensors")
    assert sorted(loaded) == ["blocks.0", "blocks.1"]
    assert loaded["blocks.1"].dim == 3
    with pytest.raises(nil.NilValueError, match="pass name="):
        nil.AgopAccumulator.load(tmp_path / "layers.safetensors")
    assert nil.AgopAccumulator.load(tmp_path / "layers.safetensors", name="blocks.1").count == 2
    # A file that is not an accumulator file names itself in the error.
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a safetensors file")
    with pytest.raises(nil.FormatError, match="bad.safetensors"):
        nil.AgopAccumulator.load(bad)
    with pytest.raises(FileNotFoundError, match="missing.safetensors"):
        nil.AgopAccumulator.load(tmp_path / "missing.safetensors")
