"""Bad captures: each error names the file (and layer), and nothing in the capture is modified."""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

import nil
from cli_helpers import one_line_error
from shard_helpers import (
    agop,
    make_capture,
    manifest,
    replace_shard,
    rewrite_agop_file,
    snapshot,
    stored,
    write_raw_capture,
)

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def capture(tmp_path):
    """A two-layer float16 capture of three shards, and its rows."""
    rng = np.random.default_rng(7)
    rows = {"blocks.0": rng.standard_normal((60, 8)), "blocks.1": rng.standard_normal((60, 4))}
    path = tmp_path / "cap"
    make_capture(path, rows, batches=3, shard_bytes=1)
    assert len(manifest(path)["shards"]) == 3
    return path, rows


def fails(path: Path, exc: type[BaseException], *words: str) -> str:
    """analyze raises ``exc`` whose message holds every word; verify reports it; nothing changes."""
    before = snapshot(path)
    with pytest.raises(exc) as info:
        nil.analyze(path, precision="exact")
    msg = str(info.value)
    for w in words:
        assert w in msg, f"{w!r} not in {msg!r}"
    report = nil.verify(path)
    assert not report.ok
    assert any(all(w in p.message for w in words) for p in report.problems), report.problems
    assert snapshot(path) == before
    return msg


def test_missing_manifest(capture):
    path, _ = capture
    (path / "manifest.json").unlink()
    fails(path, FileNotFoundError, "manifest.json")


@pytest.mark.parametrize("text", ["{not json", '{"format": "nil.shards"}', '{"format_version": 1}', "[]", ""])
def test_corrupt_manifest(capture, text):
    path, _ = capture
    (path / "manifest.json").write_text(text)
    fails(path, nil.FormatError, "manifest.json")


def test_manifest_of_a_newer_version(capture):
    path, _ = capture
    m = manifest(path)
    m["format_version"] = 2
    (path / "manifest.json").write_text(json.dumps(m))
    fails(path, nil.FormatError, "manifest.json", "version 1", "found 2")


def test_truncated_shard(capture):
    path, _ = capture
    f = path / "shards" / "000001.safetensors"
    f.write_bytes(f.read_bytes()[:-10])
    fails(path, nil.FormatError, "000001.safetensors", "truncated")


def test_checksum_mismatch(capture):
    path, _ = capture
    f = path / "shards" / "000002.safetensors"
    b = bytearray(f.read_bytes())
    b[-3] ^= 0x01
    f.write_bytes(bytes(b))
    fails(path, nil.ChecksumError, "000002.safetensors", "checksum mismatch")


def test_header_that_is_not_json(capture):
    path, _ = capture
    f = path / "shards" / "000000.safetensors"
    b = bytearray(f.read_bytes())
    b[8:12] = b"#!%&"
    replace_shard(path, 0, raw=bytes(b))
    fails(path, nil.FormatError, "000000.safetensors", "not valid safetensors JSON")


def test_tensor_missing(capture):
    path, _ = capture
    rows = manifest(path)["shards"][1]["rows"]
    replace_shard(path, 1, {"blocks.0": np.zeros((rows["blocks.0"], 8), np.float16)})
    fails(path, nil.FormatError, "000001.safetensors", "layer blocks.1", "missing")


def test_dims_differ_across_shards(capture):
    path, _ = capture
    rows = manifest(path)["shards"][2]["rows"]
    replace_shard(path, 2, {"blocks.0": np.zeros((rows["blocks.0"], 8), np.float16),
                            "blocks.1": np.zeros((rows["blocks.1"], 5), np.float16)})
    fails(path, nil.ShapeError, "000002.safetensors", "layer blocks.1", "[", "4]")


def test_unsupported_dtype(capture):
    path, _ = capture
    rows = manifest(path)["shards"][0]["rows"]
    replace_shard(path, 0, {"blocks.0": np.zeros((rows["blocks.0"], 8), np.int32),
                            "blocks.1": np.zeros((rows["blocks.1"], 4), np.float16)})
    fails(path, nil.DTypeError, "000000.safetensors", "layer blocks.0", "I32")
    m = manifest(path)
    m["capture"]["dtype"] = "int8"
    (path / "manifest.json").write_text(json.dumps(m))
    fails(path, nil.DTypeError, "manifest.json", "int8")


def test_every_problem_is_reported(capture, run_cli):
    path, _ = capture
    for i in (0, 2):
        f = path / "shards" / f"{i:06d}.safetensors"
        f.write_bytes(f.read_bytes()[:-1])
    report = nil.verify(path)
    assert sorted(Path(p.file).name for p in report.problems) == ["000000.safetensors", "000002.safetensors"]
    proc = run_cli("verify", str(path))
    assert proc.returncode == 1
    assert proc.stdout.count("PROBLEM") == 2
    proc = run_cli("analyze", str(path))
    assert proc.returncode == 1 and "000000.safetensors" in proc.stderr


def test_nonfinite_rows_raise_or_are_skipped(tmp_path):
    rng = np.random.default_rng(5)
    x = rng.standard_normal((40, 6))
    x[[3, 17, 33], [0, 2, 5]] = [np.nan, np.inf, -np.inf]
    path = tmp_path / "nan"
    make_capture(path, {"a": x, "b": np.ones((40, 2))}, dtype="float32", batches=2, shard_bytes=1)
    before = snapshot(path)
    with pytest.raises(nil.NonFiniteError, match=r"000000\.safetensors: layer a .*row 3 "):
        nil.analyze(path, precision="exact")
    recs = {r.layer: r for r in nil.analyze(path, nonfinite="skip", precision="exact")}
    finite = np.isfinite(x).all(axis=1)
    assert (recs["a"].rows, recs["a"].nonfinite) == (37, 3)
    np.testing.assert_allclose(recs["a"].accumulator.matrix(), agop(stored(x[finite], "float32")), rtol=1e-12)
    assert recs["b"].rows == 40 and recs["b"].nonfinite == 0
    assert nil.verify(path).ok  # non-finite values are content, not corruption
    assert snapshot(path) == before


def test_empty_capture(tmp_path, run_cli):
    path = tmp_path / "empty"
    with nil.ShardWriter(path, {"a": 4}):
        pass
    before = snapshot(path)
    with pytest.raises(nil.FormatError, match="empty capture"):
        nil.analyze(path, precision="exact")
    report = nil.verify(path)
    assert [p.kind for p in report.problems] == ["empty"]
    assert run_cli("verify", str(path)).returncode == 1
    assert snapshot(path) == before


def test_capture_with_a_layer_of_no_rows_is_nan_not_zero(tmp_path):
    with nil.ShardWriter(tmp_path / "c", {"a": 3, "b": 2}) as w:
        w.write({"a": np.ones((5, 3))})
    recs = {r.layer: r for r in nil.analyze(tmp_path / "c", precision="exact")}
    assert recs["b"].rows == 0 and recs["b"].degenerate and np.isnan(recs["b"].aofe_ratio)


_CHILD = """
import sys, numpy as np
sys.path.insert(0, {python!r})
import nil
with nil.ShardWriter({path!r}, {{"a": 16, "b": 8}}, shard_bytes=3000) as w:
    i = 0
    while True:
        r = np.random.default_rng(i)
        w.write({{"a": r.standard_normal((7, 16)), "b": r.standard_normal((7, 8))}})
        i += 1
"""


def _stream(n: int) -> dict[str, np.ndarray]:
    out: dict[str, list[np.ndarray]] = {"a": [], "b": []}
    i = 0
    while 7 * i < n:
        r = np.random.default_rng(i)
        out["a"].append(r.standard_normal((7, 16)))
        out["b"].append(r.standard_normal((7, 8)))
        i += 1
    return {k: np.vstack(v)[:n] for k, v in out.items()}


def test_writer_killed_mid_write_leaves_a_valid_resumable_capture(tmp_path):
    path = tmp_path / "killed"
    child = subprocess.Popen([sys.executable, "-c", _CHILD.format(python=str(REPO / "python"), path=str(path))])
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                if len(manifest(path)["shards"]) >= 4:
                    break
            except (FileNotFoundError, json.JSONDecodeError, KeyError):
                pass  # the child is starting
            time.sleep(0.01)
        else:
            pytest.fail("the writer did not write four shards in 60 s")
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    report = nil.verify(path)
    assert report.ok, report.problems
    n = report.rows["a"]
    assert n == report.rows["b"] and n > 0
    rows = _stream(n)
    rec = {r.layer: r for r in nil.analyze(path, precision="exact")}
    for k in ("a", "b"):
        np.testing.assert_allclose(rec[k].accumulator.matrix(), agop(stored(rows[k], "float16")), rtol=1e-12)
    # Resume: the writer verifies the last shard, cleans the dead writer's temporaries and appends.
    extra = np.random.default_rng(99).standard_normal((5, 16))
    with nil.ShardWriter(path, {"a": 16, "b": 8}, shard_bytes=3000, resume=True) as w:
        w.write({"a": extra})
    after = nil.verify(path)
    assert after.ok and after.notes == [] and after.rows["a"] == n + 5
    assert not [p for p in path.rglob(".*tmp-*")]


def test_resume_refuses_a_corrupt_last_shard(capture):
    path, _ = capture
    f = path / "shards" / "000002.safetensors"
    f.write_bytes(f.read_bytes()[:-1])
    before = snapshot(path)
    with pytest.raises(nil.FormatError, match="000002.safetensors"):
        nil.ShardWriter(path, {"blocks.0": 8, "blocks.1": 4}, meta={"family": "mlp"}, resume=True)
    assert snapshot(path) == before


@pytest.fixture
def readonly_capture():
    """A capture whose directories and files have no write permission (in a world-readable temp dir)."""
    top = Path(tempfile.mkdtemp(prefix="nil-ro-"))
    top.chmod(0o755)
    path = top / "cap"
    rows = {"a": np.random.default_rng(0).standard_normal((30, 4))}
    make_capture(path, rows, shard_bytes=1)
    (path / ".lock").unlink()
    for p in [path, *path.rglob("*")]:
        p.chmod(0o555 if p.is_dir() else 0o444)
    yield path, rows
    for p in [path, *path.rglob("*")]:
        p.chmod(0o755)
    shutil.rmtree(top)


def test_reading_a_readonly_capture_works(readonly_capture):
    path, rows = readonly_capture
    before = snapshot(path)
    assert nil.verify(path).ok
    rec = nil.analyze(path, precision="exact")[0]
    np.testing.assert_allclose(rec.accumulator.matrix(), agop(stored(rows["a"], "float16")), rtol=1e-12)
    assert snapshot(path) == before


_RO_CHILD = """
import os, sys
sys.path.insert(0, {python!r})
import numpy as np, nil
if os.geteuid() == 0:  # root ignores permissions: drop to nobody after the imports
    os.setgid(65534); os.setuid(65534)
try:
    nil.ShardWriter({path!r}, {{"a": 4}}, meta={{"family": "mlp"}}, resume=True)
except PermissionError as e:
    print("PermissionError:", e)
    sys.exit(3)
sys.exit(0)
"""


def test_writing_into_a_readonly_capture_fails_clearly(readonly_capture):
    path, _ = readonly_capture
    before = snapshot(path)
    proc = subprocess.run([sys.executable, "-c", _RO_CHILD.format(python=str(REPO / "python"), path=str(path))],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert str(path) in proc.stdout and "read-only" in proc.stdout
    assert snapshot(path) == before
    mode = stat.S_IMODE(os.stat(path).st_mode)
    assert mode == 0o555


def test_leftovers_of_a_writer_killed_between_shard_and_manifest(capture):
    """The two states a kill can leave: a half-written temporary shard, and a complete shard the
    manifest does not list yet. Readers ignore both; a resumed writer replaces them."""
    path, rows = capture
    shards = path / "shards"
    (shards / ".000004.safetensors.tmp-4242").write_bytes(b"half a shard")
    shutil.copy(shards / "000000.safetensors", shards / "000003.safetensors")
    report = nil.verify(path)
    assert report.ok and len(report.notes) == 2
    assert any("000003.safetensors" in n for n in report.notes)
    rec = {r.layer: r for r in nil.analyze(path, precision="exact")}
    np.testing.assert_allclose(rec["blocks.1"].accumulator.matrix(), agop(stored(rows["blocks.1"], "float16")), rtol=1e-12)
    with nil.ShardWriter(path, {"blocks.0": 8, "blocks.1": 4}, meta={"family": "mlp"}, resume=True) as w:
        w.write({"blocks.0": np.ones((2, 8)), "blocks.1": np.ones((2, 4))})
    after = nil.verify(path)
    assert after.ok and after.notes == [] and after.shards == 4 and after.rows["blocks.0"] == 62


def test_manifest_without_a_shards_list_is_an_empty_capture(tmp_path):
    # Found by the byte-mutation fuzz test: a manifest whose "shards" key is missing (or mangled)
    # parses as a capture with no shards, so analysis must report an empty capture, not KeyError.
    path = tmp_path / "cap"
    with nil.ShardWriter(path, layers={"a": 4}, dtype="float32") as w:
        w.write({"a": np.ones((3, 4), np.float32)})
    m = json.loads((path / "manifest.json").read_text())
    m["sharDs"] = m.pop("shards")
    (path / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(nil.NilError, match="empty capture"):
        nil.analyze(path)


# ---------------------------------------------------------------- limits and memory (issue 12)


def test_a_layer_of_absurd_dim_is_refused_before_anything_is_allocated(tmp_path, run_cli):
    # 144 bytes of shard that verify used to call OK, and that killed analyze and merge with
    # SIGABRT by allocating d×d float64 (8 TB) for dim 10^6.
    path = tmp_path / "huge"
    write_raw_capture(path, {"wide": 10**6})
    assert (path / "shards" / "000000.safetensors").stat().st_size < 200
    fails(path, nil.FormatError, "manifest.json", "wide", "131072")
    one_line_error(run_cli("analyze", str(path)), "131072")
    one_line_error(run_cli("merge", str(tmp_path / "out.safetensors"), str(path)), "131072")
    assert not (tmp_path / "out.safetensors").exists()


def test_a_layer_beyond_this_machines_memory_is_a_clear_error(tmp_path, monkeypatch, run_cli):
    path = tmp_path / "wide"
    write_raw_capture(path, {"small": 4, "wide": 8192})  # 512 MiB accumulator
    monkeypatch.setenv("NIL_MEMORY_LIMIT", "256M")
    with pytest.raises(nil.MemoryLimitError, match=r"layer wide \(dim 8192\) needs 512\.0 MiB.*256\.0 MiB available"):
        nil.analyze(path)
    report = nil.verify(path)
    assert [(p.kind, p.layer) for p in report.problems] == [("memory", "wide")]
    assert "needs 512.0 MiB" in report.problems[0].message
    with pytest.raises(nil.MemoryLimitError, match="dim 8192"):
        nil.AgopAccumulator(8192)
    one_line_error(run_cli("analyze", str(path)), "512.0 MiB")  # the variable reaches the child
    recs = nil.analyze(path, layers=["small"])  # the layers that fit are still analysable
    assert recs[0].layer == "small"


@pytest.mark.parametrize("dim", [2**32, 3037000500, 2**64, 0, -1, True])
def test_accumulators_of_impossible_dims_are_errors_not_crashes(dim):
    with pytest.raises(nil.NilValueError, match="dim must be an integer in 1..131072"):
        nil.AgopAccumulator(dim)


@pytest.mark.parametrize("name", ["__metadata__", "", "a\nb", "x" * 201])
def test_reserved_and_impossible_layer_names_are_refused_at_creation(tmp_path, name):
    with pytest.raises(nil.NilValueError, match="layer name|non-empty"):
        nil.ShardWriter(tmp_path / "c", {name: 4})
    assert not (tmp_path / "c" / "manifest.json").exists()


def test_a_manifest_naming_a_layer_metadata_is_refused(tmp_path):
    path = tmp_path / "c"
    write_raw_capture(path, {"a": 4})
    m = manifest(path)
    m["layers"][0]["name"] = "__metadata__"
    m["shards"][0]["rows"] = {"__metadata__": 0}
    (path / "manifest.json").write_text(json.dumps(m))
    fails(path, nil.FormatError, "manifest.json", "__metadata__", "reserved")


# ---------------------------------------------------------------- files that are not what they seem


def test_a_manifest_that_is_a_directory_or_a_fifo_is_refused_without_blocking(capture, run_cli):
    path, _ = capture
    (path / "manifest.json").unlink()
    (path / "manifest.json").mkdir()
    fails(path, nil.FormatError, "manifest.json", "regular file", "a directory")
    one_line_error(run_cli("analyze", str(path)), "manifest.json", "a directory")
    (path / "manifest.json").rmdir()
    os.mkfifo(path / "manifest.json")
    for verb in ("verify", "analyze"):  # a FIFO used to block these forever, deaf to Ctrl-C
        proc = run_cli(verb, str(path), timeout=60)
        assert proc.returncode == 1 and "FIFO" in proc.stdout + proc.stderr, proc


def test_a_shard_that_is_a_fifo_or_a_directory_is_refused_without_blocking(capture, run_cli):
    path, _ = capture
    f = path / "shards" / "000001.safetensors"
    f.unlink()
    os.mkfifo(f)
    proc = run_cli("verify", str(path), timeout=60)
    assert proc.returncode == 1 and "000001.safetensors" in proc.stdout and "FIFO" in proc.stdout
    one_line_error(run_cli("analyze", str(path), timeout=60), "000001.safetensors", "FIFO")
    f.unlink()
    f.mkdir()
    with pytest.raises(nil.FormatError, match="000001.safetensors: expected the shard to be a regular file, found a directory"):
        nil.analyze(path)


def test_a_symlink_loop_as_capture_directory_is_named_as_such(tmp_path, run_cli):
    a, b = tmp_path / "a", tmp_path / "b"
    a.symlink_to(b)
    b.symlink_to(a)
    for verb in ("verify", "analyze"):
        proc = run_cli(verb, str(a))
        assert proc.returncode == 1 and "Traceback" not in proc.stderr
        assert "loop of symbolic links" in proc.stdout + proc.stderr
    with pytest.raises(nil.FormatError, match="loop of symbolic links"):
        nil.analyze(a)
    with pytest.raises(nil.FormatError, match="loop of symbolic links"):
        nil.ShardWriter(a, {"x": 2})


def test_the_same_shard_listed_twice_is_refused(capture):
    # Copied bytes under the next index, with consistent size and checksum: counted twice before.
    path, _ = capture
    m = manifest(path)
    shutil.copy(path / "shards" / "000000.safetensors", path / "shards" / "000003.safetensors")
    m["shards"].append({**m["shards"][0], "file": "shards/000003.safetensors"})
    (path / "manifest.json").write_text(json.dumps(m))
    fails(path, nil.FormatError, "manifest.json", "000003.safetensors", "same blake3", "000000.safetensors")


_TRUNCATE_CHILD = """
import os, sys, time
sys.path.insert(0, {python!r})
from nil import _core
marker, go = {marker!r}, {go!r}
def progress(n):
    if not os.path.exists(marker):
        open(marker, "w").close()          # mid-shard now: let the parent truncate it in place
        while not os.path.exists(go):
            time.sleep(0.01)
    return True
try:
    _core.reduce_capture({path!r}, ["a"], False, True, progress)
except Exception as e:
    print(type(e).__name__, e)
    sys.exit(1)
sys.exit(0)
"""


def test_shards_truncated_in_place_while_they_are_read_give_an_error_not_sigbus(tmp_path):
    # Memory-mapped reads died of SIGBUS (no message) when a shard shrank under them.
    path = tmp_path / "cap"
    rng = np.random.default_rng(1)
    with nil.ShardWriter(path, {"a": 8, "b": 4096}, shard_bytes=64 << 20) as w:
        w.write({"a": rng.standard_normal((10, 8)), "b": np.ones((6000, 4096), np.float16)})  # one 49 MB shard
    marker, go = tmp_path / "mid-read", tmp_path / "go"
    code = _TRUNCATE_CHILD.format(python=str(REPO / "python"), marker=str(marker), go=str(go), path=str(path))
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 120
        while not marker.exists():
            assert child.poll() is None and time.time() < deadline, child.communicate()
            time.sleep(0.01)
        for f in (path / "shards").glob("*.safetensors"):
            os.truncate(f, 4096)
        go.touch()
        out, err = child.communicate(timeout=120)
    finally:
        child.kill()
    assert child.returncode == 1, (child.returncode, out, err)  # -7 was SIGBUS
    assert "000000.safetensors" in out and ("while nil was reading" in out or "truncated" in out), out


# ---------------------------------------------------------------- the writer (issue 12)


_HOLD_CHILD = """
import sys
sys.path.insert(0, {python!r})
import numpy as np, nil
w = nil.ShardWriter({path!r}, {{"a": 4}}, shard_bytes=1)
w.write({{"a": np.ones((3, 4))}})
w.flush()
print("ready", flush=True)
sys.stdin.readline()
w.write({{"a": np.ones((2, 4))}})
w.close()
"""


def test_deleting_the_lock_file_does_not_let_a_second_writer_in(tmp_path):
    path = tmp_path / "cap"
    a = subprocess.Popen([sys.executable, "-c", _HOLD_CHILD.format(python=str(REPO / "python"), path=str(path))],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert a.stdout is not None and a.stdin is not None
        assert a.stdout.readline().strip() == "ready"
        with pytest.raises(nil.ShardError, match="another ShardWriter"):
            nil.ShardWriter(path, {"a": 4})
        (path / ".lock").unlink()  # the lock is held on the directory, not on this file
        with pytest.raises(nil.ShardError, match="another ShardWriter"):
            nil.ShardWriter(path, {"a": 4})
        a.stdin.write("\n")
        a.stdin.flush()
        assert a.wait(timeout=120) == 0
    finally:
        a.kill()
    report = nil.verify(path)
    assert report.ok and report.rows == {"a": 5}
    with nil.ShardWriter(path, {"a": 4}, resume=True) as w:  # released once A is done
        w.write({"a": np.ones((1, 4))})
    assert nil.verify(path).rows == {"a": 6}


_UNCLOSED_CHILD = """
import sys
sys.path.insert(0, {python!r})
import numpy as np, nil
w = nil.ShardWriter({path!r}, {{"a": 4, "b": 2}})
w.write({{"a": np.ones((7, 4)), "b": np.ones((3, 2))}})
w.write({{"a": np.ones((5, 4))}})
"""


def test_a_writer_never_closed_keeps_its_rows_and_says_so(tmp_path):
    path = tmp_path / "cap"
    proc = subprocess.run([sys.executable, "-c", _UNCLOSED_CHILD.format(python=str(REPO / "python"), path=str(path))],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "was never closed" in proc.stderr and "15 buffered row(s)" in proc.stderr
    report = nil.verify(path)
    assert report.ok and report.rows == {"a": 12, "b": 3}
