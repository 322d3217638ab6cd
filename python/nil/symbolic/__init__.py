"""``nil.symbolic``: symbolic (AND–OR / Harsanyi) interactions of a network's outputs.

A network's output on an input of n players (tokens, patches, features, embedding positions)
decomposes exactly into interactions of subsets of players; a few salient ones explain it. This
package computes them fast and says what they look like (docs/symbolic.md):

- ``transform`` and friends: zeta, Möbius (AND), co-Möbius and OR transforms in O(n·2^n) (Rust),
  and the exact order-≤k variants on the C(n, ≤k) small subsets;
- ``masked_values``: v(x_T) for every coalition T, streamed through a torch model in batches
  (log-odds of a class, next-token log-odds of a language model, or an output coordinate);
- ``and_or`` / ``joint_and_or``: the sparse AND–OR decomposition (PDHG with a certified bound,
  the literature's SGD recipe, or an exact LP for small n);
- ``summarize``, ``order_profile``, ``profile_shape``, ``sharing``: salient counts, explanation
  ratio, per-order histograms split by sign, decay vs spindle, what two models share.

The transforms need only numpy; masked evaluation needs torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .analysis import (
    OrderProfile,
    Shape,
    Sharing,
    compare_groups,
    explanation_ratio,
    order_profile,
    profile_shape,
    salient,
    sharing,
    summarize,
)
from .decompose import AndOr, and_or, joint_and_or, merge_low_orders, noise_bound
from .transforms import (
    KINDS,
    low_order_masks,
    low_order_subsets,
    low_order_transform,
    mask_sizes,
    n_players,
    popcounts,
    transform,
)

if TYPE_CHECKING:  # torch-dependent names load on first use
    from .evaluate import MaskedValues, learn_baseline, make_baseline, masked_values
    from .players import Players, coalition_masks
    from .value import log_odds, log_odds_from_log_prob

_LAZY = {
    "MaskedValues": "evaluate", "learn_baseline": "evaluate", "make_baseline": "evaluate",
    "masked_values": "evaluate", "Players": "players", "coalition_masks": "players", "log_odds": "value",
    "log_odds_from_log_prob": "value",
}

__all__ = [
    "KINDS", "AndOr", "MaskedValues", "OrderProfile", "Players", "Shape", "Sharing", "and_or", "coalition_masks",
    "compare_groups", "explanation_ratio", "joint_and_or", "learn_baseline", "log_odds", "log_odds_from_log_prob",
    "low_order_masks", "low_order_subsets", "low_order_transform", "make_baseline", "mask_sizes", "masked_values",
    "merge_low_orders", "n_players", "noise_bound", "order_profile", "popcounts", "profile_shape", "salient",
    "sharing", "summarize", "transform",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
