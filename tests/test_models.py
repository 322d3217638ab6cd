"""nil.models: closed-form counts against real modules, the reference check values, the width
solver's rules, and SDPA attention against the explicit-mask formula."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from nil.errors import NilValueError
from nil.models import BudgetError, aspect_ratio, build, param_count, solve_width, width_grid
from hypothesis_profiles import examples


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tiny models: one thread is fastest (conftest)


def _meta_numel(family: str, depth: int, width: int, **kw) -> int:
    with torch.device("meta"):
        model = build(family, depth, width, **kw)
    return sum(p.numel() for p in model.parameters())


SHAPES = {
    "gpt": [(1, 16, {}), (2, 32, {"head_dim": 8}), (3, 24, {"vocab": 100, "seq_len": 64}),
            (5, 120, {}), (4, 48, {"vocab": None, "seq_len": 80, "out_dim": 64}),
            (2, 40, {"vocab": None, "in_dim": 3, "seq_len": 10, "out_dim": 7, "d_ff_mult": 2})],
    "mlp": [(1, 16, {}), (3, 672, {}), (4, 40, {"in_dim": 10, "out_dim": 3}),
            (2, 264, {"out_dim": 1, "style": "residual"}), (5, 24, {"style": "plain", "in_dim": 7, "out_dim": 1}),
            (1, 8, {"style": "plain"})],
    "cnn": [(1, 8, {}), (3, 128, {}), (2, 16, {"in_ch": 1, "patch": 2, "out_dim": 10}), (4, 24, {"patch": 4}),
            (6, 32, {"out_dim": 5})],
    "gru": [(1, 8, {}), (2, 16, {"in_dim": 3}), (3, 64, {}), (5, 24, {"out_dim": 10}), (4, 40, {"in_dim": 2, "out_dim": 1})],
}


@pytest.mark.parametrize("family", sorted(SHAPES))
def test_formula_equals_module_parameter_count(family):
    for depth, width, kw in SHAPES[family]:
        count = param_count(family, depth, width, **kw)
        assert count.total == _meta_numel(family, depth, width, **kw), (family, depth, width, kw)
        assert count.embedding > 0 and count.head > 0 and count.non_embedding == count.body + count.head


@settings(max_examples=examples(30), deadline=None)
@given(depth=st.integers(1, 6), heads=st.integers(1, 12), head_dim=st.sampled_from([4, 8]),
       vocab=st.sampled_from([None, 256, 50]))
def test_gpt_formula_hypothesis(depth, heads, head_dim, vocab):
    kw = {"head_dim": head_dim, "vocab": vocab, "seq_len": 32}
    if vocab is None:
        kw["out_dim"] = 16
    width = heads * head_dim
    assert param_count("gpt", depth, width, **kw).total == _meta_numel("gpt", depth, width, **kw)


def test_byte_gpt_count_is_the_reference_closed_form():
    for depth, d in [(1, 128), (5, 120), (10, 284), (7, 52), (3, 4)]:
        assert param_count("gpt", depth, d).total == depth * (12 * d * d + 4 * d) + 770 * d
    assert param_count("gpt", 1, 128).total == 295_680
    assert param_count("gpt", 5, 120).total == 958_800
    assert param_count("gpt", 10, 284).total == 9_908_760


def test_other_reference_check_values():
    ts = {"vocab": None, "seq_len": 80, "out_dim": 64}
    assert param_count("gpt", 3, 160, **ts).total == 947_264
    assert param_count("gpt", 1, 148, **ts).total == 285_408
    assert param_count("mlp", 3, 672).total == 993_952
    assert param_count("cnn", 3, 128).total == 927_872
    assert param_count("mlp", 2, 264, out_dim=1, style="residual").total == 297_265
    h, L = 64, 3  # METHOD §4.2 GRU formula, written out
    assert param_count("gru", L, h).total == 3 * (h + h * h + 2 * h) + (L - 1) * 3 * (2 * h * h + 2 * h) + 64 * h + 64
    w, L = 256, 4  # MLP TS 3M scan
    assert param_count("mlp", L, w, out_dim=1, style="plain").total == 65 * w + (L - 1) * (w * w + w) + w + 1


def test_pad_parameter_makes_the_model_hold_the_budget():
    sol = solve_width("gpt", 1_000_000, 5)
    assert (sol.width, sol.active_params, sol.pad_params) == (120, 958_800, 41_200)
    assert _meta_numel("gpt", 5, sol.width, pad=sol.pad_params) == 1_000_000
    model = build("gpt", 1, 16, pad=10)
    assert not model.pad.requires_grad and float(model.pad.abs().sum()) == 0.0


@settings(max_examples=examples(60), deadline=None)
@given(family=st.sampled_from(["gpt", "mlp", "cnn", "gru"]), budget=st.integers(20_000, 3_000_000),
       depth=st.integers(1, 12))
def test_pad_rule_is_the_largest_fitting_width(family, budget, depth):
    grid = width_grid(family)
    counts = {w: param_count(family, depth, w).total for w in grid}
    try:
        sol = solve_width(family, budget, depth, max_pad=1.0)
    except BudgetError:
        assert min(counts.values()) > budget
        return
    assert sol.active_params == counts[sol.width] <= budget
    assert sol.active_params + sol.pad_params == budget
    bigger = [w for w in grid if w > sol.width]
    assert not bigger or counts[bigger[0]] > budget


@settings(max_examples=examples(60), deadline=None)
@given(family=st.sampled_from(["gpt", "mlp", "cnn", "gru"]), budget=st.integers(20_000, 3_000_000),
       depth=st.integers(1, 12))
def test_closest_rule_minimises_the_budget_error(family, budget, depth):
    sol = solve_width(family, budget, depth, rule="closest")
    assert sol.pad_params == 0
    best = min(abs(param_count(family, depth, w).total - budget) for w in width_grid(family))
    assert abs(sol.active_params - budget) == best


def test_max_pad_refuses_shapes():
    # METHOD §4.3: the TS TinyGPT at 0.3M, depth 24 exceeds the 20% pad limit (width 28 leaves 22%).
    ts = {"vocab": None, "seq_len": 80, "out_dim": 64, "min_width": 24}
    with pytest.raises(BudgetError, match="pad"):
        solve_width("gpt", 300_000, 24, **ts)
    assert solve_width("gpt", 300_000, 24, max_pad=0.25, **ts).width == 28
    with pytest.raises(BudgetError, match="does not fit"):
        solve_width("gpt", 10_000, 1)


def test_aspect_ratio_and_bad_arguments():
    assert aspect_ratio(5, 120) == pytest.approx(5 / 120)
    with pytest.raises(NilValueError, match="unknown model family"):
        build("transformer", 1, 8)
    with pytest.raises(NilValueError, match="multiple of head_dim"):
        build("gpt", 1, 18)
    with pytest.raises(NilValueError, match="rule"):
        solve_width("mlp", 10_000, 2, rule="biggest")


def test_sdpa_equals_explicit_mask_attention():
    torch.manual_seed(0)  # test-local model init only; nil itself never seeds the global RNG
    sdpa = build("gpt", 2, 32, vocab=50, seq_len=24, head_dim=4)
    explicit = build("gpt", 2, 32, vocab=50, seq_len=24, head_dim=4, attention="explicit")
    explicit.load_state_dict(sdpa.state_dict())
    x = torch.randint(0, 50, (3, 24), generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(sdpa(x), explicit(x), rtol=1e-5, atol=1e-5)
    for block in sdpa.blocks:  # the zero-padded head path the fused CUDA kernels use
        block.attn.pad_heads = True
    torch.testing.assert_close(sdpa(x), explicit(x), rtol=1e-5, atol=1e-5)


def test_forward_shapes_and_causality():
    x = torch.randint(0, 256, (2, 16), generator=torch.Generator().manual_seed(0))
    lm = build("gpt", 2, 16, seq_len=16)
    y = lm(x)
    assert y.shape == (2, 16, 256)
    x2 = x.clone()
    x2[:, -1] = (x2[:, -1] + 1) % 256
    torch.testing.assert_close(lm(x2)[:, :-1], y[:, :-1])  # the future never leaks backwards
    ts = build("gpt", 1, 16, vocab=None, seq_len=8, out_dim=5)
    assert ts(torch.randn(4, 8, 1)).shape == (4, 5)
    assert build("mlp", 3, 16, in_dim=6, out_dim=2)(torch.randn(5, 6)).shape == (5, 2)
    assert build("cnn", 2, 8, in_ch=1, patch=2, out_dim=10)(torch.randn(3, 1, 8, 8)).shape == (3, 10)
    assert build("gru", 2, 8, out_dim=3)(torch.randn(3, 11, 1)).shape == (3, 3)
    names = {n for n, _ in lm.named_modules()}
    assert {"blocks.0", "blocks.1"} <= names


@pytest.mark.parametrize("family,kw", [("gpt", {"seq_len": 8}), ("mlp", {}), ("cnn", {}), ("gru", {})])
def test_seeded_build_is_deterministic_and_leaves_the_global_rng_alone(family, kw):
    state = torch.random.get_rng_state()
    a = build(family, 2, 16, seed=3, **kw)
    b = build(family, 2, 16, seed=3, **kw)
    c = build(family, 2, 16, seed=4, **kw)
    assert torch.equal(state, torch.random.get_rng_state())
    for (name, pa), pb, pc in zip(a.named_parameters(), b.parameters(), c.parameters()):
        assert torch.equal(pa, pb), name
        assert torch.isfinite(pa).all(), name
    assert any(not torch.equal(pa, pc) for pa, pc in zip(a.parameters(), c.parameters()))


def test_reference_init_scales():
    model = build("gpt", 4, 64, seed=0, seq_len=16)
    assert model.blocks[0].fc1.weight.std().item() == pytest.approx(0.02, rel=0.05)
    assert model.blocks[0].fc2.weight.std().item() == pytest.approx(0.02 / (2 * 4) ** 0.5, rel=0.05)
    assert torch.equal(model.ln_f.weight, torch.ones(64))
    assert model.pos_emb.std().item() == pytest.approx(0.02, rel=0.1)
    assert [n for n, m in model.named_modules() if isinstance(m, torch.nn.Embedding)] == ["tok_emb"]
    gru = build("gru", 1, 16, seed=0, in_dim=2)
    assert gru(torch.randn(3, 5, 2)).shape == (3, 64)
