"""Benchmarks of nil.symbolic, side by side in one run (docs/benchmarks.md, issue 15):

- transforms: nil's Möbius (Rust, blocked butterfly) vs numpy's fast transform vs shapiq's
  ExactComputer, agreement with shapiq's Möbius and co-Möbius, round-trip errors;
- solver: the AND–OR decomposition at n = 12 on masked log-odds of a digits MLP, nil's PDHG vs
  the published SGD recipe (on nil's transforms, and as published with dense 2^n×2^n matrices);
- forwards: masked forward passes per second (a digits MLP and a byte-level GPT with token players).

    python benches/bench_symbolic.py --out bench-symbolic.json            # CPU, full
    python benches/bench_symbolic.py --quick                              # seconds (pytest)
    python benches/bench_symbolic.py --only forwards --device cuda        # GPU forwards/s
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any


def best_of(f: Any, reps: int) -> float:
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        f()
        best = min(best, time.perf_counter() - t0)
    return best


def numpy_mobius(v: Any) -> Any:
    import numpy as np

    x = np.array(v, dtype=np.float64)
    n = x.shape[-1].bit_length() - 1
    for h in range(n):
        y = x.reshape(-1, 2, 1 << h)
        y[:, 1, :] -= y[:, 0, :]
    return x


def shapiq_index(v: Any, index: str) -> Any:
    import numpy as np
    import shapiq

    n = v.shape[-1].bit_length() - 1

    def game(c: Any) -> Any:
        return v[(c.astype(np.int64) << np.arange(n)).sum(axis=1)]

    iv = shapiq.ExactComputer(game, n_players=n)(index, order=n)
    out = np.zeros(1 << n)
    for s, pos in iv.interaction_lookup.items():
        out[sum(1 << i for i in s)] = iv.values[pos]
    return out


def bench_transforms(ns: list[int], shapiq_max: int, co_max: int) -> list[dict[str, Any]]:
    import numpy as np

    from nil.symbolic import popcounts, transform

    rows = []
    for n in ns:
        v = np.random.default_rng(n).normal(size=1 << n)
        reps = 20 if n <= 16 else 5
        buf = v.copy()
        row: dict[str, Any] = {"n": n}
        row["nil_ms"] = 1e3 * best_of(lambda: transform(buf, "mobius", inplace=True), reps)
        row["nil_or_ms"] = 1e3 * best_of(lambda: transform(buf, "or", inplace=True), reps)
        row["numpy_ms"] = 1e3 * best_of(lambda: numpy_mobius(v), max(1, reps // 4))
        mob = transform(v, "mobius")
        row["roundtrip_err_rel"] = float(np.abs(transform(mob, "zeta") - v).max() / np.abs(v).max())
        row["roundtrip_or_err_rel"] = float(np.abs(transform(transform(v, "or"), "or_inverse") - v).max() / np.abs(v).max())
        row["numpy_agreement_rel"] = float(np.abs(numpy_mobius(v) - mob).max() / np.abs(mob).max())
        if n <= shapiq_max:
            try:
                t0 = time.perf_counter()
                want = shapiq_index(v, "Moebius")
                row["shapiq_ms"] = 1e3 * (time.perf_counter() - t0)
                row["shapiq_agreement_rel"] = float(np.abs(mob - want).max() / np.abs(want).max())
                # co-Möbius(v)(S) = (−1)^{|S|}·Möbius(v∘complement)(S): shapiq's O(3^n) Möbius of the
                # flipped game checks nil's co-Möbius at every n it reaches
                co = transform(v, "co_mobius")
                want_co = np.where(popcounts(n) % 2 == 1, -1.0, 1.0) * shapiq_index(v[::-1].copy(), "Moebius")
                row["shapiq_co_agreement_rel"] = float(np.abs(co - want_co).max() / np.abs(want_co).max())
                if n <= co_max:  # shapiq's own Co-Moebius is O(4^n)
                    t0 = time.perf_counter()
                    direct = shapiq_index(v, "Co-Moebius")
                    row["shapiq_co_ms"] = 1e3 * (time.perf_counter() - t0)
                    row["shapiq_co_direct_agreement_rel"] = float(np.abs(co - direct)[1:].max() / np.abs(direct).max())
            except ImportError:
                row["shapiq"] = "not installed"
        rows.append(row)
        print(json.dumps(row), file=sys.stderr)
    return rows


def digits_values(n_samples: int, patches: tuple[int, ...]) -> Any:
    import torch

    from nil.symbolic import Players, masked_values
    from nil.symbolic.demo import train_digits_mlp

    m = train_digits_mlp(0)
    pl = Players.patches(8, 8, 2, patches)
    return masked_values(m.model, m.x_test[:n_samples], pl, target=m.y_test[:n_samples]).values, m, pl, torch


def dense_sgd(v: Any, bound: Any, lr: float, steps: int) -> tuple[float, float]:
    """The published implementation: dense ±1 matrices built per entry, float32 torch SGD."""
    import numpy as np
    import torch

    from nil.symbolic import transform

    size = v.shape[-1]
    t0 = time.perf_counter()
    eye = np.eye(size)
    to_and = torch.tensor(np.stack([transform(e, "mobius") for e in eye], 1), dtype=torch.float32)
    to_or = torch.tensor(np.stack([transform(e, "or") for e in eye], 1), dtype=torch.float32)
    build = time.perf_counter() - t0
    rewards = torch.tensor(v, dtype=torch.float32)
    qb = torch.tensor(bound, dtype=torch.float32)
    p = torch.zeros_like(rewards, requires_grad=True)
    q = torch.zeros_like(rewards, requires_grad=True)
    opt = torch.optim.SGD([p, q], lr=0.0, momentum=0.9)
    etas = np.logspace(np.log10(lr), np.log10(lr) - 1, steps)
    t0 = time.perf_counter()
    for it in range(steps):
        q.data = torch.max(torch.min(q.data, qb), -qb)
        ia = to_and @ (0.5 * (rewards + q) + p)
        io = to_or @ (0.5 * (rewards + q) - p)
        loss = ia.abs().sum() + io.abs().sum()
        if it + 1 < steps:
            opt.zero_grad()
            opt.param_groups[0]["lr"] = etas[it]
            loss.backward()
            opt.step()
    return time.perf_counter() - t0 + build, float(loss)


def bench_solver(n: int, samples: int, sgd_steps: int, dense_steps: int, budgets: list[int]) -> dict[str, Any]:
    import numpy as np

    from nil.symbolic import and_or

    patches = (1, 2, 4, 5, 6, 7, 8, 9, 10, 11, 13, 14)[:n] if n <= 12 else tuple(range(16))[:n]
    v = digits_values(samples, patches)[0]
    out: dict[str, Any] = {"n": n, "samples": samples, "qthres": 0.02}
    sgd: dict[str, Any] = {}
    for lr in (1e-5, 3e-6):
        t0 = time.perf_counter()
        d = and_or(v, solver="sgd", lr=lr, steps=sgd_steps)
        sgd[f"{lr:g}"] = {"seconds": time.perf_counter() - t0, "objective": d.objective.tolist()}
    out["sgd"] = {"steps": sgd_steps, "runs": sgd}
    best_lr = min(sgd, key=lambda k: sum(sgd[k]["objective"]))
    target = np.array(sgd[best_lr]["objective"])
    out["sgd_best_lr"] = best_lr
    pd: list[dict[str, Any]] = []
    for it in budgets:
        t0 = time.perf_counter()
        d = and_or(v, max_iter=it, tol=0.0)
        sec = time.perf_counter() - t0
        ratio = d.objective / target
        pd.append({"max_iter": it, "seconds": sec, "objective": d.objective.tolist(), "lower_bound": d.lower_bound.tolist(),
                   "worst_ratio_to_sgd": float(ratio.max()), "mean_ratio_to_sgd": float(ratio.mean()),
                   "speedup_vs_sgd": sgd[best_lr]["seconds"] / sec})
        print(json.dumps(pd[-1]), file=sys.stderr)
    out["pdhg"] = pd
    if dense_steps:
        bound = 0.02 * abs(v[0, -1] - v[0, 0])
        sec, obj = dense_sgd(v[0], bound, float(best_lr), dense_steps)
        out["dense_sgd_published"] = {"steps": dense_steps, "lr": best_lr, "seconds_one_sample": sec, "objective": obj}
    return out


def bench_forwards(device: str, quick: bool) -> list[dict[str, Any]]:
    import torch

    from nil.models import build
    from nil.symbolic import Players, masked_values

    rows = []
    dev = torch.device(device)
    mlp = build("mlp", 3, 256, in_dim=64, out_dim=10, seed=0).to(dev).eval()
    x = torch.randn(2 if quick else 8, 1, 8, 8, device=dev)
    pl = Players.patches(8, 8, 2, (1, 2, 4, 5, 6, 7, 8, 9, 10, 11, 13, 14))
    for bs in ((256,) if quick else (1024, 8192)):
        masked_values(mlp, x[:1], pl, batch_size=bs)  # warm-up
        mv = masked_values(mlp, x, pl, batch_size=bs)
        rows.append({"model": "mlp 3x256 digits", "players": 12, "batch": bs, "forwards": mv.forwards,
                     "per_second": mv.per_second})
    seq = 32 if quick else 128
    gpt = build("gpt", 2 if quick else 6, 64 if quick else 256, vocab=256, seq_len=seq, seed=0).to(dev).eval()
    ids = torch.randint(0, 256, (2 if quick else 4, seq), generator=torch.Generator().manual_seed(0)).to(dev)
    n = 6 if quick else 12
    tp = Players.tokens(seq, list(range(seq - n, seq)))
    for bs in ((64,) if quick else (512, 2048)):
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=dev.type == "cuda"):
            masked_values(gpt, ids[:1], tp, batch_size=bs, baseline=32)
            mv = masked_values(gpt, ids, tp, batch_size=bs, baseline=32)
        rows.append({"model": f"gpt bytes depth {2 if quick else 6} d {64 if quick else 256} T {seq}", "players": n,
                     "batch": bs, "forwards": mv.forwards, "per_second": mv.per_second,
                     "autocast": "bf16" if dev.type == "cuda" else "none"})
    for r in rows:
        print(json.dumps(r), file=sys.stderr)
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="tiny sizes (seconds on a CPU)")
    ap.add_argument("--only", choices=["transforms", "solver", "forwards"], action="append", help="run only these parts")
    ap.add_argument("--device", default="cpu", help="device of the forwards part (cpu, cuda)")
    ap.add_argument("--threads", type=int, default=1, help="nil pool threads for the transforms (default 1)")
    ap.add_argument("--dense-steps", type=int, default=10_000, help="steps of the dense published SGD (0: skip)")
    ap.add_argument("--out", help="also write the JSON here")
    args = ap.parse_args()
    os.environ.setdefault("NIL_NUM_THREADS", str(args.threads))
    import platform

    import torch

    from nil import _core

    parts = args.only or ["transforms", "solver", "forwards"]
    result: dict[str, Any] = {"host": platform.node(), "cpu": platform.processor() or platform.machine(),
                              "nil_threads": _core.num_threads(), "torch": torch.__version__, "quick": args.quick}
    if args.device.startswith("cuda") and torch.cuda.is_available():
        result["gpu"] = torch.cuda.get_device_name(0)
    if "transforms" in parts:
        ns = [6, 8] if args.quick else [10, 12, 14, 16, 20, 22, 24]
        result["transforms"] = bench_transforms(ns, 8 if args.quick else 16, 6 if args.quick else 10)
    if "solver" in parts:
        if args.quick:
            result["solver"] = bench_solver(6, 2, 500, 50, [100, 400])
        else:
            result["solver"] = bench_solver(12, 4, 10_000, args.dense_steps, [250, 500, 750, 1000, 2000])
    if "forwards" in parts:
        result["forwards"] = bench_forwards(args.device, args.quick)
    text = json.dumps(result, indent=1)
    print(text)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            f.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
