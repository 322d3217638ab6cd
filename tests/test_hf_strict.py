"""Strict checkpoint loading (issue 11 §2): nil never measures weights a checkpoint does not hold.

Tiny checkpoints are written offline: a Llama without `architectures` in config.json (once
classified as an encoder, loaded through the base class with the LM head dropped), one with a
deleted tensor (initialised at random by transformers), one with an extra tensor, one with a
tensor of the wrong shape, and a BERT saved with its masked-LM head.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

transformers = pytest.importorskip("transformers")
torch = pytest.importorskip("torch")
from safetensors.torch import load_file, save_file  # noqa: E402

from nil import superposition_stats  # noqa: E402
from nil.cli import main  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore")
FAST = ["--tokens", "32", "--seq-len", "16", "--probes", "1", "--project", "4", "--json"]


def _llama(path: Path, *, tied: bool = False, architectures: bool = True):
    torch.manual_seed(0)
    cfg = transformers.LlamaConfig(vocab_size=120, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                                   num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=32,
                                   tie_word_embeddings=tied)
    model = transformers.LlamaForCausalLM(cfg)
    model.save_pretrained(path)
    if not architectures:
        c = json.loads((path / "config.json").read_text())
        del c["architectures"]
        (path / "config.json").write_text(json.dumps(c))
    return model


def _edit_weights(path: Path, edit) -> None:
    f = path / "model.safetensors"
    tensors = load_file(f)
    edit(tensors)
    save_file(tensors, f, metadata={"format": "pt"})


def _run(capsys, *args: str) -> tuple[int, str, str]:
    rc = main(["capture", "--hf", *args])
    out = capsys.readouterr()
    return rc, out.out, out.err


@pytest.mark.parametrize("tied", [False, True])
def test_llama_without_architectures_is_a_causal_lm_with_its_own_weights(tmp_path, capsys, tied):
    model = _llama(tmp_path / "m", tied=tied, architectures=False)
    rc, out, err = _run(capsys, str(tmp_path / "m"), *FAST)
    assert rc == 0, err
    m = json.loads(out)["model"]
    assert m["kind"] == "causal-lm" and m["model_class"] == "LlamaForCausalLM"
    assert ("lm_head.weight" in m["model_class_how"]) != tied and "no architectures" in m["model_class_how"]
    assert m["loading"] == {"model_class": "LlamaForCausalLM", "how": m["model_class_how"], "strict": True,
                            "allowed": False, "missing": [], "unexpected": [], "mismatched": []}
    # The statistics are those of the saved embedding, not of a fresh random one.
    saved = superposition_stats(model.get_input_embeddings().weight.detach().numpy())
    got = json.loads(out)["input_embedding"]
    assert got["mean_sq_overlap"] == pytest.approx(saved.mean_sq_overlap, rel=1e-9)
    assert got["dimensionality"]["mean"] == pytest.approx(saved.dimensionality.mean, rel=1e-9)


def test_a_deleted_tensor_is_an_error_naming_it_unless_allowed(tmp_path, capsys):
    _llama(tmp_path / "m")
    _edit_weights(tmp_path / "m", lambda t: t.pop("model.embed_tokens.weight"))
    rc, out, err = _run(capsys, str(tmp_path / "m"), *FAST)
    assert rc == 1 and out == ""
    line = err.strip().splitlines()[-1]  # the test's own save_pretrained may print a bar before
    assert line.startswith("nil capture: error: ") and "Traceback" not in err
    assert "missing" in line and "model.embed_tokens.weight" in line and "--allow-missing" in line
    rc, out, err = _run(capsys, str(tmp_path / "m"), *FAST, "--allow-missing")
    assert rc == 0
    loading = json.loads(out)["model"]["loading"]
    assert loading["allowed"] and not loading["strict"] and loading["missing"] == ["model.embed_tokens.weight"]
    assert "WARNING" in err and "model.embed_tokens.weight" in err


def test_the_text_report_of_an_allowed_load_says_so(tmp_path, capsys):
    _llama(tmp_path / "m")
    _edit_weights(tmp_path / "m", lambda t: t.pop("model.norm.weight"))
    rc, out, _ = _run(capsys, str(tmp_path / "m"), *FAST[:-1], "--allow-missing")
    assert rc == 0
    warnings = [line for line in out.splitlines() if line.startswith("WARNING")]
    assert len(warnings) == 2 and "model.norm.weight" in warnings[0]  # at the top and at the end


def test_an_extra_tensor_is_an_error_naming_it(tmp_path, capsys):
    _llama(tmp_path / "m")
    _edit_weights(tmp_path / "m", lambda t: t.update({"model.bogus.weight": torch.zeros(3)}))
    rc, _, err = _run(capsys, str(tmp_path / "m"), *FAST)
    assert rc == 1 and "Traceback" not in err
    assert "model has no place for" in err and "model.bogus.weight" in err


def test_a_mis_shaped_tensor_is_an_error_naming_it(tmp_path, capsys):
    _llama(tmp_path / "m")
    _edit_weights(tmp_path / "m", lambda t: t.update({"model.norm.weight": torch.ones(15)}))
    rc, _, err = _run(capsys, str(tmp_path / "m"), *FAST)
    assert rc == 1 and "wrong shape" in err and "model.norm.weight" in err


def test_the_architecture_listed_is_loaded_with_its_head(tmp_path):
    from nil.hf import load_local

    torch.manual_seed(2)
    cfg = transformers.BertConfig(vocab_size=90, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                                  intermediate_size=32, max_position_embeddings=32)
    transformers.BertForMaskedLM(cfg).save_pretrained(tmp_path / "bert")
    m = load_local(tmp_path / "bert", device="cpu")  # the base class would leave cls.* unused
    assert m.kind == "encoder" and m.loading.model_class == "BertForMaskedLM" and m.loading.ok
    assert m.blocks == ["bert.encoder.layer.0", "bert.encoder.layer.1"]
    assert repr(m).startswith("HfModel(") and "BertForMaskedLM" in repr(m)
    ids = torch.randint(0, 90, (2, 5))
    y = m.wrapper(ids, torch.ones_like(ids))
    h = m.model.bert(input_ids=ids).last_hidden_state.mean(dim=1)
    np.testing.assert_allclose(y.detach().numpy(), h.detach().numpy(), rtol=1e-6, atol=1e-7)


def test_an_unknown_model_type_without_architectures_is_refused(tmp_path):
    from nil.errors import FormatError
    from nil.hf.classes import resolve_class

    cfg = transformers.PretrainedConfig()
    cfg.model_type = "no-such-model"
    with pytest.raises(FormatError, match="no-such-model"):
        resolve_class(transformers, cfg, tmp_path, set())
