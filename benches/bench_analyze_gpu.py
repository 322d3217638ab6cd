"""`nil analyze` throughput, CPU (Rust core) against CUDA (issue 14), against the disk and page cache.

Writes a capture of ``--gb`` GB (default 2, float16, 12 layers of d 768 as GPT-2 small's blocks)
through ``nil.ShardWriter`` under ``--dir`` (default /tmp; deleted afterwards), then measures in
one run:

- ``disk_read``: every shard read cold (its pages dropped first with posix_fadvise DONTNEED, which
  needs no privileges for clean pages; ``disk_read_cold`` says whether the drop took effect as
  far as timing shows);
- ``page_cache_read``: the same files read again, warm;
- ``cpu``: ``nil.shards.reduce`` (the Rust core, precision "fast", all cores), warm cache;
- ``cuda``: ``nil.shards.device_reduce.reduce_on_device`` (pinned buffers, float32 block products,
  float64 sums), warm cache, after an untimed warm-up on a small capture;

each as GB/s of shard bytes, the ratio of each reduction to the page-cache read speed, and the
largest difference between the two reductions relative to the largest entry of the CPU matrix.

Usage: ``python benches/bench_analyze_gpu.py [--gb 2] [--dir /tmp] [--out analyze.json]``;
``--quick``: 0.02 GB, d 64, and without CUDA the device path runs on torch's CPU device (what the
test runs). With ``--out`` the JSON goes there and one summary line is printed, else the JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "python"))

import nil  # noqa: E402
from nil.shards import reduce  # noqa: E402
from nil.shards.device_reduce import reduce_on_device  # noqa: E402


def write_capture(path: Path, gb: float, layers: int, dim: int, rows_per_write: int, seed: int = 0) -> int:
    """A float16 capture of about ``gb`` GB; returns its shard bytes. Rows: one random block per
    layer, scaled per write (the content does not change the speed, only the byte count does)."""
    rng = np.random.default_rng(seed)
    names = [f"blocks.{i}" for i in range(layers)]
    base = {n: (rng.standard_normal((rows_per_write, dim), dtype=np.float32)
                * rng.uniform(0.5, 2, dim).astype(np.float32)) for n in names}
    per_write = layers * rows_per_write * dim * 2
    writes = max(1, round(gb * 1e9 / per_write))
    with nil.ShardWriter(path, dict.fromkeys(names, dim), dtype="float16", meta={"family": "gpt"}) as w:
        for k in range(writes):
            s = np.float32(1 + 0.01 * (k % 7))
            w.write({n: (b * s).astype(np.float16) for n, b in base.items()})
    return sum(int(s["bytes"]) for s in json.loads((path / "manifest.json").read_text())["shards"])


def read_all(files: list[Path], drop: bool) -> float:
    """Seconds to read every file once (1 MiB reads into one buffer); ``drop`` evicts them first."""
    if drop:
        for f in files:
            fd = os.open(f, os.O_RDONLY)
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)
    buf = bytearray(1 << 20)
    view = memoryview(buf)
    t0 = time.perf_counter()
    for f in files:
        with open(f, "rb", buffering=0) as fh:
            while fh.readinto(view):
                pass
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gb", type=float, default=2.0, help="capture size in GB (float16)")
    ap.add_argument("--layers", type=int, default=12)
    ap.add_argument("--dim", type=int, default=768)
    ap.add_argument("--dir", default=tempfile.gettempdir(), help="where the capture is written (deleted after)")
    ap.add_argument("--device", default=None, help="device of the device reduction (default cuda if available)")
    ap.add_argument("--block-rows", type=int, default=16384)
    ap.add_argument("--buffers", type=int, default=4, help="host buffers between the reader and the device")
    ap.add_argument("--quick", action="store_true", help="0.02 GB, d 64: runs on a CPU in seconds")
    ap.add_argument("--out", help="write the JSON summary here and print one line")
    a = ap.parse_args(argv)
    import torch

    if a.quick:
        a.gb, a.dim, a.layers = 0.02, 64, 4
    device = a.device or ("cuda" if torch.cuda.is_available() else "cpu")
    t_start = time.perf_counter()
    res: dict[str, Any] = {"gb_requested": a.gb, "layers": a.layers, "dim": a.dim, "dtype": "float16",
                           "device": device, "device_name": torch.cuda.get_device_name() if device.startswith("cuda")
                           else "torch cpu", "cpu_threads": nil._core.num_threads(), "torch": torch.__version__,
                           "block_rows": a.block_rows, "buffers": a.buffers, "quick": a.quick}
    tmp = Path(tempfile.mkdtemp(prefix="nil-analyze-bench-", dir=a.dir))
    try:
        warm = tmp / "warm"
        write_capture(warm, 0.002, 2, a.dim, 256)
        reduce_on_device(warm, device=device)  # CUDA context, kernels, pinned allocator: untimed
        reduce(warm)
        path = tmp / "capture"
        t0 = time.perf_counter()
        nbytes = write_capture(path, a.gb, a.layers, a.dim, 8192 if not a.quick else 512)
        res["write_s"] = time.perf_counter() - t0
        res["bytes"] = nbytes
        files = sorted((path / "shards").glob("*.safetensors"))
        res["shards"] = len(files)
        cold = read_all(files, drop=True)
        hot = read_all(files, drop=False)
        res["disk_read_gb_per_s"] = nbytes / cold / 1e9
        res["page_cache_read_gb_per_s"] = nbytes / hot / 1e9
        res["disk_read_cold"] = cold > 1.5 * hot
        t0 = time.perf_counter()
        cpu, _ = reduce(path)
        res["cpu_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        dev, _ = reduce_on_device(path, device=device, block_rows=a.block_rows, buffers=a.buffers)
        res["device_s"] = time.perf_counter() - t0
        for k in ("cpu", "device"):
            res[f"{k}_gb_per_s"] = nbytes / res[f"{k}_s"] / 1e9
            res[f"{k}_over_page_cache"] = res[f"{k}_gb_per_s"] / res["page_cache_read_gb_per_s"]
        res["device_speedup_over_cpu"] = res["cpu_s"] / res["device_s"]
        res["max_rel_diff_device_vs_cpu"] = max(
            float(np.abs(dev[n].matrix() - cpu[n].matrix()).max() / np.abs(cpu[n].matrix()).max()) for n in cpu)
        res["rows_per_layer"] = cpu[next(iter(cpu))].count
        assert all(dev[n].count == cpu[n].count for n in cpu)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    res["wall_s"] = time.perf_counter() - t_start
    text = json.dumps(res, indent=2)
    if a.out:
        Path(a.out).write_text(text + "\n")
        print(f"analyze bench, {res['bytes'] / 1e9:.2f} GB float16 ({a.layers}x d {a.dim}), {res['wall_s']:.0f} s: "
              f"cpu {res['cpu_gb_per_s']:.2f} GB/s ({res['cpu_threads']} threads), {device} "
              f"{res['device_gb_per_s']:.2f} GB/s ({res['device_speedup_over_cpu']:.1f}x), page cache "
              f"{res['page_cache_read_gb_per_s']:.2f} GB/s, disk {res['disk_read_gb_per_s']:.2f} GB/s"
              f"{'' if res['disk_read_cold'] else ' (maybe cached)'}; max rel diff {res['max_rel_diff_device_vs_cpu']:.1e}")
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
