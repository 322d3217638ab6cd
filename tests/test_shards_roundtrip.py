"""ShardWriter → verify → analyze / merge give the numbers numpy computes from the same rows."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import nil
from shard_helpers import agop, make_capture, manifest, stored
from hypothesis_profiles import examples


@settings(max_examples=examples(12), deadline=None)
@given(
    dtype=st.sampled_from(["float16", "bfloat16", "float32"]),
    dims=st.lists(st.integers(1, 40), min_size=1, max_size=3),
    n=st.integers(1, 300),
    batches=st.integers(1, 5),
    shard_bytes=st.sampled_from([1, 2000, 1 << 20]),
    seed=st.integers(0, 2**32 - 1),
    precision=st.sampled_from(["exact", "fast"]),
)
def test_capture_round_trips_to_numpy(tmp_path_factory, dtype, dims, n, batches, shard_bytes, seed, precision):
    rng = np.random.default_rng(seed)
    rows = {f"layer.{i}": rng.standard_normal((n, d)) * 3 for i, d in enumerate(dims)}
    path = tmp_path_factory.mktemp("cap")
    make_capture(path, rows, dtype, batches=min(batches, n), shard_bytes=shard_bytes)
    report = nil.verify(path)
    assert report.ok, report.problems
    assert report.rows == {k: n for k in rows}
    records = nil.analyze(path, precision=precision)
    assert [r.layer for r in records] == list(rows)
    tol = 1e-12 if precision == "exact" else 1e-5  # fast: f32 sums over blocks of 512 rows
    for r in records:
        x = stored(rows[r.layer], dtype)
        want = agop(x)
        scale = np.abs(want).max()
        np.testing.assert_allclose(r.accumulator.matrix(), want, rtol=tol, atol=tol * scale)
        ref = nil.interaction_stats(r.accumulator.matrix())
        assert (r.rows, r.dim, r.nonfinite) == (n, x.shape[1], 0)
        np.testing.assert_allclose(r.aofe_ratio, ref.aofe_ratio, rtol=1e-12, equal_nan=True)
        assert r.to_dict()["participation_ratio"] == pytest.approx(ref.participation_ratio, rel=1e-12, nan_ok=True)
        np.testing.assert_allclose(r.aofe_ratio, nil.interaction_stats(want).aofe_ratio, rtol=1e3 * tol, atol=tol)


def test_manifest_describes_model_and_capture(tmp_path):
    rows = {"blocks.0": np.ones((10, 4))}
    meta = {"family": "gpt", "depth": 4, "width": 64, "params": 123, "budget": 100,
            "capture": {"mode": "input", "probes": 2, "projection_seed": 7, "token_stride": 3}, "note": "x"}
    make_capture(tmp_path / "c", rows, "bfloat16", meta=meta)
    m = manifest(tmp_path / "c")
    assert m["format"] == "nil.shards" and m["format_version"] == 1
    assert m["model"] == {"family": "gpt", "depth": 4, "width": 64, "params": 123, "budget": 100, "ratio": 4 / 64}
    assert m["capture"] == {"dtype": "bfloat16", "mode": "input", "probes": 2, "projection_seed": 7, "token_stride": 3}
    assert m["layers"] == [{"name": "blocks.0", "dim": 4}]
    assert m["extra"] == {"note": "x"}
    s = m["shards"][0]
    assert s["file"] == "shards/000000.safetensors" and len(s["blake3"]) == 64
    assert s["bytes"] == (tmp_path / "c" / s["file"]).stat().st_size


def test_torch_tensors_and_uneven_layers(tmp_path):
    torch = pytest.importorskip("torch")
    g = torch.Generator().manual_seed(0)
    a = torch.randn(50, 6, generator=g)
    b = torch.randn(20, 3, generator=g).to(torch.bfloat16)
    with nil.ShardWriter(tmp_path / "t", {"a": 6, "b": 3}, dtype="float32", shard_bytes=500) as w:
        w.write({"a": a[:30]})
        w.write({"a": a[30:], "b": b})
    recs = {r.layer: r for r in nil.analyze(tmp_path / "t", precision="exact")}
    np.testing.assert_allclose(recs["a"].accumulator.matrix(), agop(a.double().numpy()), rtol=1e-6)
    np.testing.assert_allclose(recs["b"].accumulator.matrix(), agop(b.double().numpy()), rtol=1e-12)
    assert (recs["a"].rows, recs["b"].rows) == (50, 20)


@pytest.mark.gpu
def test_cuda_tensors_are_written(tmp_path):
    import torch

    a = torch.randn(64, 8, device="cuda")
    with nil.ShardWriter(tmp_path / "g", {"a": 8}) as w:
        w.write({"a": a})
        a.zero_()  # the writer copied on the device at write()
    rec = nil.analyze(tmp_path / "g", precision="exact")[0]
    assert rec.rows == 64 and rec.frobenius > 0


def test_resume_appends_after_verifying(tmp_path):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((90, 5))
    p = tmp_path / "r"
    make_capture(p, {"a": x[:40]}, shard_bytes=100)
    before = len(manifest(p)["shards"])
    with nil.ShardWriter(p, {"a": 5}, meta={"family": "mlp"}, shard_bytes=100, resume=True) as w:
        assert w.rows == {"a": 40}
        w.write({"a": x[40:]})
    assert len(manifest(p)["shards"]) > before
    rec = nil.analyze(p, precision="exact")[0]
    np.testing.assert_allclose(rec.accumulator.matrix(), agop(stored(x, "float16")), rtol=1e-12)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"layers": {"a": 6}}, "layer a"),
        ({"layers": {"b": 5}}, "layer b"),
        ({"dtype": "float32"}, "dtype float32"),
        ({"meta": {"family": "gpt"}}, "model.family"),
    ],
)
def test_resume_refuses_a_different_capture(tmp_path, kwargs, match):
    p = tmp_path / "r"
    make_capture(p, {"a": np.ones((4, 5))}, meta={"family": "mlp"})
    before = (p / "manifest.json").read_bytes()
    args = {"layers": {"a": 5}, "dtype": "float16", "meta": {"family": "mlp"}} | kwargs
    with pytest.raises(nil.ShardError, match=match):
        nil.ShardWriter(p, args.pop("layers"), **args, resume=True)
    assert (p / "manifest.json").read_bytes() == before
    with pytest.raises(FileExistsError):
        nil.ShardWriter(p, {"a": 5}, resume=False)


def test_rerunning_a_writer_script_refuses_instead_of_doubling_the_rows(tmp_path, capsys):
    """Issue 13: a script re-run on its capture once appended silently (8,000 rows became 16,000)."""
    p = tmp_path / "r"
    x = np.random.default_rng(3).standard_normal((80, 5))
    for _ in range(2):
        try:
            with nil.ShardWriter(p, {"a": 5}, meta={"family": "mlp"}, shard_bytes=200) as w:
                for part in np.array_split(x, 4):
                    w.write({"a": part})
        except FileExistsError as e:
            msg = str(e)
    assert nil.verify(p).rows == {"a": 80}
    shards = len(manifest(p)["shards"])
    assert shards > 1
    assert str(p) in msg and "existing capture (80 rows in" in msg and "resume=True" in msg
    capsys.readouterr()
    with nil.ShardWriter(p, {"a": 5}, meta={"family": "mlp"}, shard_bytes=200, resume=True) as w:
        assert w.rows == {"a": 80}
        w.write({"a": x[:10]})
    assert f"resuming: 80 rows in {shards} shards" in capsys.readouterr().err
    assert nil.verify(p).rows == {"a": 90}


def test_resume_on_a_new_directory_starts_it_silently(tmp_path, capsys):
    with nil.ShardWriter(tmp_path / "new", {"a": 2}, resume=True) as w:
        w.write({"a": np.ones((3, 2))})
    assert "resuming" not in capsys.readouterr().err
    assert nil.verify(tmp_path / "new").rows == {"a": 3}


def test_resume_names_every_difference(tmp_path):
    p = tmp_path / "r"
    make_capture(p, {"a": np.ones((4, 5))}, meta={"family": "mlp", "depth": 2})
    with pytest.raises(nil.ShardError) as e:
        nil.ShardWriter(p, {"a": 5}, dtype="float32", meta={"family": "gpt", "depth": 3, "run": "b"}, resume=True)
    msg = str(e.value)
    assert str(p) in msg
    for part in ("dtype float32 given, the capture holds float16", "model.family = 'gpt' given, the capture records 'mlp'",
                 "model.depth = 3 given, the capture records 2", "extra.run = 'b' given, the capture records no value"):
        assert part in msg, (part, msg)
    # meta the resuming writer does not give is no difference
    with nil.ShardWriter(p, {"a": 5}, resume=True) as w:
        assert w.manifest["model"]["family"] == "mlp"


def test_writer_rejects_bad_rows_naming_the_layer(tmp_path):
    with nil.ShardWriter(tmp_path / "w", {"a": 4}) as w:
        with pytest.raises(nil.ShapeError, match="layer a"):
            w.write({"a": np.ones((3, 5))})
        with pytest.raises(nil.NilValueError, match="layer zz"):
            w.write({"zz": np.ones((3, 4))})
        w.write({"a": np.ones((3, 4))})
    assert nil.verify(tmp_path / "w").rows == {"a": 3}


def test_merge_of_two_captures_equals_one_pass(tmp_path):
    rng = np.random.default_rng(2)
    x, y = rng.standard_normal((70, 6)), rng.standard_normal((30, 6))
    make_capture(tmp_path / "a", {"l": x})
    make_capture(tmp_path / "b", {"l": y})
    nil.analyze(tmp_path / "a", save_agop=tmp_path / "a.safetensors", precision="exact")
    merged = nil.merge(tmp_path / "m.safetensors", tmp_path / "a.safetensors", tmp_path / "b", precision="exact")
    both = np.vstack([stored(x, "float16"), stored(y, "float16")])
    np.testing.assert_allclose(merged["l"].matrix(), agop(both), rtol=1e-12)
    rec = nil.analyze(tmp_path / "m.safetensors", precision="exact")[0]
    assert rec.rows == 100
    with pytest.raises(nil.NilError, match="counted"):
        nil.merge(tmp_path / "m2.safetensors", tmp_path / "a.safetensors", tmp_path / "a")
    assert not (tmp_path / "m2.safetensors").exists()
    with pytest.raises(FileExistsError):
        nil.merge(tmp_path / "m.safetensors", tmp_path / "b")


def test_merge_refuses_differing_layers(tmp_path):
    make_capture(tmp_path / "a", {"l": np.ones((5, 4))})
    make_capture(tmp_path / "b", {"l": np.ones((5, 3))})
    make_capture(tmp_path / "c", {"k": np.ones((5, 4))})
    with pytest.raises(nil.ShapeError, match="layer l"):
        nil.merge(tmp_path / "m.safetensors", tmp_path / "a", tmp_path / "b")
    with pytest.raises(nil.FormatError, match="layer l"):
        nil.merge(tmp_path / "m.safetensors", tmp_path / "a", tmp_path / "c")


def test_layer_selection(tmp_path):
    make_capture(tmp_path / "c", {"a": np.ones((5, 4)), "b": np.ones((5, 2))})
    assert [r.layer for r in nil.analyze(tmp_path / "c", layers=["b"], precision="exact")] == ["b"]
    with pytest.raises(nil.NilValueError, match="layer q"):
        nil.analyze(tmp_path / "c", layers=["q"], precision="exact")


def test_cli_round_trip(tmp_path, run_cli):
    rng = np.random.default_rng(3)
    rows = {"blocks.0": rng.standard_normal((200, 16)), "blocks.1": rng.standard_normal((200, 8))}
    make_capture(tmp_path / "c", rows)
    v = run_cli("verify", str(tmp_path / "c"))
    assert v.returncode == 0 and "OK" in v.stdout
    out = json.loads(run_cli("analyze", str(tmp_path / "c"), "--json", "--precision", "exact", check=True).stdout)
    fast = json.loads(run_cli("analyze", str(tmp_path / "c"), "--json", check=True).stdout)
    for rec, rec_fast in zip(out["layers"], fast["layers"]):
        ref = nil.interaction_stats(agop(stored(rows[rec["layer"]], "float16")))
        assert rec["rows"] == rec_fast["rows"] == 200
        assert rec["aofe_ratio"] == pytest.approx(ref.aofe_ratio, rel=1e-9)
        assert rec["weighted_mean_cos2"] == pytest.approx(ref.weighted_mean_cos2, rel=1e-9)
        assert rec_fast["aofe_ratio"] == pytest.approx(ref.aofe_ratio, rel=1e-5)
    csv = run_cli("analyze", str(tmp_path / "c"), "--csv", "--layers", "blocks.1", check=True).stdout.splitlines()
    assert csv[0].startswith("layer,rows,dim") and len(csv) == 2 and csv[1].startswith("blocks.1,200,8")
    table = run_cli("analyze", str(tmp_path / "c"), "--save-agop", str(tmp_path / "p.safetensors"), check=True).stdout
    assert "blocks.0" in table and (tmp_path / "p.safetensors").exists()
    m = run_cli("merge", str(tmp_path / "m.safetensors"), str(tmp_path / "p.safetensors"), "--json", check=True)
    assert json.loads(m.stdout)["layers"][0]["rows"] == 200
    again = run_cli("merge", str(tmp_path / "m2.safetensors"), str(tmp_path / "p.safetensors"), str(tmp_path / "c"))
    assert again.returncode == 1 and "counted" in again.stderr


def test_flush_makes_a_shard_now(tmp_path):
    with nil.ShardWriter(tmp_path / "f", {"a": 3}) as w:
        w.write({"a": np.ones((4, 3))})
        w.flush()
        assert w.rows == {"a": 4} and len(manifest(tmp_path / "f")["shards"]) == 1
        w.write({"a": np.ones((2, 3))})
    assert nil.verify(tmp_path / "f").rows == {"a": 6}


def test_progress_callback_can_stop_the_reduction(tmp_path):
    from nil import _core

    make_capture(tmp_path / "c", {"a": np.ones((50, 4))}, shard_bytes=1)
    seen: list[int] = []
    assert _core.reduce_capture(str(tmp_path / "c"), None, False, True, lambda n: seen.append(n) or True)[0]
    assert sum(seen) == sum(s["bytes"] for s in manifest(tmp_path / "c")["shards"])
    with pytest.raises(nil.NilValueError, match="interrupted"):
        _core.reduce_capture(str(tmp_path / "c"), None, False, True, lambda n: False)

    def boom(n: int) -> bool:
        raise RuntimeError("from the callback")

    with pytest.raises(RuntimeError, match="from the callback"):
        _core.reduce_capture(str(tmp_path / "c"), None, False, True, boom)


def test_save_agop_never_writes_into_the_capture(tmp_path):
    from shard_helpers import snapshot

    make_capture(tmp_path / "c", {"a": np.ones((5, 4))})
    before = snapshot(tmp_path / "c")
    for target in ("manifest.json", "shards/x.safetensors"):
        with pytest.raises(nil.NilValueError, match="capture"):
            nil.analyze(tmp_path / "c", save_agop=tmp_path / "c" / target)
    assert snapshot(tmp_path / "c") == before


def test_verify_json_lists_problems(tmp_path, run_cli):
    make_capture(tmp_path / "c", {"a": np.ones((5, 4))})
    f = next((tmp_path / "c" / "shards").iterdir())
    f.write_bytes(f.read_bytes()[:-2])
    proc = run_cli("verify", str(tmp_path / "c"), "--json")
    out = json.loads(proc.stdout)
    assert proc.returncode == 1 and out["ok"] is False
    assert out["problems"][0]["file"].endswith(f.name) and out["problems"][0]["kind"] == "format"
