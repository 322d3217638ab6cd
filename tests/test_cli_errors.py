"""Every user-facing failure of the CLI is one line on stderr naming the file, with exit status 1
(130 on Ctrl-C), never a traceback unless --debug; merge never writes into an input capture and
stops on Ctrl-C. Subprocess tests: what is checked is what a user sees."""

from __future__ import annotations

import _thread
import csv
import json
import pickle
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import nil
from cli_helpers import one_line_error
from shard_helpers import make_capture, manifest, snapshot


@pytest.fixture
def capture(tmp_path):
    path = tmp_path / "cap"
    rng = np.random.default_rng(3)
    make_capture(path, {"a": rng.standard_normal((40, 6))}, batches=2, shard_bytes=1)
    return path


# ---------------------------------------------------------------- merge


@pytest.mark.parametrize("target", ["manifest.json", "shards/000000.safetensors", "shards/new.safetensors", ".", ".lock"])
def test_merge_never_writes_into_an_input_capture_even_with_force(capture, run_cli, target):
    before = snapshot(capture)
    out = capture / target
    for extra in ([], ["--force"]):
        one_line_error(run_cli("merge", *extra, str(out), str(capture)), str(out.resolve() if target == "." else out), "capture")
    assert snapshot(capture) == before
    assert nil.verify(capture).ok


def test_merge_beside_the_manifest_is_allowed(capture, run_cli):
    out = capture / "agop.safetensors"
    run_cli("merge", str(out), str(capture), check=True)
    assert nil.verify(capture).ok and nil.analyze(out)[0].rows == 40


def test_merge_onto_an_existing_file_needs_force(capture, run_cli, tmp_path):
    out = tmp_path / "out.safetensors"
    run_cli("merge", str(out), str(capture), check=True)
    one_line_error(run_cli("merge", str(out), str(capture)), str(out), "exists", "--force")
    run_cli("merge", "--force", str(out), str(capture), check=True)
    proc = run_cli("--debug", "merge", str(out), str(capture))
    assert proc.returncode != 0 and "Traceback" in proc.stderr  # --debug shows it
    proc = run_cli("merge", str(out), str(capture), "--debug")  # anywhere on the line
    assert "Traceback" in proc.stderr


def test_ctrl_c_stops_a_merge_within_a_block(tmp_path, monkeypatch):
    # The reduction used to run to its end (and write OUT) before the interrupt was seen.
    path = tmp_path / "big"
    with nil.ShardWriter(path, {"a": 1024}, shard_bytes=64 << 20) as w:
        w.write({"a": np.ones((40_000, 1024), np.float16)})  # 82 MB: several progress reports
    from nil.shards import merging

    # A process started in the background (`cmd &` without job control) inherits SIGINT ignored,
    # and then Python installs no Ctrl-C handler and interrupt_main does nothing: install the one a
    # terminal user has, so the test means the same however the suite is launched.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    real = merging._core.partial_merge
    seen: list[int] = []
    once = threading.Lock()  # workers report concurrently: interrupt at the first nonzero report, exactly once

    def partial_merge(inputs, skip, fast, progress):
        def cb(n):
            seen.append(n)
            if n and once.acquire(blocking=False):
                _thread.interrupt_main()  # Ctrl-C, delivered while the merge runs
            return progress(n)

        return real(inputs, skip, fast, cb)

    monkeypatch.setattr(merging._core, "partial_merge", partial_merge)
    out = tmp_path / "out.safetensors"
    t = time.perf_counter()
    try:
        with pytest.raises(KeyboardInterrupt):
            nil.merge(out, path)
            time.sleep(5)  # an interrupt seen only after the merge returned lands here
    finally:
        signal.signal(signal.SIGINT, previous)
    assert time.perf_counter() - t < 30
    assert not out.exists()
    assert sum(seen) < manifest(path)["shards"][0]["bytes"]  # it stopped before the end


# ---------------------------------------------------------------- captures


def test_manifest_that_is_a_directory(capture, run_cli):
    (capture / "manifest.json").unlink()
    (capture / "manifest.json").mkdir()
    one_line_error(run_cli("analyze", str(capture)), "manifest.json", "a directory")
    one_line_error(run_cli("merge", str(capture.parent / "o.safetensors"), str(capture)), "manifest.json")


def test_symlink_loop_as_capture(tmp_path, run_cli):
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    one_line_error(run_cli("analyze", str(tmp_path / "a")), "loop of symbolic links")
    one_line_error(run_cli("merge", str(tmp_path / "o.safetensors"), str(tmp_path / "a")), "loop of symbolic links")


# ---------------------------------------------------------------- interval and llms


def _runs_csv(path: Path) -> Path:
    rng = np.random.default_rng(0)
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["budget", "ratio", "test_loss"])
        for b in (1e5, 2e5, 4e5):
            for r in (0.005, 0.01, 0.02, 0.04, 0.08):
                w.writerow([b, r, 1 + 0.05 * np.log(r / 0.02) ** 2 + 0.01 * rng.standard_normal()])
    return path


def test_binary_csv_and_corrupt_parquet(tmp_path, run_cli):
    binary = tmp_path / "runs.csv"
    binary.write_bytes(b"budget,ratio\n\x00\x01\xff\xfe\x80")
    one_line_error(run_cli("interval", str(binary)), str(binary), "not a UTF-8 text file")
    parquet = tmp_path / "runs.parquet"
    parquet.write_bytes(b"PAR1 this is not parquet")
    one_line_error(run_cli("interval", str(parquet)), str(parquet), "not a readable Parquet file")


def test_plot_onto_an_existing_file(tmp_path, run_cli):
    runs = _runs_csv(tmp_path / "runs.csv")
    target = tmp_path / "figs"
    target.write_text("a file, not a directory")
    one_line_error(run_cli("interval", str(runs), "--bootstrap", "20", "--permutations", "20", "--plot", str(target)),
                   str(target), "is a file", "expected a directory")
    assert target.read_text() == "a file, not a directory"
    one_line_error(run_cli("llms", "--lo", "0.01", "--hi", "0.02", "--plot", str(tmp_path)), str(tmp_path), "directory")
    png = tmp_path / "plot.png"
    png.write_text("old")
    run_cli("llms", "--lo", "0.01", "--hi", "0.02", "--plot", str(png), check=True)  # an output file is replaced
    assert png.read_bytes()[:4] == b"\x89PNG"


# ---------------------------------------------------------------- capture --hf


class _Evil:
    def __reduce__(self):
        return (print, ("PWNED: the pickle ran",))


@pytest.mark.parametrize("weights", ["pytorch_model.bin", "model.safetensors"])
def test_capture_hf_refuses_a_pickle_without_running_it_or_a_traceback(tmp_path, run_cli, weights):
    pytest.importorskip("transformers")
    d = tmp_path / "ckpt"
    d.mkdir()
    (d / "config.json").write_text(json.dumps({
        "model_type": "gpt2", "architectures": ["GPT2LMHeadModel"], "n_embd": 16, "n_layer": 2, "n_head": 2,
        "n_positions": 16, "vocab_size": 31, "bos_token_id": 0, "eos_token_id": 0}))
    (d / weights).write_bytes(pickle.dumps({"transformer.wte.weight": _Evil()}, protocol=2))
    proc = run_cli("capture", "--hf", str(d), "--tokens", "16", "--device", "cpu", timeout=300)
    assert "PWNED" not in proc.stdout + proc.stderr
    one_line_error(proc)
