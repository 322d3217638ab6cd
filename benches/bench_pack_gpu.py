"""Packed training against one run at a time, side by side in one process (issue 17).

Byte-level gpt models of the 1M budget (batch 64 × 256 bytes, head_dim 4, evaluation every 200
steps on the fixed 256-window validation subset, as in a sweep) are trained

- ``alone``: ``nil.train.train``, one run, eager (how ``nil sweep --runs-per-gpu 1`` trains);
- ``graph-1``: one run as a packed job (its step replayed as a CUDA graph);
- ``stack-K``: K seeds of the depth-5 shape (d_model 120, 958,800 parameters) stacked as one
  batched model, graphed (``stack-8-eager``: the same without graphs);
- ``shapes-12``: the twelve depths of the 1M budget (1…24, widths 256…56), one seed each, twelve
  graphed jobs on twelve streams: what a one-seed sweep of one budget runs;
- ``shapes-12x3``: the same with three stacked seeds per depth (a three-seed sweep);
- ``shapes-12-fp32``: ``shapes-12`` in float32 (the reference's precision).

Every case runs ``--steps`` optimiser steps per run; the clock starts after the warm-up (20 steps
alone; the packed jobs' eager warm-up and graph capture) and stops when the device has finished
the last step and its evaluation. Aggregate throughput = run-steps per second summed over the
runs. GPU utilisation: NVML's utilization.gpu (share of time a kernel was running), sampled every
0.1 s during the timed window (nvidia-smi if NVML is missing). An equality section trains three
seeds alone and packed (stacked, graphed) for 200 steps in float32 and in bf16 autocast and
reports the largest relative differences of their validation and test losses. A corpus section
lists the split sizes of the default corpus and of the installed packages' ``*.py`` files (stat
only), against the 180 MB of training windows a 3M run at data ratio 60 draws.

    python benches/bench_pack_gpu.py --out pack.json     # one H200, about 3-4 minutes
    python benches/bench_pack_gpu.py --quick             # tiny CPU version, seconds (tests)
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import sysconfig
import threading
import time
from pathlib import Path
from typing import Any

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "python"))

from nil.models import build, solve_width  # noqa: E402
from nil.pack import WARMUP_STEPS, PackMember, PackRequest, PackScheduler, train_packed  # noqa: E402
from nil.tasks import make_task  # noqa: E402
from nil.tasks.corpus import _bucket, default_corpus_files  # noqa: E402
from nil.train import TrainConfig, train  # noqa: E402

DEPTHS_1M = [1, 2, 3, 4, 5, 6, 8, 10, 12, 16, 20, 24]


class UtilSampler:
    """GPU utilisation samples (percent) taken in a thread between ``start`` and ``stop``."""

    def __init__(self, device: torch.device) -> None:
        self.samples: list[float] = []
        self.source = "none"
        self._read = None
        self._stop = threading.Event()
        if device.type != "cuda":
            return
        try:
            import pynvml

            pynvml.nvmlInit()
            handle = pynvml.nvmlDeviceGetHandleByIndex(device.index or 0)
            self._read = lambda: float(pynvml.nvmlDeviceGetUtilizationRates(handle).gpu)
            self.source = "nvml"
        except Exception:
            def smi() -> float:
                out = subprocess.run(["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits",
                                      "-i", str(device.index or 0)], capture_output=True, text=True, timeout=5)
                return float(out.stdout.strip().splitlines()[0])
            try:
                smi()
                self._read = smi
                self.source = "nvidia-smi"
            except Exception:
                self._read = None

    def start(self) -> None:
        self.samples, self._stop = [], threading.Event()
        if self._read is None:
            return
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.samples.append(self._read())  # type: ignore[misc]
            except Exception:
                return
            self._stop.wait(0.1)

    def stop(self) -> float | None:
        self._stop.set()
        if self._read is None:
            return None
        self._thread.join()
        return sum(self.samples) / len(self.samples) if self.samples else None


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _memory(device: torch.device) -> float | None:
    return torch.cuda.max_memory_reserved(device) / 2**30 if device.type == "cuda" else None


def _reset_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def case_alone(name: str, data: Any, kw: dict[str, Any], shape: tuple[int, int], cfg: TrainConfig,
               device: torch.device, util: UtilSampler, untimed: int) -> dict[str, Any]:
    """One run with the plain trainer; the clock starts at the first progress report after ``untimed`` steps."""
    _reset_memory(device)
    model = build("gpt", shape[0], shape[1], seed=0, device=device, **kw)
    marks: dict[str, float] = {}

    def progress(step: int, total: int) -> None:
        if step >= untimed and "t0" not in marks:
            _sync(device)
            marks["t0"], marks["step0"] = time.perf_counter(), step
            util.start()
        if step == total:
            _sync(device)
            marks["t1"] = time.perf_counter()

    train(model, data, cfg, seed=0, progress=progress)
    mean_util = util.stop()
    steps = cfg.max_steps - int(marks["step0"])  # type: ignore[operator]
    seconds = marks["t1"] - marks["t0"]
    return {"name": name, "runs": 1, "jobs": 1, "stacked": 1, "graphs": False, "precision": cfg.precision,
            "run_steps": steps, "seconds": seconds, "steps_per_s": steps / seconds, "gpu_util_mean": mean_util,
            "gpu_util_samples": len(util.samples), "max_memory_gib": _memory(device)}


def case_packed(name: str, data: Any, kw: dict[str, Any], groups: list[tuple[int, int, int]], cfg: TrainConfig,
                device: torch.device, util: UtilSampler, graphs: bool = True) -> dict[str, Any]:
    """``groups``: (depth, width, seeds) per job. All jobs are admitted (warm-up and capture issued), the
    device is synchronised, then the scheduler's own loop runs every job to its end."""
    _reset_memory(device)
    sched = PackScheduler(device, max_runs=sum(g[2] for g in groups), cuda_graphs=graphs)

    def request(depth: int, width: int, seeds: int) -> PackRequest:
        return PackRequest(items=list(range(seeds)), shape=(depth, width, seeds), build=lambda: [
            PackMember(build("gpt", depth, width, seed=s, device=device, **kw), data, cfg, s) for s in range(seeds)])

    running = [sched._admit(request(*g), on_start=lambda item: None) for g in groups]
    jobs = [j for r in running for j in r.jobs]
    _sync(device)
    start = sum(j.step * j.K for j in jobs)
    t0 = time.perf_counter()
    util.start()
    while not all(j.done for j in jobs):
        sched._advance(running)
    _sync(device)
    seconds = time.perf_counter() - t0
    mean_util = util.stop()
    steps = sum(j.step * j.K for j in jobs) - start
    finite = all(math.isfinite(m.tracker.history[-1]["val_loss"]) for j in jobs for m in j.members)
    out = {"name": name, "runs": sum(g[2] for g in groups), "jobs": len(jobs), "stacked": max(j.K for j in jobs),
           "graphs": sum(j.graph is not None for j in jobs), "precision": cfg.precision, "run_steps": steps,
           "seconds": seconds, "steps_per_s": steps / seconds, "gpu_util_mean": mean_util,
           "gpu_util_samples": len(util.samples), "max_memory_gib": _memory(device), "losses_finite": finite}
    for j in jobs:
        j.release()
    return out


def equality(data: Any, kw: dict[str, Any], shape: tuple[int, int], cfg: TrainConfig, seeds: int) -> dict[str, Any]:
    """Largest relative differences between runs alone and the same runs packed (stacked, graphed)."""
    alone = [train(build("gpt", *shape, seed=s, device=data.val_idx.device, **kw), data, cfg, seed=s) for s in range(seeds)]
    packed = train_packed([PackMember(build("gpt", *shape, seed=s, device=data.val_idx.device, **kw), data, cfg, s)
                           for s in range(seeds)])
    val = max(abs(x["val_loss"] - y["val_loss"]) / abs(x["val_loss"])
              for a, b in zip(alone, packed) for x, y in zip(a.history, b.history))
    test = max(abs(a.test_loss - b.test_loss) / abs(a.test_loss) for a, b in zip(alone, packed))
    same_schedule = all((a.steps, a.best_step, len(a.history)) == (b.steps, b.best_step, len(b.history))
                        for a, b in zip(alone, packed))
    return {"precision": cfg.precision, "seeds": seeds, "steps": cfg.max_steps, "max_rel_diff_val_history": val,
            "max_rel_diff_test": test, "same_steps_and_best_steps": same_schedule,
            "graphed": all(r.cuda_graph for r in packed), "stacked": packed[0].pack_size}


def corpus_sizes() -> dict[str, Any]:
    """Split sizes (bytes, by stat) of the default corpus and of site-packages' *.py files, split as
    nil splits a directory (SHA-256 of the relative path: 5 % validation, 5 % test)."""
    def split(root: Path, files: list[Path]) -> dict[str, Any]:
        sizes = {"train": 0, "val": 0, "test": 0}
        for f in files:
            try:
                n = f.stat().st_size
            except OSError:
                continue
            u = _bucket(f.relative_to(root).as_posix())
            sizes["val" if u < 0.05 else "test" if u < 0.10 else "train"] += n
        return {"root": str(root), "files": len(files), **sizes,
                "passes_over_train_at_3M_ratio_60": 180e6 / sizes["train"] if sizes["train"] else None}

    root, files = default_corpus_files()
    out = {"stdlib": split(root, files)}
    site = Path(sysconfig.get_paths()["purelib"])
    if site.is_dir():
        py = sorted(f for f in site.rglob("*.py") if f.is_file() and "__pycache__" not in f.parts)
        out["site_packages_py"] = split(site, py)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=600, help="optimiser steps per run in every case (default 600)")
    p.add_argument("--stacks", default="4,8,16", help="pack sizes K of the stacked cases")
    p.add_argument("--quick", action="store_true", help="tiny CPU run (depth <= 2, d 16, batch 4 x 32), seconds")
    p.add_argument("--no-fp32", action="store_true", help="skip the float32 cases")
    p.add_argument("--out", help="also write the JSON summary to this file")
    args = p.parse_args(argv)
    quick = args.quick
    device = torch.device("cuda" if torch.cuda.is_available() and not quick else "cpu")
    if device.type == "cuda":
        device = torch.device("cuda", torch.cuda.current_device())
    else:
        torch.set_num_threads(1)
    seq, batch, eval_every = (32, 4, 10) if quick else (256, 64, 200)
    steps = 30 if quick else args.steps
    stacks = [2] if quick else [int(k) for k in args.stacks.split(",")]
    t_all = time.perf_counter()
    task = make_task("bytes", seq_len=seq, max_bytes=2_000_000 if quick else None, test_windows=64 if quick else None)
    # Windows of the 1M budget at data ratio 60; the quick run draws 64 batches' worth.
    data = task.make(64 * batch if quick else 60 * 1_000_000 // seq, device)
    kw = task.model_kwargs("gpt")
    if quick:
        shapes = [(1, 16), (2, 16)]
        main_shape = (1, 16)
    else:
        shapes = [(d, solve_width("gpt", 1_000_000, d, **kw).width) for d in DEPTHS_1M]
        main_shape = (5, 120)
    cfg = TrainConfig(batch_size=batch, max_steps=steps, eval_every=eval_every, warmup_steps=min(300, steps // 3))
    util = UtilSampler(device)
    cases = [case_alone("alone", data, kw, main_shape, cfg, device, util, untimed=5 if quick else 20)]
    cases.append(case_packed("graph-1", data, kw, [(*main_shape, 1)], cfg, device, util))
    for k in stacks:
        cases.append(case_packed(f"stack-{k}", data, kw, [(*main_shape, k)], cfg, device, util))
    k_eager = stacks[min(1, len(stacks) - 1)]
    cases.append(case_packed(f"stack-{k_eager}-eager", data, kw, [(*main_shape, k_eager)], cfg, device, util,
                             graphs=False))
    n = len(shapes)
    cases.append(case_packed(f"shapes-{n}", data, kw, [(d, w, 1) for d, w in shapes], cfg, device, util))
    cases.append(case_packed(f"shapes-{n}x3", data, kw, [(d, w, 3) for d, w in shapes], cfg, device, util))
    if not args.no_fp32:
        fp32 = cfg.replace(precision="fp32", max_steps=steps if quick else steps // 2)
        cases.append(case_packed(f"shapes-{n}-fp32", data, kw, [(d, w, 1) for d, w in shapes], fp32, device, util))
    base = cases[0]["steps_per_s"]
    for c in cases:
        c["speedup_vs_alone"] = c["steps_per_s"] / base
    eq_cfg = TrainConfig(batch_size=batch, max_steps=20 if quick else 200, eval_every=5 if quick else 50,
                         warmup_steps=5 if quick else 50)
    eq = [equality(data, kw, main_shape, eq_cfg.replace(precision="fp32"), 3)]
    if device.type == "cuda":
        eq.append(equality(data, kw, main_shape, eq_cfg.replace(precision="bf16"), 3))
    best = max(cases[1:], key=lambda c: c["steps_per_s"])
    utils = [c["gpu_util_mean"] for c in cases[1:] if c["gpu_util_mean"] is not None]
    summary = {
        "benchmark": "packed training vs one run at a time, byte-level gpt, 1M budget",
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
        "torch": torch.__version__, "python": platform.python_version(), "host_cpus": os.cpu_count(),
        "util_source": util.source,
        "settings": {"steps_per_run": steps, "batch": batch, "seq_len": seq, "eval_every": eval_every,
                     "warmup_steps_before_capture": WARMUP_STEPS, "shapes": shapes, "stack_shape": main_shape},
        "cases": cases,
        "equality": eq,
        "best_case": best["name"],
        "targets": {"speedup_4x": best["speedup_vs_alone"] >= 4.0, "gpu_util_85": bool(utils) and max(utils) >= 85.0},
        "corpus": corpus_sizes(),
        "seconds": time.perf_counter() - t_all,
        "quick": quick,
    }
    text = json.dumps(summary, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    print(f"{'case':<18}{'runs':>5}{'jobs':>5}{'steps/s':>10}{'x alone':>9}{'util %':>8}{'GiB':>7}", file=sys.stderr)
    for c in cases:
        u = "-" if c["gpu_util_mean"] is None else f"{c['gpu_util_mean']:.0f}"
        m = "-" if c["max_memory_gib"] is None else f"{c['max_memory_gib']:.1f}"
        print(f"{c['name']:<18}{c['runs']:>5}{c['jobs']:>5}{c['steps_per_s']:>10.1f}{c['speedup_vs_alone']:>9.2f}{u:>8}{m:>7}",
              file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
