"""Benchmark: analysing a float16 gradient capture with nil vs the numpy way, side by side.

Writes (or reuses) a capture of ``--gb`` GB (two layers of ``--dim``) with nil.ShardWriter, then
runs, each in a fresh subprocess that reports its wall time and peak RSS (resource.getrusage):

- ``cat``:   ``cat shards/* > /dev/null`` (the I/O ceiling);

Peak RSS is VmHWM of the child (/proc/self/status: the high-water mark of this process image,
file pages it maps included; ru_maxrss would include the parent's size inherited at fork). CPU
seconds are reported beside wall seconds because the machine is shared.
- ``nil``:   ``nil.analyze(path)`` (verify blake3 + reduce + interaction statistics), default
  precision "fast" (f32 products over blocks of 512 rows, f64 sums);
- ``nil_exact``: the same with ``precision="exact"`` (f64 products; skip with --no-exact);
- ``numpy``: what a user would write: ``safetensors.numpy.load_file`` per shard, ``astype(float32)``,
  ``X.T @ X`` accumulated in float64, then ``nil.interaction_stats`` on each AGOP.

The AGOPs of nil and numpy are compared (max relative difference) to show both computed the same
thing. Full run (the ledger entry): ``nice python benches/bench_shards.py --gb 8 --delete``;
smoke test: ``python benches/bench_shards.py --gb 0.05``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

NIL_CHILD = r"""
import json, resource, sys, time
import numpy as np
sys.path.insert(0, sys.argv[2])
import nil
t = time.perf_counter()
recs = nil.analyze(sys.argv[1], precision=sys.argv[4])
wall = time.perf_counter() - t
np.save(sys.argv[3], np.stack([r.accumulator.matrix() for r in recs]))
ru = resource.getrusage(resource.RUSAGE_SELF)
hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM")][0].split()[1]
print(json.dumps({"wall_s": wall, "cpu_s": ru.ru_utime + ru.ru_stime, "peak_rss_mb": int(hwm) / 1024,
                  "rows": [r.rows for r in recs], "aofe_ratio": [r.aofe_ratio for r in recs]}))
"""

NUMPY_CHILD = r"""
import json, resource, sys, time
import numpy as np
from safetensors.numpy import load_file
sys.path.insert(0, sys.argv[2])
import nil
manifest = json.load(open(sys.argv[1] + "/manifest.json"))
t = time.perf_counter()
acc, count = {}, {}
for shard in manifest["shards"]:
    tensors = load_file(sys.argv[1] + "/" + shard["file"])
    for name, x in tensors.items():
        x = x.astype(np.float32)
        g = (x.T @ x).astype(np.float64)
        acc[name] = acc.get(name, 0) + g
        count[name] = count.get(name, 0) + len(x)
names = [l["name"] for l in manifest["layers"]]
mats = [acc[n] / count[n] for n in names]
stats = [nil.interaction_stats(m) for m in mats]
wall = time.perf_counter() - t
np.save(sys.argv[3], np.stack(mats))
ru = resource.getrusage(resource.RUSAGE_SELF)
hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM")][0].split()[1]
print(json.dumps({"wall_s": wall, "cpu_s": ru.ru_utime + ru.ru_stime, "peak_rss_mb": int(hwm) / 1024,
                  "rows": [count[n] for n in names], "aofe_ratio": [s.aofe_ratio for s in stats]}))
"""

CAT_CHILD = r"""
import glob, json, resource, subprocess, sys, time
files = sorted(glob.glob(sys.argv[1] + "/shards/*.safetensors"))
t = time.perf_counter()
subprocess.run("cat " + " ".join(files) + " > /dev/null", shell=True, check=True)
ru = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({"wall_s": time.perf_counter() - t, "cpu_s": ru.ru_utime + ru.ru_stime,
                  "peak_rss_mb": ru.ru_maxrss / 1024}))
"""


def make_capture(path: Path, gb: float, dim: int, layers: int, shard_mb: int) -> float:
    """Writes the capture with ShardWriter; returns the write throughput in MB/s."""
    sys.path.insert(0, str(REPO / "python"))
    import numpy as np

    import nil

    names = {f"blocks.{i}": dim for i in range(layers)}
    total_rows = int(gb * 1e9 / (2 * dim * layers))
    batch = 8192
    rng = np.random.default_rng(0)
    # A pool of random float16 rows, drawn once and re-mixed per batch (drawing 4 G normals would
    # dominate the set-up time; the analysis cost does not depend on the values).
    pool = rng.standard_normal((batch, dim), dtype=np.float32).astype(np.float16)
    t = time.perf_counter()
    written = 0
    with nil.ShardWriter(path, names, "float16", {"family": "bench", "capture": {"mode": "synthetic"}},
                         shard_bytes=shard_mb << 20) as w:
        while written < total_rows:
            n = min(batch, total_rows - written)
            shift = int(rng.integers(0, batch))
            rows = {k: np.roll(pool, shift + i, axis=0)[:n] for i, k in enumerate(names)}
            w.write(rows)
            written += n
            if written % (batch * 64) < batch:
                print(f"  wrote {written * 2 * dim * layers / 1e9:.2f} GB", file=sys.stderr, flush=True)
    secs = time.perf_counter() - t
    return written * 2 * dim * layers / 1e6 / secs


def child(code: str, path: Path, out: Path, *extra: str) -> dict[str, float]:
    proc = subprocess.run([sys.executable, "-c", code, str(path), str(REPO / "python"), str(out), *extra],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"benchmark child failed:\n{proc.stdout}\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gb", type=float, default=8.0, help="capture size in GB (default 8)")
    ap.add_argument("--dim", type=int, default=1024, help="row dimension (default 1024)")
    ap.add_argument("--layers", type=int, default=2, help="layers (default 2)")
    ap.add_argument("--shard-mb", type=int, default=128, help="shard size in MiB (default 128)")
    ap.add_argument("--dir", default=str(REPO / "bench-out" / "shards"), help="where the capture lives")
    ap.add_argument("--delete", action="store_true", help="delete the capture afterwards")
    ap.add_argument("--no-exact", action="store_true", help="skip the nil precision='exact' run")
    ap.add_argument("--json", help="also write the results to this JSON file")
    args = ap.parse_args()

    import numpy as np

    path = Path(args.dir)
    write_mbs = None
    if not (path / "manifest.json").exists():
        print(f"writing a {args.gb} GB capture to {path} ...", file=sys.stderr)
        write_mbs = make_capture(path, args.gb, args.dim, args.layers, args.shard_mb)
    size = sum(f.stat().st_size for f in (path / "shards").glob("*.safetensors"))
    out = path.parent
    res: dict[str, dict[str, float]] = {}
    runs = [("cat", CAT_CHILD, []), ("nil", NIL_CHILD, ["fast"]), ("numpy", NUMPY_CHILD, [])]
    if not args.no_exact:
        runs.append(("nil_exact", NIL_CHILD, ["exact"]))
    for name, code, extra in runs:
        print(f"running {name} ...", file=sys.stderr, flush=True)
        res[name] = child(code, path, out / f"{name}.npy", *extra)
        res[name]["gb_per_s"] = size / 1e9 / res[name]["wall_s"]
    a, b = np.load(out / "nil.npy"), np.load(out / "numpy.npy")
    rel = float(np.abs(a - b).max() / np.abs(a).max())
    summary = {
        "capture_gb": size / 1e9,
        "dim": args.dim,
        "layers": args.layers,
        "threads": os.cpu_count(),
        "write_mb_per_s": write_mbs,
        "results": res,
        "speedup_nil_vs_numpy": res["numpy"]["wall_s"] / res["nil"]["wall_s"],
        "cpu_ratio_numpy_over_nil": res["numpy"]["cpu_s"] / res["nil"]["cpu_s"],
        "speedup_nil_exact_vs_numpy": res["numpy"]["wall_s"] / res["nil_exact"]["wall_s"] if "nil_exact" in res else None,
        "nil_fraction_of_cat": res["cat"]["wall_s"] / res["nil"]["wall_s"],
        "max_rel_diff_nil_vs_numpy": rel,
    }
    print(json.dumps(summary, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=2))
    for f in ("nil.npy", "numpy.npy", "cat.npy", "nil_exact.npy"):
        (out / f).unlink(missing_ok=True)
    if args.delete:
        shutil.rmtree(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
