"""A capture streamed by nil.capture into a ShardWriter analyses to the AGOP the capture accumulated."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from capture_models import TinyGPT

import nil
from nil.capture import capture_agop

pytestmark = pytest.mark.filterwarnings("ignore:There is a performance drop")


def test_capture_into_shards_matches_the_device_accumulators(tmp_path):
    torch.manual_seed(0)
    gpt = TinyGPT().eval()
    g = torch.Generator().manual_seed(1)
    tokens = [torch.randint(0, 13, (3, 6), generator=g) for _ in range(2)]
    meta = {"family": "gpt", "depth": 2, "width": 8, "capture": {"mode": "input", "probes": 3}}
    with nil.ShardWriter(tmp_path / "run", {"blocks.0": 8, "blocks.1": 8}, dtype="float32", meta=meta,
                         shard_bytes=512) as sink:
        got = capture_agop(gpt, tokens, probes=3, sink=sink, micro_batch=2, progress=False)
    assert nil.verify(tmp_path / "run").ok
    recs = {r.layer: r for r in nil.analyze(tmp_path / "run", precision="exact")}
    for name, rec in got.items():
        assert recs[name].rows == rec.count
        # Shards store float32 rows; the device accumulated the same rows in float64.
        np.testing.assert_allclose(recs[name].accumulator.matrix(), rec.matrix, rtol=1e-5, atol=1e-7 * np.abs(rec.matrix).max())
