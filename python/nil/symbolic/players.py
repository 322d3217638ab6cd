"""Players of a masked input: which input entries each player owns, and coalition masks.

A ``Players`` holds an integer tensor ``index`` that broadcasts against one input: entry = the
player that owns that input entry, or −1 for background entries, which are always kept. Masking a
coalition T keeps the entries of the players in T and replaces the others by the baseline:
x_T = where(keep, x, baseline). Constructors cover the usual cases: tokens of a sequence, features
of a vector, patches of an image, positions of an embedding sequence.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from ..errors import NilValueError, ShapeError

__all__ = ["Players", "coalition_masks", "mask_bits"]

#: Largest number of players a full (2^n) evaluation accepts.
MAX_FULL_PLAYERS = 30


def _positions(length: int, positions: Sequence[int] | None, what: str) -> list[int]:
    if positions is None:
        return list(range(length))
    out = [int(p) % length if -length <= int(p) < length else -1 for p in positions]
    if -1 in out:
        raise NilValueError(f"{what}: positions must lie in [-{length}, {length}), found {list(positions)}")
    if len(set(out)) != len(out):
        raise NilValueError(f"{what}: positions must be distinct, found {list(positions)}")
    return out


@dataclass(frozen=True)
class Players:
    """``index`` (int64, broadcastable to one input): owner of every input entry, −1 = background."""

    index: torch.Tensor
    n: int
    names: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.index.dtype != torch.int64:
            raise NilValueError(f"Players: index must be int64, found {self.index.dtype}")
        if self.n < 1:
            raise NilValueError("Players: at least one player is needed")
        used = torch.unique(self.index[self.index >= 0])
        if used.numel() != self.n or int(used.max()) != self.n - 1:
            raise NilValueError(f"Players: index must use every player id 0..{self.n - 1}, found {used.tolist()}")
        if self.names and len(self.names) != self.n:
            raise NilValueError(f"Players: {len(self.names)} names for {self.n} players")

    @staticmethod
    def tokens(seq_len: int, positions: Sequence[int] | None = None, names: Sequence[str] = ()) -> Players:
        """Tokens of a sequence input of shape (seq_len,): player i is position ``positions[i]``
        (default: every position); the other positions are background."""
        pos = _positions(seq_len, positions, "Players.tokens")
        index = torch.full((seq_len,), -1, dtype=torch.int64)
        for i, p in enumerate(pos):
            index[p] = i
        return Players(index, len(pos), tuple(names))

    @staticmethod
    def features(n_features: int, features: Sequence[int] | None = None, names: Sequence[str] = ()) -> Players:
        """Entries of a flat input of shape (n_features,)."""
        p = Players.tokens(n_features, features, names)
        return p

    @staticmethod
    def embeddings(seq_len: int, positions: Sequence[int] | None = None, names: Sequence[str] = ()) -> Players:
        """Positions of an embedding sequence of shape (seq_len, d): a player owns a whole vector."""
        p = Players.tokens(seq_len, positions, names)
        return Players(p.index[:, None], p.n, p.names)

    @staticmethod
    def patches(height: int, width: int, patch: int, grid: Sequence[int] | None = None) -> Players:
        """Square patches of an image (channels, height, width): the patches of side ``patch`` in
        row-major order are players ``grid`` (default: all of them); index shape (1, H, W)."""
        if patch < 1 or height % patch or width % patch:
            raise NilValueError(f"Players.patches: patch {patch} must divide the image {height}×{width}")
        ph, pw = height // patch, width // patch
        cells = _positions(ph * pw, grid, "Players.patches")
        owner = torch.full((ph * pw,), -1, dtype=torch.int64)
        for i, c in enumerate(cells):
            owner[c] = i
        index = owner.view(ph, pw).repeat_interleave(patch, 0).repeat_interleave(patch, 1)
        return Players(index[None], len(cells))

    def check(self, x: torch.Tensor) -> None:
        """Raises a ShapeError unless ``index`` broadcasts to the input ``x`` (one sample)."""
        idx, shape = tuple(self.index.shape), tuple(x.shape)
        fits = len(idx) <= len(shape) and all(a in (1, b) for a, b in zip(idx[::-1], shape[::-1]))
        if not fits:
            raise ShapeError(f"Players: index of shape {idx} does not broadcast to an input of shape {shape}")

    def keep(self, masks: torch.Tensor) -> torch.Tensor:
        """Which entries to keep for coalition masks [B, n] (bool): [B, *index.shape]."""
        idx = self.index.to(masks.device)
        owned = masks[:, idx.clamp(min=0)]
        return owned | (idx < 0)


def mask_bits(coalitions: torch.Tensor, n: int) -> torch.Tensor:
    """Bool masks [B, n] of coalition bitmasks [B] (bit i ⇔ player i present)."""
    shifts = torch.arange(n, device=coalitions.device, dtype=torch.int64)
    return ((coalitions.to(torch.int64)[:, None] >> shifts) & 1).bool()


def coalition_masks(n: int, start: int, stop: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """Bool masks [stop − start, n] of the coalitions start..stop−1 (bitmask order)."""
    if not 0 <= start <= stop <= 1 << n:
        raise NilValueError(f"coalition_masks: range [{start}, {stop}) outside [0, 2^{n})")
    return mask_bits(torch.arange(start, stop, device=device, dtype=torch.int64), n)
