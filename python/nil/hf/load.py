"""Offline loading of a local Hugging Face transformers checkpoint for capture.

Why a wrapper: nil's capture differentiates one output tensor. A causal LM gives logits [B, T, V]
(capture takes the last position, as the reference does); an encoder such as BERT has no LM head
and no privileged position, so its output is the attention-masked mean of the last hidden states
(the sentence embedding that sentence-transformers' mean pooling produces), [B, d]. Nothing is
fetched from a hub: the environment is set offline and every load is ``local_files_only``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import FormatError, NilValueError

__all__ = ["HfModel", "load_local", "set_offline"]


#: Files one of which a directory needs before its tokenizer is loaded (transformers otherwise
#: builds an empty tokenizer from the model type alone).
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.txt", "vocab.json", "spiece.model", "sentencepiece.bpe.model")


def set_offline() -> None:
    """Forbids hub access for this process (transformers and huggingface_hub read these)."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")


class HfOutput(nn.Module):
    """The tensor capture differentiates: logits of a causal LM, masked-mean hidden states of an encoder."""

    def __init__(self, hf: nn.Module, kind: str) -> None:
        super().__init__()
        self.hf = hf
        self.kind = kind

    def get_input_embeddings(self) -> nn.Module:
        """The wrapped model's input embedding (used by the superposition statistics)."""
        emb: nn.Module = self.hf.get_input_embeddings()  # type: ignore[operator]
        return emb

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        out = self.hf(input_ids=input_ids, attention_mask=attention_mask)
        if self.kind == "causal-lm":
            logits: torch.Tensor = out.logits
            return logits
        h: torch.Tensor = out.last_hidden_state
        if attention_mask is None:
            return h.mean(dim=1)
        m = attention_mask.to(h.dtype).unsqueeze(-1)
        return (h * m).sum(dim=1) / m.sum(dim=1).clamp_min(1.0)


@dataclass
class HfModel:
    """A loaded checkpoint: the capture wrapper, its tokenizer (or None) and what was found."""

    path: Path
    wrapper: HfOutput
    tokenizer: Any
    kind: str
    model_type: str
    architectures: list[str]
    layers: int
    hidden: int
    blocks: list[str]
    max_positions: int | None

    @property
    def model(self) -> Any:
        """The transformers model itself (a ``PreTrainedModel``)."""
        return self.wrapper.hf


def _block_names(model: nn.Module, n_layers: int, path: Path) -> list[str]:
    """Names of the ``n_layers`` blocks: the ModuleList of that length (``model.layers``,
    ``encoder.layer``, ``gpt_neox.layers``, ``transformer.h`` ...), prefixed for the wrapper."""
    found = [
        name for name, m in model.named_modules() if isinstance(m, nn.ModuleList) and len(m) == n_layers and name
    ]
    if not found:
        raise FormatError(f"{path}: found no list of {n_layers} blocks (config num_hidden_layers) in the model")
    best = min(found, key=lambda n: n.count("."))
    return [f"hf.{best}.{i}" for i in range(n_layers)]


def load_local(
    path: str | Path, *, dtype: str = "float32", device: str | torch.device | None = None
) -> HfModel:
    """Loads the transformers checkpoint in directory ``path`` without network access.

    Causal LMs (a ``*ForCausalLM`` architecture or ``is_decoder``) load with their LM head; other
    models (encoders) load as the bare model. The tokenizer is loaded when the directory has one.
    """
    set_offline()
    import transformers as tf

    p = Path(path)
    if not (p / "config.json").is_file():
        raise FormatError(f"{p}: expected a transformers checkpoint directory with config.json, found none")
    dtypes = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
    if dtype not in dtypes:
        raise NilValueError(f"--dtype: expected one of {sorted(dtypes)}, found {dtype!r}")
    cfg = tf.AutoConfig.from_pretrained(p, local_files_only=True)
    archs = list(getattr(cfg, "architectures", None) or [])
    causal = any(a.endswith("ForCausalLM") or a.endswith("LMHeadModel") for a in archs) or bool(
        getattr(cfg, "is_decoder", False)
    )
    loader = tf.AutoModelForCausalLM if causal else tf.AutoModel
    major = int(tf.__version__.split(".")[0])
    dtype_kw = {"dtype" if major >= 5 else "torch_dtype": dtypes[dtype]}
    try:
        model: Any = loader.from_pretrained(p, local_files_only=True, **dtype_kw)
    except (OSError, ValueError) as e:
        raise FormatError(f"{p}: transformers could not load the weights offline: {e}") from e
    dev = torch.device(device) if device is not None else torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model.to(dev)
    model.eval()
    tok = None
    if any((p / f).is_file() for f in _TOKENIZER_FILES):
        try:
            tok = tf.AutoTokenizer.from_pretrained(p, local_files_only=True)
        except (OSError, ValueError, TypeError):
            tok = None
    text_cfg = cfg.get_text_config() if hasattr(cfg, "get_text_config") else cfg
    n_layers = int(getattr(text_cfg, "num_hidden_layers", 0) or getattr(text_cfg, "n_layer", 0))
    hidden = int(getattr(text_cfg, "hidden_size", 0) or getattr(text_cfg, "n_embd", 0))
    if n_layers <= 0 or hidden <= 0:
        raise FormatError(f"{p}/config.json: expected num_hidden_layers and hidden_size, found {n_layers}, {hidden}")
    max_pos = getattr(text_cfg, "max_position_embeddings", None) or getattr(text_cfg, "n_positions", None)
    kind = "causal-lm" if causal else "encoder"
    return HfModel(
        path=p,
        wrapper=HfOutput(model, kind),
        tokenizer=tok,
        kind=kind,
        model_type=str(getattr(cfg, "model_type", "")),
        architectures=archs,
        layers=n_layers,
        hidden=hidden,
        blocks=_block_names(model, n_layers, p),
        max_positions=int(max_pos) if max_pos else None,
    )
