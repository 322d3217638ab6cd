"""``nil.hf``: nil's statistics on local Hugging Face transformers checkpoints, strictly offline.

``hf_report(DIR)`` loads the checkpoint without hub access, measures the superposition of its input
and output embeddings and the per-block input AGOPs over a local text, and returns a report that
``nil capture --hf DIR`` prints.
"""

from __future__ import annotations

from .load import HfModel, load_local, set_offline
from .report import HfReport, hf_report
from .text import TokenWindows, default_text, token_windows

__all__ = ["HfModel", "HfReport", "TokenWindows", "default_text", "hf_report", "load_local", "set_offline", "token_windows"]
