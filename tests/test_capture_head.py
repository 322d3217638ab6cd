"""The output head runs at the last position only (nil/capture/head.py): same AGOPs as running it
at every position, for input and output mode, with and without an attention mask."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from capture_models import TinyGPT
from torch import nn

from nil.capture import capture_agop
from nil.capture.batches import CURRENT_MASK, as_batch
from nil.capture.head import _detect, _last, last_position_head

pytestmark = pytest.mark.filterwarnings("ignore:There is a performance drop")


class Scaled(nn.Module):
    """The same model with its logits post-processed (x·1): the head is not detected, so it runs
    at every position; the reference of the comparison."""

    def __init__(self, inner: TinyGPT) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        return self.inner(idx) * 1.0


def _setup():
    torch.manual_seed(0)
    gpt = TinyGPT(vocab=29, ctx=16, d=32, depth=2, heads=4).eval().double()
    g = torch.Generator().manual_seed(1)
    return gpt, [torch.randint(0, 29, (5, 16), generator=g) for _ in range(2)]


def test_head_is_detected_only_when_it_makes_the_output():
    gpt, batches = _setup()
    b = as_batch(batches[0], torch.device("cpu"))
    assert _detect(gpt, b) is gpt.head
    assert _detect(Scaled(gpt), b) is None
    with last_position_head(gpt, b, {gpt.head}) as used:  # a selected layer: left alone
        assert used is None
        assert gpt(batches[0]).shape == (5, 16, 29)
    with last_position_head(gpt, b, set()) as used:
        assert used is gpt.head
        assert gpt(batches[0]).shape == (5, 1, 29)
    assert gpt(batches[0]).shape == (5, 16, 29)  # the hook is removed


@pytest.mark.parametrize("mode", ["input", "output"])
def test_same_agops_as_the_head_at_every_position(mode):
    gpt, batches = _setup()
    kw = dict(mode=mode, probes=4, project=8, progress=False, micro_batch=3, seed=2)
    fast = capture_agop(gpt, batches, layers=["blocks.0", "blocks.1"], **kw)
    full = capture_agop(Scaled(gpt), batches, layers=["inner.blocks.0", "inner.blocks.1"], **kw)
    for (n1, a), (n2, b) in zip(fast.items(), full.items()):
        assert a.count == b.count
        np.testing.assert_allclose(a.matrix, b.matrix, rtol=1e-10, atol=1e-12 * np.abs(b.matrix).max())


def test_last_unpadded_position_under_a_mask():
    h = torch.arange(2 * 4 * 3, dtype=torch.float64).reshape(2, 4, 3)
    mask = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1]])
    token = CURRENT_MASK.set(mask)
    try:
        got = _last(h)
    finally:
        CURRENT_MASK.reset(token)
    assert torch.equal(got[:, 0], torch.stack([h[0, 1], h[1, 3]]))
    assert torch.equal(_last(h)[:, 0], h[:, -1])  # no mask: the last position
