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
import shutil
import stat
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
        os.fchmod(fd, 0o666 & ~current_umask())
        with os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


_UMASK_FALLBACK: Optional[int] = None


def current_umask() -> int:
    """The process umask. Linux shows it in /proc/self/status; elsewhere it can only be read by
    setting it, which is racy with threads, so that is done once and remembered."""
    global _UMASK_FALLBACK
    try:
        with open("/proc/self/status", "rb") as f:
            for line in f:
                if line.startswith(b"Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    if _UMASK_FALLBACK is None:
        _UMASK_FALLBACK = os.umask(0o022)
        os.umask(_UMASK_FALLBACK)
    return _UMASK_FALLBACK


def _kind_of(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a device"),
                       (stat.S_ISBLK, "a device"), (stat.S_ISSOCK, "a socket"), (stat.S_ISLNK, "a symlink")):
        if test(mode):
            return name
    return "not a regular file"


def read_regular_file(path: "str | os.PathLike[str]", max_bytes: int, error: type = ValueError,
                      what: str = "file", missing: str = "") -> bytes:
    """The bytes of `path`, which must be a regular file of at most `max_bytes`, else `error` with one
    line naming it. A FIFO, device or directory is refused before anything is read: the check is
    made with stat before opening, and again on the opened descriptor (opened O_NONBLOCK, so a FIFO
    swapped in between cannot block us). `missing` is appended when the file does not exist."""
    path = os.fspath(path)
    try:
        before = os.stat(path)
    except FileNotFoundError:
        raise error(f"{path}: {what} not found{missing}") from None
    except OSError as exc:
        raise error(f"{path}: cannot read the {what}: {exc.strerror or exc}") from None
    if not stat.S_ISREG(before.st_mode):
        raise error(f"{path}: {_kind_of(before.st_mode)}, expected the {what} as a regular file")
    too_big = f"{path}: the {what} is larger than {max_bytes:,} bytes; refusing to read it"
    if before.st_size > max_bytes:
        raise error(too_big)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise error(f"{path}: cannot read the {what}: {exc.strerror or exc}") from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise error(f"{path}: {_kind_of(mode)}, expected the {what} as a regular file")
        with os.fdopen(fd, "rb", closefd=False) as f:
            data = f.read(max_bytes + 1)
    except OSError as exc:
        raise error(f"{path}: cannot read the {what}: {exc.strerror or exc}") from None
    finally:
        os.close(fd)
    if len(data) > max_bytes:  # it grew since the stat
        raise error(too_big)
    return data


def free_bytes(path: "str | os.PathLike[str]") -> Optional[int]:
    """Free bytes on the file system where `path` is, or will be created (its nearest existing
    ancestor); None when it cannot be asked."""
    current = os.path.abspath(os.fspath(path))
    while not os.path.exists(current) and os.path.dirname(current) != current:
        current = os.path.dirname(current)
    try:
        return shutil.disk_usage(current).free
    except OSError:
        return None


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
    except ValueError:  # an integer longer than sys.get_int_max_str_digits() (4300) digits
        import sys
        raise error(f"{path}: holds an integer of more than {sys.get_int_max_str_digits()} digits; "
                    f"not a file this project writes{hint}") from None
    except RecursionError:
        raise error(f"{path}: JSON nested too deeply{hint}") from None


# --------------------------------------------------------------------------------------------
# One writer per directory: an exclusive flock on a lock file holding the owner's pid
# --------------------------------------------------------------------------------------------
class UnsafeLockError(ValueError):
    """A lock file that is a symlink, a hard link or not a regular file: writing our pid into it
    would write into some other file (`ln -s victim.txt WD/.lock`)."""


def try_lock(path: str) -> Optional[int]:
    """Non-blocking exclusive flock on `path` (created if needed), our pid written into it: the
    fd, or None if another process holds it. The kernel drops the lock when the process ends,
    however it ends; the file stays (deleting it would let two processes lock two inodes).

    The file is opened without following a symlink and is refused (UnsafeLockError, one line) if it
    is a symlink, has other hard links or is not a regular file; it is truncated only once we hold
    the lock and know it is a lock file of its own."""
    import errno
    import fcntl
    flags = os.O_RDWR | os.O_CREAT | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags, 0o666)
    except OSError as exc:
        if exc.errno == errno.ELOOP or os.path.islink(path):
            raise UnsafeLockError(f"{path}: the lock file is a symlink (to "
                                  f"{_link_target(path)}); refusing to write through it: remove it") from None
        if exc.errno in (errno.EISDIR, errno.ENXIO, errno.EINVAL):
            raise UnsafeLockError(f"{path}: the lock file is not a regular file; remove it") from None
        raise
    info = os.fstat(fd)
    problem = ("not a regular file" if not stat.S_ISREG(info.st_mode)
               else f"has {info.st_nlink} hard links (another file shares it)" if info.st_nlink > 1 else "")
    if problem:
        os.close(fd)
        raise UnsafeLockError(f"{path}: the lock file is {problem}; refusing to write into it: remove it")
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


def _link_target(path: str) -> str:
    try:
        return os.readlink(path)[:200]
    except OSError:
        return "?"


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
    try:  # not through a symlink, and a FIFO must not block us
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0))
        try:
            text = os.read(fd, 4096).decode("utf-8", "replace") if stat.S_ISREG(os.fstat(fd).st_mode) else ""
        finally:
            os.close(fd)
    except OSError:
        return "another process"
    m = re.search(r'"pid"\s*:\s*(\d+)', text) or re.search(r"\b(\d+)\b", text)
    return f"pid {m.group(1)}" if m else "another process"
