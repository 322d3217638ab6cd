"""Training throughput of nil's trainer against a faithful reference-style loop, side by side.

The 1M byte-level gpt shape of the NTP sweep (depth 5, d_model 120, head_dim 4, batch 64 × 256
bytes) is trained for the same number of optimiser steps by

- ``nil``: ``nil.train.train`` — SDPA attention, bfloat16 autocast, fused AdamW, validation on a
  fixed 256-window subset every 200 steps, best state copied in place on the device;
- ``reference``: benches/reference_train.py — hand-written attention with an explicit mask,
  float32, full validation AND test evaluation every 200 steps, best state deep-copied to the CPU
  (METHOD §4.4).

Both read Python's standard-library sources (nil's embedded corpus); the reference evaluates on
the first 1.1 MB of validation and 1.3 MB of test bytes, the sizes of WikiText-103's splits, so its
evaluation cost is the reference run's. The clock starts after 20 untimed steps and includes the
periodic evaluations. Prints one JSON summary; ``--smoke`` runs a tiny CPU version (for tests).

    python benches/bench_train_gpu.py                 # on a CUDA machine
    python benches/bench_train_gpu.py --smoke         # seconds, CPU
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "python"))

from reference_train import reference_train  # noqa: E402

from nil.models import build, param_count  # noqa: E402
from nil.tasks import make_task  # noqa: E402
from nil.tasks.corpus import load_corpus  # noqa: E402
from nil.train import TrainConfig, train  # noqa: E402


def run_nil(args: argparse.Namespace, device: torch.device) -> dict[str, object]:
    """nil's trainer for ``args.steps`` steps; returns timings measured like the reference's."""
    task = make_task("bytes", seq_len=args.seq_len, max_bytes=args.max_bytes, val_windows=256,
                     test_windows=args.test_windows)
    n_windows = max(args.batch, 60 * 1_000_000 // args.seq_len) if not args.smoke else 64 * args.batch
    data = task.make(n_windows, device)
    model = build("gpt", args.depth, args.d_model, seed=0, head_dim=args.head_dim, device=device,
                  **task.model_kwargs("gpt"))
    if args.compile:
        model = torch.compile(model)  # type: ignore[assignment]
    marks: dict[str, float] = {}

    def progress(step: int, total: int) -> None:
        if step >= args.untimed and "t0" not in marks:
            if device.type == "cuda":
                torch.cuda.synchronize()
            marks["t0"], marks["step0"] = time.perf_counter(), step
        if step == total:
            if device.type == "cuda":
                torch.cuda.synchronize()
            marks["t1"] = time.perf_counter()

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    config = TrainConfig(batch_size=args.batch, max_steps=args.steps, eval_every=args.eval_every, precision="auto",
                         warmup_steps=300)
    t_all = time.perf_counter()
    result = train(model, data, config, seed=0, progress=progress)
    total_s = time.perf_counter() - t_all
    timed = args.steps - marks["step0"]
    seconds = marks["t1"] - marks["t0"]
    return {"steps": result.steps, "timed_steps": timed, "seconds": seconds, "steps_per_s": timed / seconds,
            "seconds_with_final_eval": total_s, "evaluations": len(result.history), "precision": result.precision,
            "best_val_ce": result.val_loss, "test_ce": result.test_loss,
            "max_memory_bytes": torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=1000, help="optimiser steps per trainer (default 1000: 5 evaluation rounds)")
    p.add_argument("--depth", type=int, default=5)
    p.add_argument("--d-model", type=int, default=120)
    p.add_argument("--head-dim", type=int, default=4)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--seq-len", type=int, default=256)
    p.add_argument("--eval-every", type=int, default=200)
    p.add_argument("--compile", action="store_true", help="also torch.compile nil's model")
    p.add_argument("--smoke", action="store_true", help="tiny CPU run (depth 1, d 16, batch 4 x 32, 30 steps)")
    p.add_argument("--out", help="also write the JSON summary to this file")
    args = p.parse_args(argv)
    args.untimed = 20
    args.max_bytes = None
    args.test_windows = None
    val_bytes, test_bytes = 1_100_000, 1_300_000
    if args.smoke:
        args.depth, args.d_model, args.batch, args.seq_len, args.steps, args.eval_every = 1, 16, 4, 32, 30, 10
        args.untimed, args.max_bytes, args.test_windows = 5, 2_000_000, 64
        val_bytes, test_bytes = 4_000, 4_000
        torch.set_num_threads(1)  # tiny models on a shared CPU: one thread is fastest
    device = torch.device("cuda" if torch.cuda.is_available() and not args.smoke else "cpu")
    corpus = load_corpus(None, 0.05, 0.05, args.max_bytes)
    ref = reference_train(corpus.train, corpus.val[:val_bytes], corpus.test[:test_bytes], depth=args.depth,
                          d_model=args.d_model, head_dim=args.head_dim, steps=args.steps, batch=args.batch,
                          seq_len=args.seq_len, n_windows=64 * args.batch if args.smoke else None,
                          eval_every=args.eval_every, device=str(device), warmup_steps_untimed=args.untimed)
    ours = run_nil(args, device)
    summary = {
        "benchmark": "byte-level gpt training throughput, nil vs reference-style loop",
        "shape": {"depth": args.depth, "d_model": args.d_model, "head_dim": args.head_dim, "batch": args.batch,
                  "seq_len": args.seq_len, "params": param_count("gpt", args.depth, args.d_model, head_dim=args.head_dim,
                                                                 seq_len=args.seq_len).total},
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
        "torch": torch.__version__,
        "corpus": corpus.source,
        "reference_eval_bytes": {"val": int(min(val_bytes, len(corpus.val))), "test": int(min(test_bytes, len(corpus.test)))},
        "nil": ours,
        "reference": ref,
        "speedup_steps_per_s": ours["steps_per_s"] / ref["steps_per_s"],  # type: ignore[operator]
        "smoke": args.smoke,
    }
    text = json.dumps(summary, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
