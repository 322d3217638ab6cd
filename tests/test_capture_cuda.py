"""Capture on CUDA equals capture on the CPU (run on the GPU machine; skipped without CUDA)."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from capture_models import TinyGPT

from nil.capture import capture_agop

pytestmark = [pytest.mark.gpu, pytest.mark.filterwarnings("ignore:There is a performance drop")]


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).max() / np.abs(b).max())


@pytest.fixture
def setup() -> tuple[TinyGPT, list[torch.Tensor]]:
    torch.manual_seed(0)
    model = TinyGPT(vocab=29, ctx=16, d=32, depth=3, heads=4).eval()
    g = torch.Generator().manual_seed(1)
    return model, [torch.randint(0, 29, (8, 16), generator=g) for _ in range(3)]


@pytest.mark.parametrize("mode", ["input", "output"])
def test_cuda_float32_equals_cpu(setup, mode):
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    model, batches = setup
    kw = dict(mode=mode, probes="exact", project=16 if mode == "output" else None, progress=False, seed=3)
    cpu = capture_agop(model, batches, device="cpu", **kw)
    gpu = capture_agop(copy.deepcopy(model).cuda(), [b.cuda() for b in batches], device="cuda", **kw)
    assert list(cpu) == list(gpu)
    for name in cpu:
        assert gpu[name].count == cpu[name].count
        assert _rel(gpu[name].matrix, cpu[name].matrix) < 1e-5, name


def test_cuda_bfloat16_model_is_close_to_float32(setup):
    model, batches = setup
    f32 = capture_agop(copy.deepcopy(model).cuda(), [b.cuda() for b in batches], probes="exact", progress=False)
    bf16 = capture_agop(copy.deepcopy(model).cuda().to(torch.bfloat16), [b.cuda() for b in batches], probes="exact", progress=False)
    for name in f32:
        assert _rel(bf16[name].matrix, f32[name].matrix) < 5e-2, name
        assert abs(bf16[name].stats.aofe_ratio - f32[name].stats.aofe_ratio) < 2e-2, name


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32"])
def test_cuda_capture_streamed_through_pinned_staging_is_bit_identical(tmp_path, dtype):
    """Pinned, double-buffered staging on a side stream writes the same bits as the unstaged path
    and as the rows the capture handed over (cast with numpy from the float32 device rows)."""
    from test_shards_staging import NP, capture_to_shards

    staged, kept, got = capture_to_shards(tmp_path / "staged", "cuda", dtype, staging=2)
    plain, _, _ = capture_to_shards(tmp_path / "plain", "cuda", dtype, staging=0)
    for n in kept:
        assert len(kept[n]) == got[n].count
        want = kept[n].astype(NP[dtype])
        assert staged[n].view(np.uint8).tobytes() == plain[n].view(np.uint8).tobytes(), n
        assert staged[n].view(np.uint8).tobytes() == want.view(np.uint8).tobytes(), n


def test_cuda_row_stager_is_pinned_and_copies_on_a_side_stream():
    from nil.shards.staging import RowStager

    st = RowStager("cuda", slots=2)
    x = torch.randn(4000, 1024, device="cuda")
    ref = x.cpu().numpy()
    s = st.stage({"x": x, "h": x.to(torch.bfloat16)})
    assert st._buffers[s.slot].is_pinned() and s.event is not None
    del x  # freed on the producer's stream; record_stream keeps it until the side copy is over
    y = torch.full((4000, 1024), 7.0, device="cuda")  # would reuse x's memory if it were not kept
    out = s.take()
    assert np.array_equal(out["x"], ref) and st._free.qsize() == 2
    del y
