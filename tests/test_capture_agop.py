"""nil.capture.capture_agop against independent torch.func.jacrev computations and closed forms."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from capture_models import LinearNet, TinyCNN, TinyGPT, per_sample_jacobian, token_agop

from nil import AgopAccumulator
from nil.capture import capture_agop, select_layers
from nil.errors import NilValueError

REL = 1e-5
pytestmark = pytest.mark.filterwarnings("ignore:There is a performance drop")


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).max() / np.abs(b).max())


@pytest.fixture
def gpt() -> TinyGPT:
    torch.manual_seed(0)
    return TinyGPT().eval()


@pytest.fixture
def tokens() -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return [torch.randint(0, 13, (3, 6), generator=g) for _ in range(2)]


def test_block_input_agop_equals_jacrev(gpt: TinyGPT, tokens: list[torch.Tensor]) -> None:
    got = capture_agop(gpt, tokens, probes="exact", progress=False)
    assert list(got) == ["blocks.0", "blocks.1"]
    x = torch.cat(tokens)
    with torch.no_grad():
        h0 = gpt.embed(x)
        h1 = gpt.blocks[0](h0)
    for name, start, h in (("blocks.0", 0, h0), ("blocks.1", 1, h1)):
        j = per_sample_jacobian(lambda z, s=start: gpt.from_block(z, s)[:, -1], h)  # [B, V, T, d]
        want = token_agop(j, 1).numpy()
        assert got[name].count == x.shape[0] * x.shape[1] * 13
        assert _rel(got[name].matrix, want) < REL


def test_linear_inputs_inside_blocks_equal_jacrev(gpt: TinyGPT, tokens: list[torch.Tensor]) -> None:
    got = capture_agop(gpt, tokens, layers=["blocks.1.qkv", "blocks.0.out"], probes="exact", progress=False)
    x = torch.cat(tokens)
    blk0, blk1 = gpt.blocks
    with torch.no_grad():
        h1 = blk0(gpt.embed(x))
        a1 = blk1.ln1(h1)

    def from_qkv_input(a: torch.Tensor) -> torch.Tensor:  # block 1 with ln1(h) replaced by a
        b, t, d = h1.shape
        q, k, v = blk1.qkv(a).split(d, dim=-1)
        q, k, v = (z.reshape(1, t, 2, d // 2).transpose(1, 2) for z in (q, k, v))
        att = F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(1, t, d)
        return att

    # The qkv input feeds only attention; the residual stream h1 of that sample is held fixed.
    rows = []
    for i in range(x.shape[0]):
        def f(a: torch.Tensor, i: int = i) -> torch.Tensor:
            h = h1[i : i + 1] + blk1.proj(from_qkv_input(a))
            h = h + blk1.out(F.gelu(blk1.fc(blk1.ln2(h))))
            return gpt.head(gpt.ln(h))[0, -1]

        rows.append(torch.func.jacrev(f)(a1[i : i + 1]).detach().double()[:, 0])  # [V, T, d]
    j = torch.stack(rows)
    assert _rel(got["blocks.1.qkv"].matrix, token_agop(j, 1).numpy()) < REL
    # blocks.0.out: 4d-wide rows, one per token.
    assert got["blocks.0.out"].dim == 32 and got["blocks.0.out"].count == 6 * 6 * 13


def test_linear_network_closed_forms() -> None:
    torch.manual_seed(3)
    net = LinearNet().double()
    x = [torch.randn(7, 5, dtype=torch.float64) for _ in range(2)]
    got = capture_agop(net, x, probes="exact", progress=False)
    a, b = net.a.weight.detach(), net.b.weight.detach()
    ab = (a @ b).numpy()
    np.testing.assert_allclose(got["b"].matrix, ab.T @ ab, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(got["a"].matrix, (a.T @ a).numpy(), rtol=1e-12, atol=1e-14)
    p = torch.randn(2, 3, dtype=torch.float64)
    out = capture_agop(net, x, mode="output", project=p, progress=False)["output"]
    pab = (p @ a @ b).numpy()
    np.testing.assert_allclose(out.matrix, pab @ pab.T, rtol=1e-12, atol=1e-14)
    assert out.count == 14 and out.kind == "output"


def test_projected_output_agop_equals_jacrev(gpt: TinyGPT, tokens: list[torch.Tensor]) -> None:
    got = capture_agop(gpt, tokens, mode="output", project=5, seed=4, progress=False)["output"]
    x = torch.cat(tokens)
    from nil.capture.probes import projection_matrix

    p = projection_matrix(5, 13, 4)
    with torch.no_grad():
        h0 = gpt.embed(x)
    j = per_sample_jacobian(lambda z: gpt.from_block(z, 0)[:, -1] @ p.t(), h0)  # [B, k, T, d]
    pj = j.reshape(j.shape[0], 5, -1)
    want = torch.einsum("bkn,bln->kl", pj, pj).numpy() / x.shape[0]
    assert got.matrix.shape == (5, 5)
    assert _rel(got.matrix, want) < REL
    # Batched (vmap) and looped VJPs give the same matrix.
    looped = capture_agop(gpt, tokens, mode="output", project=5, seed=4, progress=False,
                          batched_vjp=False, vjp_chunk=2)["output"]
    np.testing.assert_allclose(looped.matrix, got.matrix, rtol=1e-10, atol=0)


def test_conv_patch_agop_equals_jacrev() -> None:
    torch.manual_seed(5)
    net = TinyCNN().double().eval()
    x = torch.randn(3, 2, 5, 5, dtype=torch.float64)
    got = capture_agop(net, [x], layers=["c1"], probes="exact", progress=False)["c1"]
    w = net.c1.weight.reshape(3, -1)
    u = F.unfold(x, 3, padding=1)  # [B, 18, 25]

    def from_patches(p: torch.Tensor) -> torch.Tensor:  # p: [1, 18, 25]
        z = (w @ p[0] + net.c1.bias[:, None]).reshape(1, 3, 5, 5)
        return net.rest(z)

    j = per_sample_jacobian(from_patches, u)  # [B, 3, 18, 25]
    want = torch.einsum("bocl,boel->ce", j, j).numpy() / (3 * 25)
    assert got.dim == 18 and got.count == 3 * 25 * 3
    assert _rel(got.matrix, want) < 1e-10


def test_token_stride_and_all_positions(gpt: TinyGPT, tokens: list[torch.Tensor]) -> None:
    tokens = [tokens[0][:2]]
    x = torch.cat(tokens)
    strided = capture_agop(gpt, tokens, layers=["blocks.0"], probes="exact", token_stride=2, progress=False)
    with torch.no_grad():
        h0 = gpt.embed(x)
    j = per_sample_jacobian(lambda z: gpt.from_block(z, 0)[:, -1], h0)[..., ::2, :]
    assert _rel(strided["blocks.0"].matrix, token_agop(j, 1).numpy()) < REL
    every = capture_agop(gpt, tokens, layers=["blocks.0"], probes="exact", positions="all", progress=False)
    jall = per_sample_jacobian(lambda z: gpt.from_block(z, 0), h0)  # [B, T, V, T, d]
    assert _rel(every["blocks.0"].matrix, token_agop(jall, 2).numpy()) < REL


def test_micro_batching_and_merge_are_exact(gpt: TinyGPT, tokens: list[torch.Tensor]) -> None:
    gpt = gpt.double()  # float64 model: batch-size-dependent float32 rounding out of the way
    whole = capture_agop(gpt, tokens, probes="exact", progress=False)
    micro = capture_agop(gpt, tokens, probes="exact", micro_batch=1, progress=False)
    parts = [capture_agop(gpt, [t], probes="exact", progress=False) for t in tokens]
    for name in whole:
        np.testing.assert_allclose(micro[name].matrix, whole[name].matrix, rtol=1e-12)
        merged = parts[0][name]
        merged.merge(parts[1][name])
        assert merged.count == whole[name].count
        np.testing.assert_allclose(merged.matrix, whole[name].matrix, rtol=1e-12)
    o1 = capture_agop(gpt, tokens, mode="output", project=4, progress=False)["output"]
    o2 = capture_agop(gpt, tokens, mode="output", project=4, micro_batch=2, progress=False)["output"]
    np.testing.assert_allclose(o2.matrix, o1.matrix, rtol=1e-12)


class RecordingSink:
    """The sink protocol: ``write({layer: rows})``."""

    def __init__(self) -> None:
        self.rows: dict[str, list[np.ndarray]] = {}

    def write(self, rows: dict[str, torch.Tensor]) -> None:
        for name, r in rows.items():
            self.rows.setdefault(name, []).append(r.detach().cpu().numpy())


def test_sink_rows_reproduce_the_matrix(gpt: TinyGPT, tokens: list[torch.Tensor]) -> None:
    sink = RecordingSink()
    got = capture_agop(gpt, tokens, probes=3, sink=sink, micro_batch=2, progress=False)
    for name, rec in got.items():
        rows = np.concatenate(sink.rows[name])
        assert rows.shape == (rec.count, 8)
        np.testing.assert_allclose(rec.matrix, rows.T @ rows / len(rows), rtol=1e-10)
        acc = AgopAccumulator(8)
        acc.update(rows)
        np.testing.assert_allclose(acc.matrix(), rec.matrix, rtol=1e-10)
    only = RecordingSink()
    assert capture_agop(gpt, tokens, probes=3, sink=only, accumulate=False, progress=False) == {}
    assert sum(len(r) for r in only.rows["blocks.0"]) == got["blocks.0"].count


def test_deterministic_under_a_seed(gpt: TinyGPT, tokens: list[torch.Tensor]) -> None:
    a = capture_agop(gpt, tokens, probes=2, seed=7, progress=False)["blocks.1"].matrix
    b = capture_agop(gpt, tokens, probes=2, seed=7, progress=False)["blocks.1"].matrix
    c = capture_agop(gpt, tokens, probes=2, seed=8, progress=False)["blocks.1"].matrix
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    state = torch.random.get_rng_state()
    capture_agop(gpt, tokens, mode="output", estimator="reference-jvp", probes=2, progress=False)
    assert torch.equal(state, torch.random.get_rng_state()), "the global RNG must not be touched"


def test_model_modes_and_flags_are_restored(tokens: list[torch.Tensor]) -> None:
    torch.manual_seed(0)
    gpt = TinyGPT().train()
    gpt.blocks[1].eval()
    gpt.ln.weight.requires_grad_(False)
    before = [(m.training) for m in gpt.modules()], [p.requires_grad for p in gpt.parameters()]
    precision = torch.get_float32_matmul_precision()
    out = capture_agop(gpt, tokens, probes="exact", progress=False)
    ref = TinyGPT()
    ref.load_state_dict(gpt.state_dict())
    want = capture_agop(ref.eval(), tokens, probes="exact", progress=False)
    np.testing.assert_array_equal(out["blocks.0"].matrix, want["blocks.0"].matrix)  # ran in eval
    after = [(m.training) for m in gpt.modules()], [p.requires_grad for p in gpt.parameters()]
    assert after == before and torch.get_float32_matmul_precision() == precision
    assert all(p.grad is None for p in gpt.parameters())
    with pytest.raises(IndexError):
        capture_agop(gpt, [torch.randint(0, 13, (2, 9))], progress=False)  # 9 > context: model fails
    after = [(m.training) for m in gpt.modules()], [p.requires_grad for p in gpt.parameters()]
    assert after == before


def test_bfloat16_model_agrees_with_float32(gpt: TinyGPT, tokens: list[torch.Tensor]) -> None:
    want = capture_agop(gpt, tokens, probes="exact", progress=False)
    half = TinyGPT().to(torch.bfloat16)
    half.load_state_dict(gpt.state_dict())
    got = capture_agop(half.eval(), tokens, probes="exact", progress=False, dtype="float32")
    for name in want:
        assert got[name].nonfinite == 0
        assert _rel(got[name].matrix, want[name].matrix) < 0.1


def test_layer_selection() -> None:
    gpt = TinyGPT()
    assert [l.name for l in select_layers(gpt)] == ["blocks.0", "blocks.1"]
    assert [l.name for l in select_layers(gpt, "blocks.*.qkv")] == ["blocks.0.qkv", "blocks.1.qkv"]
    assert [l.name for l in select_layers(gpt, "re:blocks\\.1\\.(fc|out)")] == ["blocks.1.fc", "blocks.1.out"]
    linears = select_layers(LinearNet())
    assert [(l.name, l.kind) for l in linears] == [("b", "linear"), ("a", "linear")]
    cnn = select_layers(TinyCNN())
    assert [(l.name, l.kind) for l in cnn] == [("c1", "conv"), ("c2", "conv"), ("fc", "linear")]
    with pytest.raises(NilValueError, match="matches no module"):
        select_layers(gpt, ["blocks.7"])


def test_bad_arguments_are_refused(gpt: TinyGPT, tokens: list[torch.Tensor]) -> None:
    for kwargs in (
        {"mode": "both"},
        {"probes": 0},
        {"probes": "exact", "mode": "output", "estimator": "reference-jvp"},
        {"estimator": "reference-jvp"},
        {"token_stride": 0},
        {"dtype": "int8"},
        {"layers": ["tok"]},  # integer input
    ):
        with pytest.raises((NilValueError, TypeError)):
            capture_agop(gpt, tokens, progress=False, **kwargs)  # type: ignore[arg-type]
    with pytest.raises(NilValueError, match="empty"):
        capture_agop(gpt, [], progress=False)
