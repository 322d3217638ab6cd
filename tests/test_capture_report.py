"""interaction_report: its parts equal the functions they are built from; columns are flat floats."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from capture_models import LinearNet, TinyGPT

import nil
from nil.capture import capture_agop, interaction_report

pytestmark = pytest.mark.filterwarnings("ignore:There is a performance drop")


def test_report_on_a_gpt_matches_its_parts() -> None:
    torch.manual_seed(0)
    gpt = TinyGPT(depth=3).train()
    batches = [torch.randint(0, 13, (3, 6), generator=torch.Generator().manual_seed(s)) for s in (1, 2)]
    rep = interaction_report(gpt, batches, project=5, probes=3, seed=2, progress=False)
    assert gpt.training, "the model's mode is restored"
    assert list(rep.layers) == ["blocks.0", "blocks.1", "blocks.2"]
    assert list(rep.linears) == ["blocks.0.qkv", "blocks.1.qkv", "blocks.2.qkv"]
    # Output AGOP: the exact k-VJP Gram w.r.t. the first block's input.
    out = capture_agop(gpt, batches, mode="output", project=5, seed=2, progress=False)["output"]
    np.testing.assert_array_equal(rep.output.matrix, out.matrix)
    # Embedding WᵀW statistics and the NFA correlation of each first linear with its input AGOP.
    emb = nil.superposition_stats(gpt.tok.weight.detach())
    assert rep.embedding_name == "tok"
    assert rep.embedding is not None
    np.testing.assert_allclose(rep.embedding.wtw.aofe_ratio, emb.wtw.aofe_ratio, rtol=1e-6)
    for name, lin in rep.linears.items():
        w = gpt.get_submodule(name).weight.detach().double().numpy()
        want = nil.nfa_correlation(w.T @ w, lin.matrix, 1.0)
        assert rep.nfa[name].pearson_all == pytest.approx(want.pearson_all, rel=1e-6)
        assert 0.0 <= rep.nfa_fit[name].gamma <= 2.0
    cols = rep.to_columns()
    assert all(isinstance(v, float) for v in cols.values())
    means = np.mean([rep.layers[f"blocks.{i}"].stats.aofe_ratio for i in range(3)])
    assert cols["agop_aofe_ratio_mean"] == pytest.approx(means)
    assert cols["agop_aofe_ratio_L2"] == rep.layers["blocks.2"].stats.aofe_ratio
    assert cols["out_aofe_ratio"] == rep.output.stats.aofe_ratio
    assert cols["nfa_pearson_mean"] == pytest.approx(np.mean([c.pearson_all for c in rep.nfa.values()]))
    json.dumps(rep.to_dict())  # plain data


def test_report_without_blocks_uses_every_linear() -> None:
    torch.manual_seed(1)
    net = LinearNet()
    x = [torch.randn(16, 5)]
    rep = interaction_report(net, x, project=2, probes="exact", progress=False)
    assert list(rep.layers) == ["b", "a"] and list(rep.nfa) == ["b", "a"]
    assert rep.embedding is None and np.isnan(rep.to_columns()["wtw_emb_aofe_ratio"])
    # Input AGOP of b is (PAB)ᵀ(PAB) for the report's projection: exact probes on y = P·Ax.
    from nil.capture.probes import projection_matrix

    p = projection_matrix(2, 3, 0).double()
    pab = (p @ net.a.weight.double() @ net.b.weight.double()).detach().numpy()
    np.testing.assert_allclose(rep.layers["b"].matrix, pab.T @ pab, rtol=1e-5)
