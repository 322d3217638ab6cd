"""``nil interactions``: symbolic (AND–OR) interactions of a model's outputs (docs/symbolic.md)."""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["register"]

EPILOG = """\
examples:
  nil interactions --demo                                   # digits MLP, trained here (CPU, ~20 s)
  nil interactions --values v.npy --qthres 0.02 --json      # rows of 2^n masked outputs
  nil interactions --hf ./my-lm --text "The capital of France is" --players 6

--hf DIR is a local transformers causal LM (config.json + weights; nothing is downloaded). Its
players are the last --players tokens of the text, masked by --baseline-token (default: the
tokenizer's pad, else eos, else unk token, else 0); v is the log-odds of the argmax next token of
the full text.
"""

SUMMARY_KEYS = ["players", "samples", "salient_mean", "salient_and_mean", "salient_or_mean", "explanation_ratio",
                "strength_ratio", "or_share", "mean_order", "peak_order", "shape", "objective_mean", "gap_max"]


def register(sub: Any) -> None:
    """Adds the ``interactions`` verb."""
    p = sub.add_parser(
        "interactions",
        help="AND–OR (Harsanyi) interactions of masked model outputs: salient sets, orders, shape",
        description="Decomposes a model's outputs on every masked version of an input (players: "
        "tokens, patches, features) into sparse AND and OR interactions, and prints how many are "
        "salient, how well they explain the outputs, and their distribution over orders.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--demo", action="store_true", help="train two small digits MLPs and analyse them")
    src.add_argument("--values", metavar="FILE", help=".npy of masked outputs [samples, 2^n] (bitmask order)")
    src.add_argument("--hf", metavar="DIR", help="local transformers causal LM checkpoint")
    p.add_argument("--text", help="text for --hf")
    p.add_argument("--players", type=int, default=8, help="--hf: the last N tokens are the players (default 8)")
    p.add_argument("--baseline-token", type=int, help="--hf: token id that replaces a masked token")
    p.add_argument("--qthres", type=float, default=0.02, help="noise bound q ≤ QTHRES·|v(N) − v(∅)| (default 0.02)")
    p.add_argument("--solver", choices=["pdhg", "sgd", "lp"], default="pdhg", help="decomposition solver (default pdhg)")
    p.add_argument("--max-iter", type=int, default=5000, help="pdhg iterations at most (default 5000)")
    p.add_argument("--ratio", type=float, default=0.05, help="salient: |I| > RATIO·max|I| (default 0.05)")
    p.add_argument("--top", type=int, default=10, help="list the TOP strongest interactions (default 10)")
    p.add_argument("--batch-size", type=int, default=1024, help="masked inputs per forward batch (default 1024)")
    p.add_argument("--device", help="torch device (default: cuda if available, else cpu)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def _top(d: Any, names: list[str], k: int) -> list[dict[str, Any]]:
    a, o = d.merged()
    a, o = a.reshape(-1, a.shape[-1])[0], o.reshape(-1, o.shape[-1])[0]
    items = [("AND", s, float(a[s])) for s in range(1, len(a))] + [("OR", s, float(o[s])) for s in range(1, len(o))]
    items.sort(key=lambda t: -abs(t[2]))
    out = []
    for kind, s, val in items[:k]:
        members = [names[i] for i in range(len(names)) if (s >> i) & 1]
        out.append({"kind": kind, "order": len(members), "players": " ".join(members), "I": val})
    return out


def _hf_values(args: argparse.Namespace) -> tuple[Any, list[str]]:
    import torch

    from ..errors import NilValueError
    from ..hf import load_local
    from ..symbolic import Players, masked_values

    if not args.text:
        raise NilValueError("--hf needs --text (the prompt whose next token is explained)")
    m = load_local(args.hf, device=args.device)
    if m.kind != "causal-lm":
        raise NilValueError(f"{args.hf}: next-token log-odds need a causal LM, found a {m.kind} ({m.architectures})")
    tok = m.tokenizer
    vocab = int(m.model.get_input_embeddings().weight.shape[0])
    if tok is not None:
        ids = [int(i) for i in tok(args.text, add_special_tokens=False)["input_ids"]]
        names = [tok.decode([i]) for i in ids]
    else:
        ids = [b % vocab for b in args.text.encode("utf-8")]
        names = [chr(b) if 32 <= b < 127 else f"\\x{b:02x}" for b in args.text.encode("utf-8")]
    if len(ids) < 1:
        raise NilValueError("--text gave no tokens")
    n = min(args.players, len(ids))
    base = args.baseline_token
    if base is None and tok is not None:
        base = next((t for t in (tok.pad_token_id, tok.eos_token_id, tok.unk_token_id) if t is not None), 0)
    mv = masked_values(m.wrapper, torch.tensor([ids]), Players.tokens(len(ids), list(range(len(ids) - n, len(ids)))),
                       baseline=int(base or 0), batch_size=args.batch_size, progress=not args.no_progress)
    return mv.values, [repr(s) for s in names[len(ids) - n:]]


def run(args: argparse.Namespace) -> int:
    """Runs the analysis and prints it."""
    import numpy as np

    from ..errors import NilValueError
    from ..symbolic import and_or, summarize
    from ._table import print_json, print_table

    extra: dict[str, Any] = {}
    if args.demo:
        from ..symbolic.demo import DIGIT_PATCHES, run_demo

        r = run_demo(progress=not (args.no_progress or args.json))
        values, d = r["values"], r["decomposition"]
        names = [f"patch{p}" for p in DIGIT_PATCHES]
        extra = {"test_accuracy": r["test_accuracy"], "train_vs_test": r["train_vs_test"], "sharing": r["sharing"]}
    else:
        if args.values:
            values = np.load(args.values)
            if values.ndim == 1:
                values = values[None]
            names = [f"x{i}" for i in range(int(values.shape[-1]).bit_length() - 1)]
        else:
            values, names = _hf_values(args)
        if values.ndim != 2:
            raise NilValueError(f"{args.values}: expected masked outputs [samples, 2^n], found shape {values.shape}")
        d = and_or(values, qthres=args.qthres, solver=args.solver, max_iter=args.max_iter)
    summary = summarize(d, values, args.ratio)
    top = _top(d, names, args.top)
    if args.json:
        print_json({"summary": summary, "top_first_sample": top, **extra})
        return 0
    print_table("Symbolic interactions", ["statistic", "value"],
                [{"statistic": k, "value": summary[k]} for k in SUMMARY_KEYS])
    prof = summary["profile"]
    print_table("Salient interactions per order (all samples)", ["order", "positive", "negative", "count"],
                [{"order": m, "positive": prof["positive"][m], "negative": prof["negative"][m],
                  "count": int(prof["count_positive"][m] + prof["count_negative"][m])} for m in range(1, len(prof["positive"]))])
    print_table("Strongest interactions of the first sample", ["kind", "order", "players", "I"], top)
    if "sharing" in extra:
        s = extra["sharing"]
        print_table("Two seeds decomposed jointly", ["statistic", "value"], [
            {"statistic": k, "value": s[k]} for k in ("shared_mean", "only_first_mean", "shared_fraction",
                                                        "transferability", "signed_overlap")
        ] + [{"statistic": "shared shape", "value": s["shared_shape"]["kind"]},
             {"statistic": "unshared shape", "value": s["unshared_shape"]["kind"]}])
    return 0
