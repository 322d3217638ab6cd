"""Offline loading of a local Hugging Face transformers checkpoint for capture.

Why a wrapper: nil's capture differentiates one output tensor. A causal LM gives logits [B, T, V]
(capture takes the last position, as the reference does); an encoder such as BERT has no LM head
and no privileged position, so its output is the attention-masked mean of the last hidden states
(the sentence embedding that sentence-transformers' mean pooling produces), [B, d]. Nothing is
fetched from a hub: the environment is set offline and every load is ``local_files_only``.
Loading is strict (``weights.py``): nil never measures weights the checkpoint does not hold.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .._optional import require
from ..errors import FormatError, NilValueError
from .classes import resolve_class
from .weights import LoadingReport, checkpoint_keys, loading_report

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
    """The tensor capture differentiates: logits of a causal LM, masked-mean hidden states of an encoder.

    The wrapper is a view of the transformers model: it shares its submodules, parameters and
    buffers, so every module keeps the name transformers gives it (``model.layers.0``, not
    ``hf.model.layers.0``): block names are the same in capture results, tables, JSON and capture
    directories as in ``model.named_modules()``. ``hf`` is the model itself (not a submodule).
    """

    hf: Any

    def __init__(self, hf: nn.Module, kind: str) -> None:
        super().__init__()
        object.__setattr__(self, "hf", hf)
        self._modules = hf._modules
        self._parameters = hf._parameters
        self._buffers = hf._buffers
        self.kind = kind

    def get_input_embeddings(self) -> nn.Module:
        """The wrapped model's input embedding (used by the superposition statistics)."""
        emb: nn.Module = self.hf.get_input_embeddings()
        return emb

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        if self.kind == "causal-lm":
            logits: torch.Tensor = self.hf(input_ids=input_ids, attention_mask=attention_mask).logits
            return logits
        # An encoder, or a task model's body (``base_model`` is the model itself for a bare model).
        body: Any = getattr(self.hf, "base_model", self.hf)
        h: torch.Tensor = body(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        if attention_mask is None:
            return h.mean(dim=1)
        m = attention_mask.to(h.dtype).unsqueeze(-1)
        return (h * m).sum(dim=1) / m.sum(dim=1).clamp_min(1.0)

    def __repr__(self) -> str:
        return f"HfOutput({type(self.hf).__name__}, kind={self.kind!r})"


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
    loading: LoadingReport

    @property
    def model(self) -> Any:
        """The transformers model itself (a ``PreTrainedModel``)."""
        return self.wrapper.hf

    def __repr__(self) -> str:
        return (f"HfModel({str(self.path)!r}, {self.loading.model_class}, kind={self.kind!r}, "
                f"layers={self.layers}, hidden={self.hidden}, strict={self.loading.ok})")


#: Errors of reading weight files (besides OSError, ValueError, RuntimeError) that mean "not a
#: readable checkpoint": pickle's, safetensors' (neither derives from the built-in ones).
_LOAD_ERRORS = ("UnpicklingError", "SafetensorError", "HeaderTooLarge", "EOFError")


def _block_names(model: nn.Module, n_layers: int, path: Path) -> list[str]:
    """Names of the ``n_layers`` blocks: the ModuleList of that length (``model.layers``,
    ``encoder.layer``, ``gpt_neox.layers``, ``transformer.h`` ...), as transformers names them."""
    found = [
        name for name, m in model.named_modules() if isinstance(m, nn.ModuleList) and len(m) == n_layers and name
    ]
    if not found:
        raise FormatError(f"{path}: found no list of {n_layers} blocks (config num_hidden_layers) in the model")
    best = min(found, key=lambda n: n.count("."))
    return [f"{best}.{i}" for i in range(n_layers)]


def load_local(
    path: str | Path,
    *,
    dtype: str = "float32",
    device: str | torch.device | None = None,
    allow_missing: bool = False,
    progress: bool = True,
) -> HfModel:
    """Loads the transformers checkpoint in directory ``path`` without network access, strictly.

    The class is the one config.json's ``architectures`` names, else inferred from ``model_type``
    and the weights (``classes.resolve_class``). Causal LMs are probed on their logits, other
    models on their mean-pooled last hidden state. Any parameter the checkpoint lacks (transformers
    would initialise it at random), any tensor the class does not use, and any shape mismatch
    raise ``FormatError`` naming the keys; ``allow_missing=True`` loads anyway, warns on stderr and
    records the keys in ``HfModel.loading``. The tokenizer is loaded when the directory has one.
    ``progress=False`` also hides transformers' loading bar.
    """
    set_offline()
    tf: Any = require("transformers", "capture --hf", extra="hf")

    p = Path(path)
    if not (p / "config.json").is_file():
        raise FormatError(f"{p}: expected a transformers checkpoint directory with config.json, found none")
    dtypes = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
    if dtype not in dtypes:
        raise NilValueError(f"--dtype: expected one of {sorted(dtypes)}, found {dtype!r}")
    try:
        cfg = tf.AutoConfig.from_pretrained(p, local_files_only=True)
    except (OSError, ValueError, KeyError) as e:
        raise FormatError(f"{p}/config.json: transformers cannot read it: {e}") from e
    choice = resolve_class(tf, cfg, p, checkpoint_keys(p))
    major = int(tf.__version__.split(".")[0])
    dtype_kw = {"dtype" if major >= 5 else "torch_dtype": dtypes[dtype]}
    # Shape mismatches are reported (not raised) so that the strict check below names them; its
    # one line replaces transformers' load report, which is silenced for the call.
    verbosity, bars = tf.logging.get_verbosity(), tf.utils.logging.is_progress_bar_enabled()
    tf.logging.set_verbosity_error()
    if not progress:
        tf.utils.logging.disable_progress_bar()
    try:
        model, info = choice.cls.from_pretrained(
            p, config=cfg, local_files_only=True, output_loading_info=True, ignore_mismatched_sizes=True,
            **dtype_kw,
        )
    except Exception as e:  # OSError, ValueError, RuntimeError, pickle's UnpicklingError, SafetensorError
        if not isinstance(e, (OSError, ValueError, RuntimeError)) and type(e).__name__ not in _LOAD_ERRORS:
            raise
        raise FormatError(f"{p}: transformers could not load the weights into {choice.name} offline: "
                          f"{str(e).splitlines()[0] if str(e) else type(e).__name__}") from e
    finally:
        tf.logging.set_verbosity(verbosity)
        if bars:
            tf.utils.logging.enable_progress_bar()
    loading = loading_report(p, choice.name, choice.how, info, allow=allow_missing)
    if loading.allowed:
        print(f"nil: WARNING: {p}: --allow-missing: {loading.problems()}; the statistics of these "
              "parameters are not the checkpoint's", file=sys.stderr)
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
    kind = "causal-lm" if choice.causal else "encoder"
    return HfModel(
        path=p,
        wrapper=HfOutput(model, kind),
        tokenizer=tok,
        kind=kind,
        model_type=str(getattr(cfg, "model_type", "")),
        architectures=[str(a) for a in (getattr(cfg, "architectures", None) or [])],
        layers=n_layers,
        hidden=hidden,
        blocks=_block_names(model, n_layers, p),
        max_positions=int(max_pos) if max_pos else None,
        loading=loading,
    )
