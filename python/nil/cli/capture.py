"""``nil capture --hf DIR``: nil's statistics on a local pretrained transformers checkpoint, offline."""

from __future__ import annotations

import argparse
import sys
from typing import Any

__all__ = ["register"]

EPILOG = """\
examples:
  nil capture --hf ./Qwen2.5-0.5B                         # embedded corpus, 2048 tokens
  nil capture --hf ./my-bert --text notes.txt --tokens 8192 --json > report.json
  nil capture --hf ./pythia-70m --dataset ./pile-10k --split train --out pythia.capture
  nil analyze pythia.capture                              # the per-block table again, from the rows

DIR is a directory written by transformers' save_pretrained (config.json plus weights, and a
tokenizer if it has one; without one, UTF-8 bytes modulo the vocabulary size are fed). Nothing is
downloaded: the hub is switched off and every file is read from DIR. Causal LMs are probed on
their projected last-position logits, encoders (BERT, sentence encoders) on their projected
mean-pooled last hidden state. The default text is the embedded corpus: Python's standard
library sources. --dataset reads local documents (a .jsonl/.json/.csv/.parquet/.txt file, or a
folder such as a local copy of a Hugging Face dataset, whose files of --split are used).

Loading is strict: a parameter the checkpoint lacks (which transformers would initialise at
random), a tensor the model does not use or a shape mismatch is an error naming the tensors.
Without 'architectures' in config.json the class follows from model_type and the weights (an
lm_head, or tied embeddings of a decoder, mean a causal LM). --allow-missing measures anyway,
warns, and records the keys in the report (and the capture's manifest).
"""


def register(sub: Any) -> None:
    """Adds the ``capture`` verb."""
    p = sub.add_parser(
        "capture",
        help="measure a local pretrained transformers checkpoint (embeddings, per-layer AGOPs)",
        description="Loads a local Hugging Face transformers checkpoint without network access and "
        "prints the superposition statistics of its input and output embeddings and the input AGOP "
        "of every block over a local text, beside their null baselines.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--hf", metavar="DIR", required=True, help="checkpoint directory (config.json + weights)")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--text", metavar="FILE", help="UTF-8 text to run (default: the embedded corpus, Python's stdlib sources)")
    src.add_argument("--dataset", metavar="PATH",
                     help="local documents: a .jsonl/.json/.csv/.parquet/.txt file or a dataset folder")
    p.add_argument("--text-column", default="text", help="--dataset column holding the text (default text)")
    p.add_argument("--split", default="train", help="--dataset folder: files of this split (default train)")
    p.add_argument("--tokens", type=int, default=2048,
                   help="tokens of text to use (default 2048: the reference's 4 batches x 4 windows x 128 tokens)")
    p.add_argument("--seq-len", type=int, default=128, help="tokens per window (default 128; capped at the model's maximum)")
    p.add_argument("--batch", type=int, default=4, help="windows per batch (default 4)")
    p.add_argument("--probes", type=int, default=8, help="Gaussian probes per batch for the input AGOPs (default 8)")
    p.add_argument("--project", type=int, default=64, help="outputs are projected to this many directions (default 64)")
    p.add_argument("--seed", type=int, default=0, help="seed of the projection and the probes (default 0)")
    p.add_argument("--device", help="torch device (default: cuda if available, else cpu)")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"], help="model dtype (default float32)")
    p.add_argument("--out", metavar="CAPTURE",
                   help="also write the blocks' input-AGOP rows as a capture directory (new or empty)")
    p.add_argument("--shard-dtype", default="float32", choices=["float32", "bfloat16", "float16"],
                   help="element type of the --out shards (default float32)")
    p.add_argument("--allow-missing", action="store_true",
                   help="measure even when weights are missing, unused or mis-shaped (warns and records it)")
    p.add_argument("--json", action="store_true", help="print JSON instead of tables")
    p.set_defaults(func=run)


def _sup_rows(report: Any) -> list[dict[str, Any]]:
    rows = []
    for name, s in (("input embedding", report.input_embedding), ("output embedding", report.output_embedding)):
        if s is None:
            continue
        rows += [
            {"statistic": f"{name}: features × dim", "observed": f"{s.features} × {s.dim}", "gaussian null": ""},
            {"statistic": f"{name}: row norm mean", "observed": s.row_norms.mean, "gaussian null": s.null_row_norm_mean},
            {"statistic": f"{name}: mean squared overlap", "observed": s.mean_sq_overlap, "gaussian null": s.null_mean_sq_overlap},
            {"statistic": f"{name}: dimensionality mean", "observed": s.dimensionality.mean, "gaussian null": s.null_dimensionality_mean},
            {"statistic": f"{name}: WᵀW AOFE ratio", "observed": s.wtw.aofe_ratio, "gaussian null": s.null_wtw_aofe_ratio},
            {"statistic": f"{name}: WᵀW weighted mean cos²", "observed": s.wtw.weighted_mean_cos2, "gaussian null": s.null_wtw_weighted_mean_cos2},
            {"statistic": f"{name}: WᵀW participation ratio", "observed": s.wtw.participation_ratio, "gaussian null": s.null_wtw_participation_ratio},
        ]
    return rows


def _layer_rows(report: Any) -> list[dict[str, Any]]:
    rows = []
    for r in report.capture.rows():
        rows.append({
            "layer": r["layer"],
            "rows": r["rows"],
            "AOFE ratio": r["aofe_ratio"],
            "null": r["null_rotation"],
            "wmc2": r["weighted_mean_cos2"],
            "PR": r["participation_ratio"],
            "erank": r["effective_rank"],
            "top": r["top_share"],
            "NFA r": r["nfa_pearson"],
        })
    return rows


def _loading_line(loading: dict[str, Any]) -> str | None:
    """The report's own record of a non-strict load (stdout, so a saved report keeps it)."""
    if not loading["allowed"]:
        return None
    lists = "; ".join(f"{k}: {', '.join(loading[k][:6])}{' ...' if len(loading[k]) > 6 else ''}"
                      for k in ("missing", "unexpected", "mismatched") if loading[k])
    return (f"WARNING, not the checkpoint's weights (--allow-missing): {lists}. Statistics involving "
            "these parameters describe their random initialisation")


def run(args: argparse.Namespace) -> int:
    """Runs ``nil capture --hf``."""
    from .._optional import require

    require("torch", "nil capture --hf", extra="hf")
    require("transformers", "nil capture --hf", extra="hf")
    from ..hf import hf_report
    from ._table import print_json, print_table, say

    report = hf_report(
        args.hf, text=args.text, dataset=args.dataset, text_column=args.text_column, split=args.split,
        tokens=args.tokens, seq_len=args.seq_len, batch_size=args.batch, probes=args.probes,
        project=args.project, seed=args.seed, device=args.device, dtype=args.dtype,
        progress=sys.stderr.isatty(), allow_missing=args.allow_missing, out=args.out, shard_dtype=args.shard_dtype,
    )
    m, t = report.model, report.text
    if args.json:
        print_json(report.to_dict())
        return 0
    match = ", ".join(m["registry_match"]) or "none"
    say(f"{m['path']}: {m['model_type']} {m['kind']} ({m['model_class']}: {m['model_class_how']}), "
          f"{m['params']:,} parameters, {m['dtype']} on {m['device']}")
    warning = _loading_line(m["loading"])
    if warning:
        say(warning)
    say(f"shape: {m['layers']} layers × hidden {m['hidden']}: R_D/W = {m['ratio']:.5f} (d/L = {m['aspect']:.1f}); "
          f"registry shape: {match}")
    docs = f", {t['documents']} documents" if t.get("documents") is not None else ""
    say(f"text: {t['tokens']} tokens in {t['windows']} windows of {t['seq_len']} from {t['source']}{docs} "
          f"(tokenizer: {t['tokenizer']})")
    print_table("Superposition of the embeddings vs a Gaussian null of the same shape",
                ["statistic", "observed", "gaussian null"], _sup_rows(report))
    say(f"output embedding: {report.output_embedding_note}")
    print_table(f"Per-block input AGOP ({report.settings['output']}, {report.settings['probes']} probes, k = {report.settings['project']})",
                ["layer", "rows", "AOFE ratio", "null", "wmc2", "PR", "erank", "top", "NFA r"],
                _layer_rows(report))
    say("null: AOFE ratio of the same spectrum in a random basis; PR: participation ratio; erank: entropy "
          "effective rank; top: top-eigenvalue share; NFA r: Pearson of the block's first linear WᵀW with its "
          "input AGOP (nan where no block family is known)")
    o = report.capture.output.stats
    say(f"projected output AGOP (k = {o.k}): AOFE ratio {o.aofe_ratio:.4g} (rotation null {o.null_rotation:.4g}), "
          f"wmc2 {o.weighted_mean_cos2:.4g}, participation ratio {o.participation_ratio:.4g}")
    if warning:
        say(warning)
    if report.settings["capture_dir"]:
        say(f"capture: the blocks' rows are in {report.settings['capture_dir']} (nil analyze "
              f"{report.settings['capture_dir']} gives the per-block table from them)")
    return 0
