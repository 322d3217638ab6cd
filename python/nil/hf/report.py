"""``hf_report``: nil's statistics on a pretrained transformers checkpoint from a local directory.

What it measures (docs/method.md §2.4, §8 R1): superposition statistics of the input embedding (V×d)
and, when the model has an untied LM head, of the output embedding; the per-block input AGOP over
a local text (``nil.capture.interaction_report``: Gaussian probes on the projected last-position
logits of a causal LM, or on the projected mean-pooled hidden state of an encoder), the projected
output AGOP and the NFA correlation of each block's first linear map. Also the shape (R_D/W =
layers / hidden), the parameter count, the registry entry with the same shape, if any, and how the
checkpoint was loaded (its class, and a clean strict-loading report unless ``allow_missing``).
Blocks are named as transformers names the modules (``model.layers.0``), everywhere. With ``out``
the blocks' input-AGOP rows are also written as a capture directory (``capture_dir``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..capture import InteractionReport, interaction_report
from ..superposition import SuperpositionStats, superposition_stats
from .capture_dir import check_out, open_capture
from .load import HfModel, load_local
from .text import TokenWindows, token_windows

__all__ = ["HfReport", "hf_report"]


@dataclass(repr=False)
class HfReport:
    """The report of one checkpoint: model facts, text facts, embeddings and the capture report."""

    model: dict[str, Any]
    text: dict[str, Any]
    input_embedding: SuperpositionStats
    output_embedding: SuperpositionStats | None
    output_embedding_note: str
    capture: InteractionReport
    settings: dict[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:
        m = self.model
        return (f"HfReport({m['path']!r}, {m['model_class']}, {m['layers']} layers x hidden {m['hidden']}, "
                f"{self.text['tokens']} tokens, {len(self.capture.layers)} blocks measured)")

    def to_pandas(self) -> Any:
        """The per-block table (``InteractionReport.rows``) as a pandas DataFrame."""
        return self.capture.to_pandas()

    def to_dict(self) -> dict[str, Any]:
        """A nested plain dict (no matrices), the shape of ``nil capture --hf --json``."""
        cap = self.capture.to_dict()
        cap.pop("embedding", None)  # the same statistics as input_embedding below
        return {
            "model": dict(self.model),
            "text": dict(self.text),
            "settings": dict(self.settings),
            "input_embedding": self.input_embedding.to_dict(),
            "output_embedding": None if self.output_embedding is None else self.output_embedding.to_dict(),
            "output_embedding_note": self.output_embedding_note,
            "capture": cap,
        }


def _registry_match(layers: int, hidden: int, ffn: int | None, vocab: int) -> list[str]:
    from ..llms import shapes

    return [
        s.name
        for s in shapes()
        if s.layers == layers and s.hidden == hidden and (s.ffn is None or s.ffn == ffn) and s.vocab == vocab
    ]


def _output_embedding(m: HfModel) -> tuple[SuperpositionStats | None, str]:
    get_out = getattr(m.model, "get_output_embeddings", None)
    out = get_out() if callable(get_out) else None
    if out is None or not isinstance(getattr(out, "weight", None), torch.Tensor):
        return None, "none: the model has no LM head (an encoder), so only the input embedding is measured"
    inp = m.model.get_input_embeddings()
    if out.weight.data_ptr() == inp.weight.data_ptr():
        return None, "tied: the LM head shares the input embedding, whose statistics are above"
    return superposition_stats(out.weight.detach().float()), "untied LM head"


def _model_facts(m: HfModel) -> dict[str, Any]:
    model = m.model
    params = {id(p): p.numel() for p in model.parameters()}
    emb = model.get_input_embeddings()
    vocab, dim = (int(s) for s in emb.weight.shape)
    cfg = model.config
    text_cfg = cfg.get_text_config() if hasattr(cfg, "get_text_config") else cfg
    ffn = getattr(text_cfg, "intermediate_size", None)
    return {
        "path": str(m.path),
        "kind": m.kind,
        "model_type": m.model_type,
        "architectures": m.architectures,
        "layers": m.layers,
        "hidden": m.hidden,
        "ratio": m.layers / m.hidden,
        "aspect": m.hidden / m.layers,
        "vocab": vocab,
        "embedding_dim": dim,
        "ffn": ffn,
        "params": int(sum(params.values())),
        "dtype": str(next(model.parameters()).dtype).replace("torch.", ""),
        "device": str(next(model.parameters()).device),
        "blocks": list(m.blocks),
        "registry_match": _registry_match(m.layers, m.hidden, ffn, vocab),
        "model_class": m.loading.model_class,
        "model_class_how": m.loading.how,
        "loading": m.loading.to_dict(),
    }


def hf_report(
    path: str | Path,
    *,
    text: str | Path | None = None,
    dataset: str | Path | None = None,
    text_column: str = "text",
    split: str = "train",
    tokens: int = 2048,
    seq_len: int = 128,
    batch_size: int = 4,
    probes: int = 8,
    project: int = 64,
    seed: int = 0,
    device: str | None = None,
    dtype: str = "float32",
    progress: bool = True,
    allow_missing: bool = False,
    out: str | Path | None = None,
    shard_dtype: str = "float32",
) -> HfReport:
    """Loads the checkpoint in ``path`` offline and measures it on ``tokens`` tokens of ``text`` (a
    file) or ``dataset`` (local documents; ``text_column``, ``split``), by default the embedded
    corpus (Python's standard library sources); see the module docstring.

    Loading is strict (``load_local``; ``allow_missing`` records instead of refusing). ``out``:
    also write the blocks' input-AGOP rows as a capture directory (``capture_dir``), stored as
    ``shard_dtype``; it must not exist yet or be empty.
    """
    out_path = None if out is None else check_out(out)
    m = load_local(path, dtype=dtype, device=device, allow_missing=allow_missing, progress=progress)
    emb = m.model.get_input_embeddings()
    vocab = int(emb.weight.shape[0])
    t = min(seq_len, tokens) if m.max_positions is None else min(seq_len, tokens, m.max_positions)
    windows: TokenWindows = token_windows(
        m.tokenizer, vocab, text_file=text, tokens=tokens, seq_len=t, batch_size=batch_size,
        dataset=dataset, text_column=text_column, split=split,
    )
    facts = _model_facts(m)
    text_facts = {"source": windows.source, "tokens": windows.tokens, "seq_len": windows.seq_len,
                  "windows": windows.tokens // windows.seq_len, "tokenizer": windows.tokenizer,
                  "documents": windows.documents}
    settings: dict[str, Any] = {
        "probes": probes, "project": project, "seed": seed, "batch_size": batch_size,
        "output": "last-position logits" if m.kind == "causal-lm" else "mean-pooled last hidden state",
        "capture_dir": None if out_path is None else str(out_path),
    }
    if out_path is None:
        cap = interaction_report(
            m.wrapper, windows.batches, layers=m.blocks, project=project, probes=probes, seed=seed, progress=progress
        )
    else:
        with open_capture(out_path, m, facts["params"], settings, text_facts, shard_dtype) as writer:
            cap = interaction_report(
                m.wrapper, windows.batches, layers=m.blocks, project=project, probes=probes, seed=seed,
                progress=progress, sink=writer,
            )
    out_stats, out_note = _output_embedding(m)
    in_stats = superposition_stats(emb.weight.detach().float())
    return HfReport(
        model=facts,
        text=text_facts,
        input_embedding=in_stats,
        output_embedding=out_stats,
        output_embedding_note=out_note,
        capture=cap,
        settings=settings,
    )
