"""The package's error types and the helpers that keep their messages to one line.

A leaf module: it imports nothing from segnext_jt, so every module (config, data, io, the tools)
can import it without an import cycle. Each message names the file, key or option and says what
was expected; `one_line` and `quote` keep a hostile value from making that line long or broken.
"""
from __future__ import annotations

import reprlib

__all__ = [
    "ConfigError", "DataError",
    "CheckpointError", "CheckpointNotFoundError", "CheckpointFormatError", "UnsafeCheckpointError",
    "CheckpointMismatchError",
    "one_line", "quote",
]


class ConfigError(ValueError):
    """A config file or override has an unknown key or a value of the wrong type."""


class DataError(ValueError):
    """A dataset file or folder is missing, unreadable or inconsistent."""


class CheckpointError(Exception):
    """Base class of every error raised while reading or matching a checkpoint (`segnext_jt.io`)."""


class CheckpointNotFoundError(CheckpointError, FileNotFoundError):
    """The path does not exist or is not a regular file."""


class CheckpointFormatError(CheckpointError, ValueError):
    """The file is truncated, corrupt, or not in a format this package understands."""


class UnsafeCheckpointError(CheckpointError):
    """The pickle asked for a global outside the allow-list; nothing from it was executed."""


class CheckpointMismatchError(CheckpointError, RuntimeError):
    """The checkpoint's keys or shapes do not match the model (strict loading)."""


def one_line(text: object) -> str:
    """`str(text)` on one line, the form of every ``error:`` line whatever a foreign exception or a
    file name put into its message: the lines (split at every break `str.splitlines` knows: \\n,
    \\r, \\r\\n, \\v, \\f, \\x1c-\\x1e, \\x85, \\u2028, \\u2029) are stripped of their
    indentation and joined by one space, blank lines dropped. Blanks inside a line stay."""
    return " ".join(line.strip() for line in str(text).splitlines() if line.strip())


class _Quote(reprlib.Repr):
    def repr_int(self, value, level):  # repr() of a 5,000-digit int raises ValueError (and is long)
        if value.bit_length() < 10_000:
            return super().repr_int(value, level)
        return f"<an integer of {value.bit_length()} bits>"


_QUOTE = _Quote()
_QUOTE.maxstring = _QUOTE.maxother = _QUOTE.maxlong = 80
_QUOTE.maxlist = _QUOTE.maxtuple = _QUOTE.maxdict = 8
_QUOTE.maxlevel = 3


def quote(value) -> str:
    """repr() of a value for an error message, shortened: a hostile value (a huge list, a 20 MB
    string, a 5,000-digit integer) must not make the one error line huge, nor take long to print."""
    return _QUOTE.repr(value)
