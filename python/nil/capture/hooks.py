"""Forward hooks that record, for each selected layer, the tensor whose gradient gives AGOP rows.

For most layers that is the layer's input h (one backward of vᵀy then yields ∂(vᵀy)/∂h for every
layer at once); for a convolution it is the conv's output z, whose gradient is mapped to the
unfolded receptive field afterwards (rows.py). Inputs that do not require grad (raw inputs, or any
input while capture has frozen the parameters) are replaced by a detached leaf that does, so
gradients exist without computing a single parameter gradient.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import torch
from torch.utils.hooks import RemovableHandle

from ..errors import DTypeError, NilValueError
from .layers import Layer

__all__ = ["InputRecorder"]

_INPUT_KEYS = ("hidden_states", "input", "x", "inputs_embeds")

Leaf = Literal["auto", "always"]


def _find_input(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[int | str, torch.Tensor]:
    if args and isinstance(args[0], torch.Tensor):
        return 0, args[0]
    for key in _INPUT_KEYS:
        if isinstance(kwargs.get(key), torch.Tensor):
            return key, kwargs[key]
    for key, value in kwargs.items():
        if isinstance(value, torch.Tensor) and value.is_floating_point():
            return key, value
    raise NilValueError("no tensor input found (looked at the first argument and hidden_states=)")


def _put(
    args: tuple[Any, ...], kwargs: dict[str, Any], where: int | str, value: torch.Tensor
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    if isinstance(where, int):
        return (value, *args[1:]), kwargs
    return args, {**kwargs, where: value}


class InputRecorder:
    """Context manager recording every selected layer's gradient target during a forward pass.

    ``leaf="auto"`` makes an input a leaf only when it does not already require grad;
    ``leaf="always"`` cuts the graph at every hooked input (the output AGOP differentiates with
    respect to the first block's input only). ``replace`` substitutes a given tensor for a layer's
    input (the reference JVP estimator's function of the embeddings).
    """

    def __init__(
        self,
        layers: Sequence[Layer],
        leaf: Leaf = "auto",
        replace: dict[str, torch.Tensor] | None = None,
    ) -> None:
        self.layers = list(layers)
        self.leaf = leaf
        self.replace = dict(replace or {})
        self.targets: dict[str, list[torch.Tensor]] = {}
        self.inputs: dict[str, list[torch.Tensor]] = {}
        self._handles: list[RemovableHandle] = []

    def __enter__(self) -> InputRecorder:
        self.targets = {layer.name: [] for layer in self.layers}
        self.inputs = {layer.name: [] for layer in self.layers}
        for layer in self.layers:
            self._handles.append(
                layer.module.register_forward_pre_hook(self._pre_hook(layer), with_kwargs=True)
            )
            if layer.kind == "conv":
                self._handles.append(layer.module.register_forward_hook(self._post_hook(layer)))
        return self

    def __exit__(self, *exc: object) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def _pre_hook(self, layer: Layer) -> Any:
        def hook(
            module: torch.nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]
        ) -> tuple[tuple[Any, ...], dict[str, Any]] | None:
            try:
                where, h = _find_input(args, kwargs)
            except NilValueError as e:
                raise NilValueError(f"layer {layer.name} ({type(module).__name__}): {e}") from None
            if not h.is_floating_point():
                raise DTypeError(
                    f"layer {layer.name} ({type(module).__name__}): its input has dtype {h.dtype}; "
                    "capture needs a floating-point input (select a module after the embedding)"
                )
            new = h
            if layer.name in self.replace:
                new = self.replace[layer.name]
            elif self.leaf == "always" or not h.requires_grad:
                new = h.detach().requires_grad_(True)
            self.inputs[layer.name].append(new)
            if layer.kind != "conv":
                self.targets[layer.name].append(new)
            return _put(args, kwargs, where, new) if new is not h else None

        return hook

    def _post_hook(self, layer: Layer) -> Any:
        def hook(module: torch.nn.Module, args: tuple[Any, ...], out: Any) -> None:
            self.targets[layer.name].append(out)

        return hook

    def flat_targets(self) -> tuple[list[str], list[torch.Tensor]]:
        """(layer name, tensor) pairs of every recorded call, flattened for ``autograd.grad``."""
        names: list[str] = []
        tensors: list[torch.Tensor] = []
        for name, ts in self.targets.items():
            if not ts:
                raise NilValueError(
                    f"layer {name}: the module was not called during the forward pass; "
                    "select modules the model actually runs"
                )
            for t in ts:
                names.append(name)
                tensors.append(t)
        return names, tensors
