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
