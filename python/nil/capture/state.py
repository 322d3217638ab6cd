"""The model state capture runs in, and its restoration: eval mode, frozen parameters, full-precision
float32 matmuls; every module's train flag, every parameter's ``requires_grad`` and the global
matmul precision are put back exactly as they were, even when capture fails."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

__all__ = ["capture_mode", "model_device"]


@contextmanager
def capture_mode(model: nn.Module) -> Iterator[None]:
    """Eval mode (dropout off), parameters frozen (autograd then keeps only what input gradients
    need and never forms a parameter gradient), TF32 off for float32 matmuls (docs/method.md R3)."""
    modes = [(m, m.training) for m in model.modules()]
    grads = [(p, p.requires_grad) for p in model.parameters()]
    precision = torch.get_float32_matmul_precision()
    cudnn_tf32 = _cudnn_tf32(None)
    try:
        model.eval()
        for p, _ in grads:
            p.requires_grad_(False)
        torch.set_float32_matmul_precision("highest")
        _cudnn_tf32(False)
        with torch.enable_grad():
            yield
    finally:
        for m, training in modes:
            m.training = training
        for p, flag in grads:
            p.requires_grad_(flag)
        torch.set_float32_matmul_precision(precision)
        if cudnn_tf32 is not None:
            _cudnn_tf32(cudnn_tf32)


def _cudnn_tf32(value: bool | None) -> bool | None:
    """Reads (``value=None``) or sets cuDNN's TF32 flag; None when this torch refuses the legacy
    flag (e.g. after the new ``fp32_precision`` API was used), in which case it is left alone."""
    try:
        if value is None:
            return bool(torch.backends.cudnn.allow_tf32)
        torch.backends.cudnn.allow_tf32 = value
        return value
    except RuntimeError:
        return None


def model_device(model: nn.Module, device: str | torch.device | None) -> torch.device:
    """The device capture runs on: ``device`` if given, else that of the model's first parameter
    or buffer (CPU for a model without any)."""
    if device is not None:
        return torch.device(device)
    for param in model.parameters():
        return param.device
    for buf in model.buffers():
        return buf.device
    return torch.device("cpu")
