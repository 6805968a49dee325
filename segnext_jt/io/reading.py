"""Reading a checkpoint file: every failure becomes one `CheckpointError` line naming the file.

`ensure_file` refuses a missing path or a directory, `reading(path)` (and the `names_file`
decorator) turns whatever a reader raises into a one-line error that names the path. The error
types themselves are in segnext_jt.errors.
"""
from __future__ import annotations

import contextlib
import functools
import os
from typing import Any, Callable, Iterator, TypeVar

from ..errors import CheckpointError, CheckpointFormatError, CheckpointNotFoundError, one_line

__all__ = ["ensure_file", "reading", "names_file"]

_Reader = TypeVar("_Reader", bound=Callable[..., Any])
_FOREIGN_MESSAGE_LIMIT = 300


def ensure_file(path: "str | os.PathLike[str]") -> str:
    """Return `path` as a string, or raise `CheckpointNotFoundError` if it is not a regular file."""
    p = os.fspath(path)
    if not os.path.exists(p):
        raise CheckpointNotFoundError(f"checkpoint file not found: {p}")
    if not os.path.isfile(p):
        raise CheckpointNotFoundError(f"{p}: not a regular file (expected a checkpoint file, got a directory or device)")
    return p


@contextlib.contextmanager
def reading(path: str) -> Iterator[None]:
    """Re-raise every failure while reading `path` as a one-line `CheckpointError` that names it.

    Low-level errors that hostile sizes or nesting provoke (RecursionError, MemoryError, OverflowError
    from numpy or zipfile...) become `CheckpointFormatError`s, so callers never see a raw traceback.
    """
    try:
        yield
    except CheckpointError as exc:
        text = one_line(str(exc))
        if path not in text:
            text = f"{path}: {text}"
        if text == str(exc):
            raise
        raise type(exc)(text).with_traceback(exc.__traceback__) from exc.__cause__
    except RecursionError:
        raise CheckpointFormatError(f"{path}: data nested too deeply to read (corrupt or hostile file?)") from None
    except MemoryError:
        raise CheckpointFormatError(
            f"{path}: not enough memory to read it; the sizes it declares are implausible (corrupt or hostile file?)"
        ) from None
    except Exception as exc:  # noqa: BLE001 - the contract is: readers raise CheckpointError only
        text = one_line(str(exc))[:_FOREIGN_MESSAGE_LIMIT]
        raise CheckpointFormatError(f"{path}: cannot read checkpoint: {type(exc).__name__}: {text}") from exc


def names_file(reader: _Reader) -> _Reader:
    """Decorate a reader whose first argument is the checkpoint path with `reading(path)`."""

    @functools.wraps(reader)
    def wrapper(path: "str | os.PathLike[str]", *args: Any, **kwargs: Any) -> Any:
        with reading(os.fspath(path)):
            return reader(path, *args, **kwargs)

    return wrapper  # type: ignore[return-value]
