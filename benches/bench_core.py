"""Benchmarks of the Rust core against the numpy code a user would otherwise write (issue 2).

Each case times nil and its baseline alternately, `--repeat` times, in one process, and reports
the best time of each and their ratio; run it once with the machine's OPENBLAS settings and once
without (``--native-blas``) to see numpy both as it runs here and at its best.

    python benches/bench_core.py [--repeat 5] [--json out.json] [--quick] [--agop-only]

Each case also reports the median of each function's times and the median of the per-repeat
ratios (``median_speedup_*``): on a shared machine they move less than the best times.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from typing import Any, Callable

import ml_dtypes
import numpy as np

import nil


def best_of(fns: dict[str, Callable[[], object]], repeat: int) -> dict[str, Any]:
    """Times each function `repeat` times, interleaved; the best time of each, and under
    "median" the median time of each and the median of the per-repeat ratios to the last one
    (the baseline)."""
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeat):
        for k, f in fns.items():
            t0 = time.perf_counter()
            f()
            times[k].append(time.perf_counter() - t0)
    out: dict[str, Any] = {k: min(v) for k, v in times.items()}
    base = list(fns)[-1]
    out["median"] = {k: statistics.median(v) for k, v in times.items()}
    for k in list(fns)[:-1]:
        out["median"][f"speedup_{k}"] = statistics.median(b / t for b, t in zip(times[base], times[k]))
    return out


def agop_cases(x: np.ndarray, repeat: int, exact: bool, tag: str = "") -> dict[str, Any]:
    """AGOP of float32, float16 and bfloat16 copies of `x` against numpy (convert, then X.T @ X)."""
    results: dict[str, Any] = {}
    for name, arr in (("float32", x), ("float16", x.astype(np.float16)), ("bfloat16", x.astype(ml_dtypes.bfloat16))):
        fns: dict[str, Callable[[], object]] = {"nil_fast": lambda arr=arr: agop_nil(arr, "fast")}
        if exact:
            fns["nil_exact"] = lambda arr=arr: agop_nil(arr, "exact")
        if name == "float32":
            fns["numpy"] = lambda arr=arr: arr.T @ arr
        else:
            fns["numpy"] = lambda arr=arr: (lambda y: y.T @ y)(arr.astype(np.float32))
        t = best_of(fns, repeat)
        res = {"shape": list(x.shape), **t, "speedup_fast": t["numpy"] / t["nil_fast"]}
        if exact:
            res["speedup_exact"] = t["numpy"] / t["nil_exact"]
        results[f"agop_{name}{tag}"] = res
        del fns, arr
    return results


def agop_nil(x: np.ndarray, precision: str) -> np.ndarray:
    acc = nil.AgopAccumulator(x.shape[1], precision=precision)  # type: ignore[arg-type]
    acc.update(x)
    return acc.matrix()


def overlap_numpy_blocked(w: np.ndarray, block: int) -> float:
    """Mean squared overlap of normalised rows by blocks of ŴŴᵀ (no V×V matrix), float32."""
    hat = w / np.linalg.norm(w, axis=1, keepdims=True)
    v = hat.shape[0]
    total = 0.0
    for s in range(0, v, block):
        b = hat[s : s + block] @ hat.T
        total += float(np.sum(b.astype(np.float64) ** 2)) - float(np.sum(np.linalg.norm(hat[s : s + block], axis=1) ** 4))
    return total / (v * (v - 1))


def overlap_numpy_gram(w: np.ndarray) -> float:
    """The same statistic through ‖ŴᵀŴ‖²_F (what nil does when V ≥ 2d), float64."""
    hat = (w / np.linalg.norm(w, axis=1, keepdims=True)).astype(np.float64)
    g = hat.T @ hat
    v = hat.shape[0]
    return (float(np.sum(g * g)) - float(np.sum(np.sum(hat**2, axis=1) ** 2))) / (v * (v - 1))


def stats_numpy(m: np.ndarray) -> float:
    s = (m + m.T) / 2
    f = float(np.sum(s * s))
    dg = float(np.sum(np.diag(s) ** 2))
    return (f - dg) / f


def run(repeat: int, quick: bool, agop_only: bool = False) -> dict[str, Any]:
    rng = np.random.default_rng(0)
    n, d = (8192, 512) if quick else (65_536, 1024)
    x = rng.standard_normal((n, d), dtype=np.float32)
    results: dict[str, Any] = agop_cases(x, repeat, exact=True)
    # d = 4096 (issue 14), the same 2^26 values as the case above: fast precision only.
    n4, d4 = (1024, 2048) if quick else (16_384, 4096)
    x4 = np.random.default_rng(4096).standard_normal((n4, d4), dtype=np.float32)
    results.update(agop_cases(x4, repeat, exact=False, tag=f"_d{d4}"))
    del x4
    if agop_only:
        results["machine"] = machine()
        return results
    v, dw = (8000, 256) if quick else (50_000, 1024)
    w = rng.standard_normal((v, dw), dtype=np.float32)
    block = max(1, (256 << 20) // (4 * v))  # ≈ 256 MiB of f32 per block
    t = best_of(
        {
            "nil_superposition_stats": lambda: nil.superposition_stats(w, spectrum=False),
            "numpy_blocked": lambda: overlap_numpy_blocked(w, block),
            "numpy_gram": lambda: overlap_numpy_gram(w),
        },
        max(1, repeat // 2),
    )
    results["mean_sq_overlap"] = {
        "shape": [v, dw],
        **t,
        "speedup_vs_blocked": t["numpy_blocked"] / t["nil_superposition_stats"],
        "speedup_vs_gram": t["numpy_gram"] / t["nil_superposition_stats"],
    }
    k = 1024 if quick else 4096
    m = rng.standard_normal((k, k))
    t = best_of({"nil": lambda: nil.interaction_stats(m, spectrum=False), "numpy": lambda: stats_numpy(m)}, repeat)
    results["interaction_stats_no_spectrum"] = {"shape": [k, k], **t, "speedup": t["numpy"] / t["nil"]}
    results["machine"] = machine()
    return results


def machine() -> dict[str, Any]:
    info: dict[str, Any] = {
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE"),
        "numpy": np.__version__,
        "nil_threads": nil._core.num_threads(),
    }
    try:
        from threadpoolctl import threadpool_info

        info["blas"] = [{k: i.get(k) for k in ("internal_api", "architecture", "num_threads")} for i in threadpool_info()]
    except ImportError:
        pass
    return info


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="small sizes (a smoke run)")
    ap.add_argument("--native-blas", action="store_true", help="re-run without OPENBLAS_CORETYPE/L2_SIZE")
    ap.add_argument("--json", help="write results here")
    ap.add_argument("--agop-only", action="store_true", help="only the AGOP cases (issue 14)")
    a = ap.parse_args()
    if a.native_blas and "OPENBLAS_CORETYPE" in os.environ:
        env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}
        args = [sys.executable, __file__, "--repeat", str(a.repeat)] + (["--quick"] if a.quick else []) + (["--agop-only"] if a.agop_only else []) + (["--json", a.json] if a.json else [])
        sys.exit(subprocess.call(args, env=env))
    out = run(a.repeat, a.quick, a.agop_only)
    text = json.dumps(out, indent=2)
    print(text)
    if a.json:
        with open(a.json, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
