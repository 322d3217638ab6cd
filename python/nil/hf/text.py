"""Local text for capture, cut into token windows.

The default text is the embedded corpus every machine has: the Python standard library's own
``.py`` sources (``sysconfig.get_paths()["stdlib"]``, site-packages skipped), in sorted path order:
the byte-LM task's default corpus (``nil.tasks.corpus.default_corpus_files``). ``text_file`` is one
UTF-8 text; ``dataset`` a local dataset of documents (``dataset.documents``), each tokenized on
its own and followed by the tokenizer's end-of-sequence token, concatenated and cut into windows
(Bergson's ``chunk_length``). A checkpoint without a tokenizer is fed raw bytes modulo its
vocabulary size, and the report says so.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..errors import NilValueError

__all__ = ["TokenWindows", "default_text", "token_windows"]


def default_text(max_chars: int) -> tuple[str, str]:
    """At least ``max_chars`` characters of the embedded corpus (when it has that many) and a
    description of where they came from."""
    from ..tasks.corpus import default_corpus_files

    root, files = default_corpus_files()
    parts: list[str] = []
    total = 0
    for f in files:
        text = f.read_text(encoding="utf-8", errors="replace")
        parts.append(text)
        total += len(text) + 1
        if total >= max_chars:
            break
    return "\n".join(parts), f"python-stdlib:{root}"


@dataclass(frozen=True)
class TokenWindows:
    """Token windows [n, seq_len] in batches, with how they were made (``documents``: how many
    dataset rows were read, None for a plain text)."""

    batches: list[dict[str, torch.Tensor]]
    tokens: int
    seq_len: int
    tokenizer: str
    source: str
    documents: int | None = None

    def __repr__(self) -> str:
        return (f"TokenWindows({self.tokens} tokens in {self.tokens // self.seq_len} windows of {self.seq_len}, "
                f"{len(self.batches)} batches, source={self.source!r}, tokenizer={self.tokenizer!r})")


def _encode(tokenizer: Any, text: str, vocab: int) -> tuple[list[int], str]:
    if tokenizer is None:
        return [b % vocab for b in text.encode("utf-8")], f"none found: UTF-8 bytes mod {vocab}"
    ids = tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"]
    return [int(i) for i in ids], type(tokenizer).__name__


def _dataset_ids(tokenizer: Any, vocab: int, docs: Iterable[str], tokens: int) -> tuple[list[int], str, int]:
    """Token ids of the first documents, each followed by the end-of-sequence id, until ``tokens``."""
    eos = getattr(tokenizer, "eos_token_id", None) if tokenizer is not None else None
    ids: list[int] = []
    name = "none"
    n_docs = 0
    for doc in docs:
        doc_ids, name = _encode(tokenizer, doc, vocab)
        ids += doc_ids + ([int(eos)] if isinstance(eos, int) else [])
        n_docs += 1
        if len(ids) >= tokens:
            break
    return ids, name, n_docs


def token_windows(
    tokenizer: Any,
    vocab: int,
    *,
    text_file: str | Path | None,
    tokens: int,
    seq_len: int,
    batch_size: int,
    dataset: str | Path | None = None,
    text_column: str = "text",
    split: str = "train",
) -> TokenWindows:
    """``tokens`` tokens of the text (rounded down to whole windows of ``seq_len``), in batches.

    Only the first 16·``tokens`` characters of a text file are read, and only the documents of a
    dataset that the tokens need."""
    if tokens < seq_len or seq_len < 2 or batch_size < 1:
        raise NilValueError(f"--tokens ({tokens}) must be at least one window of --seq-len ({seq_len} >= 2), --batch >= 1")
    if text_file is not None and dataset is not None:
        raise NilValueError("--text and --dataset: give one source of text, not both")
    n_docs: int | None = None
    if dataset is not None:
        from .dataset import documents

        ids, tok_name, n_docs = _dataset_ids(tokenizer, vocab, documents(dataset, column=text_column, split=split), tokens)
        source = f"{dataset} (split {split}, column {text_column})"
        if n_docs == 0:
            raise NilValueError(f"{source}: the dataset has no documents")
    else:
        if text_file is None:
            text, source = default_text(max_chars=tokens * 8)
        else:
            p = Path(text_file)
            with p.open("r", encoding="utf-8", errors="replace") as f:
                text = f.read(tokens * 16)  # far more characters than ``tokens`` tokens need
            source = str(p)
        ids, tok_name = _encode(tokenizer, text, vocab)
        if text and not ids:
            raise NilValueError(f"{source}: the tokenizer ({tok_name}) turned {len(text)} characters into no tokens")
    n_windows = min(tokens, len(ids)) // seq_len
    if n_windows == 0:
        raise NilValueError(f"{source}: {len(ids)} tokens, fewer than one window of {seq_len}; give more text")
    t = torch.tensor(ids[: n_windows * seq_len], dtype=torch.long).view(n_windows, seq_len)
    batches = [
        {"input_ids": t[i : i + batch_size], "attention_mask": torch.ones_like(t[i : i + batch_size])}
        for i in range(0, n_windows, batch_size)
    ]
    return TokenWindows(batches, n_windows * seq_len, seq_len, tok_name, source, n_docs)
