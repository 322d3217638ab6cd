"""Byte-level language modelling over a local corpus (docs/method.md §4.4 with nil's fixes, R8).

Vocabulary 256, windows of ``seq_len`` bytes predicting the next byte at every position; loss =
per-byte cross-entropy in nats. The data budget D = ratio·N bytes buys ⌊D/T⌋ training windows
with uniform starts drawn with replacement (fixed per budget by ``data_seed``); validation during
training uses a fixed subset of the non-overlapping validation windows, the test loss uses every
non-overlapping test window (or a fixed subset of ``test_windows``), and the capture sample is a
fixed subset of test windows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from ..errors import NilValueError
from ._data import TaskData, WindowSplit, generator, subset
from ._task import Task
from .corpus import load_corpus

__all__ = ["ByteLM"]

_TRAIN, _SUBSETS = 1, 2


def _tiles(n_bytes: int, seq_len: int) -> torch.Tensor:
    """Starts of the non-overlapping windows (seq_len + 1 bytes each, shifted by seq_len)."""
    return torch.arange(0, n_bytes - seq_len - 1 + 1, seq_len)


@dataclass
class ByteLM(Task):
    """Next-byte prediction; ``corpus`` is a file or directory (default: Python's stdlib sources),
    ``corpus_glob`` the pattern of a directory's files to read (default every file)."""

    corpus: str | None = None
    corpus_glob: str | None = None
    seq_len: int = 256
    val_fraction: float = 0.05
    test_fraction: float = 0.05
    max_bytes: int | None = None
    val_windows: int | None = 256
    test_windows: int | None = None
    train_eval_windows: int | None = 256
    capture_windows: int = 256
    data_seed: int = 0

    name = "bytes"
    families = ("gpt",)

    @property
    def units_per_sample(self) -> int:
        return self.seq_len

    def model_kwargs(self, family: str) -> dict[str, Any]:
        self.check_family(family)
        return {"vocab": 256, "seq_len": self.seq_len}

    def make(self, n_train_samples: int, device: torch.device | str = "cpu") -> TaskData:
        if self.corpus_glob is not None and self.corpus is None:
            raise NilValueError("bytes: corpus_glob selects files of a corpus directory; give corpus=DIR too")
        c = load_corpus(self.corpus, self.val_fraction, self.test_fraction, self.max_bytes, self.corpus_glob)
        for name, s in (("train", c.train), ("val", c.val), ("test", c.test)):
            if len(s) <= self.seq_len + 1:
                raise NilValueError(
                    f"corpus {c.source}: the {name} split has {len(s)} bytes, fewer than one window of {self.seq_len + 1}"
                )
        n_windows = max(1, n_train_samples)
        hi = len(c.train) - self.seq_len - 1
        starts = torch.randint(0, hi + 1, (n_windows,), generator=generator(self.data_seed, _TRAIN, n_windows))
        val_tiles, test_tiles = _tiles(len(c.val), self.seq_len), _tiles(len(c.test), self.seq_len)
        g = generator(self.data_seed, _SUBSETS)
        val_idx = subset(len(val_tiles), self.val_windows, g)
        test_keep = subset(len(test_tiles), self.test_windows, g)
        test_tiles = test_tiles[test_keep]
        data = TaskData(
            train=WindowSplit(torch.from_numpy(c.train), starts, self.seq_len),
            val=WindowSplit(torch.from_numpy(c.val), val_tiles, self.seq_len),
            test=WindowSplit(torch.from_numpy(c.test), test_tiles, self.seq_len),
            loss="lm",
            n_train_samples=n_windows,
            units_per_sample=self.seq_len,
            val_idx=val_idx,
            train_eval_idx=subset(n_windows, self.train_eval_windows, g),
            capture_idx=subset(len(test_tiles), self.capture_windows, g),
            info={"corpus": c.source, "corpus_files": c.n_files, "fingerprint": c.fingerprint,
                  "bytes": {"train": len(c.train), "val": len(c.val), "test": len(c.test)}},
        )
        return data.to(device)
