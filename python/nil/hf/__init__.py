"""``nil.hf``: nil's statistics on local Hugging Face transformers checkpoints, strictly offline.

``hf_report(DIR)`` loads the checkpoint without hub access and strictly (``load_local``: every
parameter from the checkpoint, every tensor used, or an error naming them; ``LoadingReport``
records what was found), measures the superposition of its input and output embeddings and the
per-block input AGOPs over a local text or dataset, optionally writes the blocks' rows as a capture
directory, and returns a report that ``nil capture --hf DIR`` prints.
"""

from __future__ import annotations

from .load import HfModel, load_local, set_offline
from .report import HfReport, hf_report
from .text import TokenWindows, default_text, token_windows
from .weights import LoadingReport

__all__ = [
    "HfModel", "HfReport", "LoadingReport", "TokenWindows", "default_text", "hf_report", "load_local",
    "set_offline", "token_windows",
]
