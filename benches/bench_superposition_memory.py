"""Peak extra memory of superposition_stats on a 256,000 × 4,096 float32 matrix (issue 2 target:
≤ 2 GB beyond W itself). Prints JSON with the extra peak RSS and the wall time.

    python benches/bench_superposition_memory.py [--features 256000] [--dim 4096]
"""

from __future__ import annotations

import argparse
import json
import resource
import time

import numpy as np

import nil


def peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--features", type=int, default=256_000)
    ap.add_argument("--dim", type=int, default=4096)
    a = ap.parse_args()
    rng = np.random.default_rng(0)
    w = np.empty((a.features, a.dim), dtype=np.float32)
    for s in range(0, a.features, 8192):  # fill in place: no float64 temporary
        w[s : s + 8192] = rng.standard_normal((min(8192, a.features - s), a.dim), dtype=np.float32)
    base = peak_rss_bytes()
    t0 = time.perf_counter()
    st = nil.superposition_stats(w, spectrum=False)
    dt = time.perf_counter() - t0
    extra = peak_rss_bytes() - base
    print(json.dumps({
        "shape": [a.features, a.dim],
        "w_bytes": int(w.nbytes),
        "peak_rss_before": base,
        "extra_peak_rss_bytes": extra,
        "extra_peak_rss_gib": extra / 2**30,
        "seconds": dt,
        "threads": nil._core.num_threads(),
        "mean_sq_overlap": st.mean_sq_overlap,
        "null_mean_sq_overlap": st.null_mean_sq_overlap,
    }, indent=2))


if __name__ == "__main__":
    main()
