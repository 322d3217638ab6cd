"""Pickled weights given to `nil capture --hf` (issue 13, a leftover of issue 12): a pickle named
model.safetensors, a pytorch_model.bin holding arbitrary pickled objects, or a truncated one is a
one-line FormatError naming the file, never a traceback; a plain tensor pickle still loads."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

from cli_helpers import one_line_error

transformers = pytest.importorskip("transformers")
torch = pytest.importorskip("torch")
from safetensors.torch import load_file, save_file  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore")
FAST = ["--tokens", "32", "--seq-len", "16", "--probes", "1", "--project", "4", "--json"]


class _Code:
    def __reduce__(self):  # what a malicious checkpoint would run; weights_only must refuse it
        return (print, ("this must never be printed",))


@pytest.fixture(scope="module")
def state(tmp_path_factory) -> tuple[Path, dict]:
    path = tmp_path_factory.mktemp("llama") / "m"
    torch.manual_seed(0)
    cfg = transformers.LlamaConfig(vocab_size=120, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                                   num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=32)
    transformers.LlamaForCausalLM(cfg).save_pretrained(path)
    return path, load_file(path / "model.safetensors")


def _checkpoint(state, tmp_path: Path, name: str, write) -> Path:
    src, tensors = state
    d = tmp_path / "ckpt"
    d.mkdir()
    for f in src.iterdir():
        if f.name != "model.safetensors":
            (d / f.name).write_bytes(f.read_bytes())
    write(d / name, tensors)
    return d


def _capture(d: Path, out: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "nil", "capture", "--hf", str(d), "--out", str(out), *FAST],
                          capture_output=True, text=True, env=env, timeout=300)


@pytest.mark.parametrize("how", ["torch.save", "pickle"])
def test_a_pickle_named_model_safetensors_is_a_format_error_naming_it(state, tmp_path, how):
    def write(f, t):
        if how == "torch.save":
            torch.save(t, f)
        else:
            with open(f, "wb") as fh:
                pickle.dump({k: v.numpy() for k, v in t.items()}, fh, protocol=4)

    d = _checkpoint(state, tmp_path, "model.safetensors", write)
    proc = _capture(d, tmp_path / "cap")
    line = one_line_error(proc, str(d / "model.safetensors"), "expected a safetensors file", "pickle")
    assert "nil capture: error:" in line
    assert not (tmp_path / "cap").exists()


@pytest.mark.parametrize("content", ["code", "truncated"])
def test_an_unloadable_pytorch_model_bin_is_a_format_error_naming_it(state, tmp_path, content):
    def write(f, t):
        if content == "code":
            torch.save({"model.embed_tokens.weight": _Code()}, f)
        else:
            torch.save(t, f)
            f.write_bytes(f.read_bytes()[:500])

    d = _checkpoint(state, tmp_path, "pytorch_model.bin", write)
    proc = _capture(d, tmp_path / "cap")
    one_line_error(proc, str(d / "pytorch_model.bin"), "expected a torch checkpoint of tensors")
    assert "this must never be printed" not in proc.stdout + proc.stderr


def test_a_tensor_pickle_as_pytorch_model_bin_still_loads(state, tmp_path):
    d = _checkpoint(state, tmp_path, "pytorch_model.bin", lambda f, t: torch.save(t, f))
    proc = _capture(d, tmp_path / "cap")
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "cap" / "manifest.json").is_file()


def test_capture_text_output_fits_100_columns(state, tmp_path):
    """Issue 13: `nil capture --hf`'s report fits 100 columns and cuts no number."""
    from rich.cells import cell_len

    d = _checkpoint(state, tmp_path, "model.safetensors", lambda f, t: save_file(t, str(f), metadata={"format": "pt"}))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "COLUMNS": "100"}
    proc = subprocess.run([sys.executable, "-m", "nil", "capture", "--hf", str(d), "--out", str(tmp_path / "cap"),
                           *FAST[:-1]], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert "Per-block input AGOP" in proc.stdout and "model.layers.1" in proc.stdout
    assert max(cell_len(line) for line in lines) <= 100 and "…" not in proc.stdout
