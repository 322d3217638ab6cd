"""What a checkpoint directory holds, and whether a loaded model got all of it.

Why: transformers initialises any parameter the checkpoint lacks at random and only logs it, so a
capture on a wrongly classified checkpoint measures random weights (issue 11 §2: an embedding
identical to its Gaussian null, reported as the model's own). nil therefore compares the
checkpoint with the model it was loaded into (transformers' own ``output_loading_info``) and
refuses any missing, unexpected or mismatched parameter unless the caller allows it, in which
case the result records it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..errors import FormatError

__all__ = ["LoadingReport", "checkpoint_keys", "loading_report"]

#: How many key names an error message lists before "and N more".
_SHOWN = 6


def _safetensors_keys(path: Path) -> set[str]:
    from safetensors import safe_open

    with safe_open(str(path), framework="numpy") as f:
        return set(f.keys())


def checkpoint_keys(path: str | Path) -> set[str]:
    """Tensor names stored in checkpoint directory ``path``: the weight map of a sharded index
    (``*.safetensors.index.json`` / ``pytorch_model.bin.index.json``), else every tensor of
    ``model.safetensors`` or ``pytorch_model.bin``. Raises ``FormatError`` when there is none."""
    p = Path(path)
    for index in ("model.safetensors.index.json", "pytorch_model.bin.index.json"):
        f = p / index
        if f.is_file():
            try:
                weight_map = json.loads(f.read_text())["weight_map"]
            except (ValueError, KeyError, TypeError) as e:
                raise FormatError(f"{f}: expected JSON with a 'weight_map' object ({e})") from None
            return set(weight_map)
    if (p / "model.safetensors").is_file():
        f = p / "model.safetensors"
        try:
            return _safetensors_keys(f)
        except Exception as e:  # safetensors raises its own SafetensorError on a damaged header
            what = _pickle_kind(f)
            if what:
                raise FormatError(f"{f}: expected a safetensors file, found {what}; save it as "
                                  "pytorch_model.bin or convert it with safetensors.torch.save_file") from None
            raise FormatError(f"{f}: expected a readable safetensors file, found a damaged one ({e})") from None
    if (p / "pytorch_model.bin").is_file():
        return set(_torch_state(p / "pytorch_model.bin"))
    raise FormatError(f"{p}: expected model.safetensors, pytorch_model.bin or a sharded index, found none")


def _pickle_kind(path: Path) -> str:
    """'a torch.save zip archive' / 'a Python pickle' when the file starts like one, else ''."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(4)
    except OSError:
        return ""
    if head.startswith(b"PK\x03\x04"):
        return "a torch.save zip archive (a pickle)"
    if len(head) > 1 and head[0] == 0x80 and 2 <= head[1] <= 5:  # PROTO opcode, protocols 2-5
        return "a Python pickle"
    return ""


def _torch_state(path: Path) -> dict[str, Any]:
    """The state dict of a torch checkpoint, read with ``weights_only=True`` (tensors, never
    arbitrary pickled objects); ``FormatError`` naming the file when it is not one."""
    import pickle
    import warnings

    import torch

    try:
        with warnings.catch_warnings():  # torch warns about the pickle protocol before refusing it
            warnings.simplefilter("ignore")
            state = _torch_load(torch, path)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, TypeError, AttributeError) as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0].split(". ")[0]
        raise FormatError(f"{path}: expected a torch checkpoint of tensors readable with weights_only=True, "
                          f"found a file torch cannot load that way ({type(e).__name__}: {first})") from None
    return _checked_state(path, state)


def _torch_load(torch: Any, path: Path) -> Any:
    try:
        return torch.load(path, map_location="cpu", mmap=True, weights_only=True)
    except RuntimeError as e:
        if "mmap" not in str(e):
            raise
        return torch.load(path, map_location="cpu", weights_only=True)  # legacy (non-zip) format


def _checked_state(path: Path, state: Any) -> dict[str, Any]:
    if not isinstance(state, dict) or not all(isinstance(k, str) for k in state):
        raise FormatError(f"{path}: expected a state dict (tensor name -> tensor), found {type(state).__name__}")
    return state


def _names(keys: Iterable[Any]) -> list[str]:
    # transformers gives sets of names; mismatched keys are (name, ckpt shape, model shape) in v4.
    return sorted(str(k[0] if isinstance(k, tuple) else k) for k in keys)


def _listing(keys: list[str]) -> str:
    shown = ", ".join(keys[:_SHOWN])
    return shown + (f" and {len(keys) - _SHOWN} more" if len(keys) > _SHOWN else "")


@dataclass(frozen=True)
class LoadingReport:
    """Parameters of the model class the checkpoint did not provide (``missing``: initialised at
    random), checkpoint tensors the class has no place for (``unexpected``: not measured) and
    shape mismatches; ``allowed``: the caller accepted a non-empty report (``--allow-missing``)."""

    model_class: str
    how: str
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    mismatched: list[str] = field(default_factory=list)
    allowed: bool = False

    @property
    def ok(self) -> bool:
        """Every parameter of the model came from the checkpoint and every tensor was used."""
        return not (self.missing or self.unexpected or self.mismatched)

    def problems(self) -> str:
        """The non-empty lists, one clause each (empty when ``ok``)."""
        parts = []
        if self.missing:
            parts.append(f"{len(self.missing)} parameter(s) missing from the checkpoint, which transformers "
                         f"would initialise at random: {_listing(self.missing)}")
        if self.unexpected:
            parts.append(f"{len(self.unexpected)} checkpoint tensor(s) the model has no place for: "
                         f"{_listing(self.unexpected)}")
        if self.mismatched:
            parts.append(f"{len(self.mismatched)} tensor(s) of the wrong shape: {_listing(self.mismatched)}")
        return "; ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        """A plain dict: the class, how it was chosen, the three key lists and ``allowed``."""
        return {"model_class": self.model_class, "how": self.how, "strict": self.ok, "allowed": self.allowed,
                "missing": list(self.missing), "unexpected": list(self.unexpected),
                "mismatched": list(self.mismatched)}


def loading_report(path: Path, model_class: str, how: str, info: dict[str, Any], *, allow: bool) -> LoadingReport:
    """The report of transformers' ``output_loading_info``; raises ``FormatError`` naming the keys
    when it is not clean and ``allow`` is False."""
    rep = LoadingReport(
        model_class=model_class,
        how=how,
        missing=_names(info.get("missing_keys", ())),
        unexpected=_names(info.get("unexpected_keys", ())),
        mismatched=_names(info.get("mismatched_keys", ())),
    )
    errors = [str(e) for e in info.get("error_msgs", ()) or ()]
    if errors:
        raise FormatError(f"{path}: transformers reported errors loading the weights into {model_class}: "
                          + " | ".join(errors))
    if rep.ok:
        return rep
    if not allow:
        raise FormatError(
            f"{path}: the weights do not fit {model_class} ({how}): {rep.problems()}. Either the checkpoint "
            "is incomplete or config.json's 'architectures' does not name the class that wrote it; "
            "--allow-missing measures it anyway"
        )
    return replace(rep, allowed=True)
