"""Scaling of shard analysis: nil's thread pool at 1..N threads and Ray local workers at 1..N CPUs,
on one float16 capture, each timed in a fresh subprocess, with `cat` as the I/O reference.

    python benches/bench_scaling.py [--gb 1] [--dim 1024] [--threads 1,2] [--ray-cpus 1,2] [--json out]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import nil

CHILD = r"""
import json, sys, time, nil
path, mode, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
t0 = time.perf_counter()
if mode == "threads":
    recs = nil.analyze(path, spectrum=False)
else:
    from nil.shards.ray_reduce import connect
    connect("local", num_cpus=n)
    t0 = time.perf_counter()  # the cluster's start is not analysis time
    recs = nil.analyze(path, spectrum=False, ray="local")
print(json.dumps({"seconds": time.perf_counter() - t0, "rows": recs[0].rows}))
"""


def write_capture(path: Path, gb: float, dim: int, layers: int) -> int:
    rng = np.random.default_rng(0)
    rows_total = int(gb * 1e9 / (2 * dim * layers))
    names = {f"blocks.{i}": dim for i in range(layers)}
    with nil.ShardWriter(path, names, dtype="float16", meta={"family": "bench"}) as w:
        done = 0
        while done < rows_total:
            n = min(16384, rows_total - done)
            block = rng.standard_normal((n, dim), dtype=np.float32).astype(np.float16)
            w.write({name: block for name in names})
            done += n
    return sum(f.stat().st_size for f in (path / "shards").iterdir())


def run_child(path: Path, mode: str, n: int) -> float:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(Path(nil.__file__).resolve().parents[1]) + os.pathsep + env.get("PYTHONPATH", "")
    if mode == "threads":
        env["NIL_NUM_THREADS"] = str(n)
    out = subprocess.run([sys.executable, "-c", CHILD, str(path), mode, str(n)], capture_output=True, text=True, env=env, check=True)
    return float(json.loads(out.stdout.strip().splitlines()[-1])["seconds"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gb", type=float, default=1.0)
    ap.add_argument("--dim", type=int, default=1024)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--ray-cpus", default="1,2")
    ap.add_argument("--dir", default=None, help="where to write the capture (default: a temporary directory)")
    ap.add_argument("--json")
    a = ap.parse_args()
    root = Path(a.dir or tempfile.mkdtemp(prefix="nil-scaling-"))
    path = root / "capture"
    try:
        nbytes = write_capture(path, a.gb, a.dim, a.layers)
        t0 = time.perf_counter()
        subprocess.run(f"cat {path}/shards/* > /dev/null", shell=True, check=True)
        cat_s = time.perf_counter() - t0
        rows = []
        for n in [int(x) for x in a.threads.split(",") if x]:
            s = run_child(path, "threads", n)
            rows.append({"engine": "nil threads", "workers": n, "seconds": s, "gb_per_s": nbytes / s / 1e9})
        for n in [int(x) for x in a.ray_cpus.split(",") if x]:
            s = run_child(path, "ray", n)
            rows.append({"engine": "ray local (1 thread per task)", "workers": n, "seconds": s, "gb_per_s": nbytes / s / 1e9})
        out = {"capture_bytes": nbytes, "dim": a.dim, "layers": a.layers, "cat_seconds": cat_s,
               "cat_gb_per_s": nbytes / cat_s / 1e9, "cpus": os.cpu_count(), "runs": rows}
        text = json.dumps(out, indent=2)
        print(text)
        if a.json:
            Path(a.json).write_text(text)
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
