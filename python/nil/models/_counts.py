"""The split of a parameter count into embedding, body and head parameters (docs/method.md §8 R10).

Every family's closed form returns a ``ParamCount``; the budget bookkeeping of a sweep row (active,
embedding and non-embedding counts, budget error, pad ratio) is read from it.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ParamCount"]


@dataclass(frozen=True)
class ParamCount:
    """Parameters of one model shape, split by role.

    ``embedding``: maps from the raw input into the width (token and position embeddings, an
    input projection, a patch convolution with its norm, a first GRU layer's input weights).
    ``body``: the depth-repeated blocks. ``head``: final norm and output map.
    """

    embedding: int
    body: int
    head: int

    @property
    def total(self) -> int:
        """All active (trainable, non-pad) parameters."""
        return self.embedding + self.body + self.head

    @property
    def non_embedding(self) -> int:
        """Body plus head: the count most scaling-law fits use."""
        return self.body + self.head

    def to_dict(self) -> dict[str, int]:
        """Plain-dict form for tables and JSON."""
        return {
            "embedding_params": self.embedding,
            "body_params": self.body,
            "head_params": self.head,
            "active_params": self.total,
            "non_embedding_params": self.non_embedding,
        }
