"""The ``nil`` command line. Each verb lives in its own module of this package and exposes
``register(subparsers)``; modules are discovered here, so adding a verb touches one file.

Errors: every verb's failure goes through one mechanism here (``main`` and ``error_message``):
one line on stderr, ``nil VERB: error: ...``, naming the file and what was expected, exit status
1 (130 on Ctrl-C). The traceback is shown only with ``--debug`` (anywhere on the command line)."""

from __future__ import annotations

import argparse
import errno
import importlib
import os
import pkgutil
import sys
from collections.abc import Sequence

__all__ = ["main", "build_parser", "error_message"]

DEBUG_FLAG = "--debug"


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every verb registered."""
    from .. import __version__

    from ._help import HelpFormatter

    parser = argparse.ArgumentParser(
        prog="nil",
        formatter_class=HelpFormatter,
        description=(
            "nil — Neural Interaction Law: per-layer AGOP capture, interaction statistics and the "
            "efficient depth/width interval of a parameter budget."
        ),
    )
    parser.add_argument("--version", action="version", version=f"nil {__version__}")
    parser.add_argument(DEBUG_FLAG, action="store_true",
                        help="show the Python traceback of an error (accepted anywhere on the command line)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    add_parser = sub.add_parser

    def add_wrapped_parser(name: str, **kw: object) -> argparse.ArgumentParser:
        # Every verb's help wraps to the terminal (at most 100 columns); HelpFormatter keeps the
        # line breaks RawDescriptionHelpFormatter keeps, so it replaces that one and the default.
        if kw.get("formatter_class") in (None, argparse.HelpFormatter, argparse.RawDescriptionHelpFormatter):
            kw["formatter_class"] = HelpFormatter
        return add_parser(name, **kw)  # type: ignore[arg-type]

    sub.add_parser = add_wrapped_parser  # type: ignore[method-assign]
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        register = getattr(module, "register", None)
        if register is not None:
            register(sub)
    return parser


def _os_message(e: OSError) -> str:
    """An OSError as ``FILE: what happened``, with the common cases said in plain words."""
    if not e.filename:
        return str(e)
    name = os.fspath(e.filename)
    if e.errno == errno.EEXIST and os.path.exists(name) and not os.path.isdir(name):
        return f"{name}: exists and is a file; expected a directory (or a path that does not exist yet)"
    if e.errno == errno.EISDIR:
        target = os.fspath(e.filename2) if e.filename2 else name
        return f"{target}: is a directory; expected a file path"
    if e.errno == errno.ELOOP:
        return f"{name}: a loop of symbolic links"
    return f"{name}: {e.strerror or e}" + (f" ({os.fspath(e.filename2)})" if e.filename2 else "")


def error_message(e: BaseException, verb: str = "") -> str:
    """The one-line message the CLI prints for an exception raised by ``verb`` (the first line of
    long messages); a missing optional dependency gets its install hint."""
    from .._optional import hint_for
    from ..errors import NilError

    hint = hint_for(e, verb) if isinstance(e, ModuleNotFoundError) else None
    if hint is not None:
        return hint
    if isinstance(e, NilError):
        text = str(e)
    elif isinstance(e, OSError):
        text = _os_message(e)
    elif isinstance(e, MemoryError):
        text = f"out of memory{': ' + str(e) if str(e) else ''}"
    else:  # not raised by nil on purpose: say what it was, keep it to one line
        first = (str(e).strip().splitlines() or [""])[0]
        text = f"{type(e).__name__}: {first} (unexpected; rerun with {DEBUG_FLAG} for the traceback)"
    return text if isinstance(e, NilError) else (text.strip().splitlines() or [""])[0]


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``nil`` script and ``python -m nil``; returns the exit status."""
    args_in = list(sys.argv[1:] if argv is None else argv)
    cut = args_in.index("--") if "--" in args_in else len(args_in)
    debug = DEBUG_FLAG in args_in[:cut]
    args_in = [a for i, a in enumerate(args_in) if not (i < cut and a == DEBUG_FLAG)]
    parser = build_parser()
    args = parser.parse_args(args_in)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        if debug:
            raise
        print(f"nil {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into e.g. `head`, which stopped reading
        try:
            sys.stdout = open(os.devnull, "w")
        except OSError:
            pass
        return 141
    except Exception as e:
        if debug:
            raise
        print(f"nil {args.command}: error: {error_message(e, args.command)}", file=sys.stderr)
        return 1
