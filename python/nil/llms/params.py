"""Parameter counts of decoder LLMs from their shape, one closed form per architecture family.

Why: the registry's reported counts come from many places (model cards, the Open LLM Leaderboard,
vendor tables) with different rounding and conventions; a count computed from the shape is the
same for every model and tells whether the sourced shape is the one that was scored.

Families (``arch`` column of the registry):

- ``llama``: Llama / Mistral / SmolLM / MobileLLM / Phi-3 / Granite-style blocks: attention
  projections q (d·h·hd), k and v (d·kv·hd each), o (h·hd·d), all bias-free; gated MLP 3·d·d_ff;
  two RMSNorm vectors of d per block; a final RMSNorm d; embedding V·d, and an untied head V·d.
- ``qwen2``: ``llama`` plus the q/k/v biases (h·hd + 2·kv·hd per block).
- ``qwen3``: ``llama`` plus per-head q and k RMSNorm (2·hd per block).
- ``gemma2``: ``llama`` with four RMSNorm vectors of d per block (pre/post attention and MLP).
- ``gemma3``: ``gemma2`` plus per-head q and k RMSNorm (2·hd per block).
- ``olmo2``: ``llama`` plus q and k RMSNorm over the whole projections (h·hd + kv·hd per block).
- ``gpt-neox``: Pythia: fused qkv d·3d + 3d, dense d·d + d, MLP d·d_ff + d_ff + d_ff·d + d, two
  LayerNorms (weight and bias, 4·d) per block, final LayerNorm 2·d, untied embed_in/embed_out.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from ..errors import NilValueError

__all__ = ["ARCHS", "ParamCount", "param_count"]

ARCHS = ("llama", "qwen2", "qwen3", "gemma2", "gemma3", "olmo2", "gpt-neox")


@dataclass(frozen=True)
class ParamCount:
    """Total, embedding (input + untied output) and non-embedding parameter counts."""

    total: int
    embedding: int
    non_embedding: int

    def to_dict(self) -> dict[str, Any]:
        """A plain dict."""
        return asdict(self)


def param_count(
    arch: str,
    *,
    layers: int,
    hidden: int,
    ffn: int,
    heads: int,
    kv_heads: int,
    head_dim: int,
    vocab: int,
    tied: bool,
) -> ParamCount:
    """Exact parameter count of a dense decoder of family ``arch`` (see the module docstring).

    >>> param_count("llama", layers=16, hidden=2048, ffn=8192, heads=32, kv_heads=8,
    ...             head_dim=64, vocab=128256, tied=True).total  # Llama-3.2-1B
    1235814400
    """
    d, f, h, kv, hd = hidden, ffn, heads, kv_heads, head_dim
    if arch == "gpt-neox":
        block = (d * 3 * d + 3 * d) + (d * d + d) + (d * f + f + f * d + d) + 4 * d
        final_norm = 2 * d
        embedding = 2 * vocab * d  # GPT-NeoX never ties embed_in and embed_out
    elif arch in ("llama", "qwen2", "qwen3", "gemma2", "gemma3", "olmo2"):
        attention = d * h * hd + 2 * d * kv * hd + h * hd * d
        mlp = 3 * d * f
        norms = (4 if arch in ("gemma2", "gemma3") else 2) * d
        extra = {
            "llama": 0,
            "qwen2": h * hd + 2 * kv * hd,
            "qwen3": 2 * hd,
            "gemma2": 0,
            "gemma3": 2 * hd,
            "olmo2": h * hd + kv * hd,
        }[arch]
        block = attention + mlp + norms + extra
        final_norm = d
        embedding = vocab * d * (1 if tied else 2)
    else:
        raise NilValueError(f"param_count: unknown architecture family {arch!r}; expected one of {ARCHS}")
    non_embedding = layers * block + final_norm
    return ParamCount(total=non_embedding + embedding, embedding=embedding, non_embedding=non_embedding)
