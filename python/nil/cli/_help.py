"""Help texts that fit the terminal: at most 100 columns, long lines wrapped, layout kept.

argparse's ``RawDescriptionHelpFormatter`` keeps a description's line breaks (needed for the
aligned examples of an epilog) but never wraps, so a one-line description runs to 300 columns;
the plain formatter wraps but reflows the examples. ``HelpFormatter`` keeps every line that fits
and wraps only the lines that do not, continuing them at their own indentation."""

from __future__ import annotations

import argparse
import shutil
import textwrap

__all__ = ["HelpFormatter", "MAX_WIDTH"]

MAX_WIDTH = 100


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Wraps to the terminal width, at most ``MAX_WIDTH`` columns."""

    def __init__(self, prog: str, indent_increment: int = 2, max_help_position: int = 30, width: int | None = None) -> None:
        if width is None:
            width = min(shutil.get_terminal_size().columns, MAX_WIDTH) - 2
        super().__init__(prog, indent_increment=indent_increment, max_help_position=max_help_position, width=width)

    def _split_lines(self, text: str, width: int) -> list[str]:
        # argparse's own split, without breaking flags such as --list-protocols at their hyphens
        return textwrap.wrap(" ".join(text.split()), width, break_on_hyphens=False)

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        out = []
        for line in text.splitlines():
            if len(indent) + len(line) <= width or not line.strip():
                out.append(indent + line)
                continue
            lead = line[: len(line) - len(line.lstrip())]
            out.append(textwrap.fill(line.strip(), width, initial_indent=indent + lead,
                                     subsequent_indent=indent + lead, break_on_hyphens=False))
        return "\n".join(out)
