"""Optional dependencies: one import helper and one install hint for all of them.

nil's core needs numpy, ml_dtypes, safetensors and rich; everything else is an extra of the
distribution (pyproject.toml). A missing extra must never surface as a ModuleNotFoundError
traceback: ``require`` raises ``MissingDependency`` (a ``NilError``, so the CLI prints it as one
line, exit 1) with the pip command that installs it, and the CLI turns a ModuleNotFoundError of a
known optional module raised anywhere in a verb into the same line (``hint_for``).
"""

from __future__ import annotations

import importlib
from types import ModuleType

from .errors import NilError

__all__ = ["DIST", "EXTRAS", "MissingDependency", "hint", "hint_for", "require"]

#: The distribution's name on PyPI (``import nil`` and the ``nil`` command keep theirs).
DIST = "neural-interaction-law"

#: Top-level module -> (pip package, the extra that brings it).
EXTRAS: dict[str, tuple[str, str]] = {
    "torch": ("torch", "torch"),
    "transformers": ("transformers", "hf"),
    "matplotlib": ("matplotlib", "plots"),
    "pandas": ("pandas", "tables"),
    "pyarrow": ("pyarrow", "tables"),
    "sklearn": ("scikit-learn", "sweep"),
    "ray": ("ray", "ray"),
}

#: Verbs whose own extra also brings torch (so the hint installs everything the verb needs).
_TORCH_EXTRA_OF_VERB = {"capture": "hf", "sweep": "sweep"}


class MissingDependency(NilError, ImportError):
    """An optional dependency is not installed; the message says how to install it."""


def hint(module: str, purpose: str | None = None, extra: str | None = None) -> str:
    """``"[<purpose> ]needs <package>: pip install '<dist>[<extra>]'"`` for top-level ``module``."""
    top = module.split(".")[0]
    package, default_extra = EXTRAS.get(top, (top, "all"))
    lead = f"{purpose} needs" if purpose else "needs"
    return f"{lead} {package}: pip install '{DIST}[{extra or default_extra}]'"


def hint_for(error: ModuleNotFoundError, verb: str) -> str | None:
    """The install hint for a ModuleNotFoundError raised while running CLI verb ``verb``, or None
    when the missing module is not one of nil's optional dependencies (a real bug: re-raise)."""
    top = (error.name or "").split(".")[0]
    if top not in EXTRAS:
        return None
    extra = _TORCH_EXTRA_OF_VERB.get(verb) if top == "torch" else None
    return hint(top, None, extra)


def require(module: str, purpose: str, extra: str | None = None) -> ModuleType:
    """Imports ``module`` or raises ``MissingDependency`` with the install hint. Only the module
    itself (or its top-level package) being absent counts; an ImportError inside an installed
    package is a broken installation and propagates unchanged."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as e:
        if (e.name or "").split(".")[0] != module.split(".")[0]:
            raise
        raise MissingDependency(hint(module, purpose, extra)) from None
