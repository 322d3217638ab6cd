"""Capture on Hugging Face causal LMs (GPT-2, GPT-NeoX/Pythia, Llama, Qwen2): tiny random configs
saved to and loaded from a local directory offline, block layouts detected, AGOPs equal jacrev."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from nil.capture import capture_agop, detect_blocks, interaction_report
from nil.capture.probes import projection_matrix

transformers = pytest.importorskip("transformers")
pytestmark = pytest.mark.filterwarnings("ignore")

V = 31
TINY: dict[str, tuple[str, str, dict[str, Any], str]] = {
    "gpt2": ("GPT2Config", "GPT2LMHeadModel",
             dict(n_embd=16, n_layer=2, n_head=2, n_positions=16, bos_token_id=0, eos_token_id=0),
             "transformer.h"),
    "gpt-neox": ("GPTNeoXConfig", "GPTNeoXForCausalLM",
                 dict(hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32,
                      max_position_embeddings=16, bos_token_id=0, eos_token_id=0),
                 "gpt_neox.layers"),
    "llama": ("LlamaConfig", "LlamaForCausalLM",
              dict(hidden_size=16, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1,
                   intermediate_size=32, max_position_embeddings=16, bos_token_id=0, eos_token_id=0),
              "model.layers"),
    "qwen2": ("Qwen2Config", "Qwen2ForCausalLM",
              dict(hidden_size=16, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1,
                   intermediate_size=32, max_position_embeddings=16, bos_token_id=0, eos_token_id=0),
              "model.layers"),
}


def _local_model(name: str, tmp_path: Path) -> Any:
    cfg_name, model_name, kw, _ = TINY[name]
    torch.manual_seed(0)
    model = getattr(transformers, model_name)(getattr(transformers, cfg_name)(vocab_size=V, **kw))
    model.save_pretrained(tmp_path / name)
    loaded = getattr(transformers, model_name).from_pretrained(tmp_path / name, local_files_only=True)
    return loaded.float().eval()


def _batches() -> list[dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(3)
    return [{"input_ids": (ids := torch.randint(1, V, (1, 5), generator=g)),
             "attention_mask": torch.ones_like(ids), "labels": ids} for _ in range(2)]


def _jacobians(model: Any, ids: torch.Tensor, p: torch.Tensor | None) -> torch.Tensor:
    """Per-sample ∂(last-position logits [· Pᵀ])/∂(input embeddings), float64: [B, out, T, d]."""
    emb = model.get_input_embeddings()(ids).detach()

    def f(e: torch.Tensor) -> torch.Tensor:
        y = model(inputs_embeds=e.unsqueeze(0)).logits[0, -1]
        return y if p is None else y @ p.t()

    return torch.stack([torch.func.jacrev(f)(emb[b]) for b in range(ids.shape[0])]).detach().double()


@pytest.mark.parametrize("family", list(TINY))
def test_hf_block_layouts_and_jacrev(family: str, tmp_path: Path) -> None:
    model = _local_model(family, tmp_path)
    fam, blocks = detect_blocks(model)
    prefix = TINY[family][3]
    assert blocks == [f"{prefix}.0", f"{prefix}.1"]
    assert fam == ("llama" if family == "qwen2" else family)
    batches = _batches()
    got = capture_agop(model, batches, probes="exact", progress=False)
    assert list(got) == blocks
    ids = torch.cat([b["input_ids"] for b in batches])
    j = _jacobians(model, ids, None)  # [B, V, T, d]
    want = torch.einsum("botd,bote->de", j, j).numpy() / (ids.numel())
    first = got[blocks[0]].matrix
    assert np.abs(first - want).max() / np.abs(want).max() < 1e-5
    p = projection_matrix(4, V, 0)
    out = capture_agop(model, batches, mode="output", project=4, progress=False)["output"]
    pj = _jacobians(model, ids, p).reshape(ids.shape[0], 4, -1)
    want_out = torch.einsum("bkn,bln->kl", pj, pj).numpy() / ids.shape[0]
    assert np.abs(out.matrix - want_out).max() / np.abs(want_out).max() < 1e-5


@pytest.mark.parametrize("family", ["gpt2", "llama"])
def test_hf_interaction_report(family: str, tmp_path: Path) -> None:
    model = _local_model(family, tmp_path)
    rep = interaction_report(model, _batches(), project=4, probes=2, progress=False)
    cols = rep.to_columns()
    assert len(rep.nfa) == 2 and rep.embedding is not None
    assert rep.embedding.features == V and rep.embedding.dim == 16
    for key in ("agop_aofe_ratio_mean", "out_aofe_ratio", "wtw_emb_aofe_ratio", "nfa_pearson_mean",
                "nfa_gamma_mean", "agop_aofe_ratio_L0", "agop_aofe_ratio_L1"):
        assert math.isfinite(cols[key]), key
    # The first linear map of block 0 reads a 16-wide normalised input in both layouts.
    first = next(iter(rep.linears.values()))
    assert first.dim == 16


def test_right_padding_adds_no_rows(tmp_path: Path) -> None:
    model = _local_model("gpt2", tmp_path)
    g = torch.Generator().manual_seed(9)
    a, b = torch.randint(1, V, (1, 5), generator=g), torch.randint(1, V, (1, 3), generator=g)
    padded = {"input_ids": torch.cat([a, torch.cat([b, torch.zeros(1, 2, dtype=torch.long)], 1)]),
              "attention_mask": torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])}
    got = capture_agop(model, [padded], probes="exact", progress=False)
    sep = capture_agop(model, [a, b], probes="exact", progress=False)
    for name in got:
        assert got[name].count == sep[name].count == 8 * V
        np.testing.assert_allclose(got[name].matrix, sep[name].matrix, rtol=1e-4, atol=1e-7)
