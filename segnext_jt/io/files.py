"""Whole-or-nothing file writes and strict JSON, shared by every writer in the project (checkpoints,
logs, results, metrics, prediction images).

A file is written to a temporary name next to its target (`.<name>.<random>.tmp`, the pattern the
trainer cleans up after a kill), fsync'ed and renamed over the target: readers see the old file or
the complete new one, and the temporary file is removed on any failure or interrupt. JSON is strict:
NaN/inf become null, NumPy values plain numbers, so no reader chokes on `NaN`.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import tempfile
from typing import IO, Any, Iterator, Optional


@contextlib.contextmanager
def atomic_file(path: "str | os.PathLike[str]", mode: str = "w") -> Iterator[IO]:
    """Open a temporary file next to `path` for writing; on success it replaces `path`. The parent
    directory must exist."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def write_text_atomic(path: "str | os.PathLike[str]", text: str) -> None:
    """`text` to `path` whole or not at all; a missing parent directory is created."""
    os.makedirs(os.path.dirname(os.path.abspath(os.fspath(path))), exist_ok=True)
    with atomic_file(path, "w") as f:
        f.write(text)


def json_safe(obj: Any) -> Any:
    """A copy of `obj` that `json.dumps(..., allow_nan=False)` accepts: NaN/inf -> None, NumPy
    scalars and arrays -> Python numbers and lists, tuples -> lists, odd keys -> strings,
    dataclasses (or objects with `as_dict()`) -> dicts."""
    as_dict = getattr(obj, "as_dict", None)
    if callable(as_dict):
        return json_safe(as_dict())
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return json_safe(dataclasses.asdict(obj))
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, (str, int, bool)) or obj is None:
        return obj
    if isinstance(obj, dict):
        return {k if isinstance(k, (str, int, float, bool)) else str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    tolist = getattr(obj, "tolist", None)  # numpy scalar / array
    if callable(tolist):
        return json_safe(tolist())
    return obj


def dumps_strict(value: Any, **kw) -> str:
    """json.dumps that never writes NaN/Infinity (they become null)."""
    return json.dumps(json_safe(value), allow_nan=False, **kw)


def write_json_atomic(path: "str | os.PathLike[str]", value: Any, indent: Optional[int] = 1) -> None:
    """Strict JSON to `path`, whole or not at all; a missing parent directory is created."""
    write_text_atomic(path, dumps_strict(value, indent=indent) + "\n")


def read_json(path: "str | os.PathLike[str]", error: type = ValueError, what: str = "file",
              hint: str = "") -> Any:
    """JSON from `path`, or `error` with one line naming it: a directory, unreadable, not UTF-8,
    invalid or too deeply nested JSON. `hint` is appended (e.g. what the user can do about it)."""
    path = os.fspath(path)
    if os.path.lexists(path) and not os.path.isfile(path):
        raise error(f"{path}: not a regular file (a directory?); expected a JSON {what}{hint}")
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise error(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error(f"{path}: not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start}){hint}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise error(f"{path}: invalid JSON ({exc.msg}, line {exc.lineno}){hint}") from None
    except RecursionError:
        raise error(f"{path}: JSON nested too deeply{hint}") from None


# --------------------------------------------------------------------------------------------
# One writer per directory: an exclusive flock on a lock file holding the owner's pid
# --------------------------------------------------------------------------------------------
def try_lock(path: str) -> Optional[int]:
    """Non-blocking exclusive flock on `path` (created if needed), our pid written into it: the
    fd, or None if another process holds it. The kernel drops the lock when the process ends,
    however it ends; the file stays (deleting it would let two processes lock two inodes)."""
    import errno
    import fcntl
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        os.close(fd)
        if exc.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
            return None
        raise
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def unlock(fd: Optional[int]) -> None:
    if fd is not None:
        import fcntl
        try:
            with contextlib.suppress(OSError):
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)


def lock_holder(path: str) -> str:
    """'pid N' of the process that wrote `path` (see try_lock), or 'another process'."""
    import re
    try:
        with open(path, "rb") as f:
            text = f.read(4096).decode("utf-8", "replace")
    except OSError:
        return "another process"
    m = re.search(r'"pid"\s*:\s*(\d+)', text) or re.search(r"\b(\d+)\b", text)
    return f"pid {m.group(1)}" if m else "another process"
