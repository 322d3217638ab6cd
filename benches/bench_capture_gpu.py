"""Capture benchmarks, nil side by side with the reference estimator, in one run (issue 4).

Cases (sizes in parentheses are the full run; ``--smoke`` shrinks everything to run on a CPU):

- ``1m``: projected output AGOP, k = 64, on the reference's 1M byte-level transformer (depth 5,
  d_model 120, head_dim 4), 4 batches × 128 windows × 256 bytes: the reference's random-JVP
  estimator (64 probes, manual attention) against nil's exact k-VJP Gram (SDPA model with the same
  weights; also on the manual-attention model). Seconds, speed-up, peak memory, agreement.
- ``10m``: the same at depth 10, d_model 284: nil's peak ``torch.cuda.max_memory_allocated``; the
  reference is attempted and an out-of-memory error is caught and reported.
- ``gpt2``: per-layer input AGOP of all 12 blocks of a GPT-2-small-shaped model (d_model 768,
  head_dim 64, vocabulary 50,257, 64 × 1,024 tokens, 8 probes): seconds per probe against one
  forward+backward training step on the same batch (same dtype and micro-batches), and the extra
  time of streaming rows to disk (issue 14), side by side in one run at ``--sink-stride``: the
  capture alone, the capture streaming to ``nil.shards.ShardWriter(staging=4)`` (staged through
  pinned host buffers), to ``ShardWriter(staging=0)`` (the default: a pageable ``.cpu()`` in
  the writer thread) and to a numpy-memmap sink with a background thread (no checksum, no fsync).
  Each repeat times the four in turn (medians reported); every sink is timed until its last row is
  on disk (the writer closed).

Usage: ``python benches/bench_capture_gpu.py [--cases 1m,10m,gpt2] [--out result.json]``;
``--smoke`` (or ``--quick``) for the tiny CPU version. Prints the JSON summary, or with ``--out``
writes it there and prints one summary line. The issue-14 streaming case alone, on a GPU:
``python benches/bench_capture_gpu.py --cases gpt2 --out capture_sink.json`` (about 30-60 s on an
H100/H200: model built locally from its shape, no hub access).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import queue
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable

os.environ.setdefault("PYTORCH_CUDA_ALLOC_CONF", "expandable_segments:True")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "python"))

from reference_estimator import ByteGPT, active_params, corpus_bytes, reference_output_agop, windows  # noqa: E402

from nil.capture import capture_agop  # noqa: E402


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def _timed(dev: torch.device, fn: Callable[[], Any]) -> tuple[float, Any, int | None]:
    """(seconds, result, peak bytes allocated during the call on CUDA)."""
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    _sync(dev)
    t0 = time.perf_counter()
    out = fn()
    _sync(dev)
    secs = time.perf_counter() - t0
    peak = torch.cuda.max_memory_allocated(dev) if dev.type == "cuda" else None
    return secs, out, peak


def _gib(b: int | None) -> float | None:
    return None if b is None else round(b / 2**30, 3)


def _is_oom(e: BaseException) -> bool:
    return isinstance(e, torch.OutOfMemoryError) or "out of memory" in str(e).lower()


def output_agop_case(dev: torch.device, depth: int, d: int, batches: int, batch: int, ctx: int, k: int,
                     probes: int, micro_batch: int, run_reference: bool) -> dict[str, Any]:
    torch.manual_seed(0)
    ref_model = ByteGPT(depth, d, attention="manual").to(dev).eval()
    nil_model = ByteGPT(depth, d, attention="sdpa").to(dev).eval()
    nil_model.load_state_dict(ref_model.state_dict())
    n_params = sum(p.numel() for p in ref_model.parameters())
    data = windows(corpus_bytes(), batches, batch, ctx)
    torch.manual_seed(42)
    p = torch.randn(k, 256, device=dev) / math.sqrt(k)  # the reference's P (same draw as its run)

    def nil_run(model: ByteGPT, vjp: str) -> Any:
        return capture_agop(model, data, mode="output", project=p, micro_batch=micro_batch,
                            progress=False, vjp=vjp)["output"]  # type: ignore[arg-type]

    # Warm-up (kernels, allocator) on one small batch each.
    capture_agop(nil_model, data[:1], mode="output", project=p, micro_batch=micro_batch, progress=False)
    res: dict[str, Any] = {"depth": depth, "d_model": d, "params": n_params,
                           "params_formula": active_params(depth, d), "batches": batches, "batch": batch,
                           "ctx": ctx, "k": k, "reference_probes": probes, "micro_batch": micro_batch}
    secs, nil_out, peak = _timed(dev, lambda: nil_run(nil_model, "vmap"))
    res["nil_sdpa_vmap_s"], res["nil_sdpa_vmap_peak_gib"] = secs, _gib(peak)
    secs, loop_out, peak = _timed(dev, lambda: nil_run(nil_model, "loop"))
    res["nil_sdpa_loop_s"], res["nil_sdpa_loop_peak_gib"] = secs, _gib(peak)
    try:
        secs, rep_out, peak = _timed(dev, lambda: nil_run(nil_model, "replicate"))
        res["nil_sdpa_replicate_s"], res["nil_sdpa_replicate_peak_gib"] = secs, _gib(peak)
        res["nil_replicate_vs_vmap_max_rel_diff"] = float(
            np.abs(rep_out.matrix - nil_out.matrix).max() / np.abs(nil_out.matrix).max())
        res["speedup_replicate_vs_vmap"] = res["nil_sdpa_vmap_s"] / secs
    except Exception as e:  # noqa: BLE001
        if not _is_oom(e):
            raise
        res["nil_sdpa_replicate_s"] = "out of memory"
    try:
        secs, man_out, peak = _timed(dev, lambda: nil_run(ref_model, "vmap"))
        res["nil_manual_attention_s"], res["nil_manual_attention_peak_gib"] = secs, _gib(peak)
    except Exception as e:  # noqa: BLE001 - reported, not hidden
        if not _is_oom(e):
            raise
        res["nil_manual_attention_s"] = "out of memory"
    m_nil = nil_out.matrix
    res["nil_vjp"] = nil_out.settings.get("vjp")
    # The reference's expected relative Frobenius deviation from the exact Gram by probe noise alone,
    # sqrt((PR + 1)/n) with n = samples × probes (a lower bound: per-sample Grams vary).
    pr = float(np.trace(m_nil) ** 2 / np.sum(m_nil**2))
    res["reference_expected_rel_frobenius"] = math.sqrt((pr + 1) / (batches * batch * probes))
    res["nil_vmap_vs_loop_max_rel_diff"] = float(np.abs(loop_out.matrix - m_nil).max() / np.abs(m_nil).max())
    res["nil_out_aofe_ratio"] = nil_out.stats.aofe_ratio
    if not run_reference:
        res["reference_s"] = "skipped"
        return res
    try:
        reference_output_agop(ref_model, data[:1], k=k, probes=1)  # warm-up
        secs, (m_ref, _), peak = _timed(dev, lambda: reference_output_agop(ref_model, data, k=k, probes=probes))
        m_ref = m_ref.double().cpu().numpy()
        res["reference_s"], res["reference_peak_gib"] = secs, _gib(peak)
        res["speedup_vs_reference"] = secs / res["nil_sdpa_vmap_s"]
        res["speedup_vs_reference_loop"] = secs / res["nil_sdpa_loop_s"]
        if isinstance(res.get("nil_sdpa_replicate_s"), float):
            res["speedup_vs_reference_replicate"] = secs / res["nil_sdpa_replicate_s"]
        res["reference_vs_nil_rel_frobenius"] = float(np.linalg.norm(m_ref - m_nil) / np.linalg.norm(m_nil))
        res["reference_aofe_ratio"] = float(
            (np.sum(m_ref**2) - np.sum(np.diag(m_ref) ** 2)) / np.sum(m_ref**2)
        )
    except Exception as e:  # noqa: BLE001
        if not _is_oom(e):
            raise
        res["reference_s"] = "out of memory"
        res["reference_error"] = str(e).splitlines()[0][:200]
    return res


class MemmapSink:
    """Streams rows to one float16 ``.npy`` memmap per layer: device → pinned buffer (async copy)
    → a writer thread. A stand-in for nil.shards.ShardWriter when that is not importable."""

    def __init__(self, directory: Path, capacity: dict[str, tuple[int, int]], depth: int = 4) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.files = {n: np.lib.format.open_memmap(directory / f"{n}.npy", mode="w+", dtype=np.float16,
                                                   shape=shape) for n, shape in capacity.items()}
        self.offset = dict.fromkeys(capacity, 0)
        self.jobs: queue.Queue[Any] = queue.Queue(maxsize=depth)
        self.thread = threading.Thread(target=self._drain, daemon=True)
        self.thread.start()

    def _drain(self) -> None:
        while (job := self.jobs.get()) is not None:
            event, parts = job
            if event is not None:
                event.synchronize()
            for name, lo, host in parts:
                self.files[name][lo : lo + host.shape[0]] = host.numpy()

    def write(self, rows: dict[str, torch.Tensor]) -> None:
        parts = []
        event = None
        for name, r in rows.items():
            r16 = r.detach().to(torch.float16)
            if r16.is_cuda:
                host = torch.empty(r16.shape, dtype=torch.float16, pin_memory=True)
                host.copy_(r16, non_blocking=True)
            else:
                host = r16
            parts.append((name, self.offset[name], host))
            self.offset[name] += r16.shape[0]
        if torch.cuda.is_available() and any(r.is_cuda for r in rows.values()):
            event = torch.cuda.Event()
            event.record()
        self.jobs.put((event, parts))

    def close(self) -> None:
        self.jobs.put(None)
        self.thread.join()
        for f in self.files.values():
            f.flush()

    def __enter__(self) -> MemmapSink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


SINKS = {
    "shards": "nil.shards.ShardWriter(staging=4), float16: 4 pinned buffers for CUDA rows, side-stream copies",
    "shards-unstaged": "nil.shards.ShardWriter(staging=0, the default), float16: device copy + pageable .cpu() in its thread",
    "memmap": "numpy memmap, pinned buffer per write, background thread (float16; no checksum, no fsync)",
}


def _sink(directory: Path, names: list[str], d: int, rows: int, kind: str) -> Any:
    if kind == "memmap":
        return MemmapSink(directory, {n: (rows, d) for n in names})
    from nil.shards import ShardWriter

    return ShardWriter(directory, layers=dict.fromkeys(names, d), dtype="float16", meta={"bench": "capture"},
                       staging=0 if kind == "shards-unstaged" else 4)


def gpt2_case(dev: torch.device, depth: int, d: int, head_dim: int, vocab: int, ctx: int, batch: int,
              probes: int, micro_batch: int, dtype: torch.dtype, sink_stride: int, sink_dir: Path,
              repeats: int, sinks: tuple[str, ...] = tuple(SINKS)) -> dict[str, Any]:
    torch.manual_seed(0)
    model = ByteGPT(depth, d, head_dim=head_dim, attention="sdpa", vocab=vocab, ctx=ctx).to(dev, dtype)
    g = torch.Generator().manual_seed(1)
    x = torch.randint(0, vocab, (batch, ctx + 1), generator=g).to(dev)
    inputs, targets = x[:, :-1], x[:, 1:]
    names = [f"blocks.{i}" for i in range(depth)]

    def train_step() -> None:
        model.train()
        for lo in range(0, batch, micro_batch):
            logits = model(inputs[lo : lo + micro_batch])
            loss = F.cross_entropy(logits.float().flatten(0, 1), targets[lo : lo + micro_batch].flatten())
            (loss * min(micro_batch, batch - lo) / batch).backward()
        model.zero_grad(set_to_none=True)

    def capture(stride: int, sink: Any = None) -> Any:
        return capture_agop(model, [inputs], layers=names, probes=probes, micro_batch=micro_batch,
                            token_stride=stride, sink=sink, progress=False)

    train_step()  # warm-up
    capture(1)
    step = statistics.median(_timed(dev, train_step)[0] for _ in range(repeats))
    runs = [_timed(dev, lambda: capture(1)) for _ in range(repeats)]
    cap_s, out, peak = statistics.median(r[0] for r in runs), runs[-1][1], max(r[2] or 0 for r in runs)
    res: dict[str, Any] = {"depth": depth, "d_model": d, "head_dim": head_dim, "vocab": vocab, "tokens":
                           batch * ctx, "batch": batch, "ctx": ctx, "probes": probes, "micro_batch": micro_batch,
                           "dtype": str(dtype).replace("torch.", ""), "train_step_s": step, "capture_s": cap_s,
                           "capture_peak_gib": _gib(peak) if dev.type == "cuda" else None, "capture_s_per_probe": cap_s / probes,
                           "per_probe_over_train_step": cap_s / probes / step,
                           "rows_per_layer": out[names[0]].count}
    rows = probes * batch * math.ceil(ctx / sink_stride)
    times: dict[str, list[float]] = {k: [] for k in ("none", *sinks)}
    written: dict[str, int] = {}
    with tempfile.TemporaryDirectory(dir=sink_dir) as tmp:

        def with_sink(kind: str, where: Path) -> None:  # timed until every row is on disk (writer closed)
            with _sink(where, names, d, rows, kind) as sink:
                capture(sink_stride, sink)

        for r in range(repeats + 1):  # run 0 warms each sink up (pinned buffers, threads) untimed
            secs = _timed(dev, lambda: capture(sink_stride))[0]
            if r:
                times["none"].append(secs)
            for kind in sinks:
                where = Path(tmp) / f"{kind}-{r}"
                secs = _timed(dev, lambda: with_sink(kind, where))[0]
                if r:
                    times[kind].append(secs)
                written.setdefault(kind, sum(f.stat().st_size for f in where.rglob("*") if f.is_file()))
                for f in sorted(where.rglob("*"), reverse=True):  # free the disk and page cache now
                    f.rmdir() if f.is_dir() else f.unlink()
                where.rmdir()
    base_s = statistics.median(times["none"])
    res.update(sink_token_stride=sink_stride, capture_stride_s=base_s, sink_rows_per_layer=rows,
               sink_bytes_per_capture=written, sinks={k: SINKS[k] for k in sinks})
    for kind in sinks:
        secs = statistics.median(times[kind])
        res[f"sink_{kind}_s"] = secs
        res[f"sink_{kind}_overhead"] = secs / base_s - 1.0
        res[f"sink_{kind}_gb_per_s"] = written[kind] / secs / 1e9
    res["sink_times_s"] = times
    return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="nil capture vs the reference estimator (issue 4)")
    ap.add_argument("--cases", default="1m,10m,gpt2", help="comma-separated subset of 1m,10m,gpt2")
    ap.add_argument("--smoke", "--quick", action="store_true", help="tiny sizes, runs on a CPU in seconds")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--batches", type=int, default=4, help="batches of the 1m/10m cases")
    ap.add_argument("--windows", type=int, default=128, help="windows per batch of the 1m/10m cases")
    ap.add_argument("--ref-probes", type=int, default=64, help="reference JVP probes per batch")
    ap.add_argument("--micro-batch-1m", type=int, default=128)
    ap.add_argument("--micro-batch-10m", type=int, default=64)
    ap.add_argument("--micro-batch-gpt2", type=int, default=8)
    ap.add_argument("--gpt2-dtype", default="bfloat16", choices=["bfloat16", "float32"])
    ap.add_argument("--gpt2-shape", default="12,768,64,50257,1024,64,8",
                    help="depth,d_model,head_dim,vocab,ctx,sequences,probes of the gpt2 case")
    ap.add_argument("--sink-stride", type=int, default=16, help="token stride of the sink comparison")
    ap.add_argument("--sink-dir", default=tempfile.gettempdir(), help="where the sink writes (deleted after)")
    ap.add_argument("--sinks", default=",".join(SINKS),
                    help=f"comma-separated sinks of the gpt2 streaming comparison, of {','.join(SINKS)}")
    ap.add_argument("--skip-reference-10m", action="store_true")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", help="also write the JSON summary here")
    a = ap.parse_args(argv)
    dev = torch.device(a.device)
    sinks = tuple(k.strip() for k in a.sinks.split(",") if k.strip())
    if unknown := [k for k in sinks if k not in SINKS]:
        ap.error(f"--sinks: unknown {unknown}; choose from {list(SINKS)}")
    t_start = time.perf_counter()
    cases = [c.strip() for c in a.cases.split(",") if c.strip()]
    summary: dict[str, Any] = {
        "device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu",
        "torch": torch.__version__, "smoke": a.smoke,
    }
    s = a.smoke
    if "1m" in cases:
        summary["1m"] = output_agop_case(dev, 2 if s else 5, 16 if s else 120, 2 if s else a.batches,
                                         4 if s else a.windows, 32 if s else 256, 8 if s else 64,
                                         4 if s else a.ref_probes,
                                         2 if s else a.micro_batch_1m, True)
    if "10m" in cases:
        summary["10m"] = output_agop_case(dev, 3 if s else 10, 24 if s else 284, 2 if s else a.batches,
                                          4 if s else a.windows, 32 if s else 256, 8 if s else 64,
                                          4 if s else a.ref_probes,
                                          2 if s else a.micro_batch_10m, not a.skip_reference_10m)
    if "gpt2" in cases:
        depth, d, hd, vocab, ctx, seqs, probes = (2, 32, 16, 256, 32, 4, 2) if s else (
            int(v) for v in a.gpt2_shape.split(","))
        summary["gpt2"] = gpt2_case(dev, depth, d, hd, vocab, ctx, seqs, probes,
                                    2 if s else a.micro_batch_gpt2,
                                    torch.float32 if s else getattr(torch, a.gpt2_dtype),
                                    4 if s else a.sink_stride, Path(a.sink_dir), 1 if s else a.repeats,
                                    sinks)
    summary["wall_s"] = time.perf_counter() - t_start
    text = json.dumps(summary, indent=2, default=str)
    if a.out:
        Path(a.out).write_text(text + "\n")
        print(_summary_line(summary))
    else:
        print(text)
    return 0


def _summary_line(summary: dict[str, Any]) -> str:
    parts = [f"capture bench on {summary['device']}, {summary['wall_s']:.0f} s:"]
    for case in ("1m", "10m"):
        if case in summary and isinstance(summary[case].get("speedup_vs_reference"), float):
            parts.append(f"{case} {summary[case]['speedup_vs_reference']:.1f}x the reference;")
    g = summary.get("gpt2")
    if g:
        parts.append(f"gpt2 {g['per_probe_over_train_step']:.2f} train steps per probe; streaming at stride "
                     f"{g['sink_token_stride']} over {g['capture_stride_s']:.3f} s alone:")
        parts.append(", ".join(f"{k} {100 * g[f'sink_{k}_overhead']:+.0f} %" for k in g["sinks"]))
    return " ".join(parts)


if __name__ == "__main__":
    sys.exit(main())
