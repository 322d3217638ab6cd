"""Exceptions raised by nil. Every message names the file or layer and what was expected vs found."""

from __future__ import annotations

__all__ = [
    "NilError",
    "ShapeError",
    "DTypeError",
    "NonFiniteError",
    "NilValueError",
    "ShardError",
    "FormatError",
    "ChecksumError",
    "MemoryLimitError",
]


class NilError(Exception):
    """Base class of every error nil raises on purpose."""


class ShapeError(NilError, ValueError):
    """An array or matrix has the wrong shape (message gives expected and found)."""


class DTypeError(NilError, TypeError):
    """An element type the operation does not accept."""


class NonFiniteError(NilError, ValueError):
    """NaN or infinity where finite values are required (use ``nonfinite="skip"`` to skip rows)."""


class NilValueError(NilError, ValueError):
    """A bad argument value: out of range, unknown option."""


class ShardError(NilError):
    """A capture directory or one of its files is not what its manifest says."""


class FormatError(ShardError, ValueError):
    """A file does not follow its format (bad header, missing tensor, truncated)."""


class ChecksumError(ShardError):
    """A file's blake3 checksum differs from the one recorded for it."""


class MemoryLimitError(NilError, MemoryError):
    """Not enough memory for what was asked (e.g. a d×d accumulator); the message says how much."""
