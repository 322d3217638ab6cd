"""The ``nil`` command line. Each verb lives in its own module of this package and exposes
``register(subparsers)``; modules are discovered here, so adding a verb touches one file."""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Sequence

__all__ = ["main", "build_parser"]


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every verb registered."""
    from .. import __version__

    parser = argparse.ArgumentParser(
        prog="nil",
        description=(
            "nil — Neural Interaction Law: per-layer AGOP capture, interaction statistics and the "
            "efficient depth/width interval of a parameter budget."
        ),
    )
    parser.add_argument("--version", action="version", version=f"nil {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        register = getattr(module, "register", None)
        if register is not None:
            register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``nil`` script and ``python -m nil``; returns the exit status."""
    from .._optional import hint_for
    from ..errors import NilError

    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except NilError as e:
        print(f"nil {args.command}: error: {e}", file=sys.stderr)
        return 1
    except (FileNotFoundError, FileExistsError, PermissionError, IsADirectoryError) as e:
        print(f"nil {args.command}: error: {e}", file=sys.stderr)
        return 1
    except ModuleNotFoundError as e:  # an optional dependency imported anywhere in the verb
        hint = hint_for(e, args.command)
        if hint is None:
            raise
        print(f"nil {args.command}: error: {hint}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"nil {args.command}: interrupted", file=sys.stderr)
        return 130
