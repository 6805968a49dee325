"""Exceptions raised by the checkpoint I/O package.

All of them derive from `CheckpointError`, so callers can catch one class. Each message names the file
(and the key or pickle global where relevant) and says what was expected.
"""
from __future__ import annotations

import os

__all__ = [
    "CheckpointError",
    "CheckpointNotFoundError",
    "CheckpointFormatError",
    "UnsafeCheckpointError",
    "CheckpointMismatchError",
    "ensure_file",
]


class CheckpointError(Exception):
    """Base class of every error raised by `segnext_jt.io`."""


class CheckpointNotFoundError(CheckpointError, FileNotFoundError):
    """The path does not exist or is not a regular file."""


class CheckpointFormatError(CheckpointError, ValueError):
    """The file is truncated, corrupt, or not in a format this package understands."""


class UnsafeCheckpointError(CheckpointError):
    """The pickle asked for a global outside the allow-list; nothing from it was executed."""


class CheckpointMismatchError(CheckpointError, RuntimeError):
    """The checkpoint's keys or shapes do not match the model (strict loading)."""


def ensure_file(path: "str | os.PathLike[str]") -> str:
    """Return `path` as a string, or raise `CheckpointNotFoundError` if it is not a regular file."""
    p = os.fspath(path)
    if not os.path.exists(p):
        raise CheckpointNotFoundError(f"checkpoint file not found: {p}")
    if not os.path.isfile(p):
        raise CheckpointNotFoundError(f"{p}: not a regular file (expected a checkpoint file, got a directory or device)")
    return p
