"""Which transformers class a checkpoint directory loads into, and whether that is a causal LM.

With ``architectures`` in config.json, the first one listed is the class that wrote the weights,
so it is loaded as is (a ``BertForMaskedLM`` checkpoint keeps its head instead of leaving it
unused). Without it, transformers' ``AutoModel`` would pick the bare base model and silently drop
an LM head, or initialise missing weights at random; nil infers the class from ``model_type`` and
the weights instead: the checkpoint holds the output embedding of the model type's causal-LM
class (``lm_head.weight``, GPT-NeoX's ``embed_out.weight``), or the model type is a decoder (it has a
causal-LM class and no masked-LM class) whose embeddings are tied, means a causal LM; anything else
is the base model. Either way the strict loading check (``weights.loading_report``) has the last word.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import FormatError

__all__ = ["ModelClass", "resolve_class"]


@dataclass(frozen=True)
class ModelClass:
    """The class to load (``cls``, a transformers ``PreTrainedModel`` subclass), its name, whether
    it is a causal LM, and how it was chosen (one sentence, shown to the user and recorded)."""

    cls: Any
    name: str
    causal: bool
    how: str


def _mappings() -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    from transformers.models.auto import modeling_auto as ma

    return (dict(ma.MODEL_FOR_CAUSAL_LM_MAPPING_NAMES), dict(ma.MODEL_MAPPING_NAMES),
            dict(ma.MODEL_FOR_MASKED_LM_MAPPING_NAMES))


def _first(name: Any) -> str | None:
    if isinstance(name, (tuple, list)):
        return str(name[0]) if name else None
    return None if name is None else str(name)


def is_causal_name(name: str) -> bool:
    """Whether transformers class ``name`` is a causal LM (it has an LM head over its last position)."""
    causal, _, _ = _mappings()
    return name in {_first(v) for v in causal.values()} or name.endswith(("ForCausalLM", "LMHeadModel"))


def _class(tf: Any, name: str, path: Path) -> Any:
    cls = getattr(tf, name, None)
    if cls is None:
        raise FormatError(f"{path}/config.json: names the model class {name!r}, which transformers "
                          f"{tf.__version__} does not have (a newer version, or custom code nil does not run)")
    return cls


def _output_embedding_key(cls: Any, cfg: Any) -> str | None:
    """The state-dict name of ``cls``'s output embedding (``lm_head.weight``), from an instance
    built on the meta device (no memory, no initialisation cost)."""
    import torch

    with torch.device("meta"):
        model = cls(cfg)
    out = model.get_output_embeddings()
    for name, module in model.named_modules():
        if module is out:
            return f"{name}.weight"
    return None


def resolve_class(tf: Any, cfg: Any, path: Path, keys: set[str]) -> ModelClass:
    """The class checkpoint ``path`` (config ``cfg``, tensor names ``keys``) loads into."""
    archs = [str(a) for a in (getattr(cfg, "architectures", None) or [])]
    if archs:
        name = archs[0]
        return ModelClass(_class(tf, name, path), name, is_causal_name(name), f"config.json architectures: {name}")
    model_type = str(getattr(cfg, "model_type", ""))
    causal_map, base_map, masked_map = _mappings()
    causal_name, base_name = _first(causal_map.get(model_type)), _first(base_map.get(model_type))
    text_cfg = cfg.get_text_config() if hasattr(cfg, "get_text_config") else cfg
    if causal_name is not None:
        cls = _class(tf, causal_name, path)
        head = _output_embedding_key(cls, cfg)
        if head is not None and head in keys:
            return ModelClass(cls, causal_name, True, f"no architectures in config.json; model_type {model_type!r} "
                              f"and the checkpoint's {head} mean {causal_name}")
        if bool(getattr(text_cfg, "tie_word_embeddings", False)) and model_type not in masked_map:
            return ModelClass(cls, causal_name, True, f"no architectures in config.json; model_type {model_type!r} "
                              f"is a decoder with tied embeddings, so {causal_name}")
    if base_name is None:
        raise FormatError(f"{path}/config.json: lists no architectures, and transformers knows no model for "
                          f"model_type {model_type!r}; add the class that wrote the weights as 'architectures'")
    return ModelClass(_class(tf, base_name, path), base_name, False,
                      f"no architectures in config.json and no LM head in the checkpoint: the bare {base_name}")
