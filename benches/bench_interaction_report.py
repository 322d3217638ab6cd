"""`interaction_report` on a GPT-2-shaped model built locally (issue 14): total seconds, and the
seconds of its two captures (input AGOPs, projected output AGOP) timed separately.

Usage: ``PYTHONPATH=python python benches/bench_interaction_report.py [--depth 2] [--ctx 64]
[--batch 2] [--probes 8] [--project 64] [--device cpu]``; prints one JSON line. The model: ByteGPT
of benches/reference_estimator.py with d 768, head_dim 64, vocabulary 50,257 (GPT-2 small's
shapes), SDPA attention, float32, seed 0.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from reference_estimator import ByteGPT  # noqa: E402

import nil  # noqa: E402
from nil.capture import capture_agop, interaction_report  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--depth", type=int, default=2)
    ap.add_argument("--ctx", type=int, default=64)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--probes", type=int, default=8)
    ap.add_argument("--project", type=int, default=64)
    ap.add_argument("--vocab", type=int, default=50257)
    ap.add_argument("--device", default="cpu")
    a = ap.parse_args(argv)
    torch.manual_seed(0)
    dev = torch.device(a.device)
    model = ByteGPT(a.depth, 768, head_dim=64, attention="sdpa", vocab=a.vocab, ctx=a.ctx).to(dev).eval()
    g = torch.Generator().manual_seed(1)
    data = [torch.randint(0, a.vocab, (a.batch, a.ctx), generator=g).to(dev)]
    blocks = [f"blocks.{i}" for i in range(a.depth)]
    res: dict[str, object] = {"nil": str(Path(nil.__file__).parent), "torch_threads": torch.get_num_threads(),
                              **vars(a)}
    t0 = time.perf_counter()
    rep = interaction_report(model, data, probes=a.probes, project=a.project, progress=False)
    res["interaction_report_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    capture_agop(model, data, layers=blocks, probes=a.probes, project=a.project, progress=False)
    res["input_capture_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    out = capture_agop(model, data, layers=[blocks[0]], mode="output", project=a.project, progress=False)
    res["output_agop_s"] = time.perf_counter() - t0
    res["output_aofe_ratio"] = out["output"].stats.aofe_ratio
    res["report_output_aofe_ratio"] = rep.output.stats.aofe_ratio
    print(json.dumps(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
