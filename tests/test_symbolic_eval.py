"""Masked evaluation: values against a hand-written loop, streaming independent of the batch size,
stable log-odds at extreme logits, players and baselines, a tiny local Hugging Face causal LM."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from nil.errors import NilValueError, ShapeError
from nil.models import build
from nil.symbolic import (
    Players,
    and_or,
    learn_baseline,
    log_odds,
    log_odds_from_log_prob,
    low_order_masks,
    masked_values,
)


def mlp() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.GELU(), torch.nn.Linear(16, 5)).double()


def manual(model: torch.nn.Module, x: torch.Tensor, players: list[int], target: int) -> np.ndarray:
    out = []
    for t in range(1 << len(players)):
        xt = x.clone()
        for i, p in enumerate(players):
            if not (t >> i) & 1:
                xt[p] = 0.0
        z = model(xt[None])[0].double()
        others = torch.cat([z[:target], z[target + 1 :]])
        out.append(float((z[target] - torch.logsumexp(others, 0)).detach()))
    return np.array(out)


def test_values_match_a_hand_written_loop_for_any_batch_size() -> None:
    model = mlp()
    x = torch.randn(3, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    players = Players.features(8, [0, 2, 3, 5, 7])
    ref = masked_values(model, x, players, target=[1, 4, 0], batch_size=1000)
    assert ref.values.shape == (3, 32) and ref.forwards == 96
    for s, t in enumerate([1, 4, 0]):
        np.testing.assert_allclose(ref.values[s], manual(model, x[s], [0, 2, 3, 5, 7], t), atol=1e-12)
    for bs in (1, 7, 33):
        np.testing.assert_allclose(masked_values(model, x, players, target=[1, 4, 0], batch_size=bs).values,
                                   ref.values, atol=1e-12)
    # default target: the predicted class of the full input
    pred = model(x).argmax(1).numpy()
    np.testing.assert_array_equal(masked_values(model, x, players).targets, pred)
    low = masked_values(model, x, players, target=[1, 4, 0], order=2)
    np.testing.assert_allclose(low.values, ref.values[:, low_order_masks(5, 2).astype(np.int64)], atol=1e-12)
    model.train()
    model[1].eval()
    masked_values(model, x, players)
    assert model.training and model[0].training and not model[1].training  # modes restored exactly
    reg = masked_values(model, x, players, value="output", target=3)
    np.testing.assert_allclose(reg.values[:, -1], model(x)[:, 3].detach().numpy(), atol=1e-12)


def test_log_odds_are_exact_at_extreme_logits() -> None:
    z = torch.tensor([[40.0, 0.0], [-800.0, 0.0], [1000.0, 0.0]], dtype=torch.float64)
    got = log_odds(z, torch.tensor([0, 0, 0]))
    assert got.tolist() == [40.0, -800.0, 1000.0]
    # the naive formula fails exactly there
    p = torch.softmax(z, 1)[:, 0]
    naive = torch.log(p) - torch.log1p(-p)
    assert not torch.isfinite(naive[[0, 2]]).any() and not torch.isfinite(naive[1])
    # log p = −log1p(e^−40) ≈ −4.2e-18 (log_softmax would round it to 0, losing p/(1 − p))
    lp = torch.tensor([-math.log1p(math.exp(-40.0)), -800.0], dtype=torch.float64)
    np.testing.assert_allclose(log_odds_from_log_prob(lp).numpy(), [40.0, -800.0], rtol=1e-12)
    three = torch.tensor([[2.0, 1.0, -1.0]], dtype=torch.float64)
    assert math.isclose(float(log_odds(three, torch.tensor([1]))), 1.0 - math.log(math.exp(2) + math.exp(-1)), rel_tol=1e-15)
    one = torch.tensor([[1.5], [-0.5]])
    assert log_odds(one, torch.tensor([1, 0])).tolist() == [1.5, 0.5]
    with pytest.raises(NilValueError):
        log_odds(three, torch.tensor([3]))


def test_players_constructors_and_checks() -> None:
    pt = Players.patches(4, 4, 2)
    assert pt.n == 4 and pt.index.shape == (1, 4, 4)
    assert pt.index[0, :, :].tolist() == [[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 3, 3], [2, 2, 3, 3]]
    emb = Players.embeddings(6, [-1, -2])
    assert emb.index.shape == (6, 1) and emb.index[5, 0] == 0 and emb.index[4, 0] == 1 and emb.index[0, 0] == -1
    with pytest.raises(NilValueError):
        Players.tokens(4, [0, 0])
    with pytest.raises(NilValueError):
        Players.tokens(4, [9])
    with pytest.raises(ShapeError):
        masked_values(mlp(), torch.zeros(1, 7, dtype=torch.float64), Players.features(8))
    with pytest.raises(NilValueError):
        masked_values(mlp(), torch.zeros(1, 8, dtype=torch.float64), Players.features(8), baseline=3)
    with pytest.raises(NilValueError, match="reference"):
        masked_values(mlp(), torch.zeros(1, 8, dtype=torch.float64), Players.features(8), baseline="mean")


def test_image_patches_on_a_cnn_and_mean_baseline() -> None:
    torch.manual_seed(0)
    cnn = build("cnn", 1, 8, in_ch=1, patch=2, out_dim=10).double().eval()
    x = torch.randn(2, 1, 8, 8, dtype=torch.float64)
    ref = torch.randn(20, 1, 8, 8, dtype=torch.float64)
    pl = Players.patches(8, 8, 4)
    mv = masked_values(cnn, x, pl, baseline="mean", reference=ref)
    assert mv.values.shape == (2, 16)
    xt = x.clone()
    xt[:, :, 4:, :] = ref.mean(0)[:, 4:, :]  # keep the top patches (players 0 and 1) only
    z = cnn(xt)
    want = log_odds(z, torch.as_tensor(mv.targets))
    np.testing.assert_allclose(mv.values[:, 0b0011], want.detach().numpy(), atol=1e-12)


def test_learned_baseline_makes_the_empty_input_uninformative() -> None:
    model = mlp()
    x = torch.randn(6, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    pl = Players.features(8, [0, 1, 2, 3])
    before = masked_values(model, x, pl).values[:, 0]
    b = learn_baseline(model, x, pl, steps=150, lr=0.05)
    after = masked_values(model, x, pl, baseline=b).values[:, 0]
    assert (after**2).mean() < 0.6 * (before**2).mean()
    assert all(p.grad is None and p.requires_grad for p in model.parameters())
    lo, hi = float(x.min()), float(x.max())
    assert float(b.min()) >= lo and float(b.max()) <= hi


transformers = pytest.importorskip("transformers")


@pytest.mark.filterwarnings("ignore")
def test_next_token_log_odds_of_a_local_causal_lm(tmp_path: Path) -> None:
    from nil.hf import load_local

    torch.manual_seed(0)
    cfg = transformers.GPT2Config(vocab_size=29, n_embd=16, n_layer=2, n_head=2, n_positions=16)
    transformers.GPT2LMHeadModel(cfg).save_pretrained(tmp_path / "lm")
    hf = load_local(tmp_path / "lm", device="cpu")
    ids = torch.tensor([[3, 7, 1, 9, 4, 12]])
    pl = Players.tokens(6, [2, 3, 4, 5])
    mv = masked_values(hf.wrapper, ids, pl, baseline=0)
    logits = hf.wrapper(ids)[0, -1].double()
    t = int(logits.argmax())
    assert mv.targets.tolist() == [t]
    p = torch.softmax(logits, 0)[t]
    assert math.isclose(mv.values[0, -1], float(torch.log(p) - torch.log1p(-p)), rel_tol=1e-6)
    masked = ids.clone()
    masked[0, [2, 4]] = 0  # coalition {1, 3}: positions 3 and 5 kept
    z = hf.wrapper(masked)[0, -1].double()
    want = float(z[t] - torch.logsumexp(torch.cat([z[:t], z[t + 1 :]]), 0))
    assert math.isclose(mv.values[0, 0b1010], want, rel_tol=1e-6)  # float32 model, batched vs single forward
    # the same players as embedding positions with a zero embedding baseline
    emb = hf.model.get_input_embeddings()(ids).detach()
    mv2 = masked_values(lambda e: hf.model(inputs_embeds=e).logits, emb, Players.embeddings(6, [2, 3, 4, 5]))
    np.testing.assert_allclose(mv2.values[0, -1], mv.values[0, -1], rtol=1e-5)
    d = and_or(mv.values)
    assert d.objective[0] > 0
