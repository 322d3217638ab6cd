"""Capture of gradient statistics from torch models (docs/method.md §3 and §8 R1–R3).

- ``capture_agop``: per-layer input AGOPs (the Neural Feature Ansatz object) or the projected
  output AGOP, accumulated in float64 on the device and/or streamed to a sink.
- ``interaction_report``: in one call, the per-layer input AGOPs, the output AGOP, WᵀW
  superposition statistics and the NFA correlation of each block's first linear map.
- ``select_layers`` / ``detect_blocks``: which modules are captured.
"""

from __future__ import annotations

from .api import capture_agop
from .layers import BLOCK_FAMILIES, Layer, detect_blocks, select_layers
from .record import LayerAgop
from .report import InteractionReport, interaction_report

__all__ = [
    "BLOCK_FAMILIES",
    "InteractionReport",
    "Layer",
    "LayerAgop",
    "capture_agop",
    "detect_blocks",
    "interaction_report",
    "select_layers",
]
